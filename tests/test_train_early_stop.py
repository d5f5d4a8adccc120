"""Early stopping (``train.patience``): the trainer stops after that many evaluations without a new
best, keeps the checkpoint of the stop, and a rerun of the stopped workdir trains no further."""

import json

import pytest
import toy_task

from seqjax.train import ConfigError, main
from seqjax.train.cli import parse_args

TOY_CONFIG = toy_task.__file__


def _main(argv):
    return main("toy", toy_task.ToyTask, toy_task.load, argv)


def test_patience_stops_the_run_and_a_rerun_stays_stopped(tmp_path, capsys):
    workdir = tmp_path / "run"
    # best_mode=max on a falling val_loss: the first evaluation stays the best, so every later one
    # is an evaluation without improvement
    argv = ["--workdir", str(workdir), "--config", TOY_CONFIG, "--config.train.eval_every=5",
            "--config.train.log_every=5", "--config.train.best_mode=max", "--config.train.patience=2"]
    final = _main(argv)
    assert "early stop at step 15: val_loss has not improved in 2 evaluations (train.patience=2)" in \
        capsys.readouterr().out
    assert final["steps"] == 15 and final["stopped_early_at"] == 15 and final["final_eval_step"] == 5
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15]
    assert sorted(int(d.name) for d in (workdir / "checkpoints").iterdir() if d.name.isdigit())[-1] == 15
    again = _main(argv)  # resumes at step 15 and counts the evaluations it already made
    assert again["steps"] == 15 and again["stopped_early_at"] == 15
    assert again["test_mse"] == pytest.approx(final["test_mse"])
    records = [json.loads(line) for line in (workdir / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records] == [5, 10, 15]
    # without patience the same config trains to the end
    other = _main(["--workdir", str(tmp_path / "full"), *argv[2:-1]])
    assert other["steps"] == 40 and "stopped_early_at" not in other


def test_patience_needs_evaluations():
    with pytest.raises(ConfigError, match=r"config.train.patience=3: early stopping counts evaluations; it needs "
                                          r"train.eval_every > 0"):
        parse_args(["--config", TOY_CONFIG, "--config.train.patience=3", "--config.train.eval_every=0"], "x")
    with pytest.raises(ConfigError, match=r"config.train.patience=-1: expected an integer >= 0"):
        parse_args(["--config", TOY_CONFIG, "--config.train.patience=-1"], "x")
