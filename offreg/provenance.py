"""Provenance: the versions that decide a result's numbers, written beside every result."""

from __future__ import annotations

import platform
from importlib import metadata

import jax


def versions() -> dict[str, str]:
    """Versions of Python, offreg and the libraries that decide the numbers, plus the JAX backend."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    for pkg in ("offreg", "jax", "jaxlib", "flax", "optax", "numpy", "gymnasium", "mujoco"):
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            continue
    out["backend"] = jax.default_backend()
    out["devices"] = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return out
