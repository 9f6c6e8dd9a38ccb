"""One self-describing results file per leaderboard job (one agent on one dataset, every seed).

A results file is JSON (``format = "offreg-leaderboard-result/1"``), written atomically (a temporary
name, then a rename), so a file that exists is complete. It holds:

- ``status``: ``"complete"`` (training and the final evaluation finished) or ``"failed"``
  (``error`` then says why); a rerun of the leaderboard skips only complete jobs;
- ``agent``, ``dataset``, ``seeds``, ``steps`` and ``step`` (updates done);
- ``sweep``: the job's coefficient grid (``{}`` without one); each point is a row of its own
  (:func:`variant`, :func:`split_variants`);
- ``evaluations``: one entry per (evaluation step, seed[, sweep point]) with the per-episode undiscounted
  ``returns`` and D4RL normalized ``scores`` (``100 (R - ref_min) / (ref_max - ref_min)``, computed
  with the dataset's reference scores saved in ``dataset``'s info; ``None`` without them);
- ``config``: the full resolved run (engine settings and agent config, the run's ``config.json``);
- ``dataset_info``: the preprocessed dataset's description (reference scores, source, env id);
- ``versions`` (Python, offreg, JAX, ...), ``hardware`` (CPU model, cores, memory, accelerators),
  ``wall_time_s`` (all attempts of the job together), ``attempts``, ``executor``, ``finished``.

Everything a report prints is computed from these files (see :mod:`offreg.leaderboard.board`).
"""

from __future__ import annotations

import datetime
import json
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from offreg.atomic import atomic_write_text
from offreg.engine.rundir import grid_points
from offreg.errors import CheckpointError

FORMAT = "offreg-leaderboard-result/1"
COMPLETE, FAILED = "complete", "failed"


def job_id(agent: str, dataset: str) -> str:
    """A file-name-safe id of the job ``(agent, dataset)``: ``<agent>__<dataset slug>``.

    A file path contributes its stem; other characters outside ``[A-Za-z0-9.-]`` become ``_``.
    """
    name = Path(dataset).stem if Path(dataset).suffix in (".hdf5", ".h5", ".npz") else dataset
    slug = re.sub(r"[^A-Za-z0-9.-]+", "_", name).strip("_")
    return f"{agent}__{slug}"


def normalized_scores(returns: Sequence[float], dataset_info: Mapping[str, Any]) -> list[float] | None:
    """Per-episode D4RL normalized scores ``100 (R - ref_min) / (ref_max - ref_min)``, None without references."""
    lo, hi = dataset_info.get("ref_min_score"), dataset_info.get("ref_max_score")
    if lo is None or hi is None:
        return None
    r = np.asarray(returns, np.float64)
    return [float(x) for x in 100.0 * (r - lo) / (hi - lo)]


def evaluations_from_records(records: Sequence[Mapping[str, Any]], dataset_info: Mapping[str, Any]) -> list[dict]:
    """The ``evaluations`` entries of a results file from the engine's ``kind="eval"`` records.

    Args:
      records: :attr:`offreg.engine.TrainResult.records` (or the run's ``metrics.jsonl``).
      dataset_info: the run's ``dataset_info.json`` content.

    Returns:
      ``[{"step", "seed", "returns": [E], "scores": [E] | None, "length_mean"}]`` sorted by (step, seed),
      with the run's ``"sweep"`` point when the job sweeps coefficients.
    """
    out = []
    for r in records:
        if r.get("kind") != "eval":
            continue
        returns = [float(x) for x in r["returns"]]
        out.append({
            "step": int(r["step"]), "seed": int(r["seed"]), "returns": returns,
            "scores": normalized_scores(returns, dataset_info), "length_mean": r.get("length_mean"),
            **({"sweep": {k: float(v) for k, v in r["sweep"].items()}} if r.get("sweep") else {}),
        })
    return sorted(out, key=lambda e: (e["step"], e["seed"]))


def variant(agent: str, point: Mapping[str, float]) -> str:
    """The row name of one sweep point: ``odice[lambda=0.4]`` (``agent`` itself without a point).

    A coefficient's trailing ``_`` (``lambda_``, a Python keyword's field name) is dropped.
    """
    if not point:
        return agent
    values = ",".join(f"{k.rstrip('_')}={float(v):g}" for k, v in point.items())
    return f"{agent}[{values}]"


def split_variants(result: Mapping[str, Any]) -> list[dict[str, Any]]:
    """One results document per sweep point: ``agent`` renamed by :func:`variant`, only that point's
    evaluations (the document itself, alone, when the job sweeps nothing)."""
    grid = result.get("sweep") or {}
    if not grid:
        return [dict(result)]
    out = []
    for point in grid_points(grid):
        evals = [e for e in result.get("evaluations", []) if e.get("sweep") == point]
        out.append({**result, "agent": variant(result["agent"], point), "base_agent": result["agent"],
                    "point": point, "evaluations": evals})
    return out


def make_result(
    *,
    agent: str,
    dataset: str,
    seeds: Sequence[int],
    steps: int,
    status: str,
    step: int = 0,
    sweep: Mapping[str, Sequence[float]] | None = None,
    evaluations: Sequence[Mapping[str, Any]] = (),
    config: Mapping[str, Any] | None = None,
    dataset_info: Mapping[str, Any] | None = None,
    versions: Mapping[str, Any] | None = None,
    hardware_info: Mapping[str, Any] | None = None,
    wall_time_s: float = 0.0,
    attempts: int = 1,
    executor: str = "local",
    error: str | None = None,
) -> dict[str, Any]:
    """Assemble a results document (see the module docstring for the fields)."""
    if status not in (COMPLETE, FAILED):
        raise ValueError(f"status must be {COMPLETE!r} or {FAILED!r}, got {status!r}")
    return {
        "format": FORMAT,
        "status": status,
        "agent": agent,
        "dataset": dataset,
        "seeds": [int(s) for s in seeds],
        "steps": int(steps),
        "step": int(step),
        "sweep": {k: [float(x) for x in v] for k, v in (sweep or {}).items()},
        "evaluations": [dict(e) for e in evaluations],
        "config": dict(config or {}),
        "dataset_info": dict(dataset_info or {}),
        "versions": dict(versions or {}),
        "hardware": dict(hardware_info or {}),
        "wall_time_s": float(wall_time_s),
        "attempts": int(attempts),
        "executor": executor,
        "error": error,
        "finished": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
    }


def write_result(path: str | os.PathLike, result: Mapping[str, Any]) -> Path:
    """Write a results document atomically (temporary file + rename); returns the path."""
    return atomic_write_text(path, json.dumps(result, indent=1, sort_keys=True) + "\n")


def read_result(path: str | os.PathLike) -> dict[str, Any]:
    """Read and check one results file.

    Raises:
      CheckpointError: unreadable JSON or not a leaderboard results file.
    """
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"results file {path} is unreadable ({e}); delete it and rerun the leaderboard") from None
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an offreg leaderboard results file (format {FORMAT!r} expected)")
    return doc


def per_seed_scores(result: Mapping[str, Any]) -> dict[str, dict[int, float]]:
    """Per seed, the final and the best mean normalized score of a results document.

    The score of an evaluation is the mean over its episodes; ``final`` is the evaluation at the
    last step, ``best`` the maximum over evaluations during training.

    Returns:
      ``{"final": {seed: score}, "best": {seed: score}}`` (empty when the run has no scores).
    """
    final: dict[int, float] = {}
    best: dict[int, float] = {}
    last_step: dict[int, int] = {}
    for e in result.get("evaluations", []):
        if e.get("scores") is None:
            continue
        s, v = int(e["seed"]), float(np.mean(e["scores"]))
        if s not in last_step or e["step"] >= last_step[s]:
            last_step[s], final[s] = e["step"], v
        best[s] = max(best.get(s, -np.inf), v)
    return {"final": final, "best": best}
