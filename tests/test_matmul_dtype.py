"""``model.matmul_dtype`` in every experiment: bfloat16 reaches the cells, a bad value is refused
before any workdir exists (chargen's own checks are in test_chargen.py)."""

import subprocess
import sys

import pytest

from experiments.sentiment.configs import tiny as sentiment_tiny
from experiments.sentiment.model import SentimentModel
from experiments.seq2seq.configs import tiny as seq2seq_tiny
from experiments.seq2seq.model import Seq2SeqModel
from experiments.timeseries.configs import tiny as timeseries_tiny
from experiments.timeseries.model import from_config


def test_bfloat16_reaches_every_experiments_cells():
    cfg = sentiment_tiny.get_config().model
    cfg.matmul_dtype = "bfloat16"
    assert SentimentModel.from_config(cfg, vocab_size=32).stack.cell.matmul_dtype == "bfloat16"
    cfg = timeseries_tiny.get_config().model
    cfg.matmul_dtype = "bfloat16"
    assert from_config(cfg, horizon=1, num_features=1).stack.cell.matmul_dtype == "bfloat16"
    assert from_config(timeseries_tiny.get_config().model, horizon=1, num_features=1).stack.cell.matmul_dtype is None
    cfg = seq2seq_tiny.get_config().model
    cfg.matmul_dtype = "bfloat16"
    core = Seq2SeqModel.from_config(cfg, src_vocab=11, tgt_vocab=38).core
    assert core.encoder.cell.matmul_dtype == core.decoder.cell.matmul_dtype == "bfloat16"


@pytest.mark.parametrize("experiment", ["sentiment", "timeseries", "seq2seq"])
def test_bad_matmul_dtype_leaves_no_workdir(experiment, tmp_path):
    wd = tmp_path / "run"
    r = subprocess.run([sys.executable, "-m", f"experiments.{experiment}", "--config", "tiny", "--workdir", str(wd),
                        "--config.model.matmul_dtype=float16"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert "matmul_dtype" in r.stderr and "float16" in r.stderr and "bfloat16" in r.stderr, r.stderr[-2000:]
    assert "Traceback" not in r.stderr
    assert not wd.exists()
