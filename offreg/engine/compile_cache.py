"""Compiled training programs kept on disk, so a second run, a resume and every leaderboard job skip
the compilation the first one paid for.

:func:`offreg.train` turns on JAX's persistent compilation cache (``jax_compilation_cache_dir``) in
``<OFFREG_DATA_DIR>/compile_cache``; ``$OFFREG_COMPILE_CACHE`` names another folder, or ``off`` turns it
off. A cache the user already configured for JAX is left as it is. JAX keys every entry by the
program, the compiler options, the device and the jax/jaxlib versions, so a stale entry is never
used; it caches only programs that took at least a second to compile, and offreg caps the folder at
:data:`MAX_BYTES` (least recently used entries go first).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import jax

from offreg.data.catalogue import offreg_data_dir

MAX_BYTES = 2 * 2**30
"""Largest size of the cache folder offreg sets up."""


def enable_compile_cache() -> Path | None:
    """Turn on JAX's persistent compilation cache for this process; the folder, or None where it is off
    (``OFFREG_COMPILE_CACHE=off``, or a folder that could not be made: then a one-line note). A folder
    the user already set for JAX is kept (and returned). Nothing is created here: JAX makes the folder
    at the first compilation, so a run that stops at a bad input leaves none behind."""
    setting = os.environ.get("OFFREG_COMPILE_CACHE", "").strip()
    if setting.lower() == "off":
        return None
    if jax.config.jax_compilation_cache_dir:
        return Path(jax.config.jax_compilation_cache_dir)
    path = Path(setting).expanduser() if setting else offreg_data_dir() / "compile_cache"
    problem = _unusable(path)
    if problem:  # a file there, no permission: train without the cache, and say why
        print(f"note: cannot keep compiled programs in {path} ({problem}); set OFFREG_COMPILE_CACHE to a "
              "writable folder, or to off", file=sys.stderr)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    try:  # JAX enforces the size cap with file locks
        import filelock  # noqa: F401
    except ImportError:  # (a dependency of offreg; without it the folder is not capped)
        return path
    jax.config.update("jax_compilation_cache_max_size", MAX_BYTES)
    return path


def _unusable(path: Path) -> str | None:
    """Why ``path`` cannot be (or become) a writable folder, or None; looks only, creates nothing."""
    existing = path.absolute()
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        return f"{existing} is not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return f"{existing} is not writable"
    return None
