"""chargen: data, batches, one real step, stateful TBPTT, the sample verb, bad input."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import optax
import pytest

from experiments.chargen import __main__ as cli
from experiments.chargen import data as data_lib
from experiments.chargen.configs import tiny
from experiments.chargen.task import CharGenTask
from seqjax.train import ConfigError

TEXT = ("It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.\n") * 40


@pytest.fixture
def text_file(tmp_path):
    p = tmp_path / "corpus.txt"
    p.write_text(TEXT, encoding="utf-8")
    return str(p)


def _config(text_file=None, **data):
    config = tiny.get_config()
    if text_file:
        config.data.source = "file"
        config.data.text_file = text_file
    config.data.update(data)
    return config


def _task(config):
    data = data_lib.load(config)
    return CharGenTask(config, data.metadata), data


def test_windows_are_deterministic_shuffled_epochs(tmp_path):
    letters = np.random.default_rng(0).choice(list("abcdefghijklmnopqrstuvwxyz "), size=600)
    path = tmp_path / "random.txt"
    path.write_text("".join(letters), encoding="utf-8")  # every 16-character window is distinct
    d = data_lib.load(_config(str(path)))
    a, b, c = d.train[3], d.train[3], d.train[4]
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert not np.array_equal(a["tokens"], c["tokens"])
    np.testing.assert_array_equal(a["tokens"][:, 1:], a["targets"][:, :-1])
    assert a["tokens"].shape == (4, 16) and a["weight"].tolist() == [1.0] * 4
    # a 90/10 split at a character position; each epoch visits every training window once
    train_ids = d.vocab.encode("".join(letters[:540]))
    start_of = {train_ids[s:s + 16].tobytes(): s for s in range(540 - 16)}
    seen = [start_of[row.tobytes()] for step in range(2 * 524 // 4) for row in d.train[step]["tokens"]]
    assert sorted(seen[:524]) == sorted(seen[524:]) == list(range(524))
    assert seen[:524] != seen[524:]  # a fresh order each epoch


def test_eval_windows_follow_the_protocol_and_pad_the_last_batch(text_file):
    config = _config(text_file, eval_windows=5)
    config.eval.batch_size = 2
    d = data_lib.load(config)
    batches = [d.val[i] for i in range(len(d.val))]
    assert [b["tokens"].shape for b in batches] == [(2, 16)] * 3
    assert np.concatenate([b["weight"] for b in batches]).tolist() == [1, 1, 1, 1, 1, 0]
    val = TEXT[int(len(TEXT) * 0.9):]
    toks = np.concatenate([b["tokens"] for b in batches])
    for i in range(5):  # the first non-overlapping windows of the validation split
        assert d.vocab.decode(toks[i]) == val[16 * i:16 * (i + 1)]


def test_tbptt_lanes_are_contiguous(text_file):
    d = data_lib.load(_config(text_file, mode="tbptt"))
    b0, b1 = d.train[0], d.train[1]
    np.testing.assert_array_equal(b0["reset"], 1.0)
    np.testing.assert_array_equal(b1["reset"], 0.0)
    np.testing.assert_array_equal(b0["targets"][:, -1], b1["tokens"][:, 0])  # next window continues the lane
    lane = int(len(TEXT) * 0.9) // 4
    per_lane = (lane - 1) // 16
    np.testing.assert_array_equal(d.train[per_lane]["tokens"], b0["tokens"])  # a new pass restarts


def test_tbptt_state_is_carried_and_reset(text_file):
    task, data = _task(_config(text_file, mode="tbptt"))
    params = task.init(jax.random.PRNGKey(0))
    state0 = task.init_state(4)
    b1 = data.train[1]
    loss_zero, _ = task.loss(params, b1, jax.random.PRNGKey(0), train=False, state=state0)
    _, (_, carried) = task.loss(params, data.train[0], jax.random.PRNGKey(0), train=False, state=state0)
    loss_carried, _ = task.loss(params, b1, jax.random.PRNGKey(0), train=False, state=carried)
    assert abs(float(loss_zero) - float(loss_carried)) > 1e-6  # the carried state matters
    b1_reset = dict(b1, reset=np.ones(4, np.float32))
    loss_reset, _ = task.loss(params, b1_reset, jax.random.PRNGKey(0), train=False, state=carried)
    np.testing.assert_allclose(float(loss_reset), float(loss_zero), rtol=1e-6)


def test_one_real_step_changes_every_parameter(text_file):
    task, data = _task(_config(text_file))
    params = task.init(jax.random.PRNGKey(0))
    grads = jax.grad(lambda p: task.loss(p, data.train[0], jax.random.PRNGKey(1), train=True, state=None)[0])(params)
    opt = optax.adam(1e-2)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    for (path, a), b in zip(jax.tree_util.tree_leaves_with_path(params), jax.tree.leaves(new), strict=True):
        assert not np.allclose(a, b), f"parameter {jax.tree_util.keystr(path)} did not change"


def test_padding_rows_do_not_count(text_file):
    task, data = _task(_config(text_file))
    params = task.init(jax.random.PRNGKey(0))
    batch = data.train[0]
    _, (full, _) = task.loss(params, batch, None, train=False, state=None)
    half = dict(batch, weight=np.array([1, 1, 0, 0], np.float32))
    _, (part, _) = task.loss(params, half, None, train=False, state=None)
    two = {k: v[:2] for k, v in batch.items()}
    _, (alone, _) = task.loss(params, two, None, train=False, state=None)
    assert float(part["loss"][1]) == 32 and float(full["loss"][1]) == 64
    np.testing.assert_allclose(float(part["loss"][0]), float(alone["loss"][0]), rtol=1e-6)


def test_tfds_tiny_shakespeare_under_mock_data():
    import tensorflow_datasets as tfds

    config = _config(source="tiny_shakespeare")
    config.data.train_fraction = tiny.get_config().data.train_fraction
    with tfds.testing.mock_data(num_examples=1, policy=tfds.testing.MockPolicy.USE_CODE):
        d = data_lib.load(config)
    assert d.description == "TFDS tiny_shakespeare" and d.vocab.size > 1
    assert d.train[0]["tokens"].shape == (4, 16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("cg") / "run")
    final = cli.run(["--config", "tiny", "--workdir", wd, "--config.train.steps=30"])
    return wd, final


def test_train_run_records_and_samples(trained, capsys):
    wd, final = trained
    assert final["val_loss"] < 4.6  # below log(103)=4.63 of a uniform guess over the embedded vocabulary
    assert final["num_params"] > 0 and final["vocab_size"] > 50
    assert json.load(open(os.path.join(wd, "final.json")))["val_loss"] == pytest.approx(final["val_loss"])
    assert os.path.getsize(os.path.join(wd, "sample.txt")) > 0
    out = cli.run(["sample", "--workdir", wd, "--prompt", "The ", "--length", "40", "--top_k", "5"])
    assert out.startswith("The ") and len(out) == 44
    greedy1 = cli.run(["sample", "--workdir", wd, "--prompt", "The ", "--length", "20", "--greedy"])
    greedy2 = cli.run(["sample", "--workdir", wd, "--prompt", "The ", "--length", "20", "--greedy", "--seed", "5"])
    assert greedy1 == greedy2


@pytest.mark.parametrize("args,msg", [
    (["--temperature", "0"], "temperature must be > 0"),
    (["--prompt", "caf\u00e9\u2603"], "outside the model's vocabulary"),
])
def test_sample_bad_input(trained, args, msg, capsys):
    with pytest.raises(SystemExit) as e:
        cli.run(["sample", "--workdir", trained[0], *args])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_sample_without_checkpoint(tmp_path, capsys):
    with pytest.raises(SystemExit) as e:
        cli.run(["sample", "--workdir", str(tmp_path)])
    assert e.value.code == 2 and "no checkpoints" in capsys.readouterr().err


@pytest.mark.parametrize("content,msg", [
    (b"", "is empty"),
    (b"too short", "characters"),
    (b"\xff\xfe\x00bad", "UTF-8"),
])
def test_bad_text_files_leave_no_workdir(tmp_path, content, msg):
    bad = tmp_path / "bad.txt"
    bad.write_bytes(content)
    wd = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "experiments.chargen", "--config", "tiny", "--workdir", str(wd),
                        "--config.data.source=file", f"--config.data.text_file={bad}"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not wd.exists()


@pytest.mark.parametrize("overrides, message", [
    (["--config.data.text_file=x.txt"], "config.data.text_file='x.txt' only takes effect with data.source='file' "
                                        "(this config has data.source='embedded')"),
    (["--config.data.source=file"], "data.source='file' needs a path"),
    (["--config.data.source=tiny_shakespeare", "--config.data.train_fraction=0.8"],
     "config.data.train_fraction=0.8 only takes effect with data.source='embedded' or 'file'"),
    (["--config.data.tfds_data_dir=/tmp"], "config.data.tfds_data_dir='/tmp' only takes effect with "
                                           "data.source='tiny_shakespeare'"),
    (["--config.model.cell=gru", "--config.model.forget_bias=1.0"],
     "config.model.forget_bias=1.0 only takes effect with model.cell='lstm' (this config has model.cell='gru')"),
    (["--config.model.num_layers=1", "--config.model.dropout=0.2"],
     "config.model.dropout=0.2 only takes effect with model.num_layers > 1"),
    (["--config.model.hidden=0"], "config.model.hidden=0: expected an integer >= 1"),
    (["--config.model.matmul_dtype=float16"], "config.model.matmul_dtype='float16': expected one of float32, bfloat16"),
    (["--config.data.mode=lanes"], "config.data.mode='lanes': expected one of windows, tbptt"),
])
def test_bad_config_exits_2_without_a_workdir(tmp_path, capsys, overrides, message):
    wd = tmp_path / "run"
    with pytest.raises(SystemExit) as e:
        cli.run(["--config", "tiny", "--workdir", str(wd), *overrides])
    err = capsys.readouterr().err
    assert e.value.code == 2 and message in err and len(err.splitlines()) == 1, err
    assert not wd.exists()


def test_bfloat16_matmuls_train(text_file):
    """A step with bf16 matmuls gives float32 params and a loss within 1% of the float32 step's."""
    losses = []
    for dtype in ("float32", "bfloat16"):
        config = _config(text_file)
        config.model.matmul_dtype = dtype
        task, data = _task(config)
        params = task.init(jax.random.PRNGKey(0))
        loss, grads = jax.value_and_grad(lambda p, task=task, b=data.train[0]: task.loss(
            p, b, jax.random.PRNGKey(1), train=True, state=None)[0])(params)
        assert all(g.dtype == np.float32 for g in jax.tree.leaves(grads))
        losses.append(float(loss))
    assert losses[0] != losses[1] and abs(losses[0] - losses[1]) < 0.01 * losses[0]


def test_a_model_error_is_a_config_error():
    config = tiny.get_config()
    config.model.embed_dim = 0
    with pytest.raises(ConfigError, match=r"config\.model\.embed_dim=0"):
        CharGenTask(config, {"vocab": {"kind": "char", "chars": "ab"}})
