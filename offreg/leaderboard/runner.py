"""The leaderboard's run matrix: agents x datasets, each job training all its seeds together.

A *job* is one agent on one dataset: one call of :func:`offreg.engine.train` with every seed on the
leading ``vmap`` axis. Jobs run one after another in this process (``executor="local"``) or as Ray
tasks with declared CPU/GPU resources (``executor="ray"``, needs ``offreg[ray]``; a local Ray
instance is started when no address is given).

Output directory::

    leaderboard.json        the matrix and its settings (agents, datasets, seeds, steps, ...)
    runs/<job id>/          each job's engine run directory (checkpoints, metrics.jsonl, ...)
    results/<job id>.json   each job's results file (:mod:`offreg.leaderboard.results`)

**Reruns are idempotent.** A job whose results file says ``complete`` is skipped; a job with a run
directory but no complete results (killed, or failed) continues from its newest checkpoint through
the engine's resume, so an interrupted leaderboard picks up where it stopped. A failing job is
recorded as ``failed`` (with its error) and does not stop the others.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import shutil
import socket
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from offreg.agents.base import coefficients
from offreg.agents.names import get_spec, registry
from offreg.agents.presets import resolve_config
from offreg.atomic import atomic_write_text
from offreg.data.catalogue import is_file_path, resolve
from offreg.data.loader import check_dataset_options
from offreg.engine import train
from offreg.engine.driver import resolve_sweep
from offreg.engine.rundir import grid_points
from offreg.errors import ConfigError, DatasetError, OffregError, unknown_name
from offreg.evaluation import evaluate
from offreg.leaderboard.results import (
    COMPLETE,
    FAILED,
    evaluations_from_records,
    job_id,
    make_result,
    read_result,
    variant,
    write_result,
)
from offreg.provenance import hardware, versions

MATRIX_FILE = "leaderboard.json"
RUNS_DIR = "runs"
RESULTS_DIR = "results"


@dataclasses.dataclass(frozen=True)
class MatrixSpec:
    """A leaderboard: which agents on which datasets, and the engine settings every job shares.

    Attributes:
      agents: registered agent names.
      datasets: catalogue names or D4RL-format files.
      seeds: seeds of every job (trained together with ``vmap``).
      steps: gradient updates per seed.
      eval_every: evaluation period in steps (an evaluation also runs at the end); None: each
        agent's preset for the dataset (e.g. AntMaze's), else the engine's default (5000).
      eval_episodes: episodes per evaluation and seed (also of the last one); None: the preset's
        (AntMaze: 100 episodes at the end), else the engine's default (10).
      eval_max_steps: cap on the episode length at evaluation (None: the dataset's time limit).
        Only for quick smoke runs; capped episodes give lower returns than the papers'.
      log_every: updates per jitted chunk (None: the engine's default).
      checkpoint_every: checkpoint period (None: ``eval_every``).
      overrides: agent config fields, ``{agent: {field: value}}``; the key ``"*"`` applies to every
        agent whose config has the field (a field that no agent of the matrix has is an error).
      dataset_options: keyword arguments of :func:`offreg.data.load_dataset` for every dataset
        (e.g. ``{"env": "hopper"}`` for a local file, so it is evaluated in that environment).
      sweeps: coefficient grids, ``{agent: {coefficient: [values]}}`` (the key ``"*"`` applies to every
        agent that sweeps the coefficient): each point is trained for every seed in the job's one
        compiled program, and reported as its own row, ``odice[lambda=0.4]`` (see :func:`variant`).
    """

    agents: tuple[str, ...]
    datasets: tuple[str, ...]
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4)
    steps: int = 1_000_000
    eval_every: int | None = None
    eval_episodes: int | None = None
    eval_max_steps: int | None = None
    log_every: int | None = None
    checkpoint_every: int | None = None
    overrides: Mapping[str, Mapping[str, Any]] = dataclasses.field(default_factory=dict)
    dataset_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    sweeps: Mapping[str, Mapping[str, Sequence[float]]] = dataclasses.field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d.update(agents=list(self.agents), datasets=list(self.datasets), seeds=list(self.seeds),
                 overrides={k: dict(v) for k, v in self.overrides.items()}, dataset_options=dict(self.dataset_options),
                 sweeps={a: {k: [float(x) for x in v] for k, v in g.items()} for a, g in self.sweeps.items()})
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> MatrixSpec:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        for k in ("agents", "datasets", "seeds"):
            d[k] = tuple(d[k])
        return cls(**d)

    def jobs(self) -> list[tuple[str, str]]:
        """Every ``(agent, dataset)`` pair, agents outermost."""
        return [(a, d) for a in self.agents for d in self.datasets]

    def agent_overrides(self, agent: str) -> dict[str, Any]:
        """The config overrides of one agent: the ``"*"`` fields its config has, then its own."""
        fields = get_spec(agent).default_config().field_names()
        out = {k: v for k, v in dict(self.overrides.get("*", {})).items() if k in fields}
        out.update(dict(self.overrides.get(agent, {})))
        return out

    def agent_sweep(self, agent: str) -> dict[str, list[float]]:
        """The coefficient grid of one agent: the ``"*"`` coefficients it sweeps, then its own."""
        sweepable = {k.rstrip("_") for k in coefficients(get_spec(agent).default_config())}
        out = {k: list(v) for k, v in dict(self.sweeps.get("*", {})).items() if k.rstrip("_") in sweepable}
        out.update({k: list(v) for k, v in dict(self.sweeps.get(agent, {})).items()})
        return out

    def variants(self, agent: str) -> list[str]:
        """The rows one agent contributes: its name, or one :func:`variant` per point of its grid."""
        grid = self.agent_sweep(agent)
        return [variant(agent, point) for point in grid_points(grid)] if grid else [agent]


# --- validation -----------------------------------------------------------------------------------
def validate(spec: MatrixSpec) -> None:
    """Check the names and numbers of a matrix before anything runs.

    Every job's agent config is resolved here with its overrides (``--set``), so a bad field or value
    fails before any job runs or any file is written.

    Raises:
      UnknownNameError: an unknown agent, dataset or dataset option (with the closest names), an
        override field that the agent's config (or, for ``"*"``, no agent's config) has.
      DatasetError: a dataset file that does not exist.
      ConfigError: no agents/datasets/seeds, bad step counts, overrides for an agent not in the matrix,
        an override value the config rejects.
    """
    if not spec.agents:
        raise ConfigError("no agents given; pass --agents, e.g. --agents td3bc,bc (list them with `offreg agents`)")
    if not spec.datasets:
        raise ConfigError("no datasets given; pass --datasets, e.g. --datasets offreg/hopper-medium-v0")
    for name, values in (("agents", spec.agents), ("datasets", spec.datasets), ("seeds", spec.seeds)):
        if len(set(values)) != len(values):
            raise ConfigError(f"--{name} lists a value twice: {list(values)}; give each once")
    if not spec.seeds:
        raise ConfigError("at least one seed is needed (--seeds >= 1)")
    if spec.steps < 1:
        raise ConfigError(f"--steps must be >= 1, got {spec.steps}")
    if spec.eval_every is not None and spec.eval_every < 1:
        raise ConfigError(f"--eval-every must be >= 1 (the leaderboard needs evaluations), got {spec.eval_every}")
    if spec.eval_episodes is not None and spec.eval_episodes < 1:
        raise ConfigError(f"--eval-episodes must be >= 1, got {spec.eval_episodes}")
    if spec.eval_max_steps is not None and spec.eval_max_steps < 1:
        raise ConfigError(f"--eval-max-steps must be >= 1, got {spec.eval_max_steps}")
    known = registry()
    for a in spec.agents:
        if a not in known:
            raise unknown_name("agent", a, known, "Run `offreg agents` to list them.")
    for key in spec.overrides:
        if key != "*" and key not in spec.agents:
            raise ConfigError(f"overrides are given for agent {key!r}, which is not in --agents {list(spec.agents)}")
    for d in spec.datasets:
        if is_file_path(d):
            if not Path(d).is_file():
                raise DatasetError(f"dataset file {d} does not exist; check the path in --datasets")
        else:
            resolve(d)  # raises UnknownNameError with suggestions
    check_dataset_options(spec.dataset_options)
    _validate_overrides(spec)
    _validate_sweeps(spec)


def _validate_overrides(spec: MatrixSpec) -> None:
    fields = set().union(*(get_spec(a).default_config().field_names() for a in spec.agents))
    for name in spec.overrides.get("*", {}):
        if name not in fields:
            raise unknown_name("config field", name, fields,
                               f"No agent in --agents {list(spec.agents)} has it; check --set {name}=...")
    for a in spec.agents:
        for d in spec.datasets:
            try:
                resolve_config(a, d, spec.agent_overrides(a))
            except OffregError as e:
                raise type(e)(f"--set for agent {a!r} on {d}: {e}") from None


def _validate_sweeps(spec: MatrixSpec) -> None:
    for key in spec.sweeps:
        if key != "*" and key not in spec.agents:
            raise ConfigError(f"--sweep is given for agent {key!r}, which is not in --agents {list(spec.agents)}")
    for name in spec.sweeps.get("*", {}):
        if not any(name in spec.agent_sweep(a) for a in spec.agents):
            raise ConfigError(f"--sweep {name}: no agent in --agents {list(spec.agents)} sweeps it; "
                              "name the agent (--sweep AGENT:COEF=...) or list its coefficients with `offreg agents`")
    for a in spec.agents:
        if spec.agent_sweep(a):
            try:
                resolve_sweep(a, get_spec(a).default_config(), spec.agent_sweep(a))
            except OffregError as e:
                raise type(e)(f"--sweep for agent {a!r}: {e}") from None


# --- one job --------------------------------------------------------------------------------------
def _evaluator(max_steps: int | None) -> Callable[..., Any] | None:
    if max_steps is None:
        return None
    return functools.partial(evaluate, max_episode_steps=int(max_steps))


def run_job(
    out: str,
    agent: str,
    dataset: str,
    spec_dict: Mapping[str, Any],
    executor: str = "local",
    callback: Callable[..., None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) one job and write its results file; returns the results document.

    A job that raises is recorded with ``status="failed"`` and its error; this function then
    returns normally, so one failure never stops the matrix. ``KeyboardInterrupt`` propagates.

    Args:
      out: the leaderboard directory.
      agent: agent name.
      dataset: dataset name or file.
      spec_dict: :meth:`MatrixSpec.to_dict` (plain data, so Ray can ship it).
      executor: recorded in the results (``local`` or ``ray``).
      callback: passed to :func:`offreg.engine.train` (``callback(step, agents, new_records)``).
    """
    spec = MatrixSpec.from_dict(spec_dict)
    jid = job_id(agent, dataset)
    run_dir = Path(out) / RUNS_DIR / jid
    result_path = Path(out) / RESULTS_DIR / f"{jid}.json"
    previous = _previous_attempts(result_path)
    tic = time.perf_counter()
    try:
        res = _train_job(spec, agent, dataset, run_dir, callback)
        info = res.dataset_info.to_dict()
        config = json.loads((run_dir / "config.json").read_text())
        doc = make_result(
            agent=agent, dataset=dataset, seeds=res.seeds, steps=spec.steps, status=COMPLETE, step=res.step,
            sweep=config.get("sweep") or {},
            evaluations=evaluations_from_records(res.records, info), config=config, dataset_info=info,
            versions=versions(), hardware_info=hardware(), attempts=previous["attempts"] + 1, executor=executor,
            wall_time_s=previous["wall_time_s"] + time.perf_counter() - tic,
        )
    except Exception as e:  # noqa: BLE001  (a failing job is recorded, the matrix goes on)
        message = " ".join(str(e).split()) or type(e).__name__
        if not isinstance(e, OffregError):
            message = f"{type(e).__name__}: {message}"
        doc = make_result(
            agent=agent, dataset=dataset, seeds=spec.seeds, steps=spec.steps, status=FAILED,
            versions=versions(), hardware_info=hardware(), attempts=previous["attempts"] + 1, executor=executor,
            wall_time_s=previous["wall_time_s"] + time.perf_counter() - tic, error=message,
        )
    write_result(result_path, doc)
    return doc


def _previous_attempts(path: Path) -> dict[str, Any]:
    if path.exists():
        try:
            doc = read_result(path)
            return {"attempts": int(doc.get("attempts", 0)), "wall_time_s": float(doc.get("wall_time_s", 0.0))}
        except OffregError:
            pass
    return {"attempts": 0, "wall_time_s": 0.0}


def _train_job(spec: MatrixSpec, agent: str, dataset: str, run_dir: Path, callback: Callable[..., None] | None) -> Any:
    evaluator = _evaluator(spec.eval_max_steps)
    if (run_dir / "config.json").exists():
        return train(resume=run_dir, steps=spec.steps, progress=False, evaluator=evaluator, callback=callback)
    if run_dir.exists():  # killed before the engine wrote its config: nothing to keep
        shutil.rmtree(run_dir)
    return train(
        agent, dataset, steps=spec.steps, seeds=list(spec.seeds), eval_every=spec.eval_every,
        eval_episodes=spec.eval_episodes, log_every=spec.log_every, checkpoint_every=spec.checkpoint_every,
        overrides=spec.agent_overrides(agent), dataset_options=spec.dataset_options, out_dir=run_dir,
        progress=False, evaluator=evaluator, callback=callback, sweep=spec.agent_sweep(agent) or None,
    )


# --- the matrix -----------------------------------------------------------------------------------
@dataclasses.dataclass
class MatrixOutcome:
    """What :func:`run_matrix` did: job ids that completed now, were skipped as done, or failed."""

    completed: list[str] = dataclasses.field(default_factory=list)
    skipped: list[str] = dataclasses.field(default_factory=list)
    failed: dict[str, str] = dataclasses.field(default_factory=dict)


class _Progress:
    """A status line per event on stderr: ``[done/total done, running, failed] message``."""

    def __init__(self, total: int, enabled: bool) -> None:
        self.total, self.enabled = total, enabled
        self.done = self.running = self.failed = 0

    def show(self, message: str) -> None:
        if self.enabled:
            print(f"[{self.done}/{self.total} done, {self.running} running, {self.failed} failed] {message}",
                  file=sys.stderr, flush=True)


def run_matrix(
    spec: MatrixSpec,
    out: str | os.PathLike,
    *,
    executor: str = "local",
    address: str | None = None,
    num_cpus: float = 1.0,
    num_gpus: float = 0.0,
    progress: bool = True,
    callback: Callable[..., None] | None = None,
) -> MatrixOutcome:
    """Run every job of ``spec`` that is not complete yet, writing into ``out``.

    Args:
      spec: the matrix (validated here first).
      out: the leaderboard directory; reusing it continues the matrix (its settings must match).
      executor: ``"local"`` (jobs one after another in this process) or ``"ray"``.
      address: Ray cluster address (``host:port``, ``ray://host:port`` or ``auto``); None starts a
        local Ray instance. Only with ``executor="ray"``.
      num_cpus: CPUs each Ray task declares.
      num_gpus: GPUs each Ray task declares.
      progress: print a status line (done/running/failed) per event on stderr.
      callback: engine callback of local jobs (tests use it to interrupt a job).

    Returns:
      A :class:`MatrixOutcome`.

    Raises:
      OffregError: bad names or settings, a directory holding a different matrix, Ray missing or
        its address unreachable.
    """
    validate(spec)
    if executor not in ("local", "ray"):
        raise ConfigError(f"unknown executor {executor!r}; use --executor local or --executor ray")
    if address is not None and executor != "ray":
        raise ConfigError("--address is only used with --executor ray")
    if executor == "ray":
        connect_ray(address)  # before anything is written: an unreachable cluster leaves no files
    out = Path(out)
    _write_matrix(out, spec)
    outcome = MatrixOutcome()
    todo = []
    for agent, dataset in spec.jobs():
        jid = job_id(agent, dataset)
        path = out / RESULTS_DIR / f"{jid}.json"
        if path.exists() and read_result(path)["status"] == COMPLETE:
            outcome.skipped.append(jid)
        else:
            todo.append((agent, dataset))
    bar = _Progress(len(spec.jobs()), progress)
    bar.done = len(outcome.skipped)
    if outcome.skipped:
        bar.show(f"{len(outcome.skipped)} job(s) already complete, skipped")
    if todo:
        if executor == "ray":
            _run_ray(spec, out, todo, address, num_cpus, num_gpus, bar, outcome)
        else:
            _run_local(spec, out, todo, bar, outcome, callback)
    bar.show(f"finished: {len(outcome.completed)} ran, {len(outcome.skipped)} skipped, {len(outcome.failed)} failed")
    return outcome


def _record(doc: Mapping[str, Any], bar: _Progress, outcome: MatrixOutcome) -> None:
    jid = job_id(doc["agent"], doc["dataset"])
    bar.running -= 1
    if doc["status"] == COMPLETE:
        bar.done += 1
        outcome.completed.append(jid)
        bar.show(f"done {doc['agent']} on {doc['dataset']} ({doc['wall_time_s']:.0f} s)")
    else:
        bar.failed += 1
        outcome.failed[jid] = doc["error"]
        bar.show(f"FAILED {doc['agent']} on {doc['dataset']}: {doc['error']}")


def _run_local(
    spec: MatrixSpec, out: Path, todo: Sequence[tuple[str, str]], bar: _Progress, outcome: MatrixOutcome,
    callback: Callable[..., None] | None,
) -> None:
    for agent, dataset in todo:
        bar.running += 1
        bar.show(f"start {agent} on {dataset}")
        _record(run_job(str(out), agent, dataset, spec.to_dict(), "local", callback), bar, outcome)


def _run_ray(
    spec: MatrixSpec, out: Path, todo: Sequence[tuple[str, str]], address: str | None, num_cpus: float,
    num_gpus: float, bar: _Progress, outcome: MatrixOutcome,
) -> None:
    ray = connect_ray(address)
    task = ray.remote(num_cpus=num_cpus, num_gpus=num_gpus, max_retries=0)(run_job)
    pending = {task.remote(str(out.resolve()), a, d, spec.to_dict(), "ray"): (a, d) for a, d in todo}
    bar.running = len(pending)
    bar.show(f"submitted {len(pending)} Ray task(s) ({num_cpus:g} CPU, {num_gpus:g} GPU each)")
    while pending:
        ready, _ = ray.wait(list(pending), num_returns=1)
        agent, dataset = pending.pop(ready[0])
        try:
            doc = ray.get(ready[0])
        except Exception as e:  # noqa: BLE001  (a crashed worker is a failed job)
            doc = make_result(agent=agent, dataset=dataset, seeds=spec.seeds, steps=spec.steps, status=FAILED,
                              executor="ray", error=f"Ray task failed: {type(e).__name__}: {e}".split("\n")[0])
            write_result(out / RESULTS_DIR / f"{job_id(agent, dataset)}.json", doc)
        _record(doc, bar, outcome)


RAY_CONNECT_TIMEOUT_S = 5.0
"""Seconds to wait for a Ray address to accept a TCP connection before reporting it unreachable."""


def connect_ray(address: str | None) -> Any:
    """Import Ray and connect: to ``address``, or to a new local instance when it is None.

    An already initialized Ray (e.g. by the caller) is reused as it is.

    Raises:
      ConfigError: Ray is not installed, or ``address`` does not answer within
        :data:`RAY_CONNECT_TIMEOUT_S` seconds.
    """
    try:
        import ray  # heavy optional dependency (offreg[ray]): only for --executor ray
    except ImportError:
        raise ConfigError(
            "--executor ray needs Ray; install it with pip install 'offreg[ray]' or use --executor local"
        ) from None
    if address is not None and address != "auto":
        host, _, port = address.removeprefix("ray://").rpartition(":")
        try:
            with socket.create_connection((host or "127.0.0.1", int(port)), timeout=RAY_CONNECT_TIMEOUT_S):
                pass
        except (OSError, ValueError) as e:
            raise ConfigError(
                f"Ray address {address!r} is unreachable ({e}); check that the cluster is up "
                "(`ray status`) and the host:port, or omit --address to start a local Ray instance"
            ) from None
    if ray.is_initialized():
        return ray
    if address is None:
        ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        return ray
    try:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as e:
        raise ConfigError(f"cannot connect to Ray at {address!r}: {' '.join(str(e).split())[:300]}") from None
    return ray


def _write_matrix(out: Path, spec: MatrixSpec) -> None:
    path = out / MATRIX_FILE
    doc = spec.to_dict()
    if path.exists():
        old = MatrixSpec.from_dict(json.loads(path.read_text()))
        fixed = ("seeds", "steps", "eval_every", "eval_episodes", "eval_max_steps", "log_every", "checkpoint_every",
                 "dataset_options")
        for name in fixed:
            if getattr(old, name) != getattr(spec, name):
                raise ConfigError(
                    f"{out} holds a leaderboard with {name}={getattr(old, name)!r}, not {getattr(spec, name)!r}; "
                    "use the same settings to continue it, or another --out"
                )
        # a rerun may add agents or datasets: the matrix is the union, in first-seen order
        doc["agents"] = list(dict.fromkeys([*old.agents, *spec.agents]))
        doc["datasets"] = list(dict.fromkeys([*old.datasets, *spec.datasets]))
        doc["overrides"] = {**{k: dict(v) for k, v in old.overrides.items()}, **doc["overrides"]}
    atomic_write_text(path, json.dumps(doc, indent=2) + "\n")


def read_matrix(out: str | os.PathLike) -> MatrixSpec | None:
    """The matrix saved in a leaderboard directory, or None when it has none."""
    path = Path(out) / MATRIX_FILE
    return MatrixSpec.from_dict(json.loads(path.read_text())) if path.exists() else None
