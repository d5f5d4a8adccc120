"""Faults a user's bad day brings, each ending in at most one line, nothing lost and nothing silently wrong.

Non-finite updates, a bit-flipped checkpoint, two runs on one workdir, a full disk, resuming after
an allowed config change or on other data, bad sizes, a file as the workdir, a verb on another
experiment's run, and preemption signals. In-process where possible; subprocesses only for the
lock and the signals.
"""

import errno
import json
import os
import shutil
import signal
import socket
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import toy_task

from experiments.chargen import __main__ as chargen_cli
from seqjax.train import (
    Interrupted,
    WorkdirBusy,
    WorkdirError,
    load_from_workdir,
    main,
    make_optimizer,
    make_train_step,
    train,
)
from seqjax.train.state import init_state
from seqjax.train.workdir import Workdir

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


CHARGEN = ["--config", "tiny", "--config.train.eval_every=0", "--config.train.log_every=5",
           "--config.train.checkpoint_every=5"]


@pytest.fixture(scope="module")
def chargen_run(tmp_path_factory):
    """A 10-step chargen tiny run with checkpoints 5 and 10 (copy it before changing it)."""
    workdir = tmp_path_factory.mktemp("chargen") / "run"
    chargen_cli.run([*CHARGEN, "--workdir", str(workdir), "--config.train.steps=10"])
    assert _steps_on_disk(workdir) == [5, 10]
    return workdir


@pytest.fixture
def chargen_copy(chargen_run, tmp_path):
    workdir = tmp_path / "chargen"
    shutil.copytree(chargen_run, workdir)
    return workdir


def test_learning_rate_1e39_on_chargen_tiny_stops_naming_a_finite_checkpoint(chargen_copy, capsys):
    """The issue's case: the first update at lr=1e39 overflows while its loss and gradient are
    finite. Resumed from the good step-10 checkpoint, the run stops at step 10, saves nothing, and
    names step 10, whose params are finite. (A fresh run's step 0 is the test above.)"""
    workdir = chargen_copy
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chargen_cli.run([*CHARGEN, "--workdir", str(workdir), "--config.train.steps=20",
                         "--config.train.learning_rate=1e39"])
    assert info.value.code == 1
    line = _error_line(capsys)
    assert "the update at step 10 would have made the params or optimizer state non-finite" in line, line
    assert "learning rate inf" in line and line.endswith(f"last good checkpoint is step 10 in {workdir}/checkpoints")
    assert _steps_on_disk(workdir) == [5, 10]
    params = load_from_workdir(str(workdir)).params
    assert all(np.all(np.isfinite(x)) for x in _leaves(params))
    assert [json.loads(r)["step"] for r in (workdir / "metrics.jsonl").read_text().splitlines()] == [5, 10]


def test_all_finite_sees_every_floating_leaf():
    from seqjax.train.state import all_finite

    tree = {"a": jnp.ones(3), "b": [jnp.zeros((2, 2), jnp.bfloat16), jnp.arange(4)]}
    assert bool(all_finite(tree))
    assert not bool(all_finite({**tree, "c": jnp.array([1.0, jnp.inf])}))
    assert not bool(all_finite({**tree, "b": [jnp.full((2, 2), jnp.nan, jnp.bfloat16), jnp.arange(4)]}))
    assert bool(all_finite({"n": jnp.arange(3)}))


# ----------------------------------------------------------------------------- helpers for runs


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Subprocess environment: the repo importable, and a compilation cache they share."""
    return dict(
        os.environ,
        PYTHONPATH=os.pathsep.join([ROOT, TESTS, os.environ.get("PYTHONPATH", "")]),
        JAX_PLATFORMS=os.environ.get("JAX_PLATFORMS", "cpu"),
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
    )


def _toy_config(**train):
    config = toy_task.get_config()
    config.train.update(train)
    return config


def _train(config, workdir, **kw):
    data = toy_task.load(config)
    return train(config, str(workdir), toy_task.ToyTask(config, data.metadata), data, **kw)


def _toy_main(argv):
    return main("toy", toy_task.ToyTask, toy_task.load, argv)


def _snapshot(workdir):
    return {str(p.relative_to(workdir)): p.read_bytes() for p in sorted(workdir.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A 40-step toy run with checkpoints at 20 and 40 (copy it before changing it)."""
    workdir = tmp_path_factory.mktemp("trained") / "run"
    _train(_toy_config(), workdir)
    assert _steps_on_disk(workdir) == [20, 40]
    return workdir


@pytest.fixture
def run_copy(trained, tmp_path):
    workdir = tmp_path / "run"
    shutil.copytree(trained, workdir)
    return workdir


# ----------------------------------------------------------------------------- 3. the workdir lock

HOLD_LOCK = ("import sys, time; from seqjax.train.workdir import Workdir; Workdir(sys.argv[1]).__enter__(); "
             "print('locked', flush=True); time.sleep(300)")


def test_a_live_workdir_is_refused_naming_its_holder_and_a_killed_holder_does_not_block(run_copy, env, capsys):
    before = _snapshot(run_copy)
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(run_copy)], cwd=ROOT, env=env,
                              stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(SystemExit) as info:
            _toy_main(["--workdir", str(run_copy), "--config", TOY_CONFIG, "--config.train.steps=60"])
        assert info.value.code == 2
        line = _error_line(capsys)
        assert f"{run_copy} is in use by pid {holder.pid} on host {socket.gethostname()}" in line, line
        after = _snapshot(run_copy)
        assert json.loads(after.pop("lock"))["pid"] == holder.pid
        assert after == before  # nothing else was touched
        with pytest.raises(WorkdirBusy):
            _train(_toy_config(steps=60), run_copy)
    finally:
        holder.kill()
        holder.wait()
    assert (run_copy / "lock").exists()  # a SIGKILLed holder leaves its file, but no lock
    final = _train(_toy_config(steps=60), run_copy)
    assert final["steps"] == 60 and not (run_copy / "lock").exists()
    assert [r["step"] for r in _records(run_copy)] == [10, 20, 30, 40, 50, 60]


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def test_two_lock_attempts_in_one_process_exclude_each_other(tmp_path):
    with Workdir(str(tmp_path / "w")) as first:
        assert first.fresh and (tmp_path / "w" / "lock").exists()
        with pytest.raises(WorkdirBusy, match=f"in use by pid {os.getpid()} on host"):
            Workdir(str(tmp_path / "w")).__enter__()
    assert not (tmp_path / "w" / "lock").exists()
    with Workdir(str(tmp_path / "w")) as again:  # released: free again, and not fresh now
        assert not again.fresh


def test_records_are_appended_line_by_line(tmp_path):
    from seqjax.train.records import Records

    records = Records(str(tmp_path), 0, 10, progress_bar=False)
    try:
        records.write({"step": 1, "train_loss": 1.0})
        # flushed at once: a crash now keeps the line
        assert (tmp_path / "metrics.jsonl").read_text() == '{"step": 1, "train_loss": 1.0}\n'
        records.write({"step": 2, "train_loss": 0.5})
        assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 2
    finally:
        records.close()


# ----------------------------------------------------------------------------- 7. one line, not a traceback


def test_a_workdir_that_is_a_file_is_one_line(tmp_path, capsys):
    path = tmp_path / "notes.txt"
    path.write_text("mine")
    for workdir in (path, path / "run"):
        with pytest.raises(SystemExit) as info:
            _toy_main(["--workdir", str(workdir), "--config", TOY_CONFIG])
        assert info.value.code == 2
        line = _error_line(capsys)
        assert f"--workdir {workdir} is" in line and "not a directory" in line, line
        with pytest.raises(WorkdirError):
            _train(_toy_config(), workdir)
    assert path.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]


def _toy_cli(workdir, *overrides):
    code = ("import sys; from toy_task import ToyTask, load; from seqjax.train import main; "
            "main('toy', ToyTask, load)")
    return [sys.executable, "-c", code, "--workdir", str(workdir), "--config", TOY_CONFIG,
            "--config.train.steps=120", "--config.train.checkpoint_every=50", "--config.train.log_every=5",
            "--config.train.eval_every=50", "--config.data.delay=0.03", *overrides]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_preemption_signal_saves_the_step_and_exits_cleanly(tmp_path, env, signum):
    workdir = tmp_path / "run"
    proc = subprocess.Popen(_toy_cli(workdir), cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    try:
        line = proc.stdout.readline()  # the workdir line, then one line per log point
        while not line.startswith("step "):
            assert line, proc.stderr.read()[-3000:]
            line = proc.stdout.readline()
        proc.send_signal(signum)
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode == 128 + signum, err[-3000:]
    lines = err.strip().splitlines()
    assert len(lines) == 1, err[-3000:]
    name = signal.Signals(signum).name
    saved = int(lines[0].split(f"stopped by {name} at step ")[1].split(";")[0])
    assert f"; saved checkpoint {saved} in {workdir}/checkpoints; rerun with --workdir {workdir}" in lines[0]
    assert 5 <= saved < 120 and saved in _steps_on_disk(workdir) and not (workdir / "lock").exists()
    if signum == signal.SIGTERM:  # the rerun resumes there and ends where an unbroken run ends, bit for bit
        config = _toy_config(steps=120, checkpoint_every=50, log_every=5, eval_every=50)
        resumed, reference = _train(config, workdir), _train(config, tmp_path / "reference")
        assert resumed["val_loss"] == reference["val_loss"]
        for a, b in zip(_leaves(load_from_workdir(str(workdir)).params),
                        _leaves(load_from_workdir(str(tmp_path / "reference")).params), strict=True):
            np.testing.assert_array_equal(a, b)


def test_the_stop_request_is_taken_at_the_next_step_boundary(tmp_path):
    """In-process: a SIGTERM raised by the task at step 7 saves step 7 and raises Interrupted."""

    class Signalling(toy_task.ToyTask):
        def batch_tokens(self, batch):
            self.calls = getattr(self, "calls", 0) + 1
            if self.calls == 7:
                signal.raise_signal(signal.SIGTERM)
            return super().batch_tokens(batch)

    config = _toy_config(steps=40)
    data = toy_task.load(config)
    with pytest.raises(Interrupted) as info:
        train(config, str(tmp_path), Signalling(config, data.metadata), data)
    assert info.value.checkpoint == 7 and info.value.exit_code == 143
    assert _steps_on_disk(tmp_path) == [7] and signal.getsignal(signal.SIGTERM) is signal.SIG_DFL
    assert str(info.value).startswith("stopped by SIGTERM at step 7; saved checkpoint 7 in ")


# ----------------------------------------------------------------------------- 4. a full disk


def _fail_saving_step(monkeypatch, step):
    """Makes the background write of checkpoint ``step`` fail as a full disk does."""
    from orbax.checkpoint._src.handlers import json_checkpoint_handler as json_handler

    original = json_handler.JsonCheckpointHandler._save_fn

    async def save_fn(self, x, directory):
        if directory.parent.name.split(".")[0] == str(step):  # the step's temporary directory
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return await original(self, x, directory)

    monkeypatch.setattr(json_handler.JsonCheckpointHandler, "_save_fn", save_fn)


def test_a_full_disk_stops_at_the_failed_save_in_one_line_and_resume_works_once_space_is_freed(
        trained, tmp_path, monkeypatch, capfd):
    workdir = tmp_path / "run"
    _fail_saving_step(monkeypatch, 20)
    with pytest.raises(SystemExit) as info:
        _toy_main(["--workdir", str(workdir), "--config", TOY_CONFIG, "--config.train.checkpoint_every=10"])
    assert info.value.code == 1
    line = _error_line(capfd)
    assert line == (f"experiments.toy: error: no space left writing checkpoint 20 in {workdir}/checkpoints; "
                    "the last complete checkpoint is 10")
    # no step 20 (its partial files, if any are still being written, go when the workdir is next opened)
    assert _steps_on_disk(workdir) == [10]
    assert [r["step"] for r in _records(workdir)] == [10, 20]  # stopped before the next log point
    assert not (workdir / "lock").exists() and not (workdir / "final.json").exists()

    monkeypatch.undo()  # space is freed
    final = _train(_toy_config(checkpoint_every=10), workdir)
    assert final["steps"] == 40 and sorted(os.listdir(workdir / "checkpoints")) == ["30", "40"]
    for a, b in zip(_leaves(load_from_workdir(str(workdir)).params), _leaves(load_from_workdir(str(trained)).params),
                    strict=True):
        np.testing.assert_array_equal(a, b)


def test_a_fresh_workdir_on_a_full_disk_is_removed(tmp_path, monkeypatch, capfd):
    from seqjax.train import config as config_lib

    def save_json(config, path):
        open(path + ".tmp", "w").close()  # what a full disk leaves: an empty file
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path + ".tmp")

    monkeypatch.setattr(config_lib, "save_json", save_json)
    workdir = tmp_path / "new"
    with pytest.raises(SystemExit) as info:
        _toy_main(["--workdir", str(workdir), "--config", TOY_CONFIG])
    assert info.value.code == 1
    assert _error_line(capfd) == (f"experiments.toy: error: no space left writing config.json in {workdir}; "
                                  f"no checkpoint is complete; removed the new workdir {workdir}")
    assert not workdir.exists()


# ----------------------------------------------------------------------------- 1. integrity


def _data_files(step_dir, item):
    files = [p for p in (step_dir / item).rglob("*") if p.is_file() and "/d/" in str(p)]
    return sorted(files, key=lambda p: p.stat().st_size)


def _flip(path, count=64):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    for i in range(middle, min(middle + count, len(data))):
        data[i] ^= 0xFF
    path.write_bytes(bytes(data))


def test_the_integrity_record_names_every_array_and_matches_a_restore(trained):
    from seqjax.train import checkpoint as ckpt

    record = json.loads((trained / "checkpoints" / "40" / "integrity" / "metadata").read_text())
    assert record["algorithm"] == "sha256"
    assert sorted(record["params"]) == ["hidden/b", "hidden/w", "out/b", "out/w"]
    assert record["params"]["hidden/w"][:2] == ["float32", [4, 8]]
    assert "step" in record["train"] and "opt_state/0/0/mu/hidden/w" in record["train"]
    params = load_from_workdir(str(trained)).params
    assert ckpt.tree_digest(params)[0] == record["params"]
    # one changed bit changes the digest of that array alone
    flipped = jax.tree.map(np.array, params)
    flipped["out"]["w"].view(np.uint32)[0, 0] ^= 1
    changed = {k for k, v in ckpt.tree_digest(flipped)[0].items() if v != record["params"][k]}
    assert changed == {"out/w"}


def test_checkpoint_content_that_was_altered_falls_back_like_an_unreadable_one(run_copy):
    """Step 40's params replaced by step 20's, file for file: Orbax reads them without complaint,
    but they are not what step 40 saved."""
    step40, step20 = run_copy / "checkpoints" / "40", run_copy / "checkpoints" / "20"
    shutil.rmtree(step40 / "params")
    shutil.copytree(step20 / "params", step40 / "params")
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 40 could not be read \(its params differ from what "
                                            r"was saved, at hidden/b.*\); moved it to .* resumed from step 20"):
        final = _train(_toy_config(steps=60), run_copy)
    assert final["steps"] == 60 and (run_copy / "corrupt_checkpoints" / "40").is_dir()


def test_a_bit_flipped_params_blob_is_never_used(run_copy):
    """The issue's damage: 64 bytes flipped inside the params data of the latest checkpoint."""
    _flip(_data_files(run_copy / "checkpoints" / "40", "params")[-1])
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 40 could not be read .* resumed from step 20"):
        final = _train(_toy_config(steps=60), run_copy)
    assert final["steps"] == 60 and (run_copy / "corrupt_checkpoints" / "40").is_dir()


def _rewrite_step(workdir, step, change, integrity=True):
    """Saves ``step`` again with ``change(params)``; without ``integrity``, as an earlier seqjax did."""
    import orbax.checkpoint as ocp

    from seqjax.train import checkpoint as ckpt

    manager = ckpt.open_manager(str(workdir))
    out = manager.restore(step, args=ocp.args.Composite(
        params=ocp.args.StandardRestore(), train=ocp.args.StandardRestore(), config=ocp.args.JsonRestore(),
        metadata=ocp.args.JsonRestore()))
    manager.delete(step)
    ckpt.save(manager, step, change(out["params"]), out["train"], dict(out["config"]), dict(out["metadata"]), None)
    manager.wait_until_finished()
    manager.close()
    if not integrity:
        shutil.rmtree(workdir / "checkpoints" / str(step) / "integrity")


def test_a_checkpoint_with_non_finite_values_is_not_resumed_from(run_copy):
    _rewrite_step(run_copy, 40, lambda p: jax.tree.map(lambda x: x * jnp.inf, p), integrity=False)
    with pytest.warns(RuntimeWarning, match=r"checkpoint step 40 could not be read \(it holds non-finite values, "
                                            r"in params at hidden/b\).* resumed from step 20"):
        _train(_toy_config(steps=60), run_copy)


def test_a_checkpoint_without_an_integrity_record_is_used_with_one_warning(run_copy):
    shutil.rmtree(run_copy / "checkpoints" / "40" / "integrity")
    with pytest.warns(RuntimeWarning, match="checkpoint step 40 in .* has no integrity record"):
        restored = load_from_workdir(str(run_copy), toy_task.ToyTask, which="latest")
    assert restored.step == 40


def test_load_from_workdir_skips_unusable_steps_for_latest_and_best(run_copy):
    shutil.rmtree(run_copy / "checkpoints" / "40" / "params")
    shutil.copytree(run_copy / "checkpoints" / "20" / "params", run_copy / "checkpoints" / "40" / "params")
    before = _snapshot(run_copy)
    for which in ("latest", "best"):  # 40 is both the latest and the best
        with pytest.warns(RuntimeWarning, match=r"checkpoint step 40 could not be read \(.*\); using step 20"):
            assert load_from_workdir(str(run_copy), toy_task.ToyTask, which=which).step == 20
    assert _snapshot(run_copy) == before  # reading changes nothing


# ----------------------------------------------------------------------------- chargen's verbs


def test_sample_latest_with_a_corrupt_latest_checkpoint_falls_back_in_one_warning(chargen_copy, capsys):
    step10, step5 = chargen_copy / "checkpoints" / "10", chargen_copy / "checkpoints" / "5"
    shutil.rmtree(step10 / "params")
    shutil.copytree(step5 / "params", step10 / "params")
    with pytest.warns(RuntimeWarning) as caught:
        text = chargen_cli.sample(["--workdir", str(chargen_copy), "--which", "latest", "--length", "5", "--greedy"])
    assert len(text) == 6 and text in capsys.readouterr().out
    assert [str(w.message) for w in caught] == [
        f"checkpoint step 10 could not be read (its params differ from what was saved, at {_first_param(step10)}: "
        "the files were altered); using step 5"]


def _first_param(step_dir):
    return sorted(json.loads((step_dir / "integrity" / "metadata").read_text())["params"])[0]


def test_warnings_on_the_command_line_are_one_line():
    import warnings

    from seqjax.train.cli import one_line_warnings

    with one_line_warnings("experiments.toy"):
        text = warnings.formatwarning("checkpoint step 10 could not be read (a\n  b)", RuntimeWarning, "x.py", 3)
    assert text == "experiments.toy: warning: checkpoint step 10 could not be read (a b)\n"
    assert warnings.formatwarning("m", UserWarning, "x.py", 3).startswith("x.py:3: UserWarning: m")  # restored


def test_sample_refuses_non_finite_params(chargen_copy, capfd):
    for step in (5, 10):  # as an earlier seqjax could leave them
        _rewrite_step(chargen_copy, step, lambda p: jax.tree.map(lambda x: x * jnp.nan, p), integrity=False)
    capfd.readouterr()
    with pytest.raises(SystemExit) as info:
        chargen_cli.sample(["--workdir", str(chargen_copy), "--length", "5"])
    assert info.value.code == 2
    line = _error_line(capfd)
    assert "could be read" in line and "step 10: it holds non-finite values" in line, line
    assert "step 5: it holds non-finite values" in line


def test_predict_sentiment_on_a_chargen_workdir_names_the_experiment(chargen_run, capfd):
    from experiments.sentiment import __main__ as sentiment_cli

    with pytest.raises(SystemExit) as info:
        sentiment_cli.predict(["--workdir", str(chargen_run), "a fine film"])
    assert info.value.code == 2
    line = _error_line(capfd)
    assert f"the workdir {chargen_run} holds a chargen run, not a sentiment run" in line, line


def test_another_text_with_the_same_vocabulary_size_is_refused_naming_the_characters(chargen_copy, tmp_path, capsys):
    from experiments.chargen import data as chargen_data

    text = chargen_data.embedded_text()
    assert "Q" in text and "\u00e9" not in text
    other = tmp_path / "other.txt"
    other.write_text(text.replace("Q", "\u00e9"), encoding="utf-8")  # as many characters, one of them another
    before = _snapshot(chargen_copy)
    capsys.readouterr()
    with pytest.raises(SystemExit) as info:
        chargen_cli.run([*CHARGEN, "--workdir", str(chargen_copy), "--config.train.steps=20",
                         "--config.data.source=file", f"--config.data.text_file={other}"])
    assert info.value.code == 2
    line = _error_line(capsys)
    assert "the data's vocab differs from the checkpoint's" in line, line
    assert "characters only in the checkpoint: 'Q'; characters only in the data: '\u00e9'" in line
    assert _snapshot(chargen_copy) == before


# ----------------------------------------------------------------------------- 5. allowed config changes


@pytest.fixture(scope="module")
def reference60(trained, tmp_path_factory):
    """``trained`` continued to 60 steps with its own config."""
    workdir = tmp_path_factory.mktemp("reference") / "run"
    shutil.copytree(trained, workdir)
    _train(_toy_config(steps=60), workdir)
    return workdir


def _same_params(a, b):
    """Equal to float32 rounding (another optimizer program may fuse its arithmetic differently);
    fresh Adam moments would move every parameter by about the learning rate, 0.03, per step."""
    for x, y in zip(_leaves(load_from_workdir(str(a)).params), _leaves(load_from_workdir(str(b)).params),
                    strict=True):
        np.testing.assert_allclose(x, y, rtol=1e-5, atol=1e-6)


def test_resuming_with_clip_norm_0_carries_the_adam_moments(reference60, tmp_path, capsys):
    """Clipping at 100 never triggers here, so a run clipped to step 40 and then not clipped must
    end where the unclipped reference ends, which it does only if Adam's moments were carried."""
    workdir = tmp_path / "run"
    _train(_toy_config(clip_norm=100.0), workdir)
    assert max(r["train_grad_norm"] for r in _records(workdir)) < 100
    capsys.readouterr()
    final = _train(_toy_config(steps=60, clip_norm=0.0), workdir)
    out = capsys.readouterr().out
    assert ("the optimizer state was saved in another structure (train.clip_norm: 100.0 -> 0.0): rebuilt it, "
            "carrying over ScaleByAdamState, ScaleByScheduleState\n") in out
    assert final["steps"] == 60
    _same_params(workdir, reference60)


def test_resuming_with_adamw_carries_the_moments(run_copy, reference60, capsys):
    _train(_toy_config(steps=60, optimizer="adamw"), run_copy)  # weight_decay 0: adamw is adam
    assert ("(train.optimizer: 'adam' -> 'adamw'): rebuilt it, carrying over ScaleByAdamState, "
            "ScaleByScheduleState\n") in capsys.readouterr().out
    _same_params(run_copy, reference60)


@pytest.mark.parametrize("change, note", [
    (dict(weight_decay=0.01), "(train.weight_decay: 0.0 -> 0.01): rebuilt it, carrying over ScaleByAdamState, "
                              "ScaleByScheduleState\n"),
    (dict(optimizer="sgd", momentum=0.5), "(train.momentum: 0.9 -> 0.5; train.optimizer: 'adam' -> 'sgd'): rebuilt "
                                          "it, carrying over ScaleByScheduleState; started fresh: TraceState\n"),
])
def test_resuming_after_an_optimizer_change_says_what_was_rebuilt(run_copy, reference60, capsys, change, note):
    final = _train(_toy_config(steps=60, **change), run_copy)
    out = capsys.readouterr().out
    assert "resumed from step 40" in out and note in out and "Traceback" not in out
    assert final["steps"] == 60 and np.isfinite(final["val_loss"])
    ours = _leaves(load_from_workdir(str(run_copy)).params)
    assert any(not np.array_equal(a, b) for a, b in zip(ours, _leaves(load_from_workdir(str(reference60)).params),
                                                        strict=True))
