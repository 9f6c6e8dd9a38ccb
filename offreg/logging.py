"""Training logs: a small :class:`Logger` protocol, JSONL always, TensorBoard / W&B when asked.

A record is a flat dict with ``step`` (int), ``seed`` (int), ``kind`` (``train`` or ``eval``) and
values (floats, or lists of floats for per-episode returns). :class:`JsonlLogger` writes one JSON
object per line to ``metrics.jsonl`` and flushes it, so a killed run keeps every record logged so
far. :func:`plot_curves` draws the learning curve of a run from that file alone.
"""

from __future__ import annotations

import io
import json
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from offreg.atomic import atomic_write_bytes, atomic_write_text
from offreg.errors import ConfigError


@runtime_checkable
class Logger(Protocol):
    """Receives every record of a run."""

    def log(self, record: Mapping[str, Any]) -> None:
        """Log one record (``step``, ``seed``, ``kind`` and values)."""

    def close(self) -> None:
        """Flush and release resources."""


def _jsonable(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return str(v)  # "nan", "inf": JSON has no NaN
    if isinstance(v, list | tuple):
        return [_jsonable(x) for x in v]
    return v


class JsonlLogger:
    """Appends records to a JSON-lines file, one flushed line per record."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed in close())

    def log(self, record: Mapping[str, Any]) -> None:
        self._f.write(json.dumps({k: _jsonable(v) for k, v in record.items()}) + "\n")
        self._f.flush()

    def close(self) -> None:
        self._f.close()


def require_tensorboard() -> type:
    """The ``SummaryWriter`` class of tensorboardX (or of torch).

    Raises:
      ConfigError: neither is installed (the message says which extra to install).
    """
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            raise ConfigError(
                "TensorBoard logging needs tensorboardX (or torch); install it with pip install 'offreg[tb]'"
            ) from None
    return SummaryWriter


def require_wandb() -> Any:
    """The ``wandb`` module.

    Raises:
      ConfigError: it is not installed (the message says which extra to install).
    """
    try:
        import wandb
    except ImportError:
        raise ConfigError("W&B logging needs wandb; install it with pip install 'offreg[wandb]'") from None
    return wandb


class TensorBoardLogger:
    """Scalars to TensorBoard, one event directory per seed (``<logdir>/seed_<s>``), tags ``<kind>/<name>``."""

    def __init__(self, logdir: str | os.PathLike):
        self._cls = require_tensorboard()
        self.logdir = Path(logdir)
        self._writers: dict[int, Any] = {}

    def log(self, record: Mapping[str, Any]) -> None:
        seed = int(record.get("seed", 0))
        if seed not in self._writers:
            self._writers[seed] = self._cls(str(self.logdir / f"seed_{seed}"))
        w = self._writers[seed]
        for k, v in record.items():
            if k not in ("step", "seed", "kind") and isinstance(v, int | float):
                w.add_scalar(f"{record.get('kind', 'train')}/{k}", v, int(record["step"]))

    def close(self) -> None:
        for w in self._writers.values():
            w.close()


class WandbLogger:
    """Scalars to Weights & Biases, one W&B run per training run, keys ``seed_<s>/<kind>/<name>``.

    The mode (online/offline) follows W&B's own settings (``WANDB_MODE``).
    """

    def __init__(self, project: str, run_dir: str | os.PathLike, name: str, config: Mapping[str, Any]):
        self._run = require_wandb().init(project=project, dir=str(run_dir), name=name, config=dict(config))

    def log(self, record: Mapping[str, Any]) -> None:
        prefix = f"seed_{record.get('seed', 0)}/{record.get('kind', 'train')}"
        values = {
            f"{prefix}/{k}": v
            for k, v in record.items()
            if k not in ("step", "seed", "kind") and isinstance(v, int | float)
        }
        self._run.log(values, step=int(record["step"]))

    def close(self) -> None:
        self._run.finish()


class MultiLogger:
    """Forwards every record to several loggers."""

    def __init__(self, loggers: Sequence[Logger]):
        self.loggers = list(loggers)

    def log(self, record: Mapping[str, Any]) -> None:
        for lg in self.loggers:
            lg.log(record)

    def close(self) -> None:
        for lg in self.loggers:
            lg.close()


def read_jsonl(path: str | os.PathLike) -> list[dict[str, Any]]:
    """Every record of a JSON-lines file (a truncated last line, from a killed run, is skipped)."""
    path = Path(path)
    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def truncate_jsonl(path: str | os.PathLike, max_step: int) -> None:
    """Keep only the records with ``step <= max_step`` (resume: drop what follows the checkpoint).

    Rewritten atomically.
    """

    path = Path(path)
    if not path.exists():
        return
    kept = [r for r in read_jsonl(path) if int(r.get("step", 0)) <= max_step]
    atomic_write_text(path, "".join(json.dumps(r) + "\n" for r in kept))


def curve_series(records: Iterable[Mapping[str, Any]]) -> tuple[str, dict[Any, tuple[list[int], list[float]]]]:
    """The learning-curve series of a run: per seed (per ``(sweep label, seed)`` in a sweep), ``(steps, values)``.

    The value is the mean normalized score of each evaluation (``score_mean``), else the mean return
    (``return_mean``); a run without evaluations plots its first training metric.

    Returns:
      ``(label, {seed: (steps, values)})``; in a sweep the keys are ``("lambda_=0.4", seed)``.
    """
    records = list(records)
    evals = [r for r in records if r.get("kind") == "eval"]
    if evals:
        key = "score_mean" if all(r.get("score_mean") is not None for r in evals) else "return_mean"
        label = "normalized score" if key == "score_mean" else "return"
        chosen = evals
    else:
        train = [r for r in records if r.get("kind") == "train"]
        names = [k for k in (train[0] if train else {}) if k not in ("step", "seed", "kind", "updates_per_s")]
        key = next((k for k in ("critic_loss", "actor_loss", "loss") if k in names), names[0] if names else "")
        label = f"train {key}"
        chosen = train
    series: dict[Any, tuple[list[int], list[float]]] = {}
    for r in chosen:
        v = r.get(key)
        if isinstance(v, int | float):
            run = int(r.get("seed", 0))
            if r.get("sweep"):
                run = (", ".join(f"{k}={x:g}" for k, x in r["sweep"].items()), run)
            steps, vals = series.setdefault(run, ([], []))
            steps.append(int(r["step"]))
            vals.append(float(v))
    return label, series


def plot_curves(metrics_path: str | os.PathLike, out_png: str | os.PathLike, title: str = "") -> Path:
    """Draw the learning curve (one thin line per seed, the mean across seeds in bold) to a PNG.

    Uses matplotlib's Agg backend without touching the global backend. Written atomically.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure


    label, series = curve_series(read_jsonl(metrics_path))
    fig = Figure(figsize=(6.4, 4.0), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot(1, 1, 1)
    many = len(series) > 1
    groups: dict[str, dict[Any, tuple[list[int], list[float]]]] = {}  # one group per sweep point
    for run, curve in series.items():
        groups.setdefault(run[0] if isinstance(run, tuple) else "", {})[run] = curve
    for i, (point, runs) in enumerate(sorted(groups.items())):
        color = f"C{i}" if point else None
        for run, (steps, vals) in sorted(runs.items()):
            name = f"{run[0]}, seed {run[1]}" if point else f"seed {run}"
            ax.plot(steps, vals, lw=0.8 if many else 1.5, alpha=0.5 if many else 1.0, color=color,
                    label=None if point else name)
        common = sorted(set.intersection(*(set(s) for s, _ in runs.values())))
        if (many and common) and (point or len(runs) > 1):
            lookup = [dict(zip(s, v, strict=True)) for s, v in runs.values()]
            mean = [sum(d[t] for d in lookup) / len(lookup) for t in common]
            ax.plot(common, mean, lw=2.0, color=color or "black", label=f"{point} mean" if point else "mean")
    if series:
        ax.legend(fontsize="small")
    else:
        ax.text(0.5, 0.5, "no records yet", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("gradient steps")
    ax.set_ylabel(label)
    ax.set_title(title, fontsize="medium")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    atomic_write_bytes(out_png, buf.getvalue())
    return Path(out_png)
