"""The catalogue of named datasets and the rules that turn a user's string into a source.

Names (see ``docs/datasets.md``):

- D4RL's own names: ``hopper-medium-v2``, ``antmaze-umaze-v2`` (``d4rl/hopper-medium-v2`` also works);
- ``minari/<minari id>``: a Minari dataset under ``$MINARI_DATASETS_PATH`` (default ``~/.minari/datasets``);
  the bare ``<minari id>`` too, when it is there (or in :data:`MINARI_CATALOGUE`) and names nothing else;
- ``offreg/<name>``: a dataset offreg generates itself (:mod:`offreg.data.generated`);
- a path ending in ``.hdf5``, ``.h5`` or ``.npz``: that file.

The D4RL table (URLs, reference scores, time limits, row counts) is copied from D4RL's
``infos.py``/``__init__.py`` (``Farama-Foundation/D4RL``) and the row counts of its files (below).
"""

from __future__ import annotations

import dataclasses
import os
import re
from pathlib import Path

from offreg.data.generated import generated_specs
from offreg.errors import DatasetError, unknown_name

D4RL_BASE_URL = "http://rail.eecs.berkeley.edu/datasets/offline_rl/"
"""Where D4RL serves its files; ``$OFFREG_D4RL_BASE_URL`` overrides it (a mirror, or a test server)."""

FILE_SUFFIXES = (".hdf5", ".h5", ".npz")

ENV_DIMS: dict[str, tuple[int, int]] = {
    "hopper": (11, 3),
    "halfcheetah": (17, 6),
    "walker2d": (17, 6),
    "ant": (111, 8),
    "antmaze": (29, 8),
    "antmaze-umaze": (29, 8),
    "antmaze-medium": (29, 8),
    "antmaze-large": (29, 8),
}
"""(observation dim, action dim) of each environment the D4RL data was collected in (``antmaze``: any maze)."""

ENV_ACTION_BOUNDS: dict[str, tuple[float, float]] = {
    "hopper": (-1.0, 1.0),
    "halfcheetah": (-1.0, 1.0),
    "walker2d": (-1.0, 1.0),
    "ant": (-1.0, 1.0),
    "antmaze-umaze": (-1.0, 1.0),
    "antmaze-medium": (-1.0, 1.0),
    "antmaze-large": (-1.0, 1.0),
}
"""Action space ``Box(low, high)`` of each offreg environment that evaluates D4RL data (the Gymnasium
environments of :mod:`offreg.envs.mujoco` and :mod:`offreg.envs.antmaze`, which
``tests/test_data_loader.py`` builds to check this table). AntMaze's ``[-1, 1]`` is D4RL's
``NormalizedBoxEnv`` view of the ant's [-30, 30] motor controls."""


def antmaze_env_id(name: str) -> str:
    """The offreg environment of a D4RL AntMaze dataset: its maze (``antmaze-medium-play-v2`` -> ``antmaze-medium``).

    umaze and umaze-diverse share D4RL's ``U_MAZE_TEST``, medium-* ``BIG_MAZE_TEST``, large-*
    ``HARDEST_MAZE_TEST``; v0, v1 and v2 share the maze (see :mod:`offreg.envs.antmaze`).
    """
    return "antmaze-" + name.removeprefix("antmaze-").split("-")[0]


def antmaze_max_episode_steps(env_id: str) -> int:
    """D4RL's time limit of an AntMaze maze: 700 steps for ``antmaze-umaze``, 1000 otherwise."""
    return 700 if env_id == "antmaze-umaze" else 1000

LOCOMOTION_REF_SCORES: dict[str, tuple[float, float]] = {
    "halfcheetah": (-280.178953, 12135.0),
    "hopper": (-20.272305, 3234.3),
    "walker2d": (1.629008, 4592.3),
    "ant": (-325.6, 3879.7),
}
"""D4RL ``REF_MIN_SCORE``/``REF_MAX_SCORE`` per locomotion environment (shared by all its datasets)."""

LOCOMOTION_KINDS = ("random", "medium", "medium-replay", "medium-expert", "expert", "full-replay")

_LOCOMOTION_ROWS: dict[str, int] = {
    "halfcheetah-random-v2": 1_000_000,
    "halfcheetah-medium-v2": 1_000_000,
    "halfcheetah-expert-v2": 1_000_000,
    "halfcheetah-medium-replay-v2": 202_000,
    "halfcheetah-medium-expert-v2": 2_000_000,
    "hopper-random-v2": 1_000_000,
    "hopper-medium-v2": 1_000_000,
    "hopper-expert-v2": 1_000_000,
    "hopper-medium-replay-v2": 402_000,
    "hopper-medium-expert-v2": 1_999_906,
    "walker2d-random-v2": 1_000_000,
    "walker2d-medium-v2": 1_000_000,
    "walker2d-expert-v2": 1_000_000,
    "walker2d-medium-replay-v2": 302_000,
    "walker2d-medium-expert-v2": 1_999_995,
}
"""Rows N of each file, derived from a third-party ``qlearning_dataset`` probe
(``WillDudley/d4rl-to-minari:dataset_probing_output.csv``: N = its size + dropped timeout rows + 2).
Unknown (absent) for ant and for every full-replay dataset."""

_ANTMAZE_FILES: dict[str, str] = {
    "antmaze-umaze-v0": "ant_maze_new/Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse.hdf5",
    "antmaze-umaze-diverse-v0": "ant_maze_new/Ant_maze_u-maze_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-medium-play-v0": "ant_maze_new/Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse.hdf5",
    "antmaze-medium-diverse-v0": "ant_maze_new/Ant_maze_big-maze_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-large-play-v0": "ant_maze_new/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse.hdf5",
    "antmaze-large-diverse-v0": "ant_maze_new/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-umaze-v1": "ant_maze_v1/Ant_maze_umaze_noisy_multistart_False_multigoal_False_sparse.hdf5",
    "antmaze-umaze-diverse-v1": "ant_maze_v1/Ant_maze_umaze_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-medium-play-v1": "ant_maze_v1/Ant_maze_medium_noisy_multistart_True_multigoal_False_sparse.hdf5",
    "antmaze-medium-diverse-v1": "ant_maze_v1/Ant_maze_medium_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-large-play-v1": "ant_maze_v1/Ant_maze_large_noisy_multistart_True_multigoal_False_sparse.hdf5",
    "antmaze-large-diverse-v1": "ant_maze_v1/Ant_maze_large_noisy_multistart_True_multigoal_True_sparse.hdf5",
    "antmaze-umaze-v2": "ant_maze_v2/Ant_maze_u-maze_noisy_multistart_False_multigoal_False_sparse_fixed.hdf5",
    "antmaze-umaze-diverse-v2": "ant_maze_v2/Ant_maze_u-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
    "antmaze-medium-play-v2": "ant_maze_v2/Ant_maze_big-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    "antmaze-medium-diverse-v2": "ant_maze_v2/Ant_maze_big-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
    "antmaze-large-play-v2":
        "ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_False_sparse_fixed.hdf5",
    "antmaze-large-diverse-v2":
        "ant_maze_v2/Ant_maze_hardest-maze_noisy_multistart_True_multigoal_True_sparse_fixed.hdf5",
}


# --- Adroit (D4RL's hand_dapg datasets) ---------------------------------------------------------
ADROIT_TASKS = ("door", "pen", "hammer", "relocate")
ADROIT_KINDS = ("human", "cloned", "expert")

ADROIT_DIMS: dict[str, tuple[int, int]] = {"door": (39, 28), "pen": (45, 24), "hammer": (46, 26), "relocate": (39, 30)}
"""(observation dim, action dim) of D4RL's ``DoorEnvV0``, ``PenEnvV0``, ``HammerEnvV0``, ``RelocateEnvV0``."""

ADROIT_REF_SCORES: dict[str, tuple[float, float]] = {
    "door": (-56.512833, 2880.5693087298737),
    "pen": (96.262799, 3076.8331017826877),
    "hammer": (-274.856578, 12794.134825156867),
    "relocate": (-6.425911, 4233.877797728884),
}
"""D4RL ``REF_MIN_SCORE``/``REF_MAX_SCORE`` per Adroit task, shared by human/cloned/expert and by v0 and v1
(``infos.py`` sets every ``<task>-<kind>-v1`` to ``<task>-human-v0``'s scores)."""

ADROIT_MAX_EPISODE_STEPS: dict[str, int] = {"door": 200, "pen": 100, "hammer": 200, "relocate": 200}
"""D4RL's time limits (``hand_manipulation_suite/__init__.py``)."""

_ADROIT_V0_FILES = {
    "human": "hand_dapg/{task}-v0_demos_clipped.hdf5",
    "cloned": "hand_dapg/{task}-demos-v0-bc-combined.hdf5",
    "expert": "hand_dapg/{task}-v0_expert_clipped.hdf5",
}
"""v0 files (``infos.py``). The v1 files, ``hand_dapg_v1/<task>-<kind>-v1.hdf5``, were collected again in the
same ``*EnvV0`` classes, with ``timeouts``, ``infos/*`` environment states and (expert) policy metadata; cloned-v1
is half rollouts of a behaviour-cloned policy and half the human demonstrations, tiled
(``scripts/generation/hand_dapg_*.py``)."""

ENV_DIMS.update(ADROIT_DIMS)
ENV_ACTION_BOUNDS.update({task: (-1.0, 1.0) for task in ADROIT_TASKS})  # offreg.envs.adroit's Box(-1, 1)


@dataclasses.dataclass(frozen=True)
class CatalogueEntry:
    """One downloadable D4RL dataset.

    Attributes:
      name: D4RL's name (``hopper-medium-v2``).
      path: the file's path under the base URL; its basename is the file name in the cache.
      env: environment name for the dims table (:data:`ENV_DIMS`): ``hopper``, ..., ``antmaze``.
      env_id: the offreg environment used for evaluation (AntMaze: its maze, :func:`antmaze_env_id`).
      ref_min_score: D4RL ``REF_MIN_SCORE`` (normalized score 0).
      ref_max_score: D4RL ``REF_MAX_SCORE`` (normalized score 100).
      max_episode_steps: the registered time limit.
      rows: rows N of the file where known, else ``None``.
      sha256: hex digest of the file where known (D4RL publishes none), else ``None``.
      size_bytes: file size where known, else ``None``.
    """

    name: str
    path: str
    env: str
    env_id: str | None
    ref_min_score: float
    ref_max_score: float
    max_episode_steps: int = 1000
    rows: int | None = None
    sha256: str | None = None
    size_bytes: int | None = None

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]

    @property
    def obs_dim(self) -> int:
        return ENV_DIMS[self.env][0]

    @property
    def act_dim(self) -> int:
        return ENV_DIMS[self.env][1]

    def url(self, base_url: str | None = None) -> str:
        """The download URL: ``base_url`` (or ``$OFFREG_D4RL_BASE_URL``, or D4RL's) + ``path``."""
        base = base_url or os.environ.get("OFFREG_D4RL_BASE_URL") or D4RL_BASE_URL
        return base.rstrip("/") + "/" + self.path


def _build() -> dict[str, CatalogueEntry]:
    out: dict[str, CatalogueEntry] = {}
    for env, (lo, hi) in LOCOMOTION_REF_SCORES.items():
        for kind in LOCOMOTION_KINDS:
            name = f"{env}-{kind}-v2"
            path = f"gym_mujoco_v2/{env}_{kind.replace('-', '_')}-v2.hdf5"
            out[name] = CatalogueEntry(name, path, env, env, lo, hi, 1000, _LOCOMOTION_ROWS.get(name))
    for name, path in _ANTMAZE_FILES.items():
        env_id = antmaze_env_id(name)
        out[name] = CatalogueEntry(name, path, "antmaze", env_id, 0.0, 1.0, antmaze_max_episode_steps(env_id))
    for task, (lo, hi) in ADROIT_REF_SCORES.items():
        for kind in ADROIT_KINDS:
            steps = ADROIT_MAX_EPISODE_STEPS[task]
            for version, path in (("v0", _ADROIT_V0_FILES[kind]), ("v1", f"hand_dapg_v1/{task}-{kind}-v1.hdf5")):
                name = f"{task}-{kind}-{version}"
                out[name] = CatalogueEntry(name, path.format(task=task), task, task, lo, hi, steps)
    return out


CATALOGUE: dict[str, CatalogueEntry] = _build()
"""Every D4RL dataset offreg knows by name."""

_MINARI_MAZES = {"umaze": "UMaze", "medium": "Medium", "large": "Large"}

MINARI_CATALOGUE: dict[str, str] = {
    **{f"D4RL/antmaze/{maze}-v1": f"AntMaze_{_MINARI_MAZES[maze.split('-')[0]]}"
       for maze in ("umaze", "umaze-diverse", "medium-play", "medium-diverse", "large-play", "large-diverse")},
    **{f"D4RL/{task}/{kind}-v2": f"AdroitHand{task.capitalize()}"
       for task in ("door", "pen", "hammer", "relocate") for kind in ("human", "cloned", "expert")},
}
"""Minari's D4RL datasets regenerated on Gymnasium-Robotics (``minari download <id>`` fetches them from
Minari's remote): id -> environment family. Each is evaluated in the environment its metadata records
(:mod:`offreg.envs.recorded`), whose exact id and arguments come from the downloaded dataset."""


# --- directories --------------------------------------------------------------------------------
def d4rl_cache_dir() -> Path:
    """``$D4RL_DATASET_DIR`` or ``~/.d4rl/datasets`` (D4RL's own cache, so files are shared with it)."""
    return Path(os.environ.get("D4RL_DATASET_DIR") or Path.home() / ".d4rl" / "datasets").expanduser()


def offreg_data_dir() -> Path:
    """``$OFFREG_DATA_DIR`` or ``~/.offreg/datasets``: where ``offreg/<name>`` datasets are cached."""
    return Path(os.environ.get("OFFREG_DATA_DIR") or Path.home() / ".offreg" / "datasets").expanduser()


def minari_root() -> Path:
    """``$MINARI_DATASETS_PATH`` or ``~/.minari/datasets`` (Minari's own rule)."""
    return Path(os.environ.get("MINARI_DATASETS_PATH") or Path.home() / ".minari" / "datasets").expanduser()


# --- name resolution ----------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class Resolved:
    """What a user's dataset string refers to.

    Attributes:
      kind: ``d4rl``, ``minari``, ``offreg`` or ``file``.
      name: the canonical name (D4RL name, ``minari/<id>``, ``offreg/<name>``) or the file path.
      key: the catalogue key (D4RL name, Minari id, generated name) or the path.
      entry: the catalogue entry of a D4RL name, else ``None``.
    """

    kind: str
    name: str
    key: str
    entry: CatalogueEntry | None = None


_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*(/[A-Za-z0-9][A-Za-z0-9_.\-]*)*$")


def _escapes(name: str) -> bool:
    parts = name.replace("\\", "/").split("/")
    return name.startswith(("/", "~")) or any(p in (".", "..") for p in parts)


def check_safe_name(name: str, root: Path, what: str = "dataset name") -> Path:
    """Return ``root / name`` after checking that ``name`` cannot escape ``root``.

    Raises:
      DatasetError: ``name`` is absolute, contains ``..`` or characters outside ``[A-Za-z0-9_.-/]``.
    """
    if _escapes(name) or not (root / name).resolve().is_relative_to(root.resolve()):
        raise DatasetError(
            f"{what} {name!r} would escape the cache directory {root}; "
            "use a name from `offreg datasets list` or a path to a .hdf5/.h5/.npz file"
        )
    if not _SAFE_NAME.match(name) or "" in name.split("/"):
        raise DatasetError(
            f"{what} {name!r} is not a valid name (letters, digits and _ . - / only); "
            "use a name from `offreg datasets list`"
        )
    return root / name


def is_file_path(name_or_path: str | os.PathLike) -> bool:
    """Whether the string names a local file (a recognised suffix), not a catalogue name."""
    return str(name_or_path).lower().endswith(FILE_SUFFIXES)


_EXTENSION = re.compile(r"\.[A-Za-z][A-Za-z0-9]*$")


def check_dataset_file(path: str | os.PathLike) -> Path:
    """Return ``path`` if it is a dataset file offreg can open, else say what is wrong with it.

    Raises:
      DatasetError: ``path`` is a directory, ends in something other than ``.hdf5``/``.h5``/``.npz``,
        does not exist, or cannot be read (permission denied, ...).
    """
    p = Path(path).expanduser()
    if p.is_dir():
        raise DatasetError(f"dataset path {os.fspath(path)!r} is a directory; give a D4RL .hdf5/.h5 (or .npz) file")
    if not is_file_path(p):
        kind = p.suffix if _EXTENSION.search(p.name) else "(no extension)"
        raise DatasetError(
            f"unsupported file type {kind} ({os.fspath(path)!r}): offreg reads D4RL .hdf5/.h5 files (or .npz with "
            "the same keys); convert it, or give a name from `offreg datasets list`"
        )
    if not p.is_file():
        raise DatasetError(f"dataset file {p} does not exist; check the path")
    try:
        with open(p, "rb"):
            pass
    except PermissionError:
        raise DatasetError(f"cannot read dataset file {p}: permission denied; fix its permissions") from None
    except OSError as e:
        raise DatasetError(f"cannot read dataset file {p}: {e.strerror or e}") from None
    return p


def resolve(name_or_path: str | os.PathLike) -> Resolved:
    """Classify a dataset string: D4RL name, ``minari/<id>``, ``offreg/<name>`` or a file path.

    Raises:
      UnknownNameError: an unknown D4RL or ``offreg/`` name (the closest names are suggested).
      DatasetError: a name that tries to leave the cache directory; a directory, or a file that is
        not ``.hdf5``/``.h5``/``.npz``.
    """
    s = os.fspath(name_or_path)
    if is_file_path(s):
        return Resolved("file", s, s)
    if s.startswith("minari/"):
        key = s[len("minari/"):]
        check_safe_name(key, minari_root(), "Minari dataset id")
        return Resolved("minari", s, key)
    if s.startswith("offreg/"):
        key = s[len("offreg/"):]
        check_safe_name(key, offreg_data_dir())
        specs = generated_specs()
        if key not in specs:
            raise unknown_name("dataset", s, [f"offreg/{k}" for k in specs], "List them with `offreg datasets list`.")
        return Resolved("offreg", s, key)
    key = s[len("d4rl/"):] if s.startswith("d4rl/") else s
    if _is_minari_id(s):
        if key in CATALOGUE:
            raise DatasetError(
                f"dataset name {s!r} is ambiguous: D4RL's {key!r} and the Minari dataset 'minari/{s}' under "
                f"{minari_root()}; write 'd4rl/{key}' or 'minari/{s}'"
            )
        return Resolved("minari", f"minari/{s}", s)
    if key not in CATALOGUE:
        if not s.startswith("d4rl/") and (_EXTENSION.search(s) or os.path.exists(os.path.expanduser(s))):
            check_dataset_file(s)  # a directory, or a file of another type: say so
        if _escapes(key):
            check_safe_name(key, d4rl_cache_dir())
        known = list(CATALOGUE)
        if not s.startswith("d4rl/"):
            known += [f"offreg/{k}" for k in generated_specs()] + [f"minari/{k}" for k in MINARI_CATALOGUE]
        raise unknown_name(
            "dataset", s, known,
            "List names with `offreg datasets list`; a local file must end in .hdf5, .h5 or .npz.",
        )
    return Resolved("d4rl", key, key, CATALOGUE[key])


def _is_minari_id(s: str) -> bool:
    """Whether a bare string is a Minari id: one of :data:`MINARI_CATALOGUE`, or a dataset under :func:`minari_root`."""
    if s in MINARI_CATALOGUE:
        return True
    if _escapes(s) or not _SAFE_NAME.match(s):
        return False
    return (minari_root() / s / "data" / "metadata.json").is_file()


def entry_for_file(path: str | os.PathLike) -> CatalogueEntry | None:
    """The catalogue entry whose cache file name equals ``path``'s basename, if any."""
    base = Path(path).name
    for entry in CATALOGUE.values():
        if entry.filename == base:
            return entry
    return None
