"""Datasets offreg builds itself (``offreg/<name>``): bundled-snapshot rollouts, R2PVI's
environments, and any other generator. A generator writes a D4RL-format HDF5 file; the loader
caches it and reads it through the same D4RL reader as every other file.

Providers register in their own modules; :data:`PROVIDERS` lists the modules imported on the first
lookup, so that importing ``offreg.data`` stays cheap and free of side effects.
"""

from __future__ import annotations

import dataclasses
import importlib
from collections.abc import Callable
from pathlib import Path

PROVIDERS: list[str] = ["offreg.data.generate.r2pvi", "offreg.data.generate.bundled"]
"""Modules that call :func:`register_generated` when imported (appended to by each provider)."""


@dataclasses.dataclass(frozen=True)
class GeneratedSpec:
    """A dataset that offreg can generate on demand.

    Attributes:
      name: the name after ``offreg/`` (``hopper-medium-v0``, ``linear-mdp-v0``).
      env_id: the offreg environment name used for evaluation (a key of ``offreg.envs``), or None.
      description: one line for ``offreg datasets list``.
      build: ``build(path)`` writes the D4RL-format HDF5 file at ``path`` (the loader writes to a
        temporary name and renames it when ``build`` returns, so ``build`` need not be atomic).
        It must be deterministic: the same file contents on every call.
      ref_min_score: normalized-score 0 return, or None.
      ref_max_score: normalized-score 100 return, or None.
      max_episode_steps: the environment's time limit.
      kind: ``bundled`` (regenerated from files shipped with offreg) or ``generated``.
      fingerprint: a short string that changes whenever the generated contents would change (e.g. a
        hash of the shipped snapshots). It is part of the cache file name, so a cache written from
        older bundled files is never reused after an upgrade.
    """

    name: str
    env_id: str | None
    description: str
    build: Callable[[Path], None]
    ref_min_score: float | None = None
    ref_max_score: float | None = None
    max_episode_steps: int = 1000
    kind: str = "generated"
    fingerprint: str = ""


_GENERATED: dict[str, GeneratedSpec] = {}


def register_generated(spec: GeneratedSpec) -> GeneratedSpec:
    """Register ``spec`` under ``offreg/<spec.name>`` (re-registering a name replaces it)."""
    _GENERATED[spec.name] = spec
    return spec


def generated_specs() -> dict[str, GeneratedSpec]:
    """Every registered generated dataset, by the name after ``offreg/``."""
    for module in list(PROVIDERS):
        importlib.import_module(module)
    return dict(_GENERATED)
