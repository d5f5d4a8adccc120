"""Resuming from a workdir: after SIGKILL, from a corrupt checkpoint, with a changed model, on 4 devices."""

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import jax
import numpy as np
import pytest
import toy_task

from seqjax.train import ResumeError, load_from_workdir, main, train

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
TOY_CONFIG = toy_task.__file__
CLI = (
    f"import sys; sys.path.insert(0, {TESTS!r}); from toy_task import ToyTask, load; "
    "from seqjax.train import main; main('toy', ToyTask, load)"
)


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment for the subprocesses: the repo importable, and a compilation cache they share,
    since compiling the same tiny programs again is most of their run time on a CPU."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )


def _cli(workdir, *overrides):
    return [
        sys.executable,
        "-c",
        CLI,
        "--workdir",
        str(workdir),
        "--config",
        TOY_CONFIG,
        "--config.train.steps=120",
        "--config.train.checkpoint_every=20",
        "--config.train.log_every=20",
        "--config.train.eval_every=60",
        *overrides,
    ]


def _has_checkpoint(workdir):
    """A finished step directory (Orbax renames it from a temporary name once complete)."""
    directory = workdir / "checkpoints"
    return directory.exists() and any(name.isdigit() for name in os.listdir(directory))


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _params(workdir):
    return load_from_workdir(str(workdir), toy_task.ToyTask).params


def _train(config, workdir, **kw):
    data = toy_task.load(config)
    return train(config, str(workdir), toy_task.ToyTask(config, data.metadata), data, **kw)


def test_killed_run_resumes_to_bitwise_identical_params(tmp_path, env):
    killed, reference = tmp_path / "killed", tmp_path / "reference"
    slow = "--config.data.delay=0.01"  # 10 ms a batch: time to kill it (the data are the same)
    ref = subprocess.Popen(_cli(reference), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    victim = subprocess.Popen(
        _cli(killed, slow), cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 120
    while not _has_checkpoint(killed):
        assert victim.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    assert victim.wait() == -signal.SIGKILL
    assert not (killed / "final.json").exists()

    rerun = subprocess.run(_cli(killed, slow), cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    resumed_at = int(rerun.stdout.split("resumed from step ")[1].split()[0])
    assert 0 < resumed_at < 120
    out, err = ref.communicate(timeout=300)
    assert ref.returncode == 0, err
    assert "resumed" not in out.decode()

    for a, b in zip(_leaves(_params(killed)), _leaves(_params(reference)), strict=True):
        np.testing.assert_array_equal(a, b)
    # The records match too, step for step (minus timings): no duplicates from the killed session.
    timing = ("time", "tokens_per_s")
    strip = lambda records: [{k: v for k, v in r.items() if k not in timing} for r in records]  # noqa: E731
    assert strip(_records(killed)) == strip(_records(reference))
    assert [r["step"] for r in _records(killed)] == list(range(20, 121, 20))
    final, final_ref = (json.loads((d / "final.json").read_text()) for d in (killed, reference))
    assert final["val_loss"] == final_ref["val_loss"] and final["steps"] == 120


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 40-step toy run with checkpoints at 20 and 40 (copy it before changing it)."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    config = toy_task.get_config()
    config.train.log_every = 10
    _train(config, workdir)
    assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "40"]
    return workdir


def test_corrupt_latest_checkpoint_falls_back_to_the_previous_one(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    for item in ("params", "train"):
        for path in (workdir / "checkpoints" / "40" / item).rglob("*"):
            if path.is_file():
                path.write_bytes(b"not a checkpoint")
    config = toy_task.get_config()
    config.train.update(log_every=10, steps=60)  # a longer run is an allowed change
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 40 could not be read .* resumed from step 20"):
        final = _train(config, workdir, progress_bar=True)
    assert final["steps"] == 60
    assert (workdir / "corrupt_checkpoints" / "40").is_dir()
    assert sorted(os.listdir(workdir / "checkpoints"), key=int) == ["40", "60"]
    assert [r["step"] for r in _records(workdir)] == [10, 20, 30, 40, 50, 60]
    # Steps 21..40 were retrained from step 20, so the redone records equal the first run's.
    before = {r["step"]: r["train_loss"] for r in _records(trained)}
    assert all(before[r["step"]] == r["train_loss"] for r in _records(workdir) if r["step"] <= 40)


def test_rerunning_a_finished_run_only_reports_it(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    config = toy_task.get_config()
    config.train.log_every = 10
    final = _train(config, workdir)
    before = json.loads((trained / "final.json").read_text())
    assert {k: v for k, v in final.items() if "time" not in k} == {
        k: v for k, v in before.items() if "time" not in k
    }
    assert sorted(os.listdir(workdir / "checkpoints")) == ["20", "40"]
    assert _records(workdir) == _records(trained)


def test_resuming_with_another_model_names_the_differing_fields(trained, tmp_path, capsys):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    snapshot = {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()}
    config = toy_task.get_config()
    config.model.hidden = 16
    config.model.cell = "gru"
    with pytest.raises(ResumeError) as info:
        _train(config, workdir)
    message = str(info.value)
    assert "model.hidden: 8 -> 16" in message and "model.cell: (absent) -> 'gru'" in message
    assert "checkpoints/40" in message

    with pytest.raises(SystemExit) as exit_info:
        main(
            "toy",
            toy_task.ToyTask,
            toy_task.load,
            [
                "--workdir",
                str(workdir),
                "--config",
                TOY_CONFIG,
                "--config.model.hidden=4",
                "--config.train.steps=80",
            ],
        )
    assert exit_info.value.code == 2
    assert "model.hidden: 8 -> 4" in capsys.readouterr().err
    assert {p: p.read_bytes() for p in workdir.rglob("*") if p.is_file()} == snapshot


def test_data_parallel_on_four_simulated_devices(tmp_path, env):
    code = textwrap.dedent(f"""
        import json, sys
        sys.path.insert(0, {TESTS!r})
        import jax, numpy as np, toy_task
        from seqjax.train import train, load_from_workdir
        from seqjax.train.state import Placement
        assert jax.device_count() == 4, jax.devices()
        config = toy_task.get_config()
        config.train.update(steps=4, log_every=2, eval_every=2, checkpoint_every=2)
        data = toy_task.load(config)
        task = toy_task.ToyTask(config, data.metadata)
        batch = Placement().put_batch(data.train[0])
        train(config, {str(tmp_path / "four")!r}, task, data)
        config.train.steps = 6  # resume from the sharded checkpoint
        four = train(config, {str(tmp_path / "four")!r}, task, data)
        one = train(config, {str(tmp_path / "one")!r}, task, data, devices=jax.devices()[:1])
        p4 = load_from_workdir({str(tmp_path / "four")!r}, toy_task.ToyTask).params
        p1 = load_from_workdir({str(tmp_path / "one")!r}, toy_task.ToyTask).params
        diff = max(float(np.max(np.abs(a - b))) for a, b in zip(jax.tree.leaves(p4), jax.tree.leaves(p1)))
        spec = batch["x"].sharding.spec == jax.sharding.PartitionSpec("data")
        print(json.dumps(dict(spec=spec, shards=len(batch["x"].addressable_shards),
                              shard_rows=batch["x"].addressable_shards[0].data.shape[0],
                              four=four["val_loss"], one=one["val_loss"], diff=diff)))
    """)
    env = dict(env, XLA_FLAGS="--xla_force_host_platform_device_count=4")
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["spec"] is True and result["shards"] == 4 and result["shard_rows"] == 4
    assert result["four"] == pytest.approx(result["one"], rel=1e-5)
    assert result["diff"] < 1e-5
