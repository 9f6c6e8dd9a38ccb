"""``load_dataset``: every dataset name or file becomes one :class:`~offreg.data.core.Dataset`.

name or path -> catalogue entry -> cached file (downloaded or generated on demand) -> validated
arrays -> D4RL ``qlearning_dataset`` semantics -> preprocessing -> transitions on the device.
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import os
import sys
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import h5py
import jax
import jax.numpy as jnp
import numpy as np

from offreg.atomic import atomic_write
from offreg.data import d4rl
from offreg.data.catalogue import (
    ADROIT_MAX_EPISODE_STEPS,
    ADROIT_REF_SCORES,
    CATALOGUE,
    ENV_ACTION_BOUNDS,
    ENV_DIMS,
    LOCOMOTION_REF_SCORES,
    MINARI_CATALOGUE,
    CatalogueEntry,
    Resolved,
    antmaze_max_episode_steps,
    check_dataset_file,
    d4rl_cache_dir,
    entry_for_file,
    minari_root,
    offreg_data_dir,
    resolve,
)
from offreg.data.core import Dataset, DatasetInfo, from_arrays
from offreg.data.download import download_file
from offreg.data.generated import GeneratedSpec, generated_specs
from offreg.data.minari_format import (
    env_spec_id,
    local_minari_ids,
    max_episode_steps_of,
    minari_dataset_dir,
    missing_minari,
    read_minari,
    recorded_env,
)
from offreg.envs import RECORDED
from offreg.errors import ConfigError, DatasetError, DownloadError, OffregError, OffregWarning, unknown_name
from offreg.tables import text_table
from offreg.types import Transitions


# --- locating files ------------------------------------------------------------------------------
def d4rl_path(entry: CatalogueEntry) -> Path:
    """Where the cache keeps ``entry``'s file: ``d4rl_cache_dir() / <URL basename>`` (D4RL's rule)."""
    return d4rl_cache_dir() / entry.filename


def generated_path(name: str) -> Path:
    """Where ``offreg/<name>`` is cached: ``offreg_data_dir() / <name>[-<fingerprint>].hdf5``."""
    spec = generated_specs().get(name)
    suffix = f"-{spec.fingerprint}" if spec is not None and spec.fingerprint else ""
    return offreg_data_dir() / f"{name}{suffix}.hdf5"


def _offline_hint(entry: CatalogueEntry, base_url: str | None = None) -> str:
    dest = d4rl_path(entry)
    return (
        f"Without network, download it elsewhere (`offreg datasets download {entry.name}`, or "
        f"`curl -o {entry.filename} {entry.url(base_url)}`) and copy it to {dest} "
        f"(or set D4RL_DATASET_DIR to the folder that holds it)."
    )


def _verify_hdf5(label: str):
    """A light check run on a complete download before it enters the cache."""

    def verify(path: Path) -> None:
        try:
            with h5py.File(path, "r") as f:
                missing = [k for k in d4rl.REQUIRED_KEYS if k not in f]
                lengths = {f[k].shape[0] if f[k].shape else 0 for k in d4rl.REQUIRED_KEYS if k not in missing}
        except OSError as e:
            raise DatasetError(
                f"downloaded file for {label!r} is not a readable HDF5 file ({' '.join(str(e).split())[:120]}); "
                "it was deleted: try the download again"
            ) from None
        if missing:
            raise DatasetError(
                f"downloaded file for {label!r} has no {', '.join(missing)}; it was deleted: check the URL"
            )
        if len(lengths) != 1:
            raise DatasetError(
                f"downloaded file for {label!r} has arrays of different lengths; it was deleted: try again"
            )

    return verify


def download_dataset(
    name: str,
    *,
    base_url: str | None = None,
    sha256: str | None = None,
    force: bool = False,
    progress: bool = True,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
) -> Path:
    """Make sure a named dataset's file is in the cache and return its path.

    D4RL names are downloaded (verified: size, optional SHA-256, HDF5 keys) into
    :func:`~offreg.data.catalogue.d4rl_cache_dir`; ``offreg/<name>`` datasets are generated into
    :func:`~offreg.data.catalogue.offreg_data_dir`; a ``minari/<id>`` dataset that is not under
    ``$MINARI_DATASETS_PATH`` is fetched with minari's own client from Minari's remote (as
    ``minari download <id>``); a file path is returned as is if it exists.

    Args:
      name: a catalogue name, ``minari/<id>``, ``offreg/<name>`` or a file path.
      base_url: download from this base URL instead of D4RL's (default: ``$OFFREG_D4RL_BASE_URL``).
      sha256: expected hex digest (default: the catalogue's, when it has one).
      force: download or generate again even if the file is cached.
      progress: show a progress bar.
      retries, backoff, timeout: see :func:`offreg.data.download.download_file`.

    Raises:
      DownloadError: the download failed (the message says how to get the file by hand).
      DatasetError / UnknownNameError: a bad name or file.
    """
    r = resolve(name)
    if r.kind == "file":
        return check_dataset_file(r.key)
    if r.kind == "minari":
        data_dir = minari_dataset_dir(r.key)
        if force or not (data_dir / "metadata.json").is_file():
            _download_minari(r.key, data_dir, force)
        return data_dir
    if r.kind == "offreg":
        path, _ = _ensure_generated(r.key, force=force)
        return path
    entry = r.entry
    assert entry is not None
    dest = d4rl_path(entry)
    if dest.is_file() and not force:
        return dest
    return download_file(
        entry.url(base_url), dest, sha256=sha256 or entry.sha256, size=entry.size_bytes, retries=retries,
        backoff=backoff, timeout=timeout, progress=progress, verify=_verify_hdf5(entry.name), label=entry.name,
        offline_hint=_offline_hint(entry, base_url), reuse_existing=not force,
    )


def _download_minari(dataset_id: str, data_dir: Path, force: bool) -> None:
    """Fetch a Minari dataset from Minari's remote with minari's own client (``minari download``)."""
    try:
        import minari
    except ImportError:
        raise missing_minari(dataset_id, data_dir) from None
    try:
        minari.download_dataset(dataset_id, force_download=force)
    except Exception as e:  # minari's client raises many kinds (network, unknown id, version)
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise DownloadError(
            f"cannot download Minari dataset {dataset_id!r} ({type(e).__name__}: {first}); run "
            f"`minari download {dataset_id}` where there is network and copy its directory to {data_dir.parent}, "
            "or set MINARI_DATASETS_PATH to the root that holds it"
        ) from None
    if not (data_dir / "metadata.json").is_file():
        raise missing_minari(dataset_id, data_dir)


def _ensure_generated(name: str, force: bool = False) -> tuple[Path, dict[str, Any] | None]:
    """Generate ``offreg/<name>`` into the cache if needed (temp name, validate, rename).

    Returns the path, and the validated raw arrays when they were just generated (else ``None``).
    """
    spec = generated_specs()[name]
    dest = generated_path(name)
    if dest.is_file() and not force:
        return dest, None
    found: dict = {}

    def build(tmp: Path) -> None:
        try:
            spec.build(tmp)
        except OffregError:
            raise
        except Exception as e:
            raise DatasetError(f"generating dataset 'offreg/{name}' failed: {type(e).__name__}: {e}") from e
        found["raw"] = d4rl.read_d4rl_file(tmp, f"offreg/{name}")
        _check_env_dims(found["raw"], f"offreg/{name}", spec.env_id)

    atomic_write(dest, build, suffix=".tmp.hdf5")
    return dest, found["raw"]


def _check_env_dims(raw: dict[str, Any], label: str, env: str | None) -> None:
    if env in ENV_DIMS:
        o, a = ENV_DIMS[env]
        d4rl.check_dims(raw["observations"].shape[1], raw["actions"].shape[1], o, a, label, env)


def _warn_actions_out_of_bounds(actions: np.ndarray, label: str, env_id: str | None) -> None:
    """One warning when rows of ``actions [N, a]`` lie outside ``env_id``'s action space.

    Not an error (an agent's ``max_action`` can be raised, and the file may belong to another
    environment), but a ``max_action * tanh`` policy with ``max_action=1`` cannot output such actions
    and evaluation clips to the bounds, so training on them without a word would mislead.
    """
    if env_id not in ENV_ACTION_BOUNDS or not len(actions):
        return
    low, high = ENV_ACTION_BOUNDS[env_id]
    outside = int(np.count_nonzero(np.any((actions < low) | (actions > high), axis=1)))
    if outside:
        warnings.warn(
            f"dataset {label!r}: {outside} of {len(actions)} rows ({100 * outside / len(actions):.1f}%) have actions "
            f"outside the action bounds [{low:g}, {high:g}] of environment {env_id!r} (min {float(actions.min()):g}, "
            f"max {float(actions.max()):g}); offreg's policies cannot output them (max_action * tanh with max_action=1 "
            f"in BC, TD3+BC, PRDC and A2PR, clipped in O-DICE) and evaluation clips actions to the bounds: "
            f"rescale the actions to [{low:g}, {high:g}], or check that the file belongs to this environment",
            OffregWarning, stacklevel=4,
        )


# --- loading ------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class _Source:
    """What is known about a D4RL-format file before reading it."""

    path: Path
    name: str
    source: str
    env: str | None  # key of ENV_DIMS for the dims check
    env_id: str | None  # offreg environment for evaluation
    ref_min_score: float | None
    ref_max_score: float | None
    max_episode_steps: int
    rows: int | None = None
    extra: dict[str, Any] = dataclasses.field(default_factory=dict)
    generated: str | None = None  # ``offreg/<generated>`` whose cached file this is (derived data)
    fresh: bool = False  # generated by this call


def _locate(r: Resolved, *, download: bool, env: str | None, sha256: str | None, progress: bool) -> _Source:
    if r.kind == "d4rl":
        e = r.entry
        assert e is not None
        path = d4rl_path(e)
        if not path.is_file():
            if not download:
                raise DatasetError(
                    f"dataset {e.name!r} is not cached: {path} is missing. Run `offreg datasets download {e.name}`, "
                    f"or download {e.url()} elsewhere and copy it to {path}."
                )
            download_dataset(e.name, sha256=sha256, progress=progress)
        return _Source(
            path, e.name, "d4rl", e.env, e.env_id, e.ref_min_score, e.ref_max_score, e.max_episode_steps, e.rows,
            {"url": e.url(), "file": str(path)},
        )
    if r.kind == "offreg":
        spec: GeneratedSpec = generated_specs()[r.key]
        path = generated_path(r.key)
        fresh = not path.is_file()
        if fresh:
            path, _ = _ensure_generated(r.key)
        return _Source(
            path, r.name, "offreg", spec.env_id, spec.env_id, spec.ref_min_score, spec.ref_max_score,
            spec.max_episode_steps, None, {"kind": spec.kind, "description": spec.description, "file": str(path)},
            generated=r.key, fresh=fresh,
        )
    path = Path(r.key).expanduser()
    entry = entry_for_file(path)
    if env is not None:
        env_id: str | None = env
        if env == "antmaze":  # any maze: D4RL's file name says which one, else evaluation is off
            env_id = entry.env_id if entry is not None and entry.env == "antmaze" else None
        antmaze = env.startswith("antmaze")
        refs = LOCOMOTION_REF_SCORES.get(env) or ((0.0, 1.0) if antmaze else (None, None))
        steps = entry.max_episode_steps if entry is not None and entry.env == env else 1000
        if antmaze and env_id is not None:
            steps = antmaze_max_episode_steps(env_id)
        if env in ADROIT_REF_SCORES:  # D4RL's Adroit tasks: one set of scores and a time limit per task
            refs, steps = ADROIT_REF_SCORES[env], ADROIT_MAX_EPISODE_STEPS[env]
        return _Source(path, str(path), "file", env, env_id, *refs, steps, None, {"file": str(path)})
    if entry is not None:  # a D4RL file under its own name: same env, scores and time limit
        return _Source(
            path, str(path), "file", entry.env, entry.env_id, entry.ref_min_score, entry.ref_max_score,
            entry.max_episode_steps, entry.rows, {"file": str(path), "catalogue_name": entry.name},
        )
    return _Source(path, str(path), "file", None, None, None, None, 1000, None, {"file": str(path)})


def check_dataset_options(options: Mapping[str, Any]) -> None:
    """Check that ``options`` are keyword arguments of :func:`load_dataset` (before any work is done).

    Raises:
      UnknownNameError: an unknown option, with the closest names.
    """
    known = set(inspect.signature(load_dataset).parameters) - {"name_or_path"}
    for name in options:
        if name not in known:
            raise unknown_name("dataset option", name, known, f"(options of load_dataset: {', '.join(sorted(known))})")


def load_dataset(
    name_or_path: str | os.PathLike,
    *,
    terminate_on_end: bool = False,
    download: bool = True,
    normalize_observations: bool = False,
    obs_norm_eps: float = 1e-3,
    reward_transform: str = "none",
    reward_scale: float | None = None,
    reward_shift: float | None = None,
    env: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
) -> Dataset:
    """Load a dataset by name or path into device-resident transitions.

    Args:
      name_or_path: ``hopper-medium-v2`` (or ``d4rl/hopper-medium-v2``), ``minari/<id>``,
        ``offreg/<name>``, or a path to a ``.hdf5``/``.h5``/``.npz`` file in D4RL's layout.
      terminate_on_end: D4RL's option: keep the timeout rows as transitions instead of dropping them.
      download: download a D4RL file that is not cached (else raise, saying how to get it).
      normalize_observations: standardize observations, ``(s - mean) / (std + obs_norm_eps)``.
      obs_norm_eps: the epsilon added to the std.
      reward_transform: ``none``; ``locomotion`` (``r * 1000 / (max return - min return)``);
        ``antmaze`` (``r * reward_scale + reward_shift``, both required: the papers differ, see
        :meth:`Dataset.transform_rewards`); ``affine``; or any other kind it accepts. Training
        needs none of this: ``offreg train`` applies the agent config's transform (its preset's).
      reward_scale, reward_shift: for ``antmaze`` (required) and ``affine`` (``None``: 1 and 0).
      env: for a local file, the environment it was collected in (``hopper``, ..., ``antmaze``, an
        AntMaze maze ``antmaze-umaze``/``-medium``/``-large``, or an Adroit task ``door``/``pen``/
        ``hammer``/``relocate``): its dims are checked and its reference scores recorded. Files
        named like a D4RL download (``hopper_medium-v2.hdf5``) get their catalogue entry's
        environment automatically; ``antmaze`` evaluates only such a file (its name says the maze).
        A Gymnasium-Robotics ``AntMaze_*`` id is refused (another world).
      sha256: expected SHA-256 of a D4RL file that has to be downloaded.
      progress: show a download progress bar.

    Returns:
      A :class:`Dataset`: ``transitions`` on the device (float32), ``info``, and the complete
      episodes (``episodes()``, ``episode_returns``/``episode_lengths`` in the raw reward scale).
      For D4RL-format files, ``episode_starts[k]:episode_ends[k]`` index episode ``k``'s transitions:
      episodes are split as D4RL's ``sequence_dataset`` splits them (at terminals and timeouts), and
      a timeout-ended episode has ``length - 1`` transitions because ``qlearning_dataset`` drops its
      timeout row (``length`` with ``terminate_on_end``).

    Raises:
      UnknownNameError: an unknown name (the closest names are suggested).
      DatasetError: a missing, corrupt or invalid file, or a name escaping the cache directory.
      DownloadError: the download failed.
      ConfigError: a bad preprocessing option, or ``env`` given for a name that has its own.
      EnvironmentError_: D4RL-format data paired with a Gymnasium-Robotics ``AntMaze_*`` id (another world).

    Long because: the public loader documents each of its eleven options here.
    """
    r = resolve(name_or_path)
    if env is not None and r.kind in ("d4rl", "file"):  # D4RL-format data in Gymnasium-Robotics' AntMaze: refused
        from offreg.envs.antmaze import check_gymnasium_robotics_pairing  # (imports gymnasium: only here)

        entry = r.entry or entry_for_file(Path(r.key))
        check_gymnasium_robotics_pairing(entry.name if entry is not None else r.name, env)
    if env is not None and r.kind != "file":
        known = r.entry.env if r.entry is not None else None
        if known is None or env != known:
            raise ConfigError(
                f"env={env!r} only applies to a local file; {r.name!r} already names its environment "
                f"({known or 'from its own metadata'}): drop the env argument"
            )
    if r.kind == "minari":
        ds = _load_minari(r.key)
    else:
        src = _locate(r, download=download, env=env, sha256=sha256, progress=progress)
        ds = _load_d4rl(src, terminate_on_end=terminate_on_end)
    return preprocess(
        ds, normalize_observations=normalize_observations, obs_norm_eps=obs_norm_eps,
        reward_transform=reward_transform, reward_scale=reward_scale, reward_shift=reward_shift,
    )


def preprocess(
    ds: Dataset,
    *,
    normalize_observations: bool = False,
    obs_norm_eps: float = 1e-3,
    reward_transform: str = "none",
    reward_scale: float | None = None,
    reward_shift: float | None = None,
) -> Dataset:
    """Observation normalization, then a reward transform; both recorded in ``ds.info``.

    ``reward_scale``/``reward_shift`` are passed to :meth:`Dataset.transform_rewards` (``antmaze``
    needs both).
    """
    if normalize_observations:
        ds = ds.normalize_observations(obs_norm_eps)
    if reward_transform != "none":
        ds = ds.transform_rewards(reward_transform, reward_scale, reward_shift)
    return ds


def _read(src: _Source) -> dict[str, Any]:
    """Read ``src``'s file. A cached bundled or generated dataset that cannot be read is derived data:
    it is rebuilt, with a one-line note on stderr, instead of failing (other files raise)."""
    try:
        return d4rl.read_d4rl_file(src.path, src.name)
    except DatasetError as e:
        if src.generated is None or src.fresh:
            raise
        reason = " ".join(str(e).rsplit("; ", 1)[0].split())  # the problem, without the advice to delete
        print(f"note: {reason}; regenerating it", file=sys.stderr)
        _, raw = _ensure_generated(src.generated, force=True)
        return raw


def _load_d4rl(src: _Source, *, terminate_on_end: bool) -> Dataset:
    label = src.name
    raw = _read(src)
    _check_env_dims(raw, label, src.env)
    _warn_actions_out_of_bounds(raw["actions"], label, src.env_id)
    n = raw["rewards"].shape[0]
    if src.rows is not None and n != src.rows:
        warnings.warn(
            f"dataset {label!r} has {n} rows but the catalogue expects {src.rows}; if this is not a "
            f"partial or modified copy, ignore this, else delete {src.path} and download it again",
            OffregWarning, stacklevel=3,
        )
    rows = d4rl.qlearning_rows(raw, terminate_on_end, src.max_episode_steps)
    if len(rows) == 0:
        raise DatasetError(
            f"dataset {label!r} ({src.path}) has no transition left after dropping timeout rows and the last row; "
            "use a larger file or terminate_on_end=True"
        )
    starts, ends = d4rl.episode_bounds(raw, src.max_episode_steps)
    returns = d4rl.episode_returns(raw["rewards"], starts, ends)
    t_start, t_end = d4rl.episodes_in_transitions(rows, starts, ends)
    stats = {
        "rows": int(n),
        "file_terminals": int(np.count_nonzero(raw["terminals"])),
        "file_timeouts": int(np.count_nonzero(raw["timeouts"])) if "timeouts" in raw else None,
        "terminate_on_end": bool(terminate_on_end),
        "metadata": raw["metadata"],
    }
    obs_dim, act_dim = raw["observations"].shape[1], raw["actions"].shape[1]
    info = DatasetInfo(
        name=label, source=src.source, env_id=src.env_id, obs_dim=obs_dim, act_dim=act_dim,
        num_transitions=len(rows), num_episodes=len(returns), ref_min_score=src.ref_min_score,
        ref_max_score=src.ref_max_score, max_episode_steps=src.max_episode_steps, extra={**src.extra, **stats},
    )
    transitions = _qlearning_on_device(raw, rows)
    return Dataset(transitions, info, t_start, returns, ends - starts + 1, t_end)


def _qlearning_on_device(raw: dict[str, Any], rows: np.ndarray) -> Transitions:
    """``qlearning_dataset``'s arrays built on the device, holding at most one host copy of each array.

    ``observations[rows]`` and ``actions[rows]`` are gathered in place into the front of the arrays
    read from the file (:func:`_keep_rows`) and copied to the device once; the host arrays are freed
    as soon as they are copied. ``next_observations`` is made on the device from the kept
    observations: transition ``i``'s next state is transition ``i + 1``'s state wherever their file
    rows follow each other, so only the rows before a dropped timeout row and the last one come
    from the file. Peak memory is about the device arrays plus the file's observations (see
    ``experiments/bench/scale.py``). ``raw`` is emptied. Values equal
    :func:`offreg.data.d4rl.qlearning_dataset`'s (float32 casts commute with the gathers).
    """
    obs = raw.pop("observations")
    breaks = np.flatnonzero(np.diff(rows) != 1)  # transitions whose next file row is no transition
    at = np.append(breaks, len(rows) - 1)
    ends = obs[rows[at] + 1]  # next states that are no kept state: few rows
    observations = jax.device_put(_keep_rows(obs, rows))
    observations.block_until_ready()
    del obs
    out = {"observations": observations, "next_observations": _shifted(observations, jnp.asarray(ends), at)}
    for key in ("actions", "rewards", "terminals"):
        host = _keep_rows(raw.pop(key), rows).astype(np.float32, copy=False)
        out[key] = jax.device_put(host)
        out[key].block_until_ready()
        del host
    raw.clear()
    return Transitions(**out)


def _keep_rows(x: np.ndarray, rows: np.ndarray, chunk: int = 1 << 16) -> np.ndarray:
    """``x[rows]`` for sorted unique ``rows``, gathered in place into ``x[:len(rows)]`` (a view of ``x``).

    Safe because ``rows[i] >= i``: chunk ``[s, e)`` reads rows ``>= rows[s] >= s`` and earlier chunks
    wrote only below ``s``. ``x`` is overwritten; only one chunk is held besides it.
    """
    m = len(rows)
    if m and rows[-1] == m - 1:  # rows == arange(m): nothing dropped before the end
        return x[:m]
    for s in range(0, m, chunk):
        e = min(s + chunk, m)
        x[s:e] = x[rows[s:e]]
    return x[:m]


@jax.jit
def _shifted(observations: jax.Array, ends: jax.Array, at: jax.Array) -> jax.Array:
    """``observations[i + 1]`` for every ``i``, with ``ends`` at the positions ``at`` (one new buffer)."""
    return jnp.concatenate([observations[1:], observations[-1:]]).at[at].set(ends)


def _load_minari(dataset_id: str) -> Dataset:
    data = read_minari(dataset_id)
    meta = data["metadata"]
    label = f"minari/{dataset_id}"
    lo, hi = meta.get("ref_min_score"), meta.get("ref_max_score")
    refs = (float(lo), float(hi)) if lo is not None and hi is not None else (None, None)
    recorded = recorded_env(meta)
    env_id, env_kwargs = recorded if recorded is not None else (None, {})
    steps = (
        env_kwargs.get("spec", {}).get("max_episode_steps") or max_episode_steps_of(meta)
        or int(data["episode_lengths"].max())
    )
    info = DatasetInfo(
        name=label, source="minari", env_id=env_id, obs_dim=data["observations"].shape[1],
        act_dim=data["actions"].shape[1], num_transitions=len(data["rewards"]), ref_min_score=refs[0],
        ref_max_score=refs[1], max_episode_steps=int(steps),
        extra={
            "gymnasium_env_id": env_spec_id(meta), "minari_version": meta.get("minari_version"),
            "file": str(minari_dataset_dir(dataset_id)), "env_kwargs": env_kwargs,
        },
    )
    return from_arrays(
        data["observations"], data["actions"], data["rewards"], data["next_observations"], data["terminals"],
        info, episode_starts=data["episode_starts"], episode_returns=data["episode_returns"],
        episode_lengths=data["episode_lengths"],
    )


# --- listing and summaries ---------------------------------------------------------------------
def catalogue_rows() -> list[dict[str, Any]]:
    """One row per known dataset, for ``offreg datasets list``.

    Keys: ``name``, ``source`` (``d4rl``/``offreg``/``minari``), ``env``, ``status`` (``cached``,
    ``downloadable`` (D4RL's URL, or Minari's remote for :data:`MINARI_CATALOGUE`), ``local``, or for
    offreg's own data not yet built: ``bundled`` (built from files
    shipped with offreg on first use) or ``generated``), ``rows`` (file rows where known, else
    ``None``), ``size_mb`` (of the cached file, else ``None``), ``path`` (where it is or will be).
    """
    out: list[dict[str, Any]] = []
    for e in CATALOGUE.values():
        path = d4rl_path(e)
        cached = path.is_file()
        out.append({
            "name": e.name, "source": "d4rl", "env": e.env, "status": "cached" if cached else "downloadable",
            "rows": e.rows, "size_mb": _size_mb(path) if cached else None, "path": str(path),
        })
    for name, spec in sorted(generated_specs().items()):
        path = generated_path(name)
        out.append({
            "name": f"offreg/{name}", "source": "offreg", "env": spec.env_id,
            "status": "cached" if path.is_file() else spec.kind,
            "rows": None, "size_mb": _size_mb(path) if path.is_file() else None, "path": str(path),
        })
    root = minari_root()
    local = local_minari_ids(root)
    for dataset_id in sorted({*local, *MINARI_CATALOGUE}):
        data_dir = root / dataset_id / "data"
        here = dataset_id in local
        meta = _minari_metadata(data_dir) if here else {}
        recorded = recorded_env(meta)
        env = recorded[0].removeprefix(RECORDED) if recorded else MINARI_CATALOGUE.get(dataset_id)
        out.append({
            "name": f"minari/{dataset_id}", "source": "minari", "env": env,
            "status": "local" if here else "downloadable", "rows": _int_or_none(meta.get("total_steps")),
            "size_mb": _size_mb(data_dir / "main_data.hdf5") if here else None, "path": str(data_dir),
        })
    return out


def _size_mb(path: Path) -> float | None:
    try:
        return round(path.stat().st_size / 2**20, 1)
    except OSError:
        return None


def _minari_metadata(data_dir: Path) -> dict[str, Any]:
    """A local Minari dataset's ``metadata.json``; ``{}`` when unreadable."""
    import json

    try:
        meta = json.loads((data_dir / "metadata.json").read_text())
    except (OSError, ValueError):
        return {}
    return meta if isinstance(meta, dict) else {}


def _int_or_none(v: Any) -> int | None:
    try:
        return None if v is None else int(v)
    except (TypeError, ValueError):
        return None


def dataset_summary(name_or_path: str | os.PathLike, *, download: bool = False) -> dict[str, Any]:
    """What ``offreg datasets info NAME`` shows.

    Loads the dataset when it is available locally (a cached or local file, a generated or local
    Minari dataset; with ``download`` also a D4RL file that is not cached) and reports the file
    size, dims, reference scores, time limit, transition and episode counts and return statistics
    (raw reward scale, complete episodes). For a D4RL name that is not cached and ``download`` is
    false, it reports the catalogue's facts and ``status: downloadable``.

    Returns:
      ``name, source, env, status, path, size_mb, rows, transitions, obs_dim, act_dim,
      ref_min_score, ref_max_score, max_episode_steps, episodes, return_mean, return_std,
      return_min, return_max, terminals, timeouts`` (``None`` where unknown).
    """
    r = resolve(name_or_path)
    out: dict[str, Any] = dict.fromkeys(
        ("name", "source", "env", "status", "path", "size_mb", "rows", "transitions", "obs_dim", "act_dim",
         "ref_min_score", "ref_max_score", "max_episode_steps", "episodes", "return_mean", "return_std",
         "return_min", "return_max", "terminals", "timeouts")
    )
    out["name"], out["source"] = r.name, r.kind
    if r.kind == "d4rl":
        e = r.entry
        assert e is not None
        path = d4rl_path(e)
        out.update(
            env=e.env, path=str(path), rows=e.rows, obs_dim=e.obs_dim, act_dim=e.act_dim,
            ref_min_score=e.ref_min_score, ref_max_score=e.ref_max_score, max_episode_steps=e.max_episode_steps,
            status="cached" if path.is_file() else "downloadable",
        )
        if not path.is_file() and not download:
            return out
    ds = load_dataset(name_or_path, download=download, progress=download)
    info = ds.info
    path = Path(info.extra["file"])
    size = sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size
    status = {"d4rl": "cached", "file": "local", "minari": "local", "offreg": "cached"}.get(r.kind)
    rets = ds.episode_returns
    out.update(
        env=info.env_id if r.kind != "d4rl" else out["env"], status=status, path=str(path),
        size_mb=round(size / 2**20, 1), rows=info.extra.get("rows", info.num_transitions),
        transitions=info.num_transitions, obs_dim=info.obs_dim, act_dim=info.act_dim,
        ref_min_score=info.ref_min_score, ref_max_score=info.ref_max_score,
        max_episode_steps=info.max_episode_steps, episodes=len(rets),
        terminals=info.extra.get("file_terminals", int(np.count_nonzero(np.asarray(ds.transitions.terminals)))),
        timeouts=info.extra.get("file_timeouts"),
    )
    if len(rets):
        out.update(
            return_mean=float(np.mean(rets)), return_std=float(np.std(rets)),
            return_min=float(np.min(rets)), return_max=float(np.max(rets)),
        )
    return out


def format_table(rows: list[dict[str, Any]], columns: list[str] | None = None) -> str:
    """Render dict rows as an aligned text table (``None`` shows as ``-``; floats with 1 decimal)."""
    if not rows:
        return "(none)"
    columns = columns or list(rows[0])
    return text_table([columns, *([_fmt(row.get(c)) for c in columns] for row in rows)])


def format_summary(summary: dict[str, Any]) -> str:
    """Render :func:`dataset_summary`'s dict as ``key: value`` lines."""
    width = max(len(k) for k in summary)
    return "\n".join(f"{k.ljust(width)}  {_fmt(v, digits=3)}" for k, v in summary.items())


def _fmt(v: Any, digits: int = 1) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        if math.isfinite(v) and abs(v) >= 1e6:
            return f"{v:.4g}"
        return f"{v:.{digits}f}"
    if isinstance(v, int) and not isinstance(v, bool) and abs(v) >= 10_000:
        return f"{v:,}"
    return str(v)
