"""The run directory of the engine: its files, its settings, resume and the summary's provenance.

**Run directory** (``out_dir``)::

    config.json          the resolved settings: agent, dataset, seeds, steps, cadences (and their sources),
                         agent_config, and the reward_transform the training data carries
    dataset_info.json    the preprocessed dataset's DatasetInfo (normalization statistics included)
    metrics.jsonl        one JSON record per (step, seed, kind)
    checkpoints/         step_<9 digits>.msgpack, the newest ``keep_checkpoints`` of them
    curve.png            learning curve: each seed and the mean
    summary.json         per-seed final and best scores, wall time, updates/s, versions
    tensorboard/         only with tensorboard=True
"""

from __future__ import annotations

import dataclasses
import datetime
import itertools
import json
import math
import os
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from offreg.agents.names import get_spec
from offreg.atomic import atomic_write_text, remove_temporaries
from offreg.checkpoint import list_checkpoints, read_checkpoint
from offreg.errors import CheckpointError, ConfigError, OffregError, OffregWarning
from offreg.provenance import versions

CONFIG_FILE = "config.json"
DATASET_INFO_FILE = "dataset_info.json"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.png"
SUMMARY_FILE = "summary.json"
DEFAULT_LOG_EVERY = 1000


def grid_points(sweep: Mapping[str, Any]) -> list[dict[str, float]]:
    """The points of a coefficient grid: the product of its values, first coefficient slowest; ``[{}]`` for ``{}``."""
    names = list(sweep)
    return [dict(zip(names, map(float, values), strict=True)) for values in itertools.product(*sweep.values())]


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The engine settings of a run, saved in ``config.json`` next to the agent config.

    ``sweep`` maps sweepable coefficients (``lambda_``, ``alpha``, ``beta``, ...) to the values tried:
    the run trains every point of their grid for every seed in one compiled program (see :meth:`runs`).
    ``final_eval_episodes`` is the episodes of the last evaluation (``None``: ``eval_episodes``);
    ``sources`` says where each evaluation setting came from (``user``, ``default`` or the agent's
    preset source, see :func:`offreg.agents.presets.resolve_run_settings`).
    """

    agent: str
    dataset: str
    seeds: tuple[int, ...]
    steps: int
    eval_every: int
    eval_episodes: int
    log_every: int
    checkpoint_every: int
    keep_checkpoints: int
    dataset_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    sweep: dict[str, tuple[float, ...]] = dataclasses.field(default_factory=dict)
    final_eval_episodes: int | None = None
    sources: dict[str, str] = dataclasses.field(default_factory=dict)

    @property
    def last_eval_episodes(self) -> int:
        """Episodes of the run's last evaluation."""
        return self.eval_episodes if self.final_eval_episodes is None else self.final_eval_episodes

    def points(self) -> list[dict[str, float]]:
        """The grid of ``sweep`` (see :func:`grid_points`)."""
        return grid_points(self.sweep)

    def runs(self) -> list[tuple[dict[str, float], int]]:
        """``(point, seed)`` of every run on the engine's run axis: for each grid point, every seed."""
        return [(point, seed) for point in self.points() for seed in self.seeds]

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (len(self.seeds) >= 1, "at least one seed is needed (seeds >= 1)"),
            (len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {list(self.seeds)}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.eval_every >= 0, f"eval_every must be >= 0 (0 turns evaluation off), got {self.eval_every}"),
            (self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}"),
            (self.last_eval_episodes >= 1, f"final_eval_episodes must be >= 1, got {self.final_eval_episodes}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
            (all(self.sweep.values()), f"every swept coefficient needs at least one value, got {self.sweep}"),
            (all(len(set(v)) == len(v) for v in self.sweep.values()), f"swept values must be distinct: {self.sweep}"),
        ]
        for ok, msg in checks:
            if not ok:
                raise ConfigError(msg)
        for name in ("eval_every", "checkpoint_every"):
            value = getattr(self, name)
            if value and value % self.log_every:
                raise ConfigError(
                    f"{name} ({value}) must be a multiple of log_every ({self.log_every}); "
                    f"set log_every to a divisor of it"
                )

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["seeds"] = list(self.seeds)
        d["sweep"] = {k: list(v) for k, v in self.sweep.items()}
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["seeds"] = tuple(d["seeds"])
        d["sweep"] = {k: tuple(float(x) for x in v) for k, v in d.get("sweep", {}).items()}
        return cls(**d)


def _default_log_every(eval_every: int, checkpoint_every: int | None) -> int:
    g = DEFAULT_LOG_EVERY
    for v in (eval_every, checkpoint_every):
        if v:
            g = math.gcd(g, v)
    return g


def _config_json(settings: RunSettings, config: Any) -> dict[str, Any]:
    return {**settings.to_dict(), "agent_config": config.to_dict(), "offreg_version": versions().get("offreg")}


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(
            f"run directory {run_dir} already exists and is not empty; continue it with --resume {run_dir} "
            "or choose another --out"
        )
    _check_writable(run_dir)


def _check_writable(run_dir: Path) -> None:
    """Fail before any work (loading data, compiling) when ``run_dir`` cannot be created or written."""
    existing = run_dir.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise CheckpointError(f"cannot create the run directory {run_dir}: {existing} is a file; choose another --out")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise CheckpointError(
            f"cannot write the run directory {run_dir}: {existing} is not writable (permissions or a read-only "
            "file system); choose another --out"
        )


def applied_reward_transform(info: Any) -> dict[str, Any]:
    """The reward transform the training data carries (``kind``, ``scale``, ``shift``: ``r' = scale r + shift``)."""
    return {"kind": info.reward_transform, "scale": info.reward_scale, "shift": info.reward_shift}


def _write_run_files(run_dir: Path, settings: RunSettings, config: Any, info: Any, overwrite: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    doc = _config_json(settings, config)
    doc["reward_transform"] = applied_reward_transform(info)
    doc["created"] = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    atomic_write_text(run_dir / CONFIG_FILE, json.dumps(doc, indent=2, sort_keys=True) + "\n")
    if overwrite and (run_dir / DATASET_INFO_FILE).exists():
        return
    atomic_write_text(run_dir / DATASET_INFO_FILE, info.to_json() + "\n")


def read_run_config(run_dir: str | os.PathLike) -> tuple[RunSettings, Any]:
    """``(settings, agent_config)`` of a run directory's ``config.json``.

    Raises:
      CheckpointError: not a run directory, or an unreadable config.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.exists():
        raise CheckpointError(f"{run_dir} is not an offreg run directory (no {CONFIG_FILE}); check the path")
    try:
        doc = json.loads(path.read_text())
        settings = RunSettings.from_dict(doc)
        config = get_spec(settings.agent).config_from_dict(doc["agent_config"])
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise CheckpointError(f"{path} is unreadable ({type(e).__name__}: {e}); the run cannot be resumed") from None
    except OffregError as e:
        raise CheckpointError(f"{path}: {e}") from None
    return settings, config


def _load_resume(
    run_dir: Path, steps: int | None, dataset: Any
) -> tuple[RunSettings, Any, Any, Any, int, Any]:
    settings, config = read_run_config(run_dir)
    _check_writable(run_dir / "checkpoints")
    if steps is not None:
        settings = dataclasses.replace(settings, steps=int(steps))
    raw = None if dataset is None or isinstance(dataset, str) else dataset
    remove_temporaries(run_dir / "checkpoints", "step_*")  # left by a kill during a checkpoint write
    remove_temporaries(run_dir)
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        return settings, config, None, None, 0, raw
    ckpt = _newest_readable(found)
    runs = settings.runs()
    if ckpt.seeds != [seed for _, seed in runs] or ckpt.agent_name != settings.agent or ckpt.key is None or (
        settings.sweep and ckpt.extra.get("sweep") != [point for point, _ in runs]
    ):
        raise CheckpointError(f"checkpoint {ckpt.path} does not belong to the run in {run_dir}")
    if ckpt.step > settings.steps:
        raise CheckpointError(
            f"run {run_dir} is at step {ckpt.step}, beyond the {settings.steps} steps asked; pass a larger --steps"
        )
    return settings, config, ckpt.agent, ckpt.key, ckpt.step, raw


def _newest_readable(found: list[tuple[int, Path]]) -> Any:
    """The newest checkpoint of ``found`` that reads, with a one-line warning naming the newer ones skipped.

    Raises:
      CheckpointError: none reads (the newest one's error).
    """
    errors = []
    for step, path in reversed(found):
        try:
            ckpt = read_checkpoint(path)
        except CheckpointError as e:
            errors.append((path, e))
            continue
        if errors:
            skipped = ", ".join(p.name for p, _ in errors)
            warnings.warn(f"checkpoint {skipped} of the run is unreadable (corrupt or truncated); resuming from "
                          f"the newest readable one, {path.name} (step {step})", OffregWarning, stacklevel=3)
        return ckpt
    raise errors[0][1]


def _check_same_data(run_dir: Path, info: Any) -> None:
    path = run_dir / DATASET_INFO_FILE
    if not path.exists():
        return
    saved = json.loads(path.read_text())
    now = info.to_dict()
    for k in ("obs_dim", "act_dim", "num_transitions", "obs_mean", "reward_scale", "reward_shift"):
        if saved.get(k) != now.get(k):
            raise CheckpointError(
                f"the dataset {info.name!r} differs from the one run {run_dir} trained on ({k} changed); "
                "resume with the same dataset file"
            )
