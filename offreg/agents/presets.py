"""Per-dataset hyperparameters published by the papers, with their sources.

Each agent may ship ``offreg/configs/<agent>.json`` (also visible as ``experiments/configs/``)::

    {
      "agent": "prdc",                                   # optional, must equal the file's name
      "defaults": {"alpha": 2.5, "beta": 2.0},           # config fields overriding the dataclass defaults
      "sources": {"alpha": "LAMDA-RL/PRDC:utils/config.py", ...},   # where each default comes from
      "datasets": [                                      # applied in order; later matches override earlier
        {"match": "halfcheetah-*", "values": {"alpha": 40.0}, "source": "LAMDA-RL/PRDC:README.md"},
        {"match": ["hopper-*", "walker2d-*"], "values": {...}, "source": "..."},
        {"match": "antmaze-*", "values": {}, "run": {"eval_every": 20000, "eval_episodes": 50}, "source": "..."}
      ],
      "notes": "free text (choices where the papers are silent)"
    }

Values must be field names of the agent's config class (checked, with a suggestion for typos);
JSON lists become tuples. ``match`` is a shell-style glob (or a list of globs) on the dataset name,
case-insensitive, tried against several spellings of the name so a pattern like ``hopper-*``
matches ``hopper-medium-v2``, ``d4rl/hopper-medium-v2``, ``offreg/hopper-medium-v0``,
``mujoco/hopper/medium-v0`` (as ``hopper-medium-v0``), ``D4RL/antmaze/medium-play-v1`` (as
``antmaze-medium-play-v1``), ``/data/hopper-medium-v2.hdf5`` and a D4RL file under its own name
(``/data/hopper_medium-v2.hdf5``, as its catalogue name); a pattern with a ``/`` (``offreg/*``) can
target one source.

Resolution order: the config class's defaults, then ``defaults``, then each matching ``datasets``
entry in file order, then the user's ``overrides``.

An entry's optional ``run`` object sets the run's evaluation protocol for those datasets (the
papers evaluate AntMaze less often, with more episodes): ``eval_every``, ``eval_episodes`` and
``final_eval_episodes`` (the last evaluation's episodes), resolved the same way by
:func:`resolve_run_settings`; the engine's defaults apply where no entry sets one, and a value the
user gives (``offreg train --eval-every``, ``train(eval_every=...)``) always wins.
"""

from __future__ import annotations

import fnmatch
import importlib.resources
import json
import os
from typing import Any

from offreg.agents.base import AgentConfig
from offreg.agents.names import get_spec
from offreg.data.catalogue import entry_for_file
from offreg.errors import ConfigError, unknown_name

_PREFIXES = ("d4rl/", "offreg/", "minari/", "mujoco/", "d4rl-")

RUN_SETTINGS = {"eval_every": 0, "eval_episodes": 1, "final_eval_episodes": 1}
"""The run settings a preset entry's ``run`` may set, with the smallest value each accepts."""


def name_candidates(dataset_name: str) -> list[str]:
    """Spellings of a dataset name that ``match`` globs are tried against (lower case).

    Example: ``D4RL/antmaze/medium-play-v1`` -> ``["d4rl/antmaze/medium-play-v1",
    "antmaze/medium-play-v1", "antmaze-medium-play-v1"]``.
    """
    name = dataset_name.strip().lower()
    out = [name]
    base = os.path.basename(name)
    for ext in (".hdf5", ".h5", ".npz"):
        if base.endswith(ext):  # a file path: its stem, and its catalogue name if it is a D4RL file
            entry = entry_for_file(dataset_name.strip())
            return list(dict.fromkeys([name, base[: -len(ext)], *([entry.name.lower()] if entry else [])]))
    stripped = name
    changed = True
    while changed:
        changed = False
        for p in _PREFIXES:
            if stripped.startswith(p):
                stripped, changed = stripped[len(p):], True
    out += [stripped, stripped.replace("/", "-")]
    return list(dict.fromkeys(out))


def matches(pattern: str | list[str], dataset_name: str) -> bool:
    """Whether a ``match`` glob (or any glob of a list) matches a spelling of ``dataset_name``."""
    patterns = [pattern] if isinstance(pattern, str) else list(pattern)
    cands = name_candidates(dataset_name)
    return any(fnmatch.fnmatchcase(c, p.lower()) for p in patterns for c in cands)


def load_presets(agent_name: str) -> dict[str, Any]:
    """The parsed, validated preset file of an agent (an empty preset if the agent ships none).

    Raises:
      ConfigError: the file is not valid JSON or not of the documented form.
      UnknownNameError: a value names no field of the agent's config.
    """
    spec = get_spec(agent_name)
    res = importlib.resources.files("offreg") / "configs" / f"{agent_name}.json"
    if not res.is_file():
        return {"defaults": {}, "sources": {}, "datasets": []}
    where = f"offreg/configs/{agent_name}.json"
    try:
        data = json.loads(res.read_text())
    except json.JSONDecodeError as e:
        raise ConfigError(f"{where} is not valid JSON ({e}); fix the file") from e
    if not isinstance(data, dict) or not set(data) <= {"agent", "defaults", "sources", "datasets", "notes"}:
        raise ConfigError(f"{where} must be an object with keys defaults, sources, datasets (and agent, notes)")
    if data.get("agent", agent_name) != agent_name:
        raise ConfigError(f"{where} says agent {data['agent']!r}; it must be {agent_name!r}")
    fields = spec.default_config().field_names()
    defaults = data.get("defaults", {})
    datasets = data.get("datasets", [])
    if not isinstance(defaults, dict) or not isinstance(datasets, list):
        raise ConfigError(f"{where}: 'defaults' must be an object and 'datasets' a list")
    entries = [("defaults", defaults)]
    for i, entry in enumerate(datasets):
        if not isinstance(entry, dict) or "match" not in entry or not isinstance(entry.get("values"), dict):
            raise ConfigError(f"{where}: datasets[{i}] must be an object with 'match' and 'values'")
        entries.append((f"datasets[{i}]", entry["values"]))
        _check_run(entry.get("run", {}), f"{where} datasets[{i}]")
    for label, values in entries:
        for k in values:
            if k not in fields:
                raise unknown_name(f"field in {where} {label}:", k, fields, f"Fields of agent {agent_name!r}.")
    return {"defaults": defaults, "sources": data.get("sources", {}), "datasets": datasets}


def _check_run(run: Any, where: str) -> None:
    if not isinstance(run, dict):
        raise ConfigError(f"{where}: 'run' must be an object of run settings ({', '.join(RUN_SETTINGS)})")
    for k, v in run.items():
        if k not in RUN_SETTINGS:
            raise unknown_name(f"run setting in {where}:", k, list(RUN_SETTINGS), "")
        if isinstance(v, bool) or not isinstance(v, int) or v < RUN_SETTINGS[k]:
            raise ConfigError(f"{where}: run setting {k} must be an integer >= {RUN_SETTINGS[k]}, got {v!r}")


def resolve_run_settings(agent_name: str, dataset_name: str | None) -> tuple[dict[str, int], dict[str, str]]:
    """The run settings (evaluation protocol) the agent's preset sets for a dataset, with their sources.

    Each matching ``datasets`` entry's ``run`` object, in file order (later matches win); settings
    no entry sets are absent, so the caller's defaults apply to them.

    Returns:
      ``(values, sources)``: e.g. ``({"eval_every": 20000, "eval_episodes": 50}, {"eval_every": "...", ...})``.
    """
    return _matching(agent_name, load_presets(agent_name), dataset_name, "run")


def _matching(agent_name: str, presets: dict[str, Any], dataset_name: str | None,
              key: str) -> tuple[dict[str, Any], dict[str, str]]:
    """The ``key`` objects (``values`` or ``run``) of the ``datasets`` entries matching ``dataset_name``,
    merged in file order (later matches win), with each setting's source."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    if dataset_name is None:
        return values, sources
    for entry in presets["datasets"]:
        if entry.get(key) and matches(entry["match"], dataset_name):
            for k, v in entry[key].items():
                values[k] = v
                sources[k] = entry.get("source", f"offreg/configs/{agent_name}.json match {entry['match']!r}")
    return values, sources


def resolve_config_with_sources(
    agent_name: str, dataset_name: str | None, overrides: dict[str, Any] | None = None
) -> tuple[AgentConfig, dict[str, str]]:
    """Like :func:`resolve_config`, also returning where each non-default value came from.

    Returns:
      ``(config, sources)``; ``sources`` maps each field set by the presets or the overrides to
      its source text (``"user override"`` for overrides).
    """
    spec = get_spec(agent_name)
    presets = load_presets(agent_name)
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    where = f"offreg/configs/{agent_name}.json"
    for k, v in presets["defaults"].items():
        values[k] = v
        sources[k] = presets["sources"].get(k, f"{where} defaults")
    matched, matched_sources = _matching(agent_name, presets, dataset_name, "values")
    values.update(matched)
    sources.update(matched_sources)
    for k, v in (overrides or {}).items():
        values[k] = v
        sources[k] = "user override"
    base = spec.default_config()
    return base.replace(**values), sources


def resolve_config(agent_name: str, dataset_name: str | None, overrides: dict[str, Any] | None = None) -> AgentConfig:
    """The agent's config for a dataset: class defaults < file defaults < dataset matches < overrides.

    Args:
      agent_name: a registered agent (``td3bc``, ``prdc``, ...).
      dataset_name: the dataset's name (any spelling, see :func:`name_candidates`), or ``None``
        for the file's defaults only.
      overrides: field -> value given by the user (strings are parsed as in ``AgentConfig.from_dict``).

    Raises:
      UnknownNameError: unknown agent or field.
      ConfigError: a value of the wrong type, or a malformed preset file.
    """
    return resolve_config_with_sources(agent_name, dataset_name, overrides)[0]
