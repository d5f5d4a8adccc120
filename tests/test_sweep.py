"""Sweeps: one tiny real sweep (2 x 2 grid, 2 seeds, 2 steps of chargen's tiny config) run three
times through the command line, and the bad-input paths, which start no run."""

import contextlib
import csv
import fcntl
import glob
import io
import json
import math
import os
import shutil

import pytest

import seqjax.sweep as sw
from seqjax.sweep import spec
from seqjax.sweep.__main__ import main, split_values

GRID = ["--grid", "model.cell=rnn,gru", "--grid", "model.hidden=8,16", "--seeds", "2"]
FIXED = ["--config", "tiny", "--set", "model.num_layers=1", "--set", "train.steps=2", "--set", "train.log_every=1",
         "--set", "train.eval_every=2", "--set", "train.checkpoint_every=2", "--set", "data.eval_windows=4"]
FAILS = "cell=gru,hidden=8,seed=1"  # its workdir path is taken by a file, so the experiment cannot create it
INTERRUPTED = "cell=rnn,hidden=16,seed=0"  # loses final.json after the first sweep: a rerun must resume it


def _cli(argv):
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(argv)
    return rc, out.getvalue(), err.getvalue()


def _records(root):
    return {os.path.basename(p)[:-5]: json.load(open(p)) for p in glob.glob(os.path.join(root, "logs", "*.json"))}


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = str(tmp_path_factory.mktemp("sweep") / "root")
    argv = ["chargen", *GRID, *FIXED, "--root", root, "--parallel", "2"]
    emit = _cli([*argv, "--emit"])
    manifest = json.load(open(os.path.join(root, "sweep.json")))
    open(os.path.join(root, FAILS), "w").close()
    first = _cli(argv)
    after_first = {"records": _records(root), "csv": list(csv.DictReader(open(os.path.join(root, "results.csv")))),
                   "md": open(os.path.join(root, "results.md")).read()}
    os.remove(os.path.join(root, FAILS))
    os.remove(os.path.join(root, INTERRUPTED, "final.json"))
    second = _cli(argv)
    logs = {p: os.path.getsize(p) for p in glob.glob(os.path.join(root, "logs", "*.log"))}
    third = _cli(argv)
    return dict(root=root, argv=argv, emit=emit, manifest=manifest, first=first, after_first=after_first,
                second=second, third=third, logs=logs)


def test_one_run_per_combination_and_seed(tiny):
    runs = tiny["manifest"]["runs"]
    assert len(runs) == 8
    settings = {(r["overrides"]["model.cell"], r["overrides"]["model.hidden"], r["overrides"]["seed"]) for r in runs}
    assert settings == {(c, h, s) for c in ("rnn", "gru") for h in ("8", "16") for s in ("0", "1")}
    assert all(r["overrides"]["train.steps"] == "2" for r in runs)
    names = [r["name"] for r in runs]
    assert len(set(names)) == 8 and "cell=rnn,hidden=8,seed=0" in names  # named by what varies
    assert sorted(d for d in os.listdir(tiny["root"]) if "=" in d) == sorted(names)


def test_a_failed_run_is_recorded_and_the_others_finish(tiny):
    rc, out, _ = tiny["first"]
    assert rc == 1
    assert "8 to run" in out and f"FAILED {FAILS}" in out and "done 7, failed 1, remaining 0" in out
    records = tiny["after_first"]["records"]
    assert records[FAILS]["status"] == "failed" and records[FAILS]["returncode"] != 0
    assert FAILS in records[FAILS]["error"] and "error: --workdir" in records[FAILS]["error"]  # the run's own line
    assert all(r["status"] == "finished" for name, r in records.items() if name != FAILS) and len(records) == 8
    rows = {r["run"]: r for r in tiny["after_first"]["csv"]}  # aggregated on the partial sweep
    assert rows[FAILS]["status"] == "failed" and rows[FAILS]["error"] == records[FAILS]["error"]
    assert rows[FAILS]["val_loss"] == "" and rows["cell=gru,hidden=8,seed=0"]["val_loss"] != ""
    assert "| gru | 8 | 1/2 (1 failed) |" in tiny["after_first"]["md"] and f"`{FAILS}`" in tiny["after_first"]["md"]


def test_a_rerun_skips_finished_runs_and_resumes_the_others(tiny):
    rc, out, _ = tiny["second"]
    assert rc == 0
    assert "8 runs, 6 finished already, 2 to run" in out
    ran = {line.split()[2] for line in out.splitlines() if line.startswith("[")}
    assert ran == {FAILS, INTERRUPTED}
    log = open(os.path.join(tiny["root"], "logs", INTERRUPTED + ".log")).read()
    assert "resumed from step 2" in log  # its checkpoint was kept; only final.json was gone
    rc, out, _ = tiny["third"]
    assert rc == 0 and "8 runs, 8 finished already, 0 to run" in out
    assert {p: os.path.getsize(p) for p in tiny["logs"]} == tiny["logs"]  # nothing was launched
    results = sw.run("chargen", [{**r["overrides"]} for r in tiny["manifest"]["runs"]], config="tiny",
                     root=tiny["root"], out=io.StringIO())  # the Python entry point: the same sweep, nothing to do
    assert results["counts"] == {"finished": 0, "failed": 0, "skipped": 8, "interrupted": 0}


def test_emit_prints_exactly_the_commands_a_local_run_executes(tiny):
    rc, out, err = tiny["emit"]
    assert rc == 0 and "8 commands" in err
    lines = out.splitlines()
    records = _records(tiny["root"])
    assert lines == [records[r["name"]]["command"] for r in tiny["manifest"]["runs"]]
    for run, line in zip(tiny["manifest"]["runs"], lines, strict=True):
        assert f"$ {line}\n" in open(os.path.join(tiny["root"], "logs", run["name"] + ".log")).read()
        assert f"--workdir {os.path.join(tiny['root'], run['name'])} " in line
        assert "--config tiny" in line and "--config.model.cell=" + run["overrides"]["model.cell"] in line
        saved = json.load(open(os.path.join(tiny["root"], run["name"], "config.json")))  # what the run was given
        o = run["overrides"]
        assert (saved["model"]["cell"], str(saved["model"]["hidden"]), str(saved["seed"])) == \
            (o["model.cell"], o["model.hidden"], o["seed"])
        assert (saved["train"]["steps"], saved["model"]["num_layers"], saved["model"]["embed_dim"]) == (2, 1, 8)
    rc, again, _ = _cli([*tiny["argv"], "--emit"])  # emitting from a finished root: the same lines
    assert rc == 0 and again == out


def test_aggregated_mean_and_std_equal_a_hand_computation(tiny):
    root = tiny["root"]
    by_config = {}
    for run in tiny["manifest"]["runs"]:
        final = json.load(open(os.path.join(root, run["name"], "final.json")))
        by_config.setdefault((run["overrides"]["model.cell"], run["overrides"]["model.hidden"]), []).append(final)
    summary = json.load(open(os.path.join(root, "summary.json")))
    assert summary["primary_metric"] == "val_loss" and len(summary["configurations"]) == 4
    md = open(os.path.join(root, "results.md")).read()
    means = []
    for config in summary["configurations"]:
        finals = by_config[(config["setting"]["model.cell"], config["setting"]["model.hidden"])]
        assert config["finished"] == 2
        for metric in ("val_loss", "train_loss", "val_accuracy"):
            a, b = (f[metric] for f in finals)
            stat = config["metrics"][metric]
            assert stat["n"] == 2 and sorted(stat["values"]) == sorted([a, b])
            assert stat["mean"] == pytest.approx((a + b) / 2, rel=1e-12, abs=1e-15)
            assert stat["std"] == pytest.approx(abs(a - b) / math.sqrt(2), rel=1e-9, abs=1e-15)  # sample std, n = 2
        val = config["metrics"]["val_loss"]
        assert f"{val['mean']:.4g} ± {val['std']:.2g}" in md
        means.append(val["mean"])
    assert means == sorted(means)  # best (lowest val_loss) first, in summary.json and results.md
    table = [line for line in md.splitlines() if line.startswith("| rnn") or line.startswith("| gru")]
    assert [line.split(" | ")[:2] for line in table] == \
        [["| " + c["setting"]["model.cell"], c["setting"]["model.hidden"]] for c in summary["configurations"]]

    rows = list(csv.DictReader(open(os.path.join(root, "results.csv"))))
    assert len(rows) == 8 and {r["status"] for r in rows} == {"finished"}
    for key in ("model.cell", "model.hidden", "train.steps", "seed", "val_loss", "num_params", "wall_time_s",
                "workdir"):
        assert key in rows[0]
    params = {(r["model.cell"], r["model.hidden"]): int(r["num_params"]) for r in rows}
    assert params[("gru", "16")] > params[("rnn", "16")] > params[("rnn", "8")] > 0
    for r in rows:
        assert float(r["val_loss"]) == json.load(open(os.path.join(r["workdir"], "final.json")))["val_loss"]
    pngs = sorted(os.listdir(os.path.join(root, "curves")))
    assert pngs == sorted(["all.png"] + [f"cell={c},hidden={h}.png" for c in ("rnn", "gru") for h in ("8", "16")])
    for png in pngs:
        assert open(os.path.join(root, "curves", png), "rb").read(8) == b"\x89PNG\r\n\x1a\n"


# ----------------------------------------------------------------------------- bad input: nothing runs


def _fails(argv, *needles):
    rc, out, err = _cli(argv)
    assert rc == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("sweep: error: ")
    for needle in needles:
        assert needle in err
    return err


def test_an_unknown_grid_key_fails_listing_the_valid_keys(tmp_path):
    root = str(tmp_path / "root")
    _fails(["chargen", "--grid", "model.cel=rnn,gru", "--root", root], "'model.cel'", "did you mean model.cell",
           "valid keys in config.model: model.cell, model.dropout")
    _fails(["chargen", "--grid", "modle.cell=rnn", "--root", root], "train.learning_rate", "model.num_layers")
    _fails(["chargen", "--grid", "model=rnn", "--root", root], "model is a section")
    _fails(["chargen", "--config", "tiny", "--set", "train.stepz=3", "--grid", "model.cell=rnn", "--root", root],
           "train.steps")
    assert not os.path.exists(root)


def test_empty_and_mistyped_values_fail(tmp_path):
    root = str(tmp_path / "root")
    _fails(["chargen", "--grid", "model.cell=", "--root", root], "empty value for model.cell")
    _fails(["chargen", "--grid", "model.cell=rnn,,gru", "--root", root], "empty value")
    _fails(["chargen", "--grid", "model.cell", "--root", root], "expected KEY=VALUE")
    _fails(["chargen", "--grid", "train.learning_rate=1e-3,le-3", "--root", root], "le-3", "expected a number")
    _fails(["chargen", "--grid", "model.hidden=8,8.5", "--root", root], "expected an integer")
    _fails(["chargen", "--grid", "model.cell=rnn", "--set", "model.cell=gru", "--root", root], "given twice")
    _fails(["chargen", "--grid", "model.cell=rnn", "--seeds", "0", "--root", root], "--seeds 0")
    _fails(["nope", "--grid", "model.cell=rnn"], "unknown experiment 'nope'", "chargen")
    _fails(["chargen", "--config", "tinyy", "--grid", "model.cell=rnn"], "presets:", "tiny")
    _fails(["chargen", "--sweep", "nope"], "sweeps of chargen:", "cells")
    assert not os.path.exists(root)


def test_a_root_holding_another_sweep_fails_naming_the_difference(tmp_path):
    root = str(tmp_path / "root")
    assert _cli(["chargen", "--grid", "model.cell=rnn,gru", "--seeds", "2", "--root", root, "--emit"])[0] == 0
    manifest = open(os.path.join(root, "sweep.json")).read()
    _fails(["chargen", "--grid", "model.cell=rnn,lstm", "--seeds", "2", "--root", root, "--emit"],
           "holds another sweep", "model.cell: was rnn,gru, now rnn,lstm")
    _fails(["chargen", "--grid", "model.cell=rnn,gru", "--seeds", "3", "--root", root], "seed: was 0,1, now 0,1,2")
    _fails(["chargen", "--config", "tiny", "--grid", "model.cell=rnn,gru", "--seeds", "2", "--root", root],
           "config: was None, now 'tiny'")
    assert open(os.path.join(root, "sweep.json")).read() == manifest
    assert _cli(["chargen", "--grid", "model.cell=rnn,gru", "--seeds", "2", "--root", root, "--emit"])[0] == 0
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    _fails(["chargen", "--grid", "model.cell=rnn", "--root", str(other)], "not empty", "no sweep.json")
    _fails(["--aggregate", "--root", str(other)], "no sweep here")


def test_one_local_sweep_at_a_time_per_root(tmp_path):
    root = str(tmp_path / "root")
    argv = ["chargen", "--grid", "model.cell=rnn,gru", "--root", root]
    assert _cli([*argv, "--emit"])[0] == 0
    with open(os.path.join(root, "logs", "lock"), "a+") as f:  # as a running sweep holds it
        fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        _fails(argv, "another sweep is running in")
    assert not os.path.exists(os.path.join(root, "cell=rnn"))  # nothing was launched


# ----------------------------------------------------------------------------- the pieces


def test_combinators():
    grid = sw.product(sw.sweep("a", [1, 2]), sw.sweep("b", ["x", "y", "z"]))
    assert grid == [{"a": 1, "b": "x"}, {"a": 1, "b": "y"}, {"a": 1, "b": "z"},
                    {"a": 2, "b": "x"}, {"a": 2, "b": "y"}, {"a": 2, "b": "z"}]
    assert sw.zipped(sw.sweep("a", [1, 2]), sw.sweep("b", [3, 4])) == [{"a": 1, "b": 3}, {"a": 2, "b": 4}]
    assert sw.chain(sw.fixed({"a.b": 1}), sw.sweep("c", [5])) == [{"a.b": 1}, {"c": 5}]
    assert sw.product(sw.fixed(c=0), sw.sweep("a", [1])) == [{"c": 0, "a": 1}]
    with pytest.raises(sw.SweepError, match="different lengths"):
        sw.zipped(sw.sweep("a", [1, 2]), sw.sweep("b", [3]))
    with pytest.raises(sw.SweepError, match="a set by two parts"):
        sw.product(sw.sweep("a", [1]), sw.sweep("a", [2]))
    with pytest.raises(sw.SweepError, match="no values"):
        sw.sweep("a", [])


def test_plan_names_texts_and_duplicates():
    plan = sw.plan("chargen", sw.product(sw.fixed({"train.steps": 5}), sw.sweep("model.dropout", [0.0, 0.5]),
                                         sw.sweep("model.cell", ["rnn"]), sw.sweep("seed", [0, 1])))
    assert [r.name for r in plan.runs] == ["dropout=0.0,seed=0", "dropout=0.0,seed=1", "dropout=0.5,seed=0",
                                           "dropout=0.5,seed=1"]
    assert plan.runs[2].overrides == {"train.steps": "5", "model.dropout": "0.5", "model.cell": "rnn", "seed": "0"}
    assert plan.runs[2].setting == {"train.steps": "5", "model.dropout": "0.5", "model.cell": "rnn"}
    assert plan.primary_metric == "val_loss" and plan.mode == "min"
    with pytest.raises(sw.SweepError, match="runs 1 and 2 are the same"):
        sw.plan("chargen", sw.chain(sw.fixed({"seed": 1}), sw.fixed({"seed": 1})))
    assert spec.name_runs([{"model.dropout": "0", "data.dropout": "1"}, {"model.dropout": "1", "data.dropout": "1"}]) \
        == ["dropout=0", "dropout=1"]  # data.dropout does not vary
    assert spec.name_runs([{"model.x": "0", "data.x": "1"}, {"model.x": "1", "data.x": "0"}]) == \
        ["model.x=0,data.x=1", "model.x=1,data.x=0"]  # the same last part: full keys
    assert spec.name_runs([{"p": "a/b"}, {"p": "a_b"}])[0].startswith("p=a_b-")  # sanitised apart
    assert split_values("(1,2),(3, 4),'a,b',c") == ["(1,2)", "(3, 4)", "'a,b'", "c"]
    assert spec.to_text(True) == "true" and spec.to_text((1, 2)) == "(1, 2)" and spec.to_text(1e-3) == "0.001"


@pytest.mark.parametrize("path", sorted(glob.glob(os.path.join(spec.REPO, "experiments", "*", "sweeps", "[!_]*.py"))))
def test_every_sweep_file_plans(path):
    experiment = path.split(os.sep)[-3]
    runs, name = spec.load_sweep_file(experiment, os.path.splitext(os.path.basename(path))[0])
    plan = sw.plan(experiment, runs, label=name)  # every key and value checked against the default config
    assert len(plan.runs) >= 2 and plan.default_root().startswith(os.path.join("runs", "sweeps", experiment))


def test_aggregate_of_an_unstarted_sweep(tmp_path):
    root = str(tmp_path / "r")
    assert len(sw.emit("chargen", sw.sweep("model.cell", ["rnn", "gru"]), root=root)) == 2
    results = sw.aggregate(root)
    assert [r["status"] for r in results["rows"]] == ["pending", "pending"]
    assert [c["finished"] for c in results["summary"]] == [0, 0]
    assert "2 runs: 2 pending." in open(os.path.join(root, "results.md")).read()
    shutil.rmtree(root)
