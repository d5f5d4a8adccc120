"""What a run leaves in its workdir besides checkpoints, and what it shows while it runs.

* ``metrics.jsonl``: one JSON object per log point: ``step``, ``time`` (seconds of training,
  summed over resumed sessions), ``tokens_per_s``, ``learning_rate``, ``train_<name>`` and, when
  evaluated, ``val_<name>``.
* ``tensorboard/``: the same scalars as TensorBoard events (tensorboardX), tags ``train/<name>``.
* ``loss.png``: train and val loss against step, drawn at the end.
* progress: a tqdm bar when stderr is a terminal, else one plain line per log point on stdout.

In a run of several processes only process 0 keeps records (``Records(..., enabled=False)`` in
the others does nothing), so there is one set of them; their metrics are already global averages.

On resume, records past the resumed step (written after its checkpoint by the interrupted
session) are dropped from ``metrics.jsonl`` and hidden in TensorBoard (``purge_step``).
"""

from __future__ import annotations

import json
import math
import os
import sys
from typing import Any

METRICS_FILE = "metrics.jsonl"
PLOT_FILE = "loss.png"


def read_records(workdir: str) -> list[dict]:
    path = os.path.join(workdir, METRICS_FILE)
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a line cut short by a kill ends the record
    return records


def _summary_writer():
    """tensorboardX's SummaryWriter class, imported without torch.

    tensorboardX imports torch, when it is installed, only to recognise torch tensors; we log
    Python floats, and skipping that import saves seconds at every start."""
    blocked = "torch" not in sys.modules
    if blocked:
        sys.modules["torch"] = None  # makes `import torch` raise ImportError, which tensorboardX allows
    try:
        from tensorboardX import SummaryWriter
    finally:
        if blocked:
            del sys.modules["torch"]
    return SummaryWriter


def _format(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


class Records:
    def __init__(self, workdir: str, start_step: int, total_steps: int, progress_bar: bool | None = None,
                 enabled: bool = True):
        self.workdir = workdir
        self.enabled = enabled
        self.total_steps = total_steps
        self.time_offset = 0.0
        self._bar = None
        if not enabled:
            return
        kept = [r for r in read_records(workdir) if r.get("step", 0) <= start_step]
        self.path = os.path.join(workdir, METRICS_FILE)
        with open(self.path + ".tmp", "w") as f:
            f.writelines(json.dumps(r) + "\n" for r in kept)
        os.replace(self.path + ".tmp", self.path)
        self.time_offset = float(kept[-1]["time"]) if kept else 0.0
        self._file = open(self.path, "a")

        self._tb = _summary_writer()(
            os.path.join(workdir, "tensorboard"), purge_step=start_step + 1 if start_step else None
        )
        if progress_bar is None:
            progress_bar = sys.stderr.isatty()
        self._bar = None
        if progress_bar:
            from tqdm import tqdm

            self._bar = tqdm(total=total_steps, initial=start_step, unit="step", dynamic_ncols=True)
        self.total_steps = total_steps

    def advance(self, steps: int = 1) -> None:
        if self.enabled and self._bar is not None:
            self._bar.update(steps)

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        step = record["step"]
        for key, value in record.items():
            if key == "step" or not isinstance(value, (int, float)):
                continue
            tag = key.replace("_", "/", 1) if key.startswith(("train_", "val_")) else key
            self._tb.add_scalar(tag, value, step)
        self._tb.flush()
        shown = {k: v for k, v in record.items() if k in ("train_loss", "val_loss", "tokens_per_s")}
        if self._bar is not None:
            self._bar.set_postfix({k: _format(v) for k, v in shown.items()}, refresh=True)
        else:
            extra = {k: v for k, v in record.items() if k.startswith("val_") and k != "val_loss"}
            text = "  ".join(f"{k}={_format(v)}" for k, v in {**shown, **extra}.items())
            print(f"step {step}/{self.total_steps}  {text}", flush=True)

    def message(self, text: str) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.write(text)
        else:
            print(text, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._bar is not None:
            self._bar.close()
            self._bar = None
        self._file.close()
        self._tb.close()


def plot_losses(workdir: str, path: str | None = None) -> str | None:
    """Draws train and val loss from ``metrics.jsonl`` into a PNG; returns its path."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_records(workdir)
    curves = {}
    for key in ("train_loss", "val_loss"):
        points = [(r["step"], r[key]) for r in records if isinstance(r.get(key), (int, float))]
        points = [(s, v) for s, v in points if math.isfinite(v)]
        if points:
            curves[key] = points
    if not curves:
        return None
    fig = Figure(figsize=(6, 4), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for key, points in curves.items():
        steps, values = zip(*points, strict=True)
        ax.plot(steps, values, marker="o" if len(points) < 20 else None, markersize=3, label=key)
    if all(v > 0 for points in curves.values() for _, v in points):
        ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(os.path.basename(os.path.abspath(workdir)))
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.subplots_adjust(left=0.12, right=0.97, bottom=0.12, top=0.92)  # tight_layout is slow
    path = path or os.path.join(workdir, PLOT_FILE)
    fig.savefig(path)
    return path
