"""Bundled datasets: ``offreg/<env>-<level>-v0`` rebuilt on first use from files shipped with offreg.

offreg ships, in ``offreg/bundled/``, small behaviour-policy snapshots (``<env>-medium.npz``,
``<env>-expert.npz``: SAC actors, ~290 KB each) and the compressed replay buffer of each medium run
(``<env>-medium-replay.npz``; or, where that is too large, the sequence of training snapshots as
float16 ``<env>-replay-step<N>.npz`` files, see :func:`replay_from_snapshots`), listed in
``manifest.json``. ``load_dataset("offreg/hopper-medium-v0")``
calls the dataset's ``build``, which rolls the snapshot out (:func:`offreg.data.generate.rollout.rollout`, fixed
seeds, sampled actions) into a D4RL-format HDF5 file; the loader caches it. The same snapshot and
seed give the same arrays on every run on the same machine.

Levels (D4RL's recipe, smaller): ``random`` (uniform actions), ``medium``, ``expert`` (rollouts of
the snapshots), ``medium-replay`` (the SAC replay buffer up to the medium snapshot, shipped as data
because SAC training is not reproducible bit for bit across machines), ``medium-expert`` (medium cut
at its last complete episode, then expert). Each rollout level has ``manifest["level_steps"]`` rows
(100,000 instead of D4RL's 1,000,000). ``docs/bundled_datasets.md`` documents the behaviour returns
and every difference from D4RL's data.

Registration needs only the manifest; the environments are built when a dataset is first built.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Callable
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from tqdm.auto import tqdm

from offreg.data.catalogue import LOCOMOTION_REF_SCORES
from offreg.data.d4rl import write_d4rl
from offreg.data.generate.collect import level_metadata
from offreg.data.generate.rollout import replay_until, rollout, trim_to_last_episode
from offreg.data.generate.snapshots import actor_metadata, load_snapshot
from offreg.data.generated import GeneratedSpec, register_generated
from offreg.errors import DatasetError

BUNDLED_LEVELS = ("random", "medium", "medium-replay", "expert", "medium-expert")
SEED_OFFSETS = {"random": 0, "medium": 1, "expert": 2}
"""Rollout seed of a level: ``manifest[env]["seed"] + offset`` (as ``offreg collect`` uses)."""


def bundled_dir() -> Path:
    """The directory of the shipped files (``offreg/bundled``)."""
    return Path(str(resources.files("offreg") / "bundled"))


def manifest() -> dict[str, Any]:
    """``offreg/bundled/manifest.json`` (``{}`` when absent)."""
    path = bundled_dir() / "manifest.json"
    if not path.is_file():
        return {}
    return json.loads(path.read_text())


# --- the shipped replay buffer ----------------------------------------------------------------------
def pack_replay(data: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Store a replay buffer compactly, without the entries the observations repeat.

    - ``next_observations`` is kept only where it is not ``observations[i + 1]`` (episode ends and
      the last row): ``end_index``, ``end_next_observations``.
    - MuJoCo locomotion observations start with ``qpos[1:]`` then ``qvel`` (clipped to +-10 for hopper
      and walker2d): when ``qpos[:, 1:]`` equals those entries exactly, only ``qpos_x = qpos[:, 0]`` is
      kept, and ``qvel`` only on the rows where it differs (``qvel_fix_index``, ``qvel_fix``).

    :func:`unpack_replay` inverts it exactly (bit for bit).
    """
    obs, nxt = data["observations"], data["next_observations"]
    differs = np.ones(len(obs), bool)
    differs[:-1] = np.any(nxt[:-1] != obs[1:], axis=1)
    idx = np.flatnonzero(differs)
    out = {k: v for k, v in data.items() if k not in ("next_observations", "qpos", "qvel")}
    out["end_index"] = idx.astype(np.int64)
    out["end_next_observations"] = nxt[idx]
    if "qpos" in data and "qvel" in data:
        qpos, qvel = data["qpos"], data["qvel"]
        nq, nv = qpos.shape[1], qvel.shape[1]
        if obs.shape[1] >= nq - 1 + nv and np.array_equal(qpos[:, 1:], obs[:, : nq - 1]):
            out["qpos_x"] = qpos[:, 0]
            rows = np.flatnonzero(np.any(qvel != obs[:, nq - 1 : nq - 1 + nv], axis=1))
            out["qvel_fix_index"] = rows.astype(np.int64)
            out["qvel_fix"] = qvel[rows]
        else:
            out["qpos"], out["qvel"] = qpos, qvel
    return out


def unpack_replay(packed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Inverse of :func:`pack_replay`."""
    aux = ("end_index", "end_next_observations", "qpos_x", "qvel_fix_index", "qvel_fix")
    data = {k: v for k, v in packed.items() if k not in aux}
    obs = data["observations"]
    nxt = np.empty_like(obs)
    nxt[:-1] = obs[1:]
    nxt[packed["end_index"]] = packed["end_next_observations"]
    data["next_observations"] = nxt
    if "qpos_x" in packed:
        nq = obs.shape[1] - packed["qvel_fix"].shape[1] + 1
        data["qpos"] = np.concatenate([packed["qpos_x"][:, None], obs[:, : nq - 1]], axis=1)
        qvel = obs[:, nq - 1 :].copy()
        qvel[packed["qvel_fix_index"]] = packed["qvel_fix"]
        data["qvel"] = qvel
    return data


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except (OSError, ValueError, KeyError) as e:
        raise DatasetError(f"bundled file {str(path)!r} cannot be read ({e}); reinstall offreg") from e


# --- building -----------------------------------------------------------------------------------------
def build_level(
    env: str, level: str, path: str | Path, level_steps: int | None = None, progress: bool = True
) -> dict[str, np.ndarray]:
    """Write the bundled dataset ``offreg/<env>-<level>-v0`` at ``path`` (D4RL format) and return its arrays.

    Args:
      env: ``hopper``, ``halfcheetah`` or ``walker2d`` (an entry of the manifest).
      level: one of :data:`BUNDLED_LEVELS`.
      path: the HDF5 file to write.
      level_steps: rows per rollout level; default the manifest's (tests use fewer).
      progress: show a progress bar on stderr saying what is being done
        (``building offreg/hopper-medium-v0: rolling out the medium policy``).
    """
    m = manifest()[env]
    steps = int(level_steps or m["level_steps"])
    seed = int(m["seed"])
    name = f"offreg/{env}-{level}-v0"
    total = {"medium-expert": 2 * steps, "medium-replay": m["medium-replay"]["rows"]}.get(level, steps)
    bar = tqdm(total=total, desc=f"building {name}", unit=" rows", file=sys.stderr, disable=not progress,
               leave=False, dynamic_ncols=True)

    def doing(what: str, offset: int = 0) -> Callable[[int], None]:
        """Say ``what`` is being done; the returned callback moves the bar to ``offset + rows``."""
        bar.set_description_str(f"building {name}: {what}")
        return lambda rows: bar.update(max(min(offset + rows, total) - bar.n, 0))

    with bar:
        data, extra = _level_arrays(env, level, m, steps, seed, doing)
        doing("writing the HDF5 file")(total)
        common = {"regenerated_from": "offreg/bundled", "level_steps": steps, "train_command": m["train_command"]}
        meta = level_metadata(env, m["gym_id"], level, data, f"load_dataset('{name}')", seed, **common, **extra)
        write_d4rl(path, data, meta)
    return data


def _level_arrays(
    env: str, level: str, m: dict[str, Any], steps: int, seed: int, doing: Callable[..., Callable[[int], None]]
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """The arrays of one bundled level and its level-specific metadata (see :func:`build_level`)."""
    root = bundled_dir()
    num_envs = int(m.get("num_envs", 10))
    replay = m["medium-replay"]
    at_medium = {"iteration": np.int32(m["medium"]["step"]), "snapshot_step": int(m["medium"]["step"])}

    def roll(which: str, offset: int = 0) -> dict[str, np.ndarray]:
        params = None if which == "random" else load_snapshot(root / m[which]["file"])[0]
        what = "rolling out uniform-random actions" if which == "random" else f"rolling out the {which} policy"
        return rollout(env, params, steps, seed + SEED_OFFSETS[which], num_envs, progress=doing(what, offset))

    if level == "medium-replay" and "segments" in replay:
        report = doing("rolling out the training snapshots (approximate replay)")
        data = replay_from_snapshots(env, replay["segments"], seed, num_envs, progress=report)
        return data, {**at_medium, "replay_kind": "snapshot-rollouts"}
    if level == "medium-replay":
        doing("unpacking the shipped replay buffer")
        return unpack_replay(_load_npz(root / replay["file"])), at_medium
    if level == "medium-expert":
        med = trim_to_last_episode(roll("medium"))
        exp = roll("expert", offset=steps)
        return {k: np.concatenate([med[k], exp[k]])[: 2 * steps] for k in med}, {}
    data = roll(level)
    if level == "random":
        return data, {}
    params, meta = load_snapshot(root / m[level]["file"])
    return data, {"iteration": np.int32(meta["step"]), "snapshot_step": int(meta["step"]),
                  "snapshot_file": m[level]["file"], **actor_metadata(params)}


def replay_from_snapshots(
    env: str, segments: list[dict[str, Any]], seed: int, num_envs: int = 10,
    progress: Callable[[int], None] | None = None,
) -> dict:
    """An approximate replay buffer from the sequence of training snapshots (when the buffer is too big
    to ship): segment ``j`` is ``rows`` steps of the snapshot ``file`` (uniform actions when ``file`` is
    None) rolled out with seed ``seed + 100 + j``; each segment's cut-off last episode ends with a
    timeout. The real buffer changes policy every 1000 steps; this one every segment (10,000 steps).
    ``progress(rows)`` is called with the rows collected so far.
    """
    parts: list[dict[str, np.ndarray]] = []
    done = 0
    for j, seg in enumerate(segments):
        params = None if seg["file"] is None else load_snapshot(bundled_dir() / seg["file"])[0]
        report = None if progress is None else (lambda rows, done=done: progress(done + rows))
        part = rollout(env, params, int(seg["rows"]), seed + 100 + j, num_envs, progress=report)
        parts.append(replay_until(part, int(seg["rows"])))
        done += int(seg["rows"])
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


def _builder(env: str, level: str):
    def build(path: Path) -> None:
        build_level(env, level, path)

    return build


def _describe(env: str, level: str, m: dict[str, Any]) -> str:
    n = m["level_steps"]
    if level == "random":
        return f"{env} uniform-random actions, {n:,} steps (bundled)"
    if level == "medium-replay":
        return (f"{env} SAC replay buffer up to the medium snapshot (step {m['medium']['step']:,}), "
                f"{m['medium-replay']['rows']:,} steps (bundled)")
    if level == "medium-expert":
        return f"{env} medium then expert rollouts, up to {2 * n:,} steps (bundled)"
    s = m[level]
    return f"{env} SAC snapshot at step {s['step']:,} (return {s['return_mean']:.0f}), {n:,} steps (bundled)"


GENERATOR_VERSION = 1
"""Bump when the regeneration code changes its output, so cached files are rebuilt."""


def _fingerprint(env: str, level: str, m: dict[str, Any]) -> str:
    """A short hash of what a level's contents depend on: the env's manifest entry (snapshot files,
    returns, sizes, seeds) and :data:`GENERATOR_VERSION`."""
    text = json.dumps({"env": env, "level": level, "manifest": m, "version": GENERATOR_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()[:10]


def register_all() -> None:
    """Register every level of every environment in the manifest."""
    for env, m in manifest().items():
        if not isinstance(m, dict) or "gym_id" not in m:
            continue
        lo, hi = LOCOMOTION_REF_SCORES[env]
        for level in BUNDLED_LEVELS:
            register_generated(GeneratedSpec(
                name=f"{env}-{level}-v0", env_id=env, description=_describe(env, level, m),
                build=_builder(env, level), ref_min_score=lo, ref_max_score=hi, max_episode_steps=1000,
                kind="bundled", fingerprint=_fingerprint(env, level, m),
            ))


register_all()
