"""``offreg collect``: train a SAC behaviour policy, roll out its snapshots, write D4RL-style HDF5 files.

This follows D4RL's locomotion recipe (``Farama-Foundation/D4RL:scripts/generation/mujoco/*``; the D4RL
paper, arXiv 2004.07219) on the Gymnasium MuJoCo environments of :mod:`offreg.envs` whose dynamics match
D4RL's v2 data (``Hopper-v4``, ``HalfCheetah-v5``, ``Walker2d-v4``; see :mod:`offreg.envs.mujoco`). The
pieces live beside this file: the behaviour learner (:mod:`~offreg.data.generate.sac`), the behaviour
policy (:mod:`~offreg.data.generate.policy`), the collection rollouts
(:mod:`~offreg.data.generate.rollout`) and the snapshot format (:mod:`~offreg.data.generate.snapshots`);
the HDF5 writer is :func:`offreg.data.d4rl.write_d4rl`, beside the reader.

- **SAC** (:mod:`~offreg.data.generate.sac`, rlkit's batch variant): a tanh-Gaussian policy and twin
  critics, 2 x 256 ReLU, Adam 3e-4, gamma 0.99, tau 5e-3, batch 256, automatic entropy tuning toward
  ``-act_dim``. Like rlkit's ``TorchBatchRLAlgorithm`` it alternates ``chunk`` environment steps
  (1000) with ``chunk`` gradient updates, which here are one jitted ``lax.scan`` sampling the replay
  buffer on the device. The first ``start_steps`` actions are uniform (rlkit collects its first 1000
  steps before training).
- **Snapshots** of the policy every ``snapshot_every`` environment steps, each evaluated by
  ``eval_episodes`` episodes of the *sampling* policy (the policy the data is collected with).
- **Levels.** ``random``: uniform actions. ``expert``: the snapshot with the best evaluated return
  (D4RL used the final policy of a much longer run). ``medium``: the first snapshot whose return
  reaches ``medium_fraction`` (1/3) of D4RL's expert return (``REF_MAX_SCORE``), D4RL's early stop
  at about a third of expert; if the run gets there only with its best snapshot (or never), 1/3
  of the trained expert's return (:func:`choose_levels`).
  ``medium-replay``: the replay buffer up to the medium snapshot. ``medium-expert``: medium cut at
  its last complete episode, then expert (``stitch_dataset.py``).
- **Rollouts** sample from the policy (not its mean), ``max_episode_steps`` 1000; a step reaching the
  limit is a ``timeout`` and never a ``terminal`` (D4RL's ``collect_data.py``). qpos/qvel are recorded
  before the step. Files are gzip HDF5 in D4RL's layout (``collect_data.py``'s keys), float32, plus offreg metadata.

Determinism: every random number comes from a JAX key derived from the seed; the ``k``-th episode
of a rollout is reset with seed ``offreg.seeds.derived_seed(seed, k)``; a fixed snapshot and seed therefore give the
same arrays on every run on the same machine (and ``bundled`` datasets rely on it).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from offreg.atomic import atomic_write
from offreg.data.catalogue import LOCOMOTION_REF_SCORES
from offreg.data.d4rl import write_d4rl
from offreg.data.generate.rollout import EnvPool, episode_returns, replay_until, rollout, trim_to_last_episode
from offreg.data.generate.sac import SACConfig, train_sac
from offreg.data.generate.snapshots import Snapshot, actor_metadata, save_snapshot
from offreg.envs import env_names
from offreg.errors import ConfigError, OffregError, unknown_name
from offreg.provenance import dataset_versions

LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
"""The D4RL levels ``collect`` writes, in D4RL's names."""

REF_SCORES = LOCOMOTION_REF_SCORES
"""D4RL's ``(REF_MIN_SCORE, REF_MAX_SCORE)`` per environment (``d4rl/infos.py``)."""


def level_metadata(
    env_name: str, gym_id: str, level: str, data: dict[str, np.ndarray], command: str, seed: int, **extra: Any
) -> dict[str, Any]:
    """The metadata every offreg-generated file carries (env id, level, behaviour returns, versions, command)."""
    rets = episode_returns(data)
    meta: dict[str, Any] = {
        "algorithm": "SAC" if level != "random" else "random",
        "env_id": env_name,
        "gym_id": gym_id,
        "level": level,
        "behavior_return_mean": float(rets.mean()) if len(rets) else float("nan"),
        "behavior_return_std": float(rets.std()) if len(rets) else float("nan"),
        "num_episodes": int(len(rets)),
        "command": command,
        "seed": int(seed),
        **dataset_versions(),
    }
    if env_name in REF_SCORES and len(rets):
        lo, hi = REF_SCORES[env_name]
        meta["behavior_normalized_score"] = float(100.0 * (rets.mean() - lo) / (hi - lo))
    meta.update(extra)
    return meta


def choose_levels(
    snapshots: Sequence[Snapshot], medium_fraction: float, expert_return: float | None = None
) -> tuple[Snapshot, Snapshot, float]:
    """Pick the medium and expert snapshots: ``(medium, expert, medium_target)``.

    The expert is the best-evaluated snapshot. The medium snapshot is the first whose evaluated return
    reaches ``medium_target = medium_fraction * expert_return``, where ``expert_return`` is the
    reference expert's return (D4RL's ``REF_MAX_SCORE``, the return of D4RL's SAC expert, so that
    "medium" means what it means in D4RL). When no snapshot before the expert reaches it (a short
    run), or when ``expert_return`` is None, the target is ``medium_fraction`` times the trained
    expert's return.
    """
    expert = max(snapshots, key=lambda s: s.return_mean)
    target = medium_fraction * expert_return if expert_return is not None else None
    medium = None if target is None else next((s for s in snapshots if s.return_mean >= target), None)
    if medium is None or medium.step >= expert.step:
        target = medium_fraction * expert.return_mean
        medium = next(s for s in snapshots if s.return_mean >= target)
    return medium, expert, float(target)


def parse_levels(levels: str | Sequence[str]) -> list[str]:
    """Parse ``random,medium`` (or a list) into levels, checking each name.

    Raises:
      UnknownNameError: an unknown level (with suggestions).
    """
    items = [s.strip() for s in levels.split(",")] if isinstance(levels, str) else list(levels)
    items = [s for s in items if s]
    if not items:
        raise ConfigError(f"no dataset level given; expected some of {', '.join(LEVELS)}")
    for s in items:
        if s not in LEVELS:
            raise unknown_name("dataset level", s, LEVELS, f"Levels: {', '.join(LEVELS)}.")
    return list(dict.fromkeys(items))


def check_output_dir(out: str | os.PathLike) -> Path:
    """Create ``out`` if needed and check that it is a writable directory.

    Raises:
      OffregError: ``out`` is a file, cannot be created, or is not writable.
    """
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OffregError(f"--out {str(out)!r} is a file, not a directory; give a directory path")
    try:
        out.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=out, prefix=".offreg-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise OffregError(
            f"--out {str(out)!r} is not writable ({e.strerror or e}); choose a directory you can write to"
        ) from e
    return out


def collect(
    env: str,
    levels: str | Sequence[str] = LEVELS,
    out: str | os.PathLike = ".",
    *,
    train_steps: int = 300_000,
    level_steps: int = 1_000_000,
    seed: int = 0,
    medium_fraction: float = 1.0 / 3.0,
    snapshot_every: int = 10_000,
    eval_episodes: int = 10,
    num_envs: int = 10,
    config: SACConfig | None = None,
    command: str | None = None,
    log: Callable[[str], None] | None = print,
) -> dict[str, Path]:
    """Generate D4RL-style datasets for ``env`` at ``levels`` into ``out`` (the ``offreg collect`` command).

    Files are ``{out}/{env}-{level}.hdf5``; policy snapshots go to ``{out}/snapshots/step{N}.npz``
    with ``{out}/snapshots/snapshots.json`` listing their evaluated returns. Each file is written to a
    temporary name and renamed, so an interrupted run leaves no partial file.

    Args:
      env: offreg environment name (``hopper``, ``halfcheetah``, ``walker2d``, ...).
      levels: comma-separated or a list of :data:`LEVELS`.
      out: output directory (created if needed).
      train_steps: SAC environment steps (skipped if only ``random`` is asked for).
      level_steps: rows of each rollout level (D4RL: 1,000,000; medium-expert has up to twice that).
      seed: seed of training, evaluation and rollouts.
      medium_fraction: the medium snapshot is the first reaching this fraction of the expert's return
        (D4RL's expert return for D4RL's tasks; see :func:`choose_levels`).
      snapshot_every: environment steps between snapshots.
      eval_episodes: episodes per snapshot evaluation.
      num_envs: environments stepped in lockstep during rollouts.
      config: SAC hyperparameters (default :class:`~offreg.data.generate.sac.SACConfig`).
      command: recorded in the metadata (default: this process's command line).

    Returns:
      ``{level: path}`` of the files written.

    Raises:
      UnknownNameError: unknown environment or level. ConfigError: a non-positive budget.
      OffregError: ``out`` is not a writable directory.

    Long because: the whole collection pipeline in the order it runs, with its thirteen options documented.
    """
    todo = parse_levels(levels)
    config = config or SACConfig()
    if env not in env_names():
        raise unknown_name("environment", env, env_names(), "Run `offreg collect --help` for the names.")
    for name, v in (("train_steps", train_steps), ("level_steps", level_steps), ("snapshot_every", snapshot_every),
                    ("eval_episodes", eval_episodes), ("num_envs", num_envs)):
        if int(v) <= 0:
            raise ConfigError(f"{name} must be a positive integer, got {v}")
    if not 0.0 < medium_fraction <= 1.0:
        raise ConfigError(f"medium_fraction must be in (0, 1], got {medium_fraction}")
    needs_sac = any(lv != "random" for lv in todo)
    if needs_sac and train_steps < config.start_steps + config.chunk:
        raise ConfigError(
            f"train_steps={train_steps} leaves no SAC update; use at least start_steps + chunk = "
            f"{config.start_steps + config.chunk} (or a smaller SACConfig.start_steps/chunk)"
        )
    out_dir = check_output_dir(out)
    command = command if command is not None else " ".join([Path(sys.argv[0]).name, *sys.argv[1:]])
    say = log or (lambda s: None)
    probe = EnvPool(env, 1, seed)
    gym_id = probe.gym_id
    probe.close()
    paths: dict[str, Path] = {}

    def write_level(level: str, data: dict[str, np.ndarray], **extra: Any) -> None:
        meta = level_metadata(env, gym_id, level, data, command, seed, **extra)
        path = out_dir / f"{env}-{level}.hdf5"
        atomic_write(path, lambda p: write_d4rl(p, data, meta))
        paths[level] = path
        say(f"[collect] wrote {path} ({len(data['rewards'])} rows, behaviour return "
            f"{meta['behavior_return_mean']:.1f} +- {meta['behavior_return_std']:.1f})")

    if "random" in todo:
        write_level("random", rollout(env, None, level_steps, seed, num_envs))
    if not needs_sac:
        return paths

    snap_dir = out_dir / "snapshots"

    def keep(snap: Snapshot, replay: dict[str, np.ndarray]) -> None:
        save_snapshot(snap_dir / f"step{snap.step}.npz", snap.actor,
                      {"env_id": env, "step": snap.step, "return_mean": snap.return_mean,
                       "return_std": snap.return_std, "seed": seed, "hidden_dims": list(config.hidden_dims)})

    result = train_sac(env, train_steps, seed, config, snapshot_every, eval_episodes, log, keep)
    medium, expert, target = choose_levels(result.snapshots, medium_fraction, REF_SCORES.get(env, (0, None))[1])
    index = {"snapshots": [{"step": s.step, "return_mean": s.return_mean, "return_std": s.return_std}
                           for s in result.snapshots], "medium_step": medium.step, "expert_step": expert.step,
             "medium_target": target, "config": dataclasses.asdict(config)}
    atomic_write(snap_dir / "snapshots.json", lambda p: p.write_text(json.dumps(index, indent=2)))
    say(f"[collect] medium = step {medium.step} ({medium.return_mean:.1f}), expert = step {expert.step} "
        f"({expert.return_mean:.1f})")

    def policy_meta(s: Snapshot) -> dict[str, Any]:
        return {"iteration": np.int32(s.step), "snapshot_step": int(s.step), **actor_metadata(s.actor)}

    rollouts: dict[str, dict[str, np.ndarray]] = {}
    for level, snap in (("medium", medium), ("expert", expert)):
        if level in todo or "medium-expert" in todo:
            rollouts[level] = rollout(env, snap.actor, level_steps, seed + (1 if level == "medium" else 2), num_envs)
            if level in todo:
                write_level(level, rollouts[level], **policy_meta(snap))
    if "medium-replay" in todo:
        write_level("medium-replay", replay_until(result.replay, medium.step), iteration=np.int32(medium.step))
    if "medium-expert" in todo:
        med = trim_to_last_episode(rollouts["medium"])
        both = {k: np.concatenate([med[k], rollouts["expert"][k]])[: 2 * level_steps] for k in med}
        write_level("medium-expert", both)
    return paths
