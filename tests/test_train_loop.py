"""The train step, the optimizer, and one end-to-end run of the toy task through the CLI."""

import json
import os

import jax
import numpy as np
import pytest
import toy_task

from seqjax.train import NonFiniteLossError, Task, load_from_workdir, main, make_optimizer, make_train_step, train
from seqjax.train.state import init_state, learning_rate_schedule

TOY_CONFIG = toy_task.__file__


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _fresh(config):
    data = toy_task.load(config)
    task = toy_task.ToyTask(config, data.metadata)
    optimizer = make_optimizer(config.train)
    state = jax.jit(lambda k: init_state(task, optimizer, k, config.train.batch_size))(jax.random.PRNGKey(0))
    return data, jax.jit(make_train_step(task, optimizer)), state


def _toy(config):
    data = toy_task.load(config)
    return toy_task.ToyTask(config, data.metadata), data


def _main(argv):
    return main("toy", toy_task.ToyTask, toy_task.load, argv)


@pytest.fixture(scope="module")
def toy():
    """(config, data, jitted train step, initial state), compiled once for the tests below."""
    config = toy_task.get_config()
    config.data.nan_at_step = 1
    return (config, *_fresh(config))


def test_one_real_step_changes_every_parameter(toy):
    config, data, step, state = toy
    new, metrics = step(state, data.train[0], jax.random.PRNGKey(1))
    for before, after in zip(_leaves(state.params), _leaves(new.params), strict=True):
        assert np.all(before != after)
    assert int(new.step) == 1 and int(new.bad_step) == -1
    assert int(new.task_state["examples_seen"]) == config.train.batch_size
    total, count = metrics["loss"]
    assert float(count) == config.train.batch_size and np.isfinite(float(total))


def test_loss_decreases_over_fifty_steps(toy):
    config, data, step, state = toy
    losses = []
    for s in range(2, 52):  # past the NaN batch at step 1
        state, metrics = step(state, data.train[s], jax.random.PRNGKey(1))
        losses.append(metrics["loss"])
    losses = [float(t / c) for t, c in jax.device_get(losses)]
    assert np.mean(losses[-5:]) < 0.3 * np.mean(losses[:5])


def test_a_non_finite_loss_skips_the_update_and_records_the_step(toy):
    config, data, step, state = toy
    state, _ = step(state, data.train[0], jax.random.PRNGKey(1))
    good = _leaves((state.params, state.opt_state, state.task_state))
    state, _ = step(state, data.train[1], jax.random.PRNGKey(1))
    assert int(state.bad_step) == 1 and np.isnan(float(state.bad_loss))
    for before, after in zip(good, _leaves((state.params, state.opt_state, state.task_state)), strict=True):
        np.testing.assert_array_equal(before, after)
    state, _ = step(state, data.train[2], jax.random.PRNGKey(1))
    assert int(state.bad_step) == 1  # the first bad step is kept


@pytest.mark.parametrize("optimizer, schedule, clip", [("adamw", "cosine", 1.0), ("sgd", "constant", 0.5)])
def test_optimizers_and_schedules(optimizer, schedule, clip):
    config = toy_task.get_config()
    config.train.update(
        optimizer=optimizer,
        schedule=schedule,
        clip_norm=clip,
        warmup_steps=10,
        weight_decay=1e-4,
        steps=100,
        learning_rate=0.1,
    )
    lr = learning_rate_schedule(config.train)
    assert float(lr(0)) == 0.0 and float(lr(5)) == pytest.approx(0.05)
    assert float(lr(10)) == pytest.approx(0.1)
    assert float(lr(100)) == pytest.approx(0.0 if schedule == "cosine" else 0.1, abs=1e-7)
    data, step, state = _fresh(config)
    new, _ = step(state, data.train[0], jax.random.PRNGKey(1))
    assert all(
        np.all(a == b) for a, b in zip(_leaves(state.params), _leaves(new.params), strict=True)
    )  # lr(0) == 0
    new, _ = step(new, data.train[1], jax.random.PRNGKey(1))
    assert all(np.all(a != b) for a, b in zip(_leaves(state.params), _leaves(new.params), strict=True))


def test_the_task_base_class_defaults():
    class Minimal(Task):
        name = "minimal"

    task = Minimal(None, {"vocab": 3})
    assert task.metadata == {"vocab": 3} and task.init_state(4) is None
    assert task.final_eval(None, None, "") == {} and task.on_log(None, 1, None) is None
    assert task.batch_tokens({"tokens": np.zeros((4, 7)), "weight": np.ones(4)}) == 28
    with pytest.raises(NotImplementedError):
        task.init(jax.random.PRNGKey(0))


def test_end_to_end_run_leaves_a_complete_workdir(tmp_path, capsys):
    workdir = tmp_path / "run"
    argv = [
        "--workdir",
        str(workdir),
        "--config",
        TOY_CONFIG,
        "--config.train.eval_every=10",
        "--config.train.checkpoint_every=10",
        "--config.train.max_to_keep=1",
        "--config.train.best_mode=max",
    ]  # 'best' = highest val loss: an early step, kept beside the latest
    final = _main(argv)
    out = capsys.readouterr().out

    final_line = [line for line in out.splitlines() if line.startswith("final: ")]
    assert len(final_line) == 1 and "val_loss=" in final_line[0] and "test_mse=" in final_line[0]
    assert json.loads((workdir / "final.json").read_text()) == final
    assert final["steps"] == 40 and final["wall_time_s"] > 0
    assert final["num_params"] == 4 * 8 + 8 + 8 * 1 + 1
    assert np.isfinite(final["val_loss"]) and np.isfinite(final["test_mse"])

    saved = json.loads((workdir / "config.json").read_text())
    assert saved["train"]["eval_every"] == 10 and saved["model"] == {"hidden": 8}

    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [10, 20, 30, 40]
    assert all("val_loss" in r and "train_loss" in r and r["tokens_per_s"] > 0 for r in records)
    assert records[-1]["train_loss"] < records[0]["train_loss"]
    assert final["val_loss"] == records[-1]["val_loss"]

    events = list((workdir / "tensorboard").glob("events.out.tfevents.*"))
    assert events and b"train/loss" in events[0].read_bytes() and b"val/mae" in events[0].read_bytes()
    png = (workdir / "loss.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5000

    # Kept: the latest step and the best (highest val_loss), nothing else, no temporary dirs.
    best = max(records, key=lambda r: r["val_loss"])["step"]
    assert sorted(os.listdir(workdir / "checkpoints"), key=int) == sorted({str(best), "40"}, key=int)

    # load_from_workdir round trip: the latest params give the final val loss again.
    task, params, config, metadata, step = load_from_workdir(str(workdir), toy_task.ToyTask)
    data = toy_task.load(config)
    assert metadata == {"experiment": "toy", **data.metadata} and config.train.best_mode == "max" and step == 40
    sums = [
        task.loss(params, data.val[i], None, train=False, state=task.init_state(32))[1][0]["loss"]
        for i in range(len(data.val))
    ]
    assert sum(float(t) for t, _ in sums) / sum(float(c) for _, c in sums) == pytest.approx(
        final["val_loss"], 1e-6
    )
    best_run = load_from_workdir(str(workdir), toy_task.ToyTask, which="best")
    assert best_run.step == best
    assert any(np.any(a != b) for a, b in zip(_leaves(params), _leaves(best_run.params), strict=True))
    # final_eval (test metrics) ran on the best checkpoint, as train.final_eval='best' asks
    assert final["final_eval_step"] == best != 40
    assert final["test_mse"] == pytest.approx(task.final_eval(best_run.params, data, str(tmp_path))["test_mse"], 1e-6)
    raw = load_from_workdir(str(workdir))  # no task class: the saved tree as nested dicts
    assert raw.task is None and jax.tree.structure(raw.params) == jax.tree.structure(jax.device_get(params))

    class Other(toy_task.ToyTask):
        name = "chargen"

    with pytest.raises(ValueError, match=r"holds a toy run, not a chargen run"):
        load_from_workdir(str(workdir), Other)


def test_load_from_workdir_without_checkpoints_says_what_it_expected(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"no checkpoints in .*expected Orbax step directories"):
        load_from_workdir(str(tmp_path), toy_task.ToyTask)
    (tmp_path / "checkpoints").mkdir()
    with pytest.raises(FileNotFoundError, match="holds no completed step"):
        load_from_workdir(str(tmp_path), toy_task.ToyTask)
    assert os.listdir(tmp_path / "checkpoints") == []


def test_nan_stops_at_its_step_and_keeps_the_last_good_checkpoint(tmp_path):
    config = toy_task.get_config()
    config.data.nan_at_step = 27
    config.train.update(log_every=5, eval_every=0, checkpoint_every=10, max_to_keep=5)
    task, data = _toy(config)
    with pytest.raises(NonFiniteLossError) as info:
        train(config, str(tmp_path), task, data)
    message = str(info.value)
    assert message.startswith("loss became nan at step 27; last good checkpoint is step 20 in ")
    assert message.endswith(os.path.join(str(tmp_path), "checkpoints"))
    assert info.value.step == 27 and info.value.last_good_checkpoint == 20
    assert isinstance(info.value, FloatingPointError)

    # Only complete checkpoints from before the bad step; the latest restores to finite params.
    assert sorted(os.listdir(tmp_path / "checkpoints")) == ["10", "20"]
    params = load_from_workdir(str(tmp_path), toy_task.ToyTask).params
    assert all(np.all(np.isfinite(x)) for x in _leaves(params))
    records = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15, 20, 25]
    assert task.logged_steps == [5, 10, 15, 20, 25]


def test_nan_through_the_cli_exits_nonzero_with_the_message(tmp_path, capsys):
    argv = [
        "--workdir",
        str(tmp_path),
        "--config",
        TOY_CONFIG,
        "--config.data.nan_at_step=3",
        "--config.train.steps=5",
        "--config.train.log_every=5",
    ]
    with pytest.raises(SystemExit) as info:
        _main(argv)
    assert info.value.code == 1
    assert "loss became nan at step 3; no checkpoint was saved before it" in capsys.readouterr().err
    assert not (tmp_path / "final.json").exists()
    assert os.listdir(tmp_path / "checkpoints") == []
