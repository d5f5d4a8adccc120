"""Sentiment experiment: one real step on mock IMDB, padding invariance, an end-to-end run of the
tiny config through the CLI (learns the marker task), predict from the workdir, bad input."""

import json
import os
import re

import jax
import numpy as np
import pytest
import tensorflow_datasets as tfds

from experiments.sentiment import data as data_lib
from experiments.sentiment.__main__ import run
from experiments.sentiment.configs import tiny
from experiments.sentiment.data import MARKERS, generate_marker_reviews
from experiments.sentiment.model import SentimentModel
from experiments.sentiment.task import SentimentTask
from seqjax.data.text import PAD_ID
from seqjax.train import load_from_workdir, make_optimizer, make_train_step
from seqjax.train.state import init_state


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


# ----------------------------------------------------------------------------- one real step


def test_one_training_step_on_mock_imdb_changes_every_parameter():
    config = tiny.get_config()
    config.train.batch_size = 8
    config.data.update(source="imdb_reviews", vocab_size=64, max_len=6, val_fraction=0.25,
                       **{k: v for k, v in data_lib.default.get_config().data.items() if k.startswith("gen_")})
    config.model.update(dropout=0.1)  # exercises the dropout rng path too
    with tfds.testing.mock_data(num_examples=16, policy=tfds.testing.MockPolicy.USE_CODE):
        data = data_lib.load(config)
    task = SentimentTask(config, data.metadata)
    splits = data.splits
    assert (len(splits.train), len(splits.val), len(splits.test)) == (12, 4, 16)
    optimizer = make_optimizer(config.train)
    state = jax.jit(lambda k: init_state(task, optimizer, k, 8))(jax.random.PRNGKey(0))
    batch = data.train[0]
    new, metrics = jax.jit(make_train_step(task, optimizer))(state, batch, jax.random.PRNGKey(1))

    embed_before, embed_after = np.asarray(state.params["embed"]), np.asarray(new.params["embed"])
    rest_before, rest_after = _leaves({**state.params, "embed": 0}), _leaves({**new.params, "embed": 0})
    for before, after in zip(rest_before, rest_after, strict=True):
        assert before.size == 1 or np.all(before != after)  # every weight and bias of RNN and head
    seen = np.unique(batch["tokens"][batch["tokens"] != PAD_ID])
    unseen = np.setdiff1d(np.arange(64), seen)  # PAD included: padding gets no gradient
    assert len(seen) > 3 and np.all(embed_before[seen] != embed_after[seen])  # rows of words read
    assert np.any(batch["tokens"] == PAD_ID)  # the mock reviews are 1-3 words: padding is there
    np.testing.assert_array_equal(embed_before[unseen], embed_after[unseen])  # Adam: no gradient, no step
    assert int(new.step) == 1 and int(new.bad_step) == -1
    total, count = metrics["loss"]
    correct, n = metrics["accuracy"]
    assert float(count) == 8 and float(n) == 8 and np.isfinite(float(total))
    assert 0 <= float(correct) <= 8


# ----------------------------------------------------------------------------- padding


@pytest.mark.parametrize(
    "cell, bidirectional, layers, pooling",
    [("lstm", True, 2, "last"), ("gru", True, 2, "mean"), ("rnn_tanh", True, 2, "max"),
     ("gru", False, 1, "last")],
)
def test_a_review_gives_the_same_logit_alone_and_in_a_padded_batch(cell, bidirectional, layers, pooling):
    model = SentimentModel(vocab_size=20, embed_dim=6, hidden=5, cell=cell, num_layers=layers,
                           bidirectional=bidirectional, pooling=pooling)
    rng = np.random.default_rng(0)
    # Random params of the model's shapes (numpy: compiling jax.random init costs seconds on a CPU).
    params = jax.tree.map(lambda a: rng.normal(0.0, 0.5, a.shape).astype(np.float32),
                          jax.eval_shape(model.init, jax.random.PRNGKey(0)))
    lengths = np.array([9, 1, 5, 12], np.int32)
    tokens = np.full((4, 12), PAD_ID, np.int32)
    for row, n in enumerate(lengths):
        tokens[row, :n] = rng.integers(2, 20, size=n)
    logits_fn = jax.jit(model.__call__)
    batched = np.asarray(logits_fn(params, tokens, lengths))
    for row in (0, 2):  # lengths 9 and 5, unpadded
        n = lengths[row]
        alone = np.asarray(logits_fn(params, tokens[row:row + 1, :n], lengths[row:row + 1]))
        np.testing.assert_allclose(batched[row], alone[0], rtol=1e-5, atol=1e-6)
    assert len(np.unique(batched)) == 4  # the reviews do differ


def test_model_config_errors_name_the_field():
    with pytest.raises(ValueError, match=r"config\.model\.pooling='median': expected one of last, mean, max"):
        SentimentModel(vocab_size=10, pooling="median")
    with pytest.raises(ValueError, match=r"config\.model\.init='glorot': expected one of"):
        SentimentModel(vocab_size=10, init_scheme="glorot")


# ----------------------------------------------------------------------------- end to end


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """The tiny config trained through the CLI: (workdir, final metrics)."""
    workdir = tmp_path_factory.mktemp("sentiment") / "run"
    final = run(["--workdir", str(workdir), "--config", "tiny"])
    return workdir, final


def test_tiny_bilstm_learns_the_marker_task_through_the_cli(trained):
    workdir, final = trained
    assert json.loads((workdir / "final.json").read_text()) == final
    assert final["steps"] == 150 and final["test_examples"] == 200
    assert final["test_accuracy"] >= 0.95
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [50, 100, 150]
    assert all(0 <= r["val_accuracy"] <= 1 and r["val_loss"] > 0 for r in records)
    assert final["val_accuracy"] == records[-1]["val_accuracy"] >= 0.95

    confusion = json.loads((workdir / "confusion.json").read_text())
    (tn, fp), (fn, tp) = confusion["matrix"]
    assert confusion["matrix"] == final["test_confusion"] and tn + fp + fn + tp == 200
    assert (tn + tp) / 200 == pytest.approx(final["test_accuracy"])
    results = (workdir / "results.md").read_text()
    assert f"| {final['test_accuracy']:.4f} |" in results and f"| **positive** | {fn} | {tp} |" in results


def predict(argv):
    return run(["predict", *argv])


def test_predict_rebuilds_the_model_from_the_workdir(trained, tmp_path, capsys):
    workdir, final = trained
    probs = predict(["--workdir", str(workdir), "w1 w2 w3 great w4 w5", "w1 w2 awful w3 w4 w5"])
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("\tw1 w2 w3 great w4 w5")
    assert float(out[0].split("\t")[0]) == pytest.approx(probs[0], abs=1e-4)
    assert np.all((probs >= 0) & (probs <= 1)) and probs[0] > 0.5 > probs[1]

    # The vocabulary from the metadata encodes the test set exactly as training did.
    cfg = tiny.get_config().data
    texts, labels = generate_marker_reviews(cfg.gen_test_size, cfg.gen_min_len, cfg.gen_max_len,
                                            cfg.gen_num_fillers, seed=[cfg.gen_seed, 1])
    restored = load_from_workdir(str(workdir), SentimentTask, which="best")
    probs = restored.task.probabilities(restored.params, texts)
    assert np.mean((probs > 0.5) == labels) == pytest.approx(final["test_accuracy"])

    reviews = tmp_path / "reviews.txt"
    reviews.write_text(f"w3 {MARKERS[1]}\n\n{MARKERS[0]} w9 w9\n", encoding="utf-8")
    from_file = predict(["--workdir", str(workdir), "--file", str(reviews)])
    assert from_file.shape == (2,) and from_file[0] > 0.5 > from_file[1]


@pytest.mark.parametrize(
    "args, message",
    [
        (["", "fine"], r"review 1 is empty \(no words after tokenisation\)"),
        (["fine", "<br />  "], r"review 2 is empty"),
        ([], r"give at least one review, or --file PATH"),
    ],
)
def test_predict_rejects_empty_reviews(trained, capsys, args, message):
    workdir, _ = trained
    with pytest.raises(SystemExit) as info:
        predict(["--workdir", str(workdir), *args])
    assert info.value.code == 2
    assert re.search(message, capsys.readouterr().err)


def test_predict_errors_for_a_workdir_without_checkpoint_and_a_blank_file(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        predict(["--workdir", str(tmp_path), "a fine film"])
    assert info.value.code == 2
    err = capsys.readouterr().err
    assert f"no checkpoints in {tmp_path}" in err and "./launch.sh sentiment --workdir" in err
    assert os.listdir(tmp_path) == []  # nothing created
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n", encoding="utf-8")
    with pytest.raises(SystemExit) as info:
        predict(["--workdir", str(tmp_path), "--file", str(blank)])
    assert info.value.code == 2 and "holds no reviews" in capsys.readouterr().err


# ----------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.data.max_len=0", "config.data.max_len=0: expected an integer >= 1"),
        ("--config.data.source=imdb", "config.data.source='imdb': expected one of"),
        ("--config.model.pooling=median", "config.model.pooling='median': expected one of last, mean, max"),
        ("--config.model.cell=gru --config.model.forget_bias=0.5", "config.model.forget_bias=0.5 only takes effect"
                                                                  " with model.cell='lstm'"),
    ],
)
def test_bad_input_exits_2_without_a_workdir(tmp_path, capsys, monkeypatch, override, message):
    monkeypatch.chdir(tmp_path)
    workdir = tmp_path / "run"
    with pytest.raises(SystemExit) as info:
        run(["--workdir", str(workdir), "--config", "tiny", *override.split()])
    assert info.value.code == 2
    assert message in capsys.readouterr().err
    assert not workdir.exists()
    with pytest.raises(SystemExit) as info:  # the default workdir (runs/sentiment/<time>) neither
        run(["--config", "tiny", *override.split()])
    assert info.value.code == 2 and os.listdir(tmp_path) == []
