"""chargen: data, batches, one real step, stateful TBPTT, sampling CLI, bad input."""

import json
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from experiments.chargen import data as data_lib
from experiments.chargen.configs import tiny
from experiments.chargen.task import CharGenTask
from seqjax.train import main

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
        config.data.text_file = text_file
    for k, v in data.items():
        config.data[k] = v
    return config


def test_windows_are_deterministic_and_shifted(text_file):
    d = data_lib.load(_config(text_file).data, batch_size=4, seed=0)
    a, b, c = d.train_batch(3), d.train_batch(3), d.train_batch(4)
    np.testing.assert_array_equal(a["tokens"], b["tokens"])
    assert not np.array_equal(a["tokens"], c["tokens"])
    np.testing.assert_array_equal(a["tokens"][:, 1:], a["targets"][:, :-1])
    # 90/10 split at a character position, protocol-style
    assert len(d.train) == int(len(TEXT) * 0.9) and len(d.train) + len(d.val) == len(TEXT)
    assert d.vocab.decode(d.train[:10]) == TEXT[:10]


def test_eval_windows_follow_the_protocol(text_file):
    d = data_lib.load(_config(text_file, eval_windows=5).data, batch_size=2, seed=0)
    batches = list(d.eval_batches())
    toks = np.concatenate([b["tokens"] for b in batches])
    assert toks.shape == (5, 16)
    val = TEXT[int(len(TEXT) * 0.9):]
    for i in range(5):  # first non-overlapping windows of the validation split
        assert d.vocab.decode(toks[i]) == val[16 * i:16 * (i + 1)]


def test_tbptt_lanes_are_contiguous(text_file):
    d = data_lib.load(_config(text_file, mode="tbptt").data, batch_size=4, seed=0)
    b0, b1 = d.train_batch(0), d.train_batch(1)
    np.testing.assert_array_equal(b0["reset"], 1.0)
    np.testing.assert_array_equal(b1["reset"], 0.0)
    np.testing.assert_array_equal(b0["targets"][:, -1], b1["tokens"][:, 0])  # next window continues the lane
    lane = len(d.train) // 4
    per_lane = (lane - 1) // 16
    np.testing.assert_array_equal(d.train_batch(per_lane)["tokens"], b0["tokens"])  # a new pass restarts


def test_tbptt_state_is_carried_and_reset(text_file):
    config = _config(text_file, mode="tbptt")
    task = CharGenTask(config)
    params = task.init(jax.random.PRNGKey(0))
    state0 = task.init_state(4)
    b1 = task.train_batch(1)
    loss_zero, (_, s1) = task.loss(params, b1, jax.random.PRNGKey(0), train=False, state=state0)
    _, (_, carried) = task.loss(params, task.train_batch(0), jax.random.PRNGKey(0), train=False, state=state0)
    loss_carried, _ = task.loss(params, b1, jax.random.PRNGKey(0), train=False, state=carried)
    assert abs(float(loss_zero) - float(loss_carried)) > 1e-6  # the carried state matters
    b1_reset = dict(b1, reset=np.ones(4, np.float32))
    loss_reset, _ = task.loss(params, b1_reset, jax.random.PRNGKey(0), train=False, state=carried)
    np.testing.assert_allclose(float(loss_reset), float(loss_zero), rtol=1e-6)


def test_one_real_step_changes_every_parameter(text_file):
    from seqjax.train.state import TrainState, make_optimizer, make_train_step  # noqa: F401

    config = _config(text_file)
    task = CharGenTask(config)
    params = task.init(jax.random.PRNGKey(0))
    import optax

    grads = jax.grad(lambda p: task.loss(p, task.train_batch(0), jax.random.PRNGKey(1), train=True,
                                         state=None)[0])(params)
    opt = optax.adam(1e-2)
    updates, _ = opt.update(grads, opt.init(params), params)
    new = optax.apply_updates(params, updates)
    for path, (a, b) in zip(jax.tree_util.tree_leaves_with_path(params),
                            zip(jax.tree_util.tree_leaves(params), jax.tree_util.tree_leaves(new), strict=True),
                            strict=True):
        assert not np.allclose(a, b), f"parameter {jax.tree_util.keystr(path[0])} did not change"


def test_tfds_tiny_shakespeare_under_mock_data():
    import tensorflow_datasets as tfds

    config = _config(source="tiny_shakespeare")
    with tfds.testing.mock_data(num_examples=1, policy=tfds.testing.MockPolicy.USE_CODE):
        d = data_lib.load(config.data, batch_size=2, seed=0)
    assert d.description == "TFDS tiny_shakespeare" and len(d.train) > 16 and d.vocab.size > 1
    assert d.train_batch(0)["tokens"].shape == (2, 16)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    wd = str(tmp_path_factory.mktemp("cg") / "run")
    final = main("chargen", None or __import__("experiments.chargen.task", fromlist=["make_task"]).make_task,
                 ["--config", "tiny", "--workdir", wd, "--config.train.steps=30"])
    return wd, final


def test_train_run_records_and_samples(trained, capsys):
    wd, final = trained
    assert final["val_loss"] < 4.6  # below log(103)=4.63 of a uniform guess over the embedded vocabulary
    assert json.load(open(os.path.join(wd, "final.json")))["val_loss"] == pytest.approx(final["val_loss"])
    assert os.path.getsize(os.path.join(wd, "sample.txt")) > 0
    from experiments.chargen import sample

    out = sample.main(["--workdir", wd, "--prompt", "The ", "--length", "40", "--top_k", "5"])
    assert out.startswith("The ") and len(out) == 44
    greedy1 = sample.main(["--workdir", wd, "--prompt", "The ", "--length", "20", "--greedy"])
    greedy2 = sample.main(["--workdir", wd, "--prompt", "The ", "--length", "20", "--greedy", "--seed", "5"])
    assert greedy1 == greedy2


@pytest.mark.parametrize("args,msg", [
    (["--temperature", "0"], "temperature must be > 0"),
    (["--prompt", "caf\u00e9\u2603"], "outside the model's vocabulary"),
])
def test_sample_bad_input(trained, args, msg, capsys):
    from experiments.chargen import sample

    with pytest.raises(SystemExit) as e:
        sample.main(["--workdir", trained[0], *args])
    assert e.value.code == 2 and msg in capsys.readouterr().err


def test_sample_without_checkpoint(tmp_path, capsys):
    from experiments.chargen import sample

    with pytest.raises(SystemExit):
        sample.main(["--workdir", str(tmp_path)])
    assert "no checkpoints" in capsys.readouterr().err


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
                        f"--config.data.text_file={bad}"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert msg in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not wd.exists()


def test_unknown_matmul_dtype_is_refused_before_the_workdir(tmp_path, text_file):
    wd = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", "experiments.chargen", "--config", "tiny", "--workdir", str(wd),
                        f"--config.data.text_file={text_file}", "--config.model.matmul_dtype=float16"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "matmul_dtype 'float16'" in r.stderr and "Traceback" not in r.stderr, r.stderr[-2000:]
    assert not wd.exists()


def test_bfloat16_matmuls_train(text_file):
    """A step with bf16 matmuls gives float32 params and a loss within 1% of the float32 step's."""
    losses = []
    for dtype in ("float32", "bfloat16"):
        config = _config(text_file)
        config.model.matmul_dtype = dtype
        task = CharGenTask(config)
        params = task.init(jax.random.PRNGKey(0))
        loss, grads = jax.value_and_grad(lambda p, task=task: task.loss(p, task.train_batch(0), jax.random.PRNGKey(1),
                                                                        train=True, state=None)[0])(params)
        assert all(g.dtype == np.float32 for g in jax.tree_util.tree_leaves(grads))
        losses.append(float(loss))
    assert losses[0] != losses[1] and abs(losses[0] - losses[1]) < 0.01 * losses[0]
