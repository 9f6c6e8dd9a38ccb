"""The training driver: :func:`train`, the host loop around the jitted core (evaluation, logging,
checkpoints, progress) for every agent, one seed or many, from the CLI or from Python.

**Outer loop (host).** After each chunk the stacked per-update metrics are fetched and checked:
a NaN/Inf stops training with :class:`~offreg.errors.TrainingError` naming the step, the metric and
the seed, leaving the last good checkpoint in place (a checkpoint is only written after its chunk
passed the check). The chunk's per-seed means are logged (``kind="train"``); every ``eval_every``
steps and at the end each seed is evaluated (``kind="eval"``, raw returns and normalized scores);
every ``checkpoint_every`` steps and at the end the multi-seed agent, the step and the keys are
saved. A progress bar shows the step, the training speed (steps per second of the last chunk, each
step one update of every seed) and the latest mean score.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.agents.base import coefficients, is_gradient_free
from offreg.agents.names import get_spec
from offreg.agents.presets import resolve_config, resolve_run_settings
from offreg.atomic import atomic_write_text
from offreg.checkpoint import checkpoint_path, list_checkpoints, save_agent
from offreg.data.loader import check_dataset_options, load_dataset
from offreg.defaults import (  # noqa: F401  (re-exported by offreg.engine)
    DEFAULT_AGENT,
    DEFAULT_DATASET,
    DEFAULT_EVAL_EPISODES,
    DEFAULT_EVAL_EVERY,
    DEFAULT_STEPS,
)
from offreg.engine.compile_cache import enable_compile_cache
from offreg.engine.core import create_seeds, dataset_context, expand_sweep, train_chunk
from offreg.engine.rundir import (
    CONFIG_FILE,
    CURVE_FILE,
    METRICS_FILE,
    SUMMARY_FILE,
    RunSettings,
    _check_new_run_dir,
    _check_same_data,
    _config_json,
    _default_log_every,
    _load_resume,
    _write_run_files,
    applied_reward_transform,
)
from offreg.errors import ConfigError, TrainingError
from offreg.evaluation import evaluate
from offreg.logging import (
    JsonlLogger,
    Logger,
    MultiLogger,
    TensorBoardLogger,
    WandbLogger,
    plot_curves,
    read_jsonl,
    require_tensorboard,
    require_wandb,
    truncate_jsonl,
)
from offreg.provenance import versions
from offreg.seeds import derived_seed, index_seed, seed_keys
from offreg.types import Transitions


@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      agents: the final agents of every run (leading run axis); :meth:`agent` gives one run's agent.
      seeds: the seeds (without a sweep, the order of the run axis).
      step: gradient updates done (0 for gradient-free agents).
      agent_name: the registered agent name.
      config: the resolved agent config.
      dataset_info: the preprocessed dataset's description.
      records: every logged record (train and eval) of the run, including those before a resume.
      summary: the content of ``summary.json`` (per-seed final and best scores, ...).
      run_dir: the run directory, or None when nothing was written.
      runs: ``(sweep point, seed)`` of each run on the run axis (the point is ``{}`` without a sweep).
    """

    agents: Any
    seeds: list[int]
    step: int
    agent_name: str
    config: Any
    dataset_info: Any
    records: list[dict[str, Any]]
    summary: dict[str, Any]
    run_dir: Path | None
    runs: list[tuple[dict[str, float], int]] = dataclasses.field(default_factory=list)

    def agent(self, seed: int | None = None, **point: float) -> Any:
        """The unbatched final agent of ``seed`` (default: the first) at a sweep ``point`` (default: the first).

        Example: ``result.agent(1, lambda_=0.4)``.
        """
        runs = self.runs or [({}, s) for s in self.seeds]
        for index, (p, s) in enumerate(runs):
            if (seed is None or s == seed) and all(p.get(k) == float(v) for k, v in point.items()):
                return index_seed(self.agents, index)
        raise ConfigError(f"this result has no run with seed {seed} and sweep point {point}; it has {runs}")

    @property
    def final_scores(self) -> list[float | None]:
        """Per run, the mean normalized score of the last evaluation (None without one)."""
        return [s["final_score"] for s in self.summary["per_seed"]]


def eval_seed(seed: int, step: int) -> int:
    """The environment seed of the evaluation of ``seed`` at ``step``: :func:`offreg.seeds.derived_seed`.

    A function of (seed, step) only, so an evaluation does not depend on earlier ones (resume-safe)
    and every evaluation meets fresh start states.
    """
    return derived_seed(seed, step)


def train(
    agent: str = DEFAULT_AGENT,
    dataset: Any = DEFAULT_DATASET,
    *,
    steps: int | None = None,
    seeds: int | Sequence[int] = 1,
    seed: int = 0,
    eval_every: int | None = None,
    eval_episodes: int | None = None,
    final_eval_episodes: int | None = None,
    log_every: int | None = None,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    overrides: Mapping[str, Any] | None = None,
    dataset_options: Mapping[str, Any] | None = None,
    out_dir: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    progress: bool = True,
    tensorboard: bool = False,
    wandb_project: str | None = None,
    evaluator: Callable[..., Any] | None = None,
    callback: Callable[[int, Any, list[dict[str, Any]]], None] | None = None,
    sweep: Mapping[str, Sequence[float]] | None = None,
) -> TrainResult:
    """Train an agent on a dataset for one or several seeds.

    Long because: the public entry point documents each of its arguments; the work is in the helpers below.

    The compiled training programs are kept on disk and reused by later runs
    (:mod:`offreg.engine.compile_cache`; ``OFFREG_COMPILE_CACHE=off`` turns that off).

    Args:
      agent: registered agent name (``offreg agents``).
      dataset: catalogue name, file path or a loaded :class:`~offreg.data.Dataset` (raw, unprepared).
      steps: gradient updates per seed (default :data:`DEFAULT_STEPS`; on resume, the run's own).
      seeds: the number of seeds (``seed, seed+1, ...``) or an explicit list; all train in one
        process with ``vmap``.
      seed: the first seed when ``seeds`` is a number.
      eval_every: evaluate every this many steps and at the end; 0 turns evaluation off. Evaluation
        also needs an environment (``dataset.info.env_id``); without one it is off, with a note.
        Default: the agent's preset for the dataset (``run`` in ``offreg/configs/<agent>.json``,
        e.g. O-DICE's 20000 on AntMaze), else :data:`DEFAULT_EVAL_EVERY`.
      eval_episodes: episodes per evaluation and seed (default: the preset's, else
        :data:`DEFAULT_EVAL_EPISODES`).
      final_eval_episodes: episodes of the last evaluation (default: the preset's, e.g. 100 on
        AntMaze, unless ``eval_episodes`` is given, else ``eval_episodes``). ``config.json``
        records every evaluation setting and its source (``sources``).
      log_every: updates per jitted call K; metrics are averaged over each chunk and logged. Default:
        ``gcd(1000, eval_every, checkpoint_every)``. ``eval_every`` and ``checkpoint_every`` must be
        multiples of it.
      checkpoint_every: checkpoint period (default ``eval_every``, or 50000 rounded up to a multiple
        of ``log_every`` when evaluation is off); a checkpoint is also written at the end.
      keep_checkpoints: how many of the newest checkpoints to keep.
      overrides: agent config fields over the paper preset (strings are parsed).
      dataset_options: keyword arguments of :func:`offreg.data.load_dataset`.
      out_dir: the run directory to create; None writes nothing (no checkpoints, no resume).
      resume: a run directory to continue from its newest checkpoint. The run's saved settings are
        used; only ``steps`` (to extend a run), ``progress``, ``tensorboard``, ``wandb_project``,
        ``evaluator``, ``callback`` and a ``dataset`` object apply.
      progress: show a progress bar and notes on stderr.
      tensorboard: also log to ``run_dir/tensorboard`` (needs ``offreg[tb]``).
      wandb_project: also log to this Weights & Biases project (needs ``offreg[wandb]``).
      evaluator: ``evaluator(agent, dataset, episodes=, seed=)`` returning an object with ``returns``,
        ``lengths`` and ``normalized`` (or None); default :func:`offreg.evaluation.evaluate`.
      callback: ``callback(step, agents, new_records)`` after each chunk (raise to stop).
      sweep: coefficient -> values (``{"lambda": [0.4, 0.6]}``; a name may omit the trailing ``_``):
        every grid point is trained for every seed in the same compiled program (the coefficients
        are arrays in the agent), ``len(grid) * len(seeds)`` runs; records and the summary name each
        run's point (``"sweep": {...}``). Only coefficients the agent lists as sweepable.

    Returns:
      A :class:`TrainResult`.

    Raises:
      OffregError: unknown agent/dataset, bad config values, an existing run directory, a bad resume.
      TrainingError: a NaN/Inf metric or parameter; the message names the step, the metric and seed.
    """
    wall_start = time.perf_counter()
    notes: list[str] = []
    enable_compile_cache()  # a second run loads its compiled programs (see offreg.engine.compile_cache)
    if tensorboard:  # fail before anything is written
        require_tensorboard()
    if wandb_project:
        require_wandb()
    if resume is not None:
        run_dir = Path(resume)
        settings, config, prepared, context, agents, keys, start_step = _resume_run(run_dir, steps, dataset)
    else:
        run_dir = None if out_dir is None else Path(out_dir)
        settings = _new_settings(
            agent, dataset, steps=steps, seeds=seeds, seed=seed, eval_every=eval_every, eval_episodes=eval_episodes,
            final_eval_episodes=final_eval_episodes, log_every=log_every, checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints, dataset_options=dataset_options,
        )
        config = resolve_config(agent, dataset_name(dataset), dict(overrides or {}))
        settings = dataclasses.replace(settings, sweep=resolve_sweep(agent, config, sweep))
        if run_dir is not None:
            _check_new_run_dir(run_dir)
        raw = load_dataset(dataset, **settings.dataset_options) if isinstance(dataset, str) else dataset
        prepared = config.prepare(raw)
        context = dataset_context(get_spec(agent).agent_cls, config, prepared)
        agents, keys = _create_runs(settings, config, prepared, context)
        start_step = 0
        if run_dir is not None:
            _write_run_files(run_dir, settings, config, prepared.info, overwrite=False)
    spec = get_spec(settings.agent)

    evaluate_fn = _resolve_evaluator(evaluator, prepared.info, settings.eval_every, notes)
    loggers: list[Logger] = []
    if run_dir is not None:
        loggers.append(JsonlLogger(run_dir / METRICS_FILE))
        if tensorboard:
            loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
        if wandb_project:
            loggers.append(WandbLogger(wandb_project, run_dir, run_dir.name, _config_json(settings, config)))
    logger = MultiLogger(loggers)
    records: list[dict[str, Any]] = read_jsonl(run_dir / METRICS_FILE) if resume is not None else []
    if progress:
        for n in notes:
            print(f"note: {n}", file=sys.stderr)

    engine = _Engine(
        settings=settings, agents=agents, keys=keys, step=start_step, transitions=prepared.transitions, context=context,
        dataset=prepared, evaluate_fn=evaluate_fn, logger=logger, records=records, run_dir=run_dir,
        gradient_free=is_gradient_free(spec.agent_cls), progress=progress, callback=callback,
    )
    try:
        engine.run()
    finally:
        logger.close()

    summary = _summary(settings, config, engine, time.perf_counter() - wall_start, notes, resumed=resume is not None)
    if run_dir is not None:
        plot_curves(run_dir / METRICS_FILE, run_dir / CURVE_FILE, title=f"{settings.agent} on {settings.dataset}")
        atomic_write_text(run_dir / SUMMARY_FILE, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return TrainResult(
        agents=engine.agents,
        seeds=list(settings.seeds),
        step=engine.step,
        agent_name=settings.agent,
        config=config,
        dataset_info=prepared.info,
        records=engine.records,
        summary=summary,
        run_dir=run_dir,
        runs=settings.runs(),
    )


def dataset_name(dataset: Any) -> str:
    """The name a dataset argument refers to: the string itself, or ``dataset.info.name``."""
    return dataset if isinstance(dataset, str) else dataset.info.name


def _new_settings(agent: str, dataset: Any, *, steps, seeds, seed, eval_every, eval_episodes, final_eval_episodes,
                  log_every, checkpoint_every, keep_checkpoints, dataset_options) -> RunSettings:
    """The validated settings of a new run from :func:`train`'s arguments (see there)."""
    get_spec(agent)  # an unknown agent fails first
    check_dataset_options(dataset_options or {})
    evaluation, sources = _evaluation_settings(agent, dataset_name(dataset), eval_every, eval_episodes,
                                               final_eval_episodes)
    eval_every = evaluation["eval_every"]
    if isinstance(seeds, int) and seeds < 1:
        raise ConfigError(f"seeds must be >= 1, got {seeds}")
    seed_list = list(range(seed, seed + seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
    ckpt_every = checkpoint_every if checkpoint_every is not None else (eval_every if eval_every > 0 else 50_000)
    if log_every and checkpoint_every is None and ckpt_every % log_every:
        ckpt_every = log_every * -(-ckpt_every // log_every)  # the next multiple of log_every
    return RunSettings(
        agent=agent,
        dataset=dataset_name(dataset),
        seeds=tuple(seed_list),
        steps=DEFAULT_STEPS if steps is None else int(steps),
        eval_every=int(eval_every),
        eval_episodes=int(evaluation["eval_episodes"]),
        final_eval_episodes=evaluation["final_eval_episodes"],
        sources=sources,
        log_every=_default_log_every(eval_every, ckpt_every) if log_every is None else int(log_every),
        checkpoint_every=int(ckpt_every),
        keep_checkpoints=int(keep_checkpoints),
        dataset_options=dict(dataset_options or {}),
    )


def _evaluation_settings(
    agent: str, name: str, eval_every: int | None, eval_episodes: int | None, final_eval_episodes: int | None
) -> tuple[dict[str, Any], dict[str, str]]:
    """The evaluation settings of a new run and where each came from: the caller's value, else the
    agent's preset for the dataset, else the engine default. An ``eval_episodes`` the caller gives
    also sets the last evaluation's episodes unless ``final_eval_episodes`` is given too."""
    preset, preset_sources = resolve_run_settings(agent, name)
    given = {"eval_every": eval_every, "eval_episodes": eval_episodes, "final_eval_episodes": final_eval_episodes}
    defaults = {"eval_every": DEFAULT_EVAL_EVERY, "eval_episodes": DEFAULT_EVAL_EPISODES, "final_eval_episodes": None}
    if eval_episodes is not None and final_eval_episodes is None:
        preset.pop("final_eval_episodes", None)
    values, sources = {}, {}
    for k, v in given.items():
        if v is not None:
            values[k], sources[k] = int(v), "user"
        elif k in preset:
            values[k], sources[k] = preset[k], preset_sources[k]
        else:
            values[k], sources[k] = defaults[k], "default"
    return values, sources


def resolve_sweep(agent: str, config: Any, sweep: Mapping[str, Sequence[float]] | None) -> dict[str, tuple]:
    """``sweep`` with each name resolved to a sweepable coefficient of ``config`` and each value checked.

    Raises:
      ConfigError: a name that is not a sweepable coefficient, a value the config rejects, or an agent
        that is fitted in closed form (nothing to vmap).
    """
    if not sweep:
        return {}
    names = list(coefficients(config))
    if is_gradient_free(get_spec(agent).agent_cls) or not names:
        raise ConfigError(f"agent {agent!r} has no coefficients to sweep; train it once per value instead")
    out = {}
    for name, values in sweep.items():
        key = name if name in names else f"{name}_" if f"{name}_" in names else None
        if key is None:
            raise ConfigError(
                f"cannot sweep {name!r}: {agent} sweeps {', '.join(names)} (the coefficients its update reads "
                "as arrays); train once per value of any other field"
            )
        out[key] = tuple(float(v) for v in values)
        for v in out[key]:
            config.replace(**{key: v})  # the config's own checks (e.g. lambda in (0, 1])
    return out


def _create_runs(settings: RunSettings, config: Any, prepared: Any, context: Any) -> tuple[Any, Any]:
    """Every run's freshly created agent and training key, stacked on the run axis (each sweep point
    repeats the seeds' agents with its coefficient values)."""
    agents = create_seeds(get_spec(settings.agent).agent_cls, config, prepared, settings.seeds, context)
    keys = jnp.stack([seed_keys(s)[1] for s in settings.seeds])
    return expand_sweep(agents, keys, settings.points())


def _resume_run(run_dir: Path, steps: int | None, dataset: Any) -> tuple:
    """``(settings, config, prepared, context, agents, keys, step)`` of a run continued from its newest
    checkpoint (or started again when it was killed before its first)."""
    settings, config, agents, keys, start_step, raw = _load_resume(run_dir, steps, dataset)
    if raw is None:
        raw = load_dataset(settings.dataset, **settings.dataset_options)
    prepared = config.prepare(raw)
    _check_same_data(run_dir, prepared.info)
    context = dataset_context(get_spec(settings.agent).agent_cls, config, prepared)
    if agents is None:  # killed before its first checkpoint: start again
        agents, keys = _create_runs(settings, config, prepared, context)
    truncate_jsonl(run_dir / METRICS_FILE, start_step)
    if settings.steps != json.loads((run_dir / CONFIG_FILE).read_text())["steps"]:
        _write_run_files(run_dir, settings, config, prepared.info, overwrite=True)
    return settings, config, prepared, context, agents, keys, start_step


@dataclasses.dataclass
class _Engine:
    settings: RunSettings
    agents: Any
    keys: Any
    step: int
    transitions: Transitions
    context: Any
    dataset: Any
    evaluate_fn: Callable[..., Any] | None
    logger: Logger
    records: list[dict[str, Any]]
    run_dir: Path | None
    gradient_free: bool
    progress: bool
    callback: Callable[..., None] | None
    update_seconds: float = 0.0
    updates_done: int = 0

    def run(self) -> None:
        s = self.settings
        total = 0 if self.gradient_free else s.steps
        if self.step >= total:
            if self.gradient_free or not self._has_final():  # nothing to train; finish the run
                done = any(r["kind"] == "eval" and r["step"] == self.step for r in self.records)
                if self.evaluate_fn is not None and not done:
                    self._evaluate(final=True)
                if self.run_dir is not None:
                    self._checkpoint()
            return
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, initial=self.step, unit="step", desc=f"{s.agent} {Path(s.dataset).name}",
            disable=not self.progress, dynamic_ncols=True, file=sys.stderr,
            bar_format="{desc}: {percentage:3.0f}%|{bar}| {n_fmt}/{total_fmt} [{elapsed}<{remaining}{postfix}]",
        )  # one rate, the postfix's: tqdm's own would count compilation and evaluation as training
        bar.set_postfix_str("compiling")
        try:
            while self.step < total:
                n = min(s.log_every - self.step % s.log_every, total - self.step)
                new, ups = self._chunk(n)
                new += self._boundary(final=self.step >= total)
                bar.update(n)
                bar.set_postfix_str(self._postfix(ups))
                if self.callback is not None:
                    self.callback(self.step, self.agents, new)
        finally:
            bar.close()

    def _chunk(self, n: int) -> tuple[list[dict[str, Any]], float]:
        """``n`` updates of every run in one jitted call; logs and returns each run's chunk means."""
        tic = time.perf_counter()
        agents, keys, metrics, finite = train_chunk(self.agents, self.transitions, self.keys, n, self.context)
        metrics, finite = jax.device_get((metrics, finite))
        seconds = time.perf_counter() - tic
        self._check_finite(metrics, finite, n)
        self.agents, self.keys = agents, keys
        self.step += n
        self.update_seconds += seconds
        self.updates_done += n
        new = []
        for i, run in enumerate(self._run_fields()):
            rec: dict[str, Any] = {"step": self.step, **run, "kind": "train"}
            for k, v in metrics.items():
                rec[k] = float(np.mean(np.asarray(v[i], np.float64)))
            rec["updates_per_s"] = n / seconds
            new.append(rec)
        self._log(new)
        return new, n / seconds

    def _run_fields(self) -> list[dict[str, Any]]:
        """What names each run in a record: its seed, and its sweep point when the run sweeps."""
        return [{"seed": seed, "sweep": point} if point else {"seed": seed} for point, seed in self.settings.runs()]

    def _has_final(self) -> bool:
        return self.run_dir is not None and (self.run_dir / SUMMARY_FILE).exists()

    def _boundary(self, final: bool) -> list[dict[str, Any]]:
        """Evaluate and checkpoint when due at ``self.step``."""
        s, new = self.settings, []
        if self.evaluate_fn is not None and (final or self.step % s.eval_every == 0):
            new = self._evaluate(final)
        if self.run_dir is not None and (final or self.step % s.checkpoint_every == 0):
            self._checkpoint()
        return new

    def _evaluate(self, final: bool) -> list[dict[str, Any]]:
        """Evaluate every run: ``eval_episodes`` episodes each, ``final_eval_episodes`` at the end."""
        s, new = self.settings, []
        for i, run in enumerate(self._run_fields()):
            res = self.evaluate_fn(
                index_seed(self.agents, i), self.dataset, episodes=s.last_eval_episodes if final else s.eval_episodes,
                seed=eval_seed(run["seed"], self.step),
            )
            returns = np.asarray(res.returns, np.float64)
            scores = None if getattr(res, "normalized", None) is None else np.asarray(res.normalized, np.float64)
            rec = {
                "step": self.step, **run, "kind": "eval",
                "return_mean": float(returns.mean()), "return_std": float(returns.std()),
                "score_mean": None if scores is None else float(scores.mean()),
                "score_std": None if scores is None else float(scores.std()),
                "length_mean": float(np.mean(res.lengths)),
                "returns": [float(x) for x in returns],
            }
            new.append(rec)
        self._log(new)
        return new

    def _checkpoint(self) -> None:
        s = self.settings
        path = checkpoint_path(self.run_dir, self.step)
        runs = s.runs()
        sweep = {"sweep": [point for point, _ in runs]} if s.sweep else {}
        save_agent(
            self.agents, path, dataset_info=self.dataset.info, step=self.step, key=self.keys,
            seeds=[seed for _, seed in runs], agent_name=s.agent, run=self.run_dir.name, **sweep,
        )
        for _, old in list_checkpoints(path.parent)[: -s.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def _log(self, new: list[dict[str, Any]]) -> None:
        for r in new:
            self.logger.log(r)
        self.records.extend(new)

    def _postfix(self, ups: float) -> str:
        scores = [r for r in self.records if r["kind"] == "eval" and r["step"] == self._last_eval_step()]
        text = f"{ups:,.0f} steps/s"
        if scores:
            key = "score_mean" if scores[0]["score_mean"] is not None else "return_mean"
            text += f", {'score' if key == 'score_mean' else 'return'} {np.mean([r[key] for r in scores]):.1f}"
        return text

    def _last_eval_step(self) -> int | None:
        steps = [r["step"] for r in self.records if r["kind"] == "eval"]
        return max(steps) if steps else None

    def _run_name(self, index: int) -> str:
        point, seed = self.settings.runs()[index]
        return f"seed {seed}" + "".join(f", {k}={v:g}" for k, v in point.items())

    def _check_finite(self, metrics: Mapping[str, np.ndarray], finite: np.ndarray, n: int) -> None:
        """Raise TrainingError at the first update whose metrics (or final parameters) are NaN/Inf."""
        first: tuple[int, str, int, float] | None = None
        for name, v in metrics.items():
            v = np.asarray(v, np.float64).reshape(len(self.settings.runs()), n, -1)
            bad = ~np.isfinite(v).all(axis=2)  # [S, K]
            if bad.any():
                seed_idx, k = np.argwhere(bad)[np.argmin(np.argwhere(bad)[:, 1])]
                value = v[seed_idx, k][~np.isfinite(v[seed_idx, k])][0]
                if first is None or k < first[0]:
                    first = (int(k), name, int(seed_idx), float(value))
        if first is None and np.all(finite):
            return
        ckpts = list_checkpoints(self.run_dir / "checkpoints") if self.run_dir is not None else []
        keep = (
            f"the last good checkpoint is {ckpts[-1][1]} (step {ckpts[-1][0]})"
            if ckpts else "no checkpoint was written before it"
        )
        if first is not None:
            k, name, run_idx, value = first
            what = f"metric {name!r} of {self._run_name(run_idx)} is {value}"
            at = self.step + k + 1
        else:
            what = f"the parameters of {self._run_name(int(np.argmin(finite)))} are not finite"
            at = self.step + n
        raise TrainingError(
            f"training diverged at step {at}: {what}; {keep}; lower the learning rates or check the rewards"
        )


def _resolve_evaluator(
    evaluator: Callable[..., Any] | None, info: Any, eval_every: int, notes: list[str]
) -> Callable[..., Any] | None:
    if eval_every == 0:
        return None
    if evaluator is not None:
        return evaluator
    if info.env_id is None:
        notes.append(f"evaluation is off: dataset {info.name!r} names no environment")
        return None
    return evaluate


def _summary(
    settings: RunSettings, config: Any, engine: _Engine, wall: float, notes: list[str], resumed: bool
) -> dict[str, Any]:
    """``summary.json``: per run (seed, and sweep point) the final and best scores; their mean and std
    over seeds (per sweep point, ``per_point``, when the run sweeps); wall time, updates/s, versions."""
    per_seed = [_run_summary(engine.records, run) for run in engine._run_fields()]
    finals = [p["final_score"] for p in per_seed if p["final_score"] is not None]
    doc = {
        "agent": settings.agent,
        "dataset": settings.dataset,
        "seeds": list(settings.seeds),
        "step": engine.step,
        "steps": settings.steps,
        "gradient_free": engine.gradient_free,
        "per_seed": per_seed,
        "final_score_mean": float(np.mean(finals)) if finals else None,
        "final_score_std": float(np.std(finals)) if finals else None,
        "wall_time_s": wall,
        "updates_per_s": engine.updates_done / engine.update_seconds if engine.update_seconds else None,
        "resumed": resumed,
        "notes": notes,
        "agent_config": config.to_dict(),
        "reward_transform": applied_reward_transform(engine.dataset.info),
        "versions": versions(),
    }
    if settings.sweep:
        doc["sweep"] = {k: list(v) for k, v in settings.sweep.items()}
        doc["per_point"] = []
        for point in settings.points():
            scores = [p["final_score"] for p in per_seed if p["sweep"] == point and p["final_score"] is not None]
            doc["per_point"].append({
                "sweep": point,
                "final_score_mean": float(np.mean(scores)) if scores else None,
                "final_score_std": float(np.std(scores)) if scores else None,
            })
    return doc


def _run_summary(records: list[dict[str, Any]], run: dict[str, Any]) -> dict[str, Any]:
    """Final and best evaluation of one run (``run``: its seed and sweep point, as in its records)."""
    evals = [r for r in records if r["kind"] == "eval" and all(r.get(k) == v for k, v in run.items())]
    scored = [r for r in evals if r.get("score_mean") is not None]
    best = max(scored, key=lambda r: r["score_mean"]) if scored else None
    last = evals[-1] if evals else None
    return {
        **run,
        "final_step": None if last is None else last["step"],
        "final_return": None if last is None else last["return_mean"],
        "final_score": None if last is None else last.get("score_mean"),
        "best_score": None if best is None else best["score_mean"],
        "best_step": None if best is None else best["step"],
    }
