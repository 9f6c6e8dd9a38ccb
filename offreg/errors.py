"""User-facing errors.

Every error a user can cause (a bad file, an unknown name, a bad config value, a failed download)
is raised as a subclass of :class:`OffregError` with a one-line message that names the input, what
was expected and what to do. The CLI prints ``error: <message>`` and exits non-zero. Input that is
accepted but suspicious gives an :class:`OffregWarning`, which the CLI prints as ``warning: <message>``.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class OffregError(Exception):
    """Base class of every error offreg raises on bad user input."""


class DatasetError(OffregError):
    """A dataset file is missing, unreadable or invalid (corrupt, wrong keys, dtypes, shapes, NaNs)."""


class DownloadError(OffregError):
    """A download failed (HTTP error, timeout, truncated body, checksum mismatch, no network)."""


class UnknownNameError(OffregError, KeyError):
    """An unknown agent, dataset, environment or config key."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class ConfigError(OffregError, ValueError):
    """A configuration value is of the wrong type or out of range."""


class CheckpointError(OffregError):
    """A checkpoint or run directory is missing, incomplete or incompatible."""


class TrainingError(OffregError):
    """Training diverged (a NaN/Inf loss) or cannot continue."""


class EnvironmentError_(OffregError):
    """An environment cannot be created or does not match the dataset."""


class OffregWarning(UserWarning):
    """Input offreg accepts but that is probably not what was meant (the CLI prints ``warning: <message>``)."""


def unknown_name(kind: str, name: str, known: Iterable[str], hint: str = "") -> UnknownNameError:
    """Build an :class:`UnknownNameError` that suggests the closest known names.

    Args:
      kind: what was looked up ("agent", "dataset", ...).
      name: the name the user gave.
      known: every valid name.
      hint: an optional extra sentence (e.g. the command that lists the names).
    """
    known = sorted(set(known))
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    msg = f"unknown {kind} {name!r}"
    if close:
        msg += f"; did you mean {', '.join(repr(c) for c in close)}?"
    if hint:
        msg += f" {hint}"
    return UnknownNameError(msg)
