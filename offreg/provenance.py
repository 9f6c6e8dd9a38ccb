"""Provenance: the versions and the machine that decide a result's numbers, written beside every result.

The one place offreg asks for them. Keys are the distribution names (``jax``, ``mujoco``, ...);
the only other spelling is :func:`dataset_versions`, the ``<name>_version`` keys that every
offreg-generated D4RL file has carried in its ``metadata/`` since offreg 0.1.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

LIBRARIES = ("offreg", "jax", "jaxlib", "flax", "optax", "numpy", "gymnasium", "mujoco")
"""The distributions whose versions :func:`versions` reports by default."""
SIMULATOR = ("gymnasium", "mujoco")
"""The distributions that decide the environments' dynamics."""
NOT_INSTALLED = "not installed"


def package_versions(packages: Sequence[str]) -> dict[str, str]:
    """``{name: version}`` of installed distributions, ``"not installed"`` for a missing one."""
    out = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = NOT_INSTALLED
    return out


def versions(packages: Sequence[str] = LIBRARIES) -> dict[str, str]:
    """Versions of Python and of ``packages`` (those installed), the platform and the JAX backend and devices."""
    out = {"python": platform.python_version(), "platform": platform.platform()}
    out.update({k: v for k, v in package_versions(packages).items() if v != NOT_INSTALLED})
    out["backend"] = jax.default_backend()
    out["devices"] = ", ".join(sorted({d.device_kind for d in jax.devices()}))
    return out


def simulator_versions() -> dict[str, str]:
    """``{"gymnasium": ..., "mujoco": ...}``: the simulator stack reported next to every score."""
    return package_versions(SIMULATOR)


def dataset_versions() -> dict[str, str]:
    """The versions written into an offreg-generated dataset's ``metadata/``, in that file format's spelling.

    ``mujoco_version``, ``gymnasium_version`` and ``offreg_version`` (``"unknown"`` if offreg is not installed
    as a distribution), in this order; files written since offreg 0.1 carry exactly these keys.
    """
    v = package_versions(("mujoco", "gymnasium", "offreg"))
    offreg_version = "unknown" if v["offreg"] == NOT_INSTALLED else v["offreg"]
    return {"mujoco_version": v["mujoco"], "gymnasium_version": v["gymnasium"], "offreg_version": offreg_version}


def hardware() -> dict[str, Any]:
    """The machine a job ran on: CPU model, logical cores, memory (GiB), JAX backend and accelerators."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = None
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (ValueError, OSError, AttributeError):
        pass
    out: dict[str, Any] = {
        "host": platform.node(), "cpu": cpu, "cpu_count": os.cpu_count(),
        "memory_gib": None if mem is None else round(mem, 1),
    }
    try:
        out["jax_backend"] = jax.default_backend()
        out["accelerators"] = sorted({d.device_kind for d in jax.devices() if d.platform != "cpu"})
    except Exception:  # noqa: BLE001  (hardware description is best effort)
        out["accelerators"] = []
    return out
