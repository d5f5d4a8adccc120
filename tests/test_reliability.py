"""Faults a user's bad day brings, each ending in at most one line, nothing lost and nothing silently wrong.

Non-finite updates, a bit-flipped checkpoint, two runs on one workdir, a full disk, resuming after
an allowed config change or on other data, bad sizes, a file as the workdir, a verb on another
experiment's run, and preemption signals. In-process where possible; subprocesses only for the
lock and the signals.
"""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_task

from experiments.chargen import __main__ as chargen_cli
from seqjax.train import load_from_workdir, make_optimizer, make_train_step
from seqjax.train.state import init_state

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
TOY_CONFIG = toy_task.__file__


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _steps_on_disk(workdir):
    directory = workdir / "checkpoints"
    return sorted((int(n) for n in os.listdir(directory) if n.isdigit()), key=int) if directory.exists() else []


def _error_line(capsys):
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err[-3000:]
    return lines[0]


# ----------------------------------------------------------------------------- 2. non-finite updates


def test_an_update_that_overflows_is_not_applied_though_loss_and_gradient_are_finite():
    config = toy_task.get_config()
    config.train.update(optimizer="sgd", momentum=0.0, learning_rate=1e39)  # inf in float32
    data = toy_task.load(config)
    task = toy_task.ToyTask(config, data.metadata)
    optimizer = make_optimizer(config.train)
    state = jax.jit(lambda k: init_state(task, optimizer, k, 16))(jax.random.PRNGKey(0))
    new, metrics = jax.jit(make_train_step(task, optimizer))(state, data.train[0], jax.random.PRNGKey(1))
    loss, norm = float(metrics["loss"][0] / metrics["loss"][1]), float(metrics["grad_norm"][0])
    assert np.isfinite(loss) and np.isfinite(norm)
    assert int(new.bad_step) == 0 and float(new.bad_loss) == pytest.approx(loss)
    assert float(new.bad_grad_norm) == pytest.approx(norm)
    for before, after in zip(_leaves(state.params), _leaves(new.params), strict=True):
        np.testing.assert_array_equal(before, after)
    assert all(np.all(np.isfinite(x)) for x in _leaves(new.params))


def test_learning_rate_1e39_on_chargen_tiny_stops_naming_a_finite_checkpoint(tmp_path, capsys):
    """The issue's case: the first update at lr=1e39 overflows while its loss and gradient are
    finite. Resumed from a good step-10 checkpoint, the run stops at step 10, saves nothing, and
    names step 10, whose params are finite. (A fresh run's step 0 is the test above.)"""
    workdir = tmp_path / "run"
    base = ["--config", "tiny", "--workdir", str(workdir), "--config.train.eval_every=0",
            "--config.train.log_every=10"]
    chargen_cli.run([*base, "--config.train.steps=10"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chargen_cli.run([*base, "--config.train.steps=20", "--config.train.learning_rate=1e39"])
    assert info.value.code == 1
    line = _error_line(capsys)
    assert "the update at step 10 would have made the params or optimizer state non-finite" in line, line
    assert "learning rate inf" in line and line.endswith(f"last good checkpoint is step 10 in {workdir}/checkpoints")
    assert _steps_on_disk(workdir) == [10]
    params = load_from_workdir(str(workdir)).params
    assert all(np.all(np.isfinite(x)) for x in _leaves(params))
    assert [json.loads(r)["step"] for r in (workdir / "metrics.jsonl").read_text().splitlines()] == [10]



def test_all_finite_sees_every_floating_leaf():
    from seqjax.train.state import all_finite

    tree = {"a": jnp.ones(3), "b": [jnp.zeros((2, 2), jnp.bfloat16), jnp.arange(4)]}
    assert bool(all_finite(tree))
    assert not bool(all_finite({**tree, "c": jnp.array([1.0, jnp.inf])}))
    assert not bool(all_finite({**tree, "b": [jnp.full((2, 2), jnp.nan, jnp.bfloat16), jnp.arange(4)]}))
    assert bool(all_finite({"n": jnp.arange(3)}))
