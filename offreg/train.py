"""The training engine: every agent trains here, one seed or many, from the CLI or from Python.

**Inner loop.** One jitted call runs ``K = log_every`` gradient updates as a ``lax.scan`` (the
*chunk*); each update samples its batch on the device from the dataset, which is an argument of the
jitted function (never a closure constant). The key stream of a seed is carried, one split per
update::

    key, sample_key, update_key = jax.random.split(key, 3)
    batch = offreg.data.sample(transitions, sample_key, config.batch_size)
    agent, metrics = agent.update(batch, update_key)

starting from ``train_key`` of :func:`offreg.seeds.seed_keys`. The key is saved with every
checkpoint, so the updates (and so the parameters) do not depend on where chunks start or end, nor
on whether the run was interrupted and resumed.

**Seeds.** N seeds train in one process on a leading seed axis (the dataset stays unbatched; the
step counter is shared, see :mod:`offreg.seeds`); every seed gets its keys from
:func:`offreg.seeds.seed_keys`, and ``jax.vmap`` batches ``create`` and the chunk. On the CPU,
seed ``s`` is the same bit for bit in every run with >= 2 seeds. A single-seed run is a different
XLA program (the size-1 seed axis is simplified away, and reductions may then be vectorized
differently): it equals seed ``s`` of a multi-seed run to float32 rounding (with the pinned jax
0.10.2, BC's and TD3+BC's single runs differ from their vmapped seed in the last bit of some
parameters); ``tests/test_engine.py`` checks both.

**Outer loop (host).** After each chunk the stacked per-update metrics are fetched and checked:
a NaN/Inf stops training with :class:`~offreg.errors.TrainingError` naming the step, the metric and
the seed, leaving the last good checkpoint in place (a checkpoint is only written after its chunk
passed the check). The chunk's per-seed means are logged (``kind="train"``); every ``eval_every``
steps and at the end each seed is evaluated (``kind="eval"``, raw returns and normalized scores);
every ``checkpoint_every`` steps and at the end the multi-seed agent, the step and the keys are
saved. A progress bar shows the step, updates/s and the latest mean score.

**Run directory** (``out_dir``)::

    config.json          the resolved settings: agent, dataset, seeds, steps, cadences, agent_config
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
import functools
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from offreg.atomic import atomic_write_text
from offreg.checkpoint import (
    checkpoint_path,
    list_checkpoints,
    read_checkpoint,
    save_agent,
)
from offreg.data.core import sample
from offreg.errors import CheckpointError, ConfigError, OffregError, TrainingError
from offreg.logging import (
    JsonlLogger,
    Logger,
    MultiLogger,
    plot_curves,
    read_jsonl,
    require_tensorboard,
    require_wandb,
    truncate_jsonl,
)
from offreg.seeds import SEED_AXIS, derived_seed, index_seed, seed_axes, seed_keys, stack_seeds
from offreg.types import Metrics, PRNGKey, Transitions

DEFAULT_AGENT = "td3bc"
DEFAULT_DATASET = "offreg/hopper-medium-replay-v0"
DEFAULT_STEPS = 1_000_000
"""Gradient updates of a run: the 1M steps of the TD3+BC/PRDC/A2PR/O-DICE papers' locomotion tables."""
DEFAULT_EVAL_EVERY = 5000
"""TD3+BC's and PRDC's evaluation period (``eval_freq = 5e3``)."""
DEFAULT_EVAL_EPISODES = 10
DEFAULT_LOG_EVERY = 1000

CONFIG_FILE = "config.json"
DATASET_INFO_FILE = "dataset_info.json"
METRICS_FILE = "metrics.jsonl"
CURVE_FILE = "curve.png"
SUMMARY_FILE = "summary.json"


# --- the jitted inner loop ------------------------------------------------------------------------
def scan_updates(
    agent: Any, transitions: Transitions, key: PRNGKey, num_steps: int, context: Any = ()
) -> tuple[Any, PRNGKey, Metrics]:
    """``num_steps`` updates of one (unbatched) agent as a ``lax.scan``, sampling on the device.

    Args:
      agent: the agent.
      transitions: the preprocessed dataset (leading axis N).
      context: what the agent derived once from the dataset (``agent_cls.context``), or ``()``.
      key: the seed's current key; split once per update as in the module docstring.
      num_steps: K (static).

    Returns:
      ``(agent, key, metrics)`` with every metric stacked to ``[K, ...]``.
    """
    batch_size = agent.config.batch_size

    def body(carry, _):
        agent, key = carry
        key, sample_key, update_key = jax.random.split(key, 3)
        batch = sample(transitions, sample_key, batch_size)
        agent, metrics = agent.update(batch, update_key, context)
        return (agent, key), metrics

    (agent, key), metrics = jax.lax.scan(body, (agent, key), None, length=num_steps)
    return agent, key, metrics


def _all_finite(tree: Any) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree) if jnp.issubdtype(x.dtype, jnp.inexact)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.bool_(True)


@functools.lru_cache(maxsize=64)
def _chunk_fn(treedef: Any, leaf_axes: tuple[int | None, ...]) -> Callable[..., Any]:
    """The jitted, seed-vmapped chunk for agents of one tree structure (config included) and seed axes."""
    axes = jax.tree_util.tree_unflatten(treedef, list(leaf_axes))

    def one_seed(agent, transitions, context, key, num_steps):
        agent, key, metrics = scan_updates(agent, transitions, key, num_steps, context)
        return agent, key, metrics, _all_finite(agent)

    def chunk(agents, transitions, context, keys, num_steps):
        f = functools.partial(one_seed, num_steps=num_steps)
        return jax.vmap(f, in_axes=(axes, None, None, 0), out_axes=(axes, 0, 0, 0), axis_name=SEED_AXIS)(
            agents, transitions, context, keys
        )

    return jax.jit(chunk, static_argnames="num_steps")


def train_chunk(
    agents: Any, transitions: Transitions, keys: PRNGKey, num_steps: int, context: Any = ()
) -> tuple[Any, PRNGKey, Metrics, jax.Array]:
    """K updates of every seed in one jitted call: ``vmap`` over seeds of :func:`scan_updates`.

    Args:
      agents: a multi-seed agent (leading seed axis S, see :mod:`offreg.seeds`).
      transitions: the preprocessed dataset, unbatched.
      context: the dataset-derived constants, unbatched (every seed shares them).
      keys: ``uint32 [S, 2]``, each seed's current key.
      num_steps: K.

    Returns:
      ``(agents, keys, metrics [S, K, ...], params_finite [S])``.
    """
    treedef = jax.tree_util.tree_structure(agents)
    leaf_axes = tuple(treedef.flatten_up_to(seed_axes(agents)))
    return _chunk_fn(treedef, leaf_axes)(agents, transitions, context, keys, num_steps=num_steps)


def dataset_context(agent_cls: type, config: Any, dataset: Any) -> Any:
    """What the agent derives once from the prepared dataset to train (``agent_cls.context``), or ``()``."""
    context = getattr(agent_cls, "context", None)
    return () if context is None else context(config, dataset)


def create_seeds(agent_cls: type, config: Any, dataset: Any, seeds: Sequence[int], context: Any = ()) -> Any:
    """Create one agent per seed, stacked on a leading seed axis, with ``init_key`` of each seed.

    ``jit(vmap(create))`` over the seeds' keys, the transitions and the context arguments of the
    jitted function (not constants baked into the program).
    Agents whose ``create`` cannot be traced (host-side fits) are created one by one and stacked.
    """
    init_keys = jnp.stack([seed_keys(s)[0] for s in seeds])

    def create(transitions, context, key):
        return agent_cls.create(config, dataclasses.replace(dataset, transitions=transitions), key, context)

    try:
        axes = seed_axes(jax.eval_shape(create, dataset.transitions, context, init_keys[0]))
        batched = jax.jit(jax.vmap(create, in_axes=(None, None, 0), out_axes=axes))
        return batched(dataset.transitions, context, init_keys)
    except jax.errors.JAXTypeError:
        return stack_seeds([agent_cls.create(config, dataset, k, context) for k in init_keys])


# --- results ------------------------------------------------------------------------------------
@dataclasses.dataclass
class TrainResult:
    """What :func:`train` returns.

    Attributes:
      agents: the final multi-seed agent (leading seed axis); :meth:`agent` gives one seed's agent.
      seeds: the seeds, in the order of the seed axis.
      step: gradient updates done (0 for gradient-free agents).
      agent_name: the registered agent name.
      config: the resolved agent config.
      dataset_info: the preprocessed dataset's description.
      records: every logged record (train and eval) of the run, including those before a resume.
      summary: the content of ``summary.json`` (per-seed final and best scores, ...).
      run_dir: the run directory, or None when nothing was written.
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

    def agent(self, seed: int | None = None) -> Any:
        """The unbatched final agent of ``seed`` (default: the first seed)."""
        index = 0 if seed is None else self.seeds.index(seed)
        return index_seed(self.agents, index)

    @property
    def final_scores(self) -> list[float | None]:
        """Per seed, the mean normalized score of the last evaluation (None without one)."""
        return [s["final_score"] for s in self.summary["per_seed"]]


@dataclasses.dataclass(frozen=True)
class RunSettings:
    """The engine settings of a run, saved in ``config.json`` next to the agent config."""

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

    def __post_init__(self) -> None:
        checks = [
            (self.steps >= 0, f"steps must be >= 0, got {self.steps}"),
            (len(self.seeds) >= 1, "at least one seed is needed (seeds >= 1)"),
            (len(set(self.seeds)) == len(self.seeds), f"seeds must be distinct, got {list(self.seeds)}"),
            (self.log_every >= 1, f"log_every must be >= 1, got {self.log_every}"),
            (self.eval_every >= 0, f"eval_every must be >= 0 (0 turns evaluation off), got {self.eval_every}"),
            (self.eval_episodes >= 1, f"eval_episodes must be >= 1, got {self.eval_episodes}"),
            (self.checkpoint_every >= 1, f"checkpoint_every must be >= 1, got {self.checkpoint_every}"),
            (self.keep_checkpoints >= 1, f"keep_checkpoints must be >= 1, got {self.keep_checkpoints}"),
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
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> RunSettings:
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["seeds"] = tuple(d["seeds"])
        return cls(**d)


def _default_log_every(eval_every: int, checkpoint_every: int | None) -> int:
    g = DEFAULT_LOG_EVERY
    for v in (eval_every, checkpoint_every):
        if v:
            g = math.gcd(g, v)
    return g


def eval_seed(seed: int, step: int) -> int:
    """The environment seed of the evaluation of ``seed`` at ``step``: :func:`offreg.seeds.derived_seed`.

    A function of (seed, step) only, so an evaluation does not depend on earlier ones (resume-safe)
    and every evaluation meets fresh start states.
    """
    return derived_seed(seed, step)


# --- the public entry point -----------------------------------------------------------------------
def train(
    agent: str = DEFAULT_AGENT,
    dataset: Any = DEFAULT_DATASET,
    *,
    steps: int | None = None,
    seeds: int | Sequence[int] = 1,
    seed: int = 0,
    eval_every: int = DEFAULT_EVAL_EVERY,
    eval_episodes: int = DEFAULT_EVAL_EPISODES,
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
) -> TrainResult:
    """Train an agent on a dataset for one or several seeds.

    Args:
      agent: registered agent name (``offreg agents``).
      dataset: catalogue name, file path or a loaded :class:`~offreg.data.Dataset` (raw, unprepared).
      steps: gradient updates per seed (default :data:`DEFAULT_STEPS`; on resume, the run's own).
      seeds: the number of seeds (``seed, seed+1, ...``) or an explicit list; all train in one
        process with ``vmap``.
      seed: the first seed when ``seeds`` is a number.
      eval_every: evaluate every this many steps and at the end; 0 turns evaluation off. Evaluation
        also needs an environment (``dataset.info.env_id``); without one it is off, with a note.
      eval_episodes: episodes per evaluation and seed.
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

    Returns:
      A :class:`TrainResult`.

    Raises:
      OffregError: unknown agent/dataset, bad config values, an existing run directory, a bad resume.
      TrainingError: a NaN/Inf metric or parameter; the message names the step, the metric and seed.
    """
    from offreg.agents.names import get_spec
    from offreg.api import dataset_name, load_dataset, resolve_config

    wall_start = time.perf_counter()
    notes: list[str] = []
    if tensorboard:  # fail before anything is written
        require_tensorboard()
    if wandb_project:
        require_wandb()
    run_dir = None if out_dir is None else Path(out_dir)

    if resume is not None:
        run_dir = Path(resume)
        settings, config, agents, keys, start_step, raw = _load_resume(run_dir, steps, dataset)
        spec = get_spec(settings.agent)
        if raw is None:
            raw = load_dataset(settings.dataset, **settings.dataset_options)
        prepared = config.prepare(raw)
        _check_same_data(run_dir, prepared.info)
        context = dataset_context(spec.agent_cls, config, prepared)
        if agents is None:  # killed before its first checkpoint: start again
            agents = create_seeds(spec.agent_cls, config, prepared, settings.seeds, context)
            keys = jnp.stack([seed_keys(s)[1] for s in settings.seeds])
        truncate_jsonl(run_dir / METRICS_FILE, start_step)
        if settings.steps != json.loads((run_dir / CONFIG_FILE).read_text())["steps"]:
            _write_run_files(run_dir, settings, config, prepared.info, overwrite=True)
    else:
        spec = get_spec(agent)
        seed_list = list(range(seed, seed + seeds)) if isinstance(seeds, int) else [int(s) for s in seeds]
        if isinstance(seeds, int) and seeds < 1:
            raise ConfigError(f"seeds must be >= 1, got {seeds}")
        ckpt_every = checkpoint_every or (eval_every if eval_every > 0 else 50_000)
        if log_every and not checkpoint_every and ckpt_every % log_every:
            ckpt_every = log_every * -(-ckpt_every // log_every)  # the next multiple of log_every
        settings = RunSettings(
            agent=agent,
            dataset=dataset_name(dataset),
            seeds=tuple(seed_list),
            steps=DEFAULT_STEPS if steps is None else int(steps),
            eval_every=int(eval_every),
            eval_episodes=int(eval_episodes),
            log_every=int(log_every) if log_every else _default_log_every(eval_every, ckpt_every),
            checkpoint_every=int(ckpt_every),
            keep_checkpoints=int(keep_checkpoints),
            dataset_options=dict(dataset_options or {}),
        )
        config = resolve_config(agent, dataset, overrides)
        if run_dir is not None:
            _check_new_run_dir(run_dir)
        raw = load_dataset(dataset, **settings.dataset_options) if isinstance(dataset, str) else dataset
        prepared = config.prepare(raw)
        context = dataset_context(spec.agent_cls, config, prepared)
        agents = create_seeds(spec.agent_cls, config, prepared, settings.seeds, context)
        keys = jnp.stack([seed_keys(s)[1] for s in settings.seeds])
        start_step = 0
        if run_dir is not None:
            _write_run_files(run_dir, settings, config, prepared.info, overwrite=False)

    evaluate_fn = _resolve_evaluator(evaluator, prepared.info, settings.eval_every, notes)
    loggers: list[Logger] = []
    if run_dir is not None:
        loggers.append(JsonlLogger(run_dir / METRICS_FILE))
        if tensorboard:
            from offreg.logging import TensorBoardLogger

            loggers.append(TensorBoardLogger(run_dir / "tensorboard"))
        if wandb_project:
            from offreg.logging import WandbLogger

            loggers.append(WandbLogger(wandb_project, run_dir, run_dir.name, _config_json(settings, config)))
    logger = MultiLogger(loggers)
    records: list[dict[str, Any]] = read_jsonl(run_dir / METRICS_FILE) if resume is not None else []
    if progress:
        for n in notes:
            print(f"note: {n}", file=sys.stderr)

    engine = _Engine(
        settings=settings, agents=agents, keys=keys, step=start_step, transitions=prepared.transitions, context=context,
        dataset=prepared, evaluate_fn=evaluate_fn, logger=logger, records=records, run_dir=run_dir,
        gradient_free=bool(getattr(spec.agent_cls, "gradient_free", False)), progress=progress, callback=callback,
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
    )


# --- the host loop --------------------------------------------------------------------------------
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
                    self._evaluate()
                if self.run_dir is not None:
                    self._checkpoint()
            return
        from tqdm.auto import tqdm

        bar = tqdm(
            total=total, initial=self.step, unit="step", desc=f"{s.agent} {Path(s.dataset).name}",
            disable=not self.progress, dynamic_ncols=True, file=sys.stderr,
        )
        bar.set_postfix_str("compiling")
        try:
            while self.step < total:
                n = min(s.log_every - self.step % s.log_every, total - self.step)
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
                for i, seed in enumerate(s.seeds):
                    rec: dict[str, Any] = {"step": self.step, "seed": seed, "kind": "train"}
                    for k, v in metrics.items():
                        rec[k] = float(np.mean(np.asarray(v[i], np.float64)))
                    rec["updates_per_s"] = n / seconds
                    new.append(rec)
                self._log(new)
                new += self._boundary(final=self.step >= total)
                bar.update(n)
                bar.set_postfix_str(self._postfix(n / seconds))
                if self.callback is not None:
                    self.callback(self.step, self.agents, new)
        finally:
            bar.close()

    def _has_final(self) -> bool:
        return self.run_dir is not None and (self.run_dir / SUMMARY_FILE).exists()

    def _boundary(self, final: bool) -> list[dict[str, Any]]:
        """Evaluate and checkpoint when due at ``self.step``."""
        s, new = self.settings, []
        if self.evaluate_fn is not None and (final or self.step % s.eval_every == 0):
            new = self._evaluate()
        if self.run_dir is not None and (final or self.step % s.checkpoint_every == 0):
            self._checkpoint()
        return new

    def _evaluate(self) -> list[dict[str, Any]]:
        s, new = self.settings, []
        for i, seed in enumerate(s.seeds):
            res = self.evaluate_fn(
                index_seed(self.agents, i), self.dataset, episodes=s.eval_episodes, seed=eval_seed(seed, self.step)
            )
            returns = np.asarray(res.returns, np.float64)
            scores = None if getattr(res, "normalized", None) is None else np.asarray(res.normalized, np.float64)
            rec = {
                "step": self.step, "seed": seed, "kind": "eval",
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
        save_agent(
            self.agents, path, dataset_info=self.dataset.info, step=self.step, key=self.keys,
            seeds=list(s.seeds), run=self.run_dir.name,
        )
        for _, old in list_checkpoints(path.parent)[: -s.keep_checkpoints]:
            old.unlink(missing_ok=True)

    def _log(self, new: list[dict[str, Any]]) -> None:
        for r in new:
            self.logger.log(r)
        self.records.extend(new)

    def _postfix(self, ups: float) -> str:
        scores = [r for r in self.records if r["kind"] == "eval" and r["step"] == self._last_eval_step()]
        text = f"{ups:,.0f} upd/s"
        if scores:
            key = "score_mean" if scores[0]["score_mean"] is not None else "return_mean"
            text += f", {'score' if key == 'score_mean' else 'return'} {np.mean([r[key] for r in scores]):.1f}"
        return text

    def _last_eval_step(self) -> int | None:
        steps = [r["step"] for r in self.records if r["kind"] == "eval"]
        return max(steps) if steps else None

    def _check_finite(self, metrics: Mapping[str, np.ndarray], finite: np.ndarray, n: int) -> None:
        """Raise TrainingError at the first update whose metrics (or final parameters) are NaN/Inf."""
        first: tuple[int, str, int, float] | None = None
        for name, v in metrics.items():
            v = np.asarray(v, np.float64).reshape(len(self.settings.seeds), n, -1)
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
            k, name, seed_idx, value = first
            what = f"metric {name!r} of seed {self.settings.seeds[seed_idx]} is {value}"
            at = self.step + k + 1
        else:
            seed_idx = int(np.argmin(finite))
            what = f"the parameters of seed {self.settings.seeds[seed_idx]} are not finite"
            at = self.step + n
        raise TrainingError(
            f"training diverged at step {at}: {what}; {keep}; lower the learning rates or check the rewards"
        )


# --- helpers --------------------------------------------------------------------------------------
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
    try:
        from offreg.evaluation import evaluate
    except ImportError as e:  # evaluation extras missing (e.g. MuJoCo)
        notes.append(f"evaluation is off: {e}")
        return None
    return evaluate


def _config_json(settings: RunSettings, config: Any) -> dict[str, Any]:
    from offreg import __version__

    return {**settings.to_dict(), "agent_config": config.to_dict(), "offreg_version": __version__}


def _check_new_run_dir(run_dir: Path) -> None:
    if run_dir.exists() and (not run_dir.is_dir() or any(run_dir.iterdir())):
        raise CheckpointError(
            f"run directory {run_dir} already exists and is not empty; continue it with --resume {run_dir} "
            "or choose another --out"
        )


def _write_run_files(run_dir: Path, settings: RunSettings, config: Any, info: Any, overwrite: bool) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "checkpoints").mkdir(exist_ok=True)
    doc = _config_json(settings, config)
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
    from offreg.agents.names import get_spec

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
    if steps is not None:
        settings = dataclasses.replace(settings, steps=int(steps))
    raw = None if dataset is None or isinstance(dataset, str) else dataset
    found = list_checkpoints(run_dir / "checkpoints")
    if not found:
        return settings, config, None, None, 0, raw
    ckpt = read_checkpoint(found[-1][1])
    if ckpt.seeds != list(settings.seeds) or ckpt.agent_name != settings.agent or ckpt.key is None:
        raise CheckpointError(f"checkpoint {ckpt.path} does not belong to the run in {run_dir}")
    if ckpt.step > settings.steps:
        raise CheckpointError(
            f"run {run_dir} is at step {ckpt.step}, beyond the {settings.steps} steps asked; pass a larger --steps"
        )
    return settings, config, ckpt.agent, ckpt.key, ckpt.step, raw


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


def versions() -> dict[str, str]:
    """Versions of Python, offreg and the libraries that decide the numbers, plus the JAX backend."""
    from importlib import metadata

    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("offreg", "jax", "jaxlib", "flax", "optax", "numpy", "gymnasium", "mujoco"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    out["backend"] = jax.default_backend()
    out["devices"] = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return out


def _summary(
    settings: RunSettings, config: Any, engine: _Engine, wall: float, notes: list[str], resumed: bool
) -> dict[str, Any]:
    per_seed = []
    for seed in settings.seeds:
        evals = [r for r in engine.records if r["kind"] == "eval" and r["seed"] == seed]
        scored = [r for r in evals if r.get("score_mean") is not None]
        best = max(scored, key=lambda r: r["score_mean"]) if scored else None
        last = evals[-1] if evals else None
        per_seed.append({
            "seed": seed,
            "final_step": None if last is None else last["step"],
            "final_return": None if last is None else last["return_mean"],
            "final_score": None if last is None else last.get("score_mean"),
            "best_score": None if best is None else best["score_mean"],
            "best_step": None if best is None else best["step"],
        })
    finals = [p["final_score"] for p in per_seed if p["final_score"] is not None]
    return {
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
        "versions": versions(),
    }
