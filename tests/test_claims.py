"""The claims driver: the rules on made-up numbers, the commands it prints, and one --quick generation
(every claim section with a verdict; every figure equal to the sweep results it was read from)."""

import contextlib
import csv
import dataclasses
import glob
import io
import json
import os
import re
import shlex
import statistics

import pytest

from experiments import claim_sections as cs
from experiments import claims
from seqjax import sweep as sw
from seqjax.sweep.__main__ import _parser, build
from seqjax.sweep.spec import to_text

VERDICT = re.compile(r"^\*\*Verdict: (confirmed|qualified|refuted)\.\*\* \S", re.M)


def _result(configs: dict, root="made-up") -> dict:
    """A study result like seqjax.sweep.run's: configurations (setting -> metric -> per-seed values)."""
    summary = []
    for setting, metrics in configs.items():
        stats = {m: {"mean": statistics.fmean(v), "std": statistics.stdev(v) if len(v) > 1 else None, "n": len(v),
                     "values": list(v)} for m, v in metrics.items()}
        summary.append({"setting": {k: to_text(v) for k, v in setting}, "runs": ["r"] * 2, "metrics": stats})
    return {"summary": summary, "rows": [], "root": root, "commands": ["./launch.sh sweep memory ..."]}


def _ctx(tmp_path, **scale):
    return cs.Context(dataclasses.replace(claims._quick(), **scale), str(tmp_path), str(tmp_path), 1, io.StringIO())


def test_memory_rule_on_made_up_numbers(tmp_path):
    ctx = _ctx(tmp_path, lags={"adding": (10, 100)}, seeds=2)
    skill = {("rnn", 10): [0.9, 0.9], ("rnn", 100): [0.0, 0.6], ("gru", 10): [1.0, 1.0], ("gru", 100): [0.8, 0.9],
             ("lstm", 10): [1.0, 1.0], ("lstm", 100): [0.95, 0.97]}
    configs = {(("data.task", "adding"), ("data.lag", lag), ("model.cell", cell)): {"test_skill": v, "test_mse": v}
               for (cell, lag), v in skill.items()}
    claim = cs.claim_memory(ctx, _result(configs))
    # the RNN holds lag 10 and, with one of its two seeds passing, lag 100 too (half the seeds): (A) fails
    assert claim.verdict == "refuted", claim.why
    configs[(("data.task", "adding"), ("data.lag", 100), ("model.cell", "rnn"))] = {"test_skill": [0.0, 0.1],
                                                                                    "test_mse": [0.0, 0.1]}
    claim = cs.claim_memory(ctx, _result(configs))
    # now the RNN fails at 100 and both gated cells hold it (A); the LSTM is strongest there (B); they are
    # within 0.05 at 1 of 2 points (C); the GRU does not beat the LSTM at lag 10 (D): qualified
    assert claim.verdict == "qualified", claim.why
    assert "adding yes (fails at 100; GRU —, LSTM —)" in claim.why
    assert "at 1 of 2 (task, lag) points" in claim.why and "GRU better at the shortest lag: adding no" in claim.why
    table = "\n".join(claim.measured)
    assert "| 100 | 0.05 ± 0.071 (0.05 ± 0.071; 0/2) | **0.85 ± 0.071** (0.85 ± 0.071; 2/2) |" in table
    assert os.path.exists(tmp_path / "claims" / "memory_lags.png")


def test_choice_rule_on_made_up_numbers(tmp_path):
    ctx = _ctx(tmp_path, seeds=3)
    general = cs.Comparison("x", "chargen", None, {}, "val_loss", "min", False, 16)
    long = cs.Comparison("y", "memory", None, {}, "test_skill", "max", True, 8)
    sizes = {"gru_hidden": 18, "lstm_params": 100, "gru_params": 101}
    tie = _result({(("model.cell", "gru"),): {"val_loss": [1.0, 1.1, 1.2]},
                   (("model.cell", "lstm"),): {"val_loss": [1.05, 1.1, 1.15]}})
    lstm_wins = _result({(("model.cell", "gru"),): {"test_skill": [0.1, 0.2, 0.15]},
                         (("model.cell", "lstm"),): {"test_skill": [0.9, 0.95, 0.92]}})
    claim = cs.claim_choice(ctx, [(general, tie, sizes), (long, lstm_wins, sizes)])
    assert claim.verdict == "confirmed", claim.why
    gru_wins = _result({(("model.cell", "gru"),): {"test_skill": [0.9, 0.95, 0.92]},
                        (("model.cell", "lstm"),): {"test_skill": [0.1, 0.2, 0.15]}})
    claim = cs.claim_choice(ctx, [(general, tie, sizes), (long, gru_wins, sizes)])
    assert claim.verdict == "qualified" and "results are GRU" in claim.why


def test_divergence_is_a_non_finite_loss_or_a_loss_above_twice_the_trivial_one():
    failed = {"status": "failed", "metrics": {}}
    assert cs.diverged({**failed, "error": "experiments.memory: error: loss became inf at step 22; ..."})
    assert cs.diverged({**failed, "error": "gradient became non-finite (loss 3e+36) at step 20"})
    assert not cs.diverged({**failed, "error": "No space left on device"})
    assert cs.diverged({"status": "finished", "metrics": {"train_loss": 0.34}})
    assert not cs.diverged({"status": "finished", "metrics": {"train_loss": 0.32}})


def test_reproduce_prints_lines_that_give_back_the_same_runs():
    runs = sw.product(sw.fixed({"train.steps": 30}), sw.sweep("data.lag", [4, 8]),
                      sw.sweep("model.cell", ["rnn", "gru"]))
    (line,) = cs.reproduce("memory", "tiny", runs, 2, "/tmp/r")
    argv = shlex.split(line)[2:]
    assert argv[:3] == ["memory", "--config", "tiny"]
    rebuilt, _ = build(_parser().parse_args(argv))
    want = sw.product(runs, sw.sweep("seed", range(2)))
    assert sorted(map(json.dumps, ({k: to_text(v) for k, v in d.items()} for d in rebuilt))) == \
        sorted(map(json.dumps, ({k: to_text(v) for k, v in d.items()} for d in want)))
    from experiments.memory.sweeps import lags

    assert cs.reproduce("memory", None, lags.get_sweep(), 3, "R", "lags") == ["./launch.sh sweep memory --sweep lags "
                                                                        "--seeds 3 --root R"]
    paired = sw.chain(sw.fixed({"model.cell": "lstm", "model.hidden": 8}), sw.fixed({"model.cell": "gru",
                                                                                   "model.hidden": 9}))
    lines = cs.reproduce("memory", None, paired, 2, "R")
    assert lines == ["./launch.sh memory --config.model.cell=lstm --config.model.hidden=8 --config.seed=S  (S = 0, 1)",
                     "./launch.sh memory --config.model.cell=gru --config.model.hidden=9 --config.seed=S  (S = 0, 1)"]


def test_busy_seconds_counts_overlapping_runs_once(tmp_path):
    os.makedirs(tmp_path / "logs")
    for name, start, wall in (("a", "2026-01-01 00:00:00", 10), ("b", "2026-01-01 00:00:05", 10),
                              ("c", "2026-01-01 00:01:00", 3)):
        json.dump({"started": start, "wall_time_s": wall}, open(tmp_path / "logs" / f"{name}.json", "w"))
    assert cs.busy_seconds(str(tmp_path)) == 18


# ----------------------------------------------------------------------------- one --quick generation


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    out = tmp_path_factory.mktemp("claims")
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        rc = claims.main(["--quick", "--out", str(out), "--root", str(out / "runs")])
    return {"rc": rc, "out": out, "log": log.getvalue(), "md": (out / "claims.md").read_text(),
            "json": json.loads((out / "claims.json").read_text())}


def test_quick_writes_every_claim_with_a_verdict(quick):
    assert quick["rc"] == 0, quick["log"][-2000:]
    md = quick["md"]
    sections = re.split(r"^## \d+\. ", md, flags=re.M)[1:]
    titles = [s.splitlines()[0] for s in sections]
    assert titles == ["Parameter counts", "Training speed", "Long-range memory", "Vanishing (and exploding) gradients",
                      "Bidirectional benefit", "Gradient clipping against explosion", "GRU or LSTM"]
    for section, claim in zip(sections, quick["json"]["claims"], strict=True):
        assert "**As the articles state it.**" in section and "**As measured.**" in section
        assert len(VERDICT.findall(section)) == 1 and VERDICT.search(section).group(1) == claim["verdict"]
        assert "*Rule:*" in section
    summary = re.findall(r"^\| \d \| \[(.+?)\]\(#.+?\) \| \*\*(\w+)\*\* \|$", md, re.M)
    assert summary == [(c["title"], c["verdict"]) for c in quick["json"]["claims"]]
    assert "**Cost:**" in md and claims.cpu_model() in md


def test_quick_figures_match_the_sweeps_they_were_read_from(quick):
    figures = quick["json"]["figures"]
    assert len(figures) > 20
    for fig in figures:
        summary = json.load(open(os.path.join(fig["root"], "summary.json")))["configurations"]
        (config,) = [c for c in summary if c["setting"] == fig["setting"]]
        assert config["metrics"][fig["metric"]]["mean"] == fig["mean"]
        assert fig["text"] in quick["md"]
        # and by hand, from the runs' own final.json
        finals = [json.load(open(os.path.join(fig["root"], run, "final.json"))) for run in config["runs"]
                  if os.path.exists(os.path.join(fig["root"], run, "final.json"))]
        assert statistics.fmean(f[fig["metric"]] for f in finals) == pytest.approx(fig["mean"], rel=1e-12)


def test_quick_plots_exist_and_are_linked(quick):
    linked = re.findall(r"!\[[^]]*\]\((claims/[\w.]+\.png)\)", quick["md"])
    assert sorted(linked) == ["claims/gradients.png", "claims/memory_lags.png"]
    for path in linked:
        with open(quick["out"] / path, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert sorted(os.path.basename(p) for p in glob.glob(str(quick["out"] / "claims" / "*.png"))) == \
        ["gradients.png", "memory_lags.png"]


def test_a_rerun_runs_no_finished_run_and_writes_the_same_figures(quick):
    log = io.StringIO()
    with contextlib.redirect_stdout(log):
        assert claims.main(["--quick", "--out", str(quick["out"]), "--root", str(quick["out"] / "runs")]) == 0
    lines = re.findall(r"^sweep (\S+): (\d+) runs, (\d+) finished already, (\d+) to run", log.getvalue(), re.M)
    assert len(lines) == 5  # lags, bidirectional, clipping and two comparisons
    for root, _, _, todo in lines:  # only failed runs (a diverged clipping run) are tried again
        failed = [r for r in csv.DictReader(open(os.path.join(root, "results.csv"))) if r["status"] == "failed"]
        assert int(todo) == len(failed), root
    again = json.loads((quick["out"] / "claims.json").read_text())
    assert [(f["root"], f["setting"], f["metric"], f["text"]) for f in again["figures"]] == \
        [(f["root"], f["setting"], f["metric"], f["text"]) for f in quick["json"]["figures"]]
