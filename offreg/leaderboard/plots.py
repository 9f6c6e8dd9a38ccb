"""The leaderboard's figures (matplotlib, Agg backend): learning curves, IQM with CIs, performance profile.

Each ``plot_*`` function takes a :class:`~offreg.leaderboard.board.Leaderboard` and returns PNG bytes,
or None when there is nothing to plot.
"""

from __future__ import annotations

import io
import math
from typing import Any

import numpy as np

from offreg.leaderboard.aggregate import performance_profile
from offreg.leaderboard.board import Leaderboard


def _png(fig: Any) -> bytes:
    import matplotlib.pyplot as plt  # heavy optional dependency: only when a report draws

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return buf.getvalue()


def _pyplot() -> Any:
    import matplotlib  # heavy optional dependency: only when a report draws

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    return plt


def _color(board: Leaderboard, agent: str) -> str:
    """The same matplotlib colour for an agent in every plot."""
    return f"C{board.agents.index(agent) % 10}"


def learning_curves_figure(board: Leaderboard) -> Any | None:
    """The matplotlib figure of :func:`plot_learning_curves`, or None without curves."""
    datasets = [d for d in board.datasets if any(e.curve is not None for e in board.entries if e.dataset == d)]
    if not datasets:
        return None
    plt = _pyplot()
    cols = min(3, len(datasets))
    rows = math.ceil(len(datasets) / cols)
    # constrained layout sizes the gaps from the text itself: titles, labels and tick labels of one
    # panel never run into another's (the default fixed spacing let a row's x labels hit the titles below)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False, layout="constrained")
    for ax, d in zip(axes.flat, datasets, strict=False):
        for a in board.agents:
            e = board.entry(a, d)
            if e is None or e.curve is None:
                continue
            steps, mean, std = e.curve
            color = _color(board, a)
            ax.plot(steps, mean, marker="o", ms=3, label=a, color=color)
            ax.fill_between(steps, mean - std, mean + std, alpha=0.2, color=color)
        ax.set_title(d, fontsize=9)
        ax.set_xlabel("gradient steps")
        ax.set_ylabel("normalized score")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7)
    for ax in list(axes.flat)[len(datasets):]:
        ax.axis("off")
    fig.suptitle("Learning curves (mean ± std over seeds)", fontsize=10)
    return fig


def plot_learning_curves(board: Leaderboard) -> bytes | None:
    """One panel per dataset: each agent's mean normalized score over seeds (± std band) vs step."""
    fig = learning_curves_figure(board)
    return None if fig is None else _png(fig)


def plot_performance_profile(board: Leaderboard) -> bytes | None:
    """Fraction of runs with final score > tau, per agent (datasets weighted equally)."""
    tables = {a.agent: board.score_table(a.agent) for a in board.aggregates}
    if not tables:
        return None
    plt = _pyplot()
    all_scores = np.concatenate([np.concatenate(list(t.values())) for t in tables.values()])
    lo, hi = min(0.0, float(all_scores.min())), max(100.0, float(all_scores.max()))
    taus = np.linspace(lo, hi, 201)
    fig, ax = plt.subplots(figsize=(5.5, 3.5))
    for a, t in tables.items():
        ax.plot(taus, performance_profile(t, taus), label=a, color=_color(board, a))
    ax.set_xlabel("normalized score tau")
    ax.set_ylabel("fraction of runs with score > tau")
    ax.set_title("Performance profile (final scores)", fontsize=10)
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png(fig)


def plot_iqm(board: Leaderboard) -> bytes | None:
    """Per agent: IQM of final scores with its bootstrap confidence interval."""
    if not board.aggregates:
        return None
    plt = _pyplot()
    aggs = board.aggregates
    fig, ax = plt.subplots(figsize=(5.5, 0.5 + 0.45 * len(aggs)))
    y = np.arange(len(aggs))
    pts = np.array([a.iqm for a in aggs])
    err = np.array([[a.iqm - a.iqm_ci[0] for a in aggs], [a.iqm_ci[1] - a.iqm for a in aggs]])
    ax.errorbar(pts, y, xerr=err, fmt="o", capsize=4)
    ax.set_yticks(y, [a.agent for a in aggs])
    ax.invert_yaxis()
    ax.set_xlabel("IQM of final normalized score")
    ax.set_title(f"IQM with {board.confidence:.0%} stratified bootstrap CI", fontsize=10)
    ax.grid(alpha=0.3, axis="x")
    return _png(fig)


def plots(board: Leaderboard) -> dict[str, bytes]:
    """``{file name: PNG bytes}`` of every plot that has data."""
    out = {}
    for name, fn in (("learning_curves.png", plot_learning_curves), ("iqm.png", plot_iqm),
                     ("performance_profile.png", plot_performance_profile)):
        png = fn(board)
        if png is not None:
            out[name] = png
    return out
