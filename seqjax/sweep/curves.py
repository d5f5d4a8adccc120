"""Learning curves of a sweep: per configuration, the mean over seeds with a min-max band.

At each logged step the statistics run over the seeds that logged it, so a partial sweep (runs
still going, or failed) plots what there is.
"""

from __future__ import annotations

import math
import os

from seqjax.train.records import read_records

CURVES = "curves"


def band(workdirs: list[str], metric: str) -> tuple[list[int], list[float], list[float], list[float]] | None:
    """``(steps, mean, min, max)`` of ``metric`` over the runs in ``workdirs``; None if no run logged it."""
    by_step: dict[int, list[float]] = {}
    for workdir in workdirs:
        for record in read_records(workdir):
            value = record.get(metric)
            if isinstance(value, (int, float)) and math.isfinite(value) and "step" in record:
                by_step.setdefault(int(record["step"]), []).append(float(value))
    if not by_step:
        return None
    steps = sorted(by_step)
    return (steps, [sum(by_step[s]) / len(by_step[s]) for s in steps], [min(by_step[s]) for s in steps],
            [max(by_step[s]) for s in steps])


def _figure(n_axes: int):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5.5 * n_axes, 4), dpi=100)
    FigureCanvasAgg(fig)
    return fig, [fig.add_subplot(1, n_axes, i + 1) for i in range(n_axes)]


def _draw(ax, curve, label: str | None, color=None) -> None:
    steps, mean, low, high = curve
    line, = ax.plot(steps, mean, label=label, color=color, marker="o" if len(steps) < 20 else None, markersize=3)
    if len(steps) > 1:
        ax.fill_between(steps, low, high, color=line.get_color(), alpha=0.2, linewidth=0)
    else:  # one logged step (e.g. a single evaluation): the band is a bar
        ax.vlines(steps, low, high, color=line.get_color(), alpha=0.4, linewidth=4)


def _finish(fig, axes, metrics: list[str], title: str, path: str) -> None:
    from matplotlib.ticker import MaxNLocator

    for ax, metric in zip(axes, metrics, strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("step")
        ax.set_ylabel(metric)
        ax.grid(True, alpha=0.3)
        low, high = ax.dataLim.y0, ax.dataLim.y1
        if low > 0 and high / low > 20:  # losses falling by orders of magnitude
            ax.set_yscale("log")
        if ax.get_legend_handles_labels()[0]:
            ax.legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    fig.subplots_adjust(left=0.1, right=0.97, bottom=0.13, top=0.88, wspace=0.3)  # tight_layout is slow
    fig.savefig(path)


def plot_curves(root: str, manifest: dict, summary: list[dict]) -> list[str]:
    """Writes ``curves/<configuration>.png`` for each configuration and ``curves/all.png``; returns the paths."""
    primary = manifest.get("primary_metric", "val_loss")
    metrics = list(dict.fromkeys(["train_loss", primary]))
    folder = os.path.join(root, CURVES)
    os.makedirs(folder, exist_ok=True)
    for stale in os.listdir(folder):  # every plot is redrawn; none is left from an earlier aggregation
        if stale.endswith(".png"):
            os.remove(os.path.join(folder, stale))
    workdirs = {s["name"]: [os.path.join(root, name) for name in s["runs"]] for s in summary}
    curves = {name: {m: band(dirs, m) for m in metrics} for name, dirs in workdirs.items()}
    metrics = [m for m in metrics if any(c[m] for c in curves.values())]
    if not metrics:
        return []
    paths = []
    for name, by_metric in curves.items():
        if not any(by_metric[m] for m in metrics):
            continue
        fig, axes = _figure(len(metrics))
        for ax, m in zip(axes, metrics, strict=True):
            if by_metric[m]:
                _draw(ax, by_metric[m], None)
        paths.append(os.path.join(folder, f"{name}.png"))
        _finish(fig, axes, metrics, f"{manifest['experiment']} {name}: mean and min-max over seeds", paths[-1])
    fig, axes = _figure(len(metrics))
    for i, (name, by_metric) in enumerate(curves.items()):
        for ax, m in zip(axes, metrics, strict=True):
            if by_metric[m]:
                _draw(ax, by_metric[m], name, color=f"C{i % 10}")
    paths.append(os.path.join(folder, "all.png"))
    _finish(fig, axes, metrics, f"{manifest['experiment']}: every configuration, mean and min-max over seeds",
            paths[-1])
    return paths
