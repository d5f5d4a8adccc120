"""memory: the generated tasks, the skill score, the gradient probe against a direct computation,
one real step, a tiny run with its verb, and bad configs."""

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.memory import __main__ as cli
from experiments.memory import data as data_lib
from experiments.memory.configs import default, tiny
from experiments.memory.task import MemoryTask, per_example
from seqjax.cells import LSTMCarry
from seqjax.train import ConfigError
from seqjax.train.state import init_state, make_optimizer, make_train_step


def _config(**data):
    config = tiny.get_config()
    config.data.update(data)
    return config


def test_batches_are_a_pure_function_of_seed_and_step():
    a, b = data_lib.load(_config()), data_lib.load(_config())
    for k in ("inputs", "targets"):
        np.testing.assert_array_equal(a.train[5][k], b.train[5][k])
    assert not np.array_equal(a.train[5]["inputs"], a.train[6]["inputs"])
    other = _config()
    other.seed = 7
    c = data_lib.load(other)
    assert not np.array_equal(c.train[5]["inputs"], a.train[5]["inputs"])
    # validation and test sets are fixed whatever the run seed, and differ from each other
    np.testing.assert_array_equal(c.val[0]["inputs"], a.val[0]["inputs"])
    np.testing.assert_array_equal(c.test[0]["inputs"], a.test[0]["inputs"])
    assert not np.array_equal(a.val[0]["inputs"], a.test[0]["inputs"])


def test_adding_sequences():
    d = _config(lag=30).data
    s = data_lib.fixed_set(d, 200, 0)
    x, y = s["inputs"], s["targets"]
    assert x.shape == (200, 30, 2) and y.shape == (200,)
    marks = x[:, :, 1]
    np.testing.assert_array_equal(marks.sum(1), 2)
    assert (marks[:, :15].sum(1) == 1).all() and (marks[:, 15:].sum(1) == 1).all()  # one in each half
    np.testing.assert_allclose(y, (x[:, :, 0] * marks).sum(1), rtol=1e-6)
    assert 0 <= x[:, :, 0].min() and x[:, :, 0].max() < 1
    # the trivial baseline: predicting the mean 1 scores Var(u + u') = 1/6
    big = data_lib.fixed_set(d, 4000, 1)["targets"]
    assert abs(np.mean((big - 1.0) ** 2) - data_lib.ADDING_BASELINE_MSE) < 0.01


def test_copy_sequences():
    d = _config(task="copy", lag=9, copy_len=3, num_symbols=5).data
    s = data_lib.fixed_set(d, 50, 0)
    tokens = s["inputs"].argmax(-1)
    assert s["inputs"].shape == (50, 12, 7) and s["targets"].shape == (50, 3)
    np.testing.assert_array_equal(tokens[:, :3], s["targets"])  # symbol i read at step i ...
    np.testing.assert_array_equal(tokens[:, 8], 6)  # ... the delimiter at lag - 1 ...
    blank = np.r_[3:8, 9:12]
    np.testing.assert_array_equal(tokens[:, blank], 5)  # ... and blanks, also while writing back
    assert data_lib.layout(d).readout == (9, 12) and data_lib.layout(d).baseline == pytest.approx(1 / 5)


def test_tagging_sequences():
    d = _config(task="tagging", lag=2, tag_len=9, num_symbols=4).data
    s = data_lib.fixed_set(d, 30, 0)
    x = s["inputs"].argmax(-1)
    lay = data_lib.layout(d)
    assert lay.readout == (2, 7) and lay.classes == 16 and s["targets"].shape == (30, 5)
    for t in range(2, 7):
        np.testing.assert_array_equal(s["targets"][:, t - 2], x[:, t - 2] * 4 + x[:, t + 2])


def test_skill_is_zero_for_the_trivial_prediction_and_one_for_a_perfect_one():
    lay = data_lib.layout(default.get_config().data)
    y = jnp.asarray(data_lib.fixed_set(default.get_config().data, 4000, 3)["targets"])
    assert float(jnp.mean(per_example(lay, y, y)["skill"])) == 1.0
    assert abs(float(jnp.mean(per_example(lay, jnp.ones_like(y), y)["skill"]))) < 0.06
    copy = data_lib.layout(_config(task="copy", lag=8).data)
    targets = jnp.zeros((4, 5), jnp.int32)
    uniform = per_example(copy, jnp.zeros((4, 5, 8)), targets)  # argmax of ties is class 0: all right
    assert float(uniform["skill"][0]) == 1.0
    wrong = per_example(copy, jax.nn.one_hot(jnp.ones((4, 5), jnp.int32), 8), targets)
    assert float(wrong["skill"][0]) == pytest.approx(-1 / 7)  # accuracy 0 is below chance 1/8


@pytest.mark.parametrize("cell", ["rnn", "lstm", "gru"])
def test_gradient_probe_matches_a_direct_computation(cell):
    """dL/dh_t from the nudge equals the gradient of the loss as a function of the state after step t."""
    config = _config(lag=6)
    config.model.cell = cell
    task = MemoryTask(config, {})
    params = task.init(jax.random.PRNGKey(1))
    s = data_lib.fixed_set(config.data, 5, config.data.test_seed)  # the sequences the probe reads
    x, y = jnp.asarray(s["inputs"]), jnp.asarray(s["targets"])
    got = task.gradient_profile(params, 5)["norm"][::-1]  # by step t again
    core = task.model.stack.cell
    p = params["rnn"][0]["fwd"]

    def loss_from(t, carry):  # per-example loss, run on from the carry after step t
        for u in range(t + 1, x.shape[1]):
            carry, _ = core.step(p, carry, x[:, u])
        h = core.carry_hidden(carry)
        return per_example(task.layout, task.model.readout(params, jax.tree.map(lambda a: a[None], carry), None),
                           y)["loss"], h

    carry = core.initial_carry((5,), 16)
    for t in range(x.shape[1]):
        carry, _ = core.step(p, carry, x[:, t])
        if cell == "lstm":
            g = jax.grad(lambda h, c=carry.c, t=t: jnp.sum(loss_from(t, LSTMCarry(h, c))[0]))(carry.h)
        else:
            g = jax.grad(lambda h, t=t: jnp.sum(loss_from(t, h)[0]))(carry)
        np.testing.assert_allclose(got[t], float(jnp.mean(jnp.linalg.norm(g, axis=-1))), rtol=1e-4)


def test_the_probe_refuses_stacks():
    config = _config()
    config.model.num_layers = 2
    task = MemoryTask(config, {})
    with pytest.raises(ValueError, match="num_layers=1"):
        task.gradient_profile(task.init(jax.random.PRNGKey(0)), 2)


@pytest.mark.parametrize("task", ["adding", "copy", "tagging"])
def test_one_real_step_changes_every_parameter(task):
    config = _config(task=task, lag=6)
    if task == "tagging":
        config.model.bidirectional = True
    data = data_lib.load(config)
    t = MemoryTask(config, data.metadata)
    optimizer = make_optimizer(config.train)
    state = init_state(t, optimizer, jax.random.PRNGKey(0), config.train.batch_size)
    new, metrics = jax.jit(make_train_step(t, optimizer))(state, data.train[0], jax.random.PRNGKey(1))
    assert np.isfinite(float(metrics["loss"][0]))
    for before, after in zip(jax.tree.leaves(state.params), jax.tree.leaves(new.params), strict=True):
        assert not np.allclose(before, after), "a parameter did not change"


def test_a_tiny_run_learns_and_the_gradients_verb_reads_it(tmp_path, capsys):
    workdir = str(tmp_path / "run")
    final = cli.run(["--config", "tiny", "--workdir", workdir])
    assert final["test_skill"] > 0.5, final  # measured 0.987
    assert final["test_mse"] < data_lib.ADDING_BASELINE_MSE / 2
    capsys.readouterr()
    profile = cli.gradients(["--workdir", workdir, "--sequences", "16"])
    printed = capsys.readouterr().out.splitlines()
    assert printed[1] == "distance\tnorm" and len(printed) == 2 + 10
    assert profile["distance"] == list(range(10)) and all(n > 0 for n in profile["norm"])
    saved = json.load(open(os.path.join(workdir, "gradients.json")))
    assert saved["norm"] == profile["norm"] and saved["params"] == "step 300"
    init = cli.gradients(["--workdir", workdir, "--init", "--sequences", "16"])
    assert init["norm"] != profile["norm"] and os.path.exists(os.path.join(workdir, "gradients_init.json"))


@pytest.mark.parametrize("overrides, message", [
    ({"task": "sorting"}, "data.task='sorting': expected one of adding, copy, tagging"),
    ({"task": "copy", "lag": 5}, "the copy task needs lag > copy_len=5"),
    ({"copy_len": 3}, "config.data.copy_len=3 only takes effect with data.task='copy'"),
    ({"task": "tagging", "lag": 20}, "tagging needs tag_len > 2 * lag = 40"),
    ({"lag": 0}, "data.lag=0: expected an integer >= 1"),
])
def test_bad_data_configs_fail_in_one_line(overrides, message):
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace("*", r"\*")):
        data_lib.load(_config(**overrides))


def test_a_bad_config_exits_2_before_the_workdir_exists(tmp_path):
    workdir = tmp_path / "never"
    proc = subprocess.run([sys.executable, "-m", "experiments.memory", "--workdir", str(workdir), "--config", "tiny",
                           "--config.model.cell=gru", "--config.model.forget_bias=2.0"],
                          capture_output=True, text=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "experiments.memory: error: config.model.forget_bias=2.0 only takes effect with model.cell='lstm' (this "
        "config has model.cell='gru'); set that as well, or leave model.forget_bias at its default 1.0"]
    assert not workdir.exists()
