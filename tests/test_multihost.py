"""Several JAX processes on this machine: one CPU device each, gloo collectives, a free localhost port.

The runs go through the experiments' own command line, as a user would launch them: the same
arguments as a one-process run plus the launch variables (``seqjax.train.distributed``).
"""

import json
import os
import subprocess
import sys
import time

import jax
import numpy as np
import pytest
import toy_task

from experiments.chargen.__main__ import run as chargen_run
from seqjax.train import distributed, load_from_workdir
from seqjax.train.distributed import DistributedError, Launch, pop_flags, resolve

TESTS = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(TESTS)
HEARTBEAT_S = 5
TOY_CLI = (f"import sys; sys.path.insert(0, {TESTS!r}); from toy_task import ToyTask, load; "
           "from seqjax.train import main; main('toy', ToyTask, load)")
TIMING = ("time", "tokens_per_s")


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """The processes' environment: the repository importable, a compilation cache they share, and a
    short heartbeat timeout, so that a lost process is noticed within seconds."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("SEQJAX_") and k != "XLA_FLAGS"}
    return dict(
        base,
        PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]),
        JAX_PLATFORMS="cpu",
        JAX_COMPILATION_CACHE_DIR=str(tmp_path_factory.mktemp("jax_cache")),
        JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0",
        SEQJAX_HEARTBEAT_TIMEOUT=str(HEARTBEAT_S),
        SEQJAX_INIT_TIMEOUT="120",
    )


class Processes:
    """N processes of one run, started directly (not through the launcher) to kill them one by one."""

    def __init__(self, args, env, logs, n=2, cwds=None):
        port = distributed.free_port()
        logs.mkdir(parents=True, exist_ok=True)
        self.logs = logs
        self.procs = []
        for i in range(n):
            penv = dict(env, SEQJAX_COORDINATOR=f"127.0.0.1:{port}", SEQJAX_NUM_PROCESSES=str(n),
                        SEQJAX_PROCESS_ID=str(i))
            with open(logs / f"out{i}", "w") as out, open(logs / f"err{i}", "w") as err:
                self.procs.append(subprocess.Popen([sys.executable, *args], env=penv, stdout=out, stderr=err,
                                                   cwd=(cwds[i] if cwds else ROOT)))

    def wait(self, timeout=240):
        deadline = time.monotonic() + timeout
        return [p.wait(timeout=max(1.0, deadline - time.monotonic())) for p in self.procs]

    def out(self, i):
        return (self.logs / f"out{i}").read_text()

    def err(self, i):
        return (self.logs / f"err{i}").read_text()

    def kill_all(self):
        for p in self.procs:
            if p.poll() is None:
                p.kill()
                p.wait()


TOY_ARGS = ["--config", toy_task.__file__, "--config.train.steps=120", "--config.train.checkpoint_every=20",
            "--config.train.log_every=1", "--config.train.eval_every=60"]


def _toy(workdir, *overrides):
    return ["-c", TOY_CLI, "--workdir", str(workdir), *TOY_ARGS, *overrides]


def _steps(workdir):
    """The finished checkpoint steps (Orbax renames a step directory from a temporary name when complete)."""
    directory = workdir / "checkpoints"
    return sorted(int(n) for n in os.listdir(directory) if n.isdigit()) if directory.exists() else []


def _records(workdir):
    return [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]


def _strip(records):
    return [{k: v for k, v in r.items() if k not in TIMING} for r in records]


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _wait_until(condition, procs, what, timeout=180):
    deadline = time.monotonic() + timeout
    while not condition():
        assert all(p.poll() is None for p in procs.procs), f"a process ended before {what}"
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


# ----------------------------------------------------------------------------- the launch


def test_launch_from_flags_or_environment():
    assert resolve({}, {}) is None  # no flags, no variables: one process, initialize is never called
    env = {"SEQJAX_COORDINATOR": "10.0.0.1:1234", "SEQJAX_NUM_PROCESSES": "4", "SEQJAX_PROCESS_ID": "3"}
    assert resolve({}, env) == Launch("10.0.0.1:1234", 4, 3)
    flags, rest = pop_flags(["--config", "tiny", "--coordinator=h:9", "--num_processes", "2", "--process_id=1"])
    assert rest == ["--config", "tiny"] and resolve(flags, env) == Launch("h:9", 2, 1)  # flags win
    assert resolve({}, {"SEQJAX_DISTRIBUTED": "auto", "SEQJAX_HEARTBEAT_TIMEOUT": "7"}) == Launch(
        auto=True, heartbeat_timeout_s=7)
    assert resolve({"distributed": "off"}, env) is None
    assert resolve({}, {**env, "SEQJAX_DISTRIBUTED": "off"}) is None


@pytest.mark.parametrize("flags, env, message", [
    ({}, {"SEQJAX_COORDINATOR": "h:1"}, "needs all of SEQJAX_COORDINATOR, SEQJAX_NUM_PROCESSES, SEQJAX_PROCESS_ID; "
                                        "got SEQJAX_COORDINATOR without SEQJAX_NUM_PROCESSES, SEQJAX_PROCESS_ID"),
    ({"coordinator": "h", "num_processes": "2", "process_id": "0"}, {}, "--coordinator='h': expected HOST:PORT"),
    ({"coordinator": "h:1", "num_processes": "2", "process_id": "2"}, {},
     "--process_id=2 is out of range for --num_processes=2 (expected 0..1)"),
    ({"coordinator": "h:1", "num_processes": "two", "process_id": "0"}, {},
     "--num_processes='two': expected an integer >= 1"),
    ({"distributed": "yes"}, {}, "--distributed='yes': expected one of auto, off"),
    ({}, {"SEQJAX_DISTRIBUTED": "auto", "SEQJAX_COORDINATOR": "h:1", "SEQJAX_NUM_PROCESSES": "2",
          "SEQJAX_PROCESS_ID": "0"}, "SEQJAX_DISTRIBUTED=auto lets JAX detect the cluster"),
    ({}, {"SEQJAX_HEARTBEAT_TIMEOUT": "0"}, "SEQJAX_HEARTBEAT_TIMEOUT='0': expected an integer >= 1"),
])
def test_bad_launches_are_named(flags, env, message):
    with pytest.raises(DistributedError, match=None) as info:
        resolve(flags, env)
    assert message in str(info.value) and "\n" not in str(info.value)


def test_bad_launch_flags_exit_2_before_anything_starts(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("initialize was called"))
    with pytest.raises(SystemExit) as info:
        chargen_run(["--config", "tiny", "--workdir", str(tmp_path / "w"), "--num_processes", "2"])
    assert info.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("experiments.chargen: error: a multi-process launch needs all of --coordinator")
    assert "\n" not in err and not (tmp_path / "w").exists()


def test_pop_flags_needs_values():
    with pytest.raises(DistributedError, match="--process_id needs a value"):
        pop_flags(["--process_id"])
    with pytest.raises(DistributedError, match="--coordinator given twice"):
        pop_flags(["--coordinator=a:1", "--coordinator", "b:2"])


def test_the_local_launcher_joins_n_processes_and_returns_the_first_failure(tmp_path):
    show = ("import os, sys; e = os.environ; print(e['SEQJAX_COORDINATOR'], e['SEQJAX_NUM_PROCESSES'], "
            "e['SEQJAX_PROCESS_ID'], file=open(sys.argv[1] + e['SEQJAX_PROCESS_ID'], 'w'))")
    assert distributed.spawn_local(3, [sys.executable, "-c", show, str(tmp_path / "p")]) == 0
    lines = [(tmp_path / f"p{i}").read_text().split() for i in range(3)]
    assert [line[1:] for line in lines] == [["3", "0"], ["3", "1"], ["3", "2"]]
    assert len({line[0] for line in lines}) == 1 and lines[0][0].startswith("127.0.0.1:")
    # process 1 fails at once; process 0 would wait forever: it is stopped after the grace period
    wait = "import os, sys, time; i = int(os.environ['SEQJAX_PROCESS_ID']); time.sleep(60) if i == 0 else sys.exit(3)"
    start = time.monotonic()
    assert distributed.spawn_local(2, [sys.executable, "-c", wait], grace_s=1.0) == 3
    assert time.monotonic() - start < 30
    assert distributed.main(["x", "true"]) == 2 and distributed.main([]) == 2


# ----------------------------------------------------------------------------- 2 processes against 1


@pytest.fixture(scope="module")
def toy_pair(tmp_path_factory, env):
    """The toy task for 120 steps, logged at every step: 2 processes through the local launcher,
    and 1 in this process. The 2-process run is also the uninterrupted reference of the kill test."""
    base = tmp_path_factory.mktemp("toy")
    two = subprocess.Popen([sys.executable, "-m", "seqjax.train.multiprocess", "2", sys.executable,
                            *_toy(base / "two")], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           text=True)
    try:
        with pytest.MonkeyPatch.context() as patch:  # a one-process run never starts the distributed runtime
            patch.setattr(jax.distributed, "initialize", lambda **kw: pytest.fail("initialize was called"))
            one = _toy_main([*TOY_ARGS, "--workdir", str(base / "one")])
        out, err = two.communicate(timeout=300)
    finally:
        if two.poll() is None:
            two.kill()
    assert two.returncode == 0, err[-3000:]
    return dict(one=base / "one", two=base / "two", final_one=one, out=out)


def _toy_main(argv):
    from seqjax.train import main

    return main("toy", toy_task.ToyTask, toy_task.load, argv)


def test_two_processes_train_the_toy_like_one(toy_pair):
    one, two = _records(toy_pair["one"]), _records(toy_pair["two"])
    assert [r["step"] for r in two] == list(range(1, 121))  # every step, once
    for a, b in zip(one, two, strict=True):
        for key in ("train_loss", "train_mae", "train_grad_norm", "val_loss"):
            if key in a:
                assert b[key] == pytest.approx(a[key], rel=1e-4, abs=1e-6), (a["step"], key)
    final = json.loads((toy_pair["two"] / "final.json").read_text())
    assert final["test_mse"] == pytest.approx(toy_pair["final_one"]["test_mse"], rel=1e-4)  # process 0's final_eval
    two_params = load_from_workdir(str(toy_pair["two"]), toy_task.ToyTask).params  # restored in one process
    for a, b in zip(_leaves(two_params), _leaves(load_from_workdir(str(toy_pair["one"]), toy_task.ToyTask).params),
                    strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    assert toy_pair["out"].count("final: steps=120") == 1 and toy_pair["out"].count("step 120/120") == 1
    assert _steps(toy_pair["two"]) == _steps(toy_pair["one"])


def test_one_set_of_records(toy_pair):
    one, two = toy_pair["one"], toy_pair["two"]
    assert sorted(os.listdir(two)) == sorted(os.listdir(one))  # no per-process copies, no leftover marker
    assert len(os.listdir(two / "tensorboard")) == 1
    out = toy_pair["out"]  # both processes' output: process 0 alone reports
    assert out.count("\nworkdir ") == 1 and out.count("step 1/120 ") == 1 and out.count("results in ") == 1


# ----------------------------------------------------------------------------- failures


def test_stopped_and_killed_processes_resume_to_the_params_of_an_uninterrupted_run(tmp_path, env, toy_pair):
    """SIGTERM to one process stops both at one step, with a checkpoint of it; relaunched, the run
    resumes there; SIGKILL to one process after a later checkpoint stops its peer, which waits for
    it, within seconds; relaunched again, the run ends at the params of a run never interrupted,
    bit for bit, with the same records."""
    reference = toy_pair["two"]
    victim = tmp_path / "victim"
    slow = "--config.data.delay=0.05"  # 50 ms a batch: time to stop it mid-way (the data are the same)
    runs = []
    try:
        runs.append(Processes(_toy(victim, slow), env, tmp_path / "first"))
        first = runs[-1]
        _wait_until(lambda: "step 20/120" in first.out(0), first, "training")
        first.procs[1].terminate()
        assert first.wait() == [143, 143]
        stops = [[line for line in first.err(i).splitlines() if "stopped by" in line] for i in range(2)]
        stopped = int(stops[0][0].split("stopped by SIGTERM at step ")[1].split()[0])
        for i in range(2):
            assert stops[i] == [f"experiments.toy: error: stopped by SIGTERM at step {stopped} (all 2 processes); "
                                f"saved checkpoint {stopped} in {victim / 'checkpoints'}; rerun with --workdir "
                                f"{victim} to resume"]
        assert 20 <= stopped < 120 and _steps(victim)[-1] == stopped

        runs.append(Processes(_toy(victim, slow), env, tmp_path / "second"))
        second = runs[-1]
        _wait_until(lambda: f"resumed from step {stopped} " in second.out(0), second, "the resume")
        _wait_until(lambda: _steps(victim)[-1] > stopped, second, "a later checkpoint")
        second.procs[1].kill()
        start = time.monotonic()
        code = second.procs[0].wait(timeout=HEARTBEAT_S + 60)
        assert code != 0 and time.monotonic() - start < HEARTBEAT_S + 25
        assert "lost another process of the run" in second.err(0) or "heartbeat" in second.err(0)
        assert not (victim / "final.json").exists()

        runs.append(Processes(_toy(victim, slow), env, tmp_path / "last"))
        last = runs[-1]
        assert last.wait() == [0, 0], last.err(0)[-2000:] + last.err(1)[-2000:]
    finally:
        for p in runs:
            p.kill_all()
    resumed = int(last.out(0).split("resumed from step ")[1].split()[0])
    assert stopped < resumed < 120
    final = load_from_workdir(str(victim), toy_task.ToyTask).params
    for a, b in zip(_leaves(final), _leaves(load_from_workdir(str(reference), toy_task.ToyTask).params), strict=True):
        np.testing.assert_array_equal(a, b)
    assert _strip(_records(victim)) == _strip(_records(reference))  # every step once, as uninterrupted
    assert json.loads((victim / "final.json").read_text())["val_loss"] == json.loads(
        (reference / "final.json").read_text())["val_loss"]


def test_failed_starts_and_a_lost_coordinator(tmp_path, env):
    """Three launches side by side: the same relative --workdir from two working directories (two
    places, not one shared workdir); a batch that does not divide by the processes; and process 0
    (the coordinator) killed while process 1 trains."""
    cwds = [tmp_path / "a", tmp_path / "b"]
    for c in cwds:
        c.mkdir()
    bad_batch = Processes(_toy(tmp_path / "odd", "--config.train.batch_size=5"), env, tmp_path / "odd_logs")
    unshared = Processes(_toy("run"), env, tmp_path / "logs", cwds=cwds)
    lost = tmp_path / "lost"
    coordinator = Processes(_toy(lost, "--config.data.delay=0.2"), env, tmp_path / "lost_logs")
    try:
        _wait_until(lambda: (lost / "config.json").exists(), coordinator, "the run's start")
        coordinator.procs[0].kill()
        start = time.monotonic()
        code = coordinator.procs[1].wait(timeout=HEARTBEAT_S + 60)
        assert code != 0 and time.monotonic() - start < HEARTBEAT_S + 25
        assert unshared.wait() == [2, 2]
        assert bad_batch.wait() == [2, 2]
    finally:
        for p in (unshared, coordinator, bad_batch):
            p.kill_all()
    for i in range(2):
        lines = [line for line in unshared.err(i).splitlines() if "error" in line]
        assert len(lines) == 1, unshared.err(i)
        assert lines[0].startswith(f"experiments.toy: error: the workdir {cwds[0] / 'run'} is not shared storage: "
                                   "process 1 (host ")
        assert f"process 0 {cwds[0] / 'run'}, process 1 {cwds[1] / 'run'}" in lines[0]
    assert not (cwds[0] / "run").exists() and not (cwds[1] / "run").exists()
    for i in range(2):  # every process says why they all stopped, before anything is written
        assert [line for line in bad_batch.err(i).splitlines() if "error" in line] == [
            "experiments.toy: error: train.batch_size=5 is not divisible by the 2 JAX processes "
            "(each process reads an equal share of every batch)"]
    assert not (tmp_path / "odd").exists()


def test_launch_sh_multiprocess_checks_its_arguments_before_setting_up():
    for args, shown in ((["multiprocess", "0", "chargen"], "got '0' 'chargen'"),
                        (["multiprocess", "2", "nope"], "got '2' 'nope'")):
        run = subprocess.run(["bash", os.path.join(ROOT, "launch.sh"), *args], capture_output=True, text=True,
                             timeout=30)
        assert run.returncode == 2 and run.stderr.startswith("launch.sh: usage: ./launch.sh multiprocess N EXPERIMENT")
        assert shown in run.stderr
