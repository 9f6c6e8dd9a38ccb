"""Atomic file writes: a temporary file beside the destination, then ``os.replace``.

Either the old content or the complete new content is at the destination afterwards, never a
half-written file; the temporary file is removed on failure. Only a process killed outright
(``kill -9``, power loss) leaves one behind, named ``.<name>.<random><suffix>``;
:func:`remove_temporaries` deletes those of a folder when the owner (e.g. a resumed run) comes back.
Every file offreg writes for keeps (checkpoints, datasets, results, figures) goes through here.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def atomic_write(path: str | os.PathLike, write: Callable[[Path], None], suffix: str = ".tmp") -> Path:
    """Call ``write(tmp)`` to fill a temporary file beside ``path``, then rename it to ``path``.

    Args:
      path: the destination; its directory is created if missing.
      write: fills the file at the given path (opening it itself: h5py, matplotlib, ...). It may
        raise to abandon the write (e.g. after validating what it wrote); the error propagates.
      suffix: the temporary name's ending (some writers choose a format by it, e.g. ``.png``).

    Returns:
      ``path`` as a :class:`Path`. The new file gets the usual permissions (``0o666`` less the umask).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        write(Path(tmp))
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    """:func:`atomic_write` of ``data``, flushed to disk before the rename."""

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())

    return atomic_write(path, write)


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """:func:`atomic_write_bytes` for UTF-8 text."""
    return atomic_write_bytes(path, text.encode("utf-8"))


def remove_temporaries(directory: str | os.PathLike, name_glob: str = "*", suffix: str = ".tmp") -> list[Path]:
    """Delete the temporary files :func:`atomic_write` left in ``directory`` for ``name_glob`` destinations.

    Call it only where no other process writes the same destinations (a run directory being resumed).

    Returns:
      The paths removed.
    """
    removed = []
    for tmp in Path(directory).glob(f".{name_glob}.*{suffix}"):
        tmp.unlink(missing_ok=True)
        removed.append(tmp)
    return removed
