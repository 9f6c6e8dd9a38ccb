"""Verified downloads into a cache directory.

A file is streamed to ``<cache>/.partial/<name>.part`` with a progress bar; a later attempt (a retry,
or a new command after an interruption) resumes it with an HTTP ``Range`` request. Only a complete
file whose size matches the server's ``Content-Length``/``Content-Range`` (and the expected size and
SHA-256 when known) is renamed into the cache, so the cache never holds a partial file. A file that
fails its checksum is deleted (resuming corrupt bytes is pointless); 4xx answers fail at once;
timeouts, 5xx answers, refused connections and short bodies are retried with exponential backoff;
a host name that does not resolve (no network) fails at once. Concurrent downloads of one file
take turns through ``<name>.part.lock``, which exists only while held (see :func:`_locked`).
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

from tqdm.auto import tqdm

from offreg.errors import DownloadError

CHUNK = 1 << 20
_sleep = time.sleep  # the backoff wait (tests replace it)
PARTIAL_DIR = ".partial"


class _Retryable(Exception):
    """A transient failure (timeout, 5xx, connection lost, short body): try again."""


class _Offline(Exception):
    """The host name does not resolve: no network (or a wrong URL), so retrying is pointless."""


def partial_path(dest: Path) -> Path:
    """Where the unfinished download of ``dest`` is kept (outside the cache's file namespace)."""
    return dest.parent / PARTIAL_DIR / (dest.name + ".part")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(CHUNK), b""):
            h.update(block)
    return h.hexdigest()


def download_file(
    url: str,
    dest: str | os.PathLike,
    *,
    sha256: str | None = None,
    size: int | None = None,
    retries: int = 4,
    backoff: float = 1.0,
    timeout: float = 60.0,
    progress: bool = True,
    verify: Callable[[Path], None] | None = None,
    label: str | None = None,
    offline_hint: str = "",
    reuse_existing: bool = False,
) -> Path:
    """Download ``url`` to ``dest`` atomically, resuming a partial download.

    Concurrent calls for the same ``dest`` (other processes too) are serialized by a lock file next
    to the partial file; with ``reuse_existing`` a call that waited returns the file another
    finished.

    Args:
      url: an ``http(s)://`` URL.
      dest: the final path; it appears only once the file is complete and verified.
      sha256: expected hex digest, checked when given.
      size: expected size in bytes, checked when given.
      retries: further attempts after the first for transient failures.
      backoff: wait ``backoff * 2**attempt`` seconds before attempt ``attempt + 1``.
      timeout: socket timeout in seconds (connect and each read).
      progress: show a tqdm progress bar on stderr.
      verify: ``verify(tmp_path)`` raises an ``OffregError`` if the complete file is unusable
        (e.g. not a valid HDF5 file); the file is then deleted and the error propagates.
      label: the dataset's name for messages.
      offline_hint: a sentence appended to network errors (where to put the file by hand).
      reuse_existing: return ``dest`` without downloading if it exists (checked under the lock).

    Returns:
      ``dest``.

    Raises:
      DownloadError: HTTP 4xx, retries exhausted (5xx, timeout, connection failure, short body),
        size or checksum mismatch.
    """
    dest = Path(dest)
    part = partial_path(dest)
    with _locked(part.with_name(part.name + ".lock")):
        if reuse_existing and dest.is_file():
            return dest
        return _download(
            url, dest, part, sha256=sha256, size=size, retries=retries, backoff=backoff, timeout=timeout,
            progress=progress, verify=verify, label=label or dest.name, offline_hint=offline_hint,
        )


@contextlib.contextmanager
def _locked(lock_path: Path) -> Iterator[None]:
    """An exclusive advisory lock (``fcntl.flock``; a no-op where ``fcntl`` does not exist).

    The lock file exists only while it is held: its holder deletes it (success or failure) before
    releasing it, and a waiter that then wins the deleted file tries again. Lock files nobody holds
    (left by a process killed with ``-9``) are deleted on the way in, and the ``.partial`` folder goes
    once it is empty.
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    folder = lock_path.parent
    while True:
        folder.mkdir(parents=True, exist_ok=True)
        try:
            fh = open(lock_path, "a")
        except FileNotFoundError:  # another process removed the empty folder in between
            continue
        fcntl.flock(fh, fcntl.LOCK_EX)
        if _still_named(fh, lock_path):
            break
        fh.close()
    try:
        for other in folder.glob("*.lock"):
            if other != lock_path:
                _remove_if_stale(other)
        yield
    finally:
        lock_path.unlink(missing_ok=True)
        fh.close()  # releases the lock
        with contextlib.suppress(OSError):  # not empty: a partial file to resume, or another lock
            folder.rmdir()


def _still_named(fh, path: Path) -> bool:
    """Whether the open file ``fh`` is still the file at ``path`` (not deleted by its last holder)."""
    try:
        return os.path.samestat(os.fstat(fh.fileno()), os.stat(path))
    except FileNotFoundError:
        return False


def _remove_if_stale(lock_path: Path) -> None:
    """Delete a lock file that no process holds (its owner is gone)."""
    import fcntl

    try:
        fh = open(lock_path, "rb")  # never creates it
    except OSError:
        return
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:  # held: a download in progress
            return
        if _still_named(fh, lock_path):
            lock_path.unlink(missing_ok=True)


def _download(
    url: str, dest: Path, part: Path, *, sha256: str | None, size: int | None, retries: int, backoff: float,
    timeout: float, progress: bool, verify: Callable[[Path], None] | None, label: str, offline_hint: str,
) -> Path:
    last: str = ""
    for attempt in range(retries + 1):
        if attempt:
            _sleep(backoff * 2 ** (attempt - 1))
        try:
            _fetch(url, part, size=size, timeout=timeout, progress=progress, label=label)
            break
        except _Retryable as e:
            last = str(e)
        except _Offline as e:
            raise DownloadError(f"could not download {label!r} from {url}: {e}. {offline_hint}".strip()) from None
        except DownloadError:
            part.unlink(missing_ok=True)
            raise
    else:
        kept = f"; the partial file {part} is kept and the next attempt resumes it" if part.exists() else ""
        raise DownloadError(
            f"could not download {label!r} from {url} after {retries + 1} attempts ({last}){kept}. "
            f"{offline_hint}".strip()
        )
    if sha256 is not None:
        got = sha256_file(part)
        if got.lower() != sha256.lower():
            part.unlink(missing_ok=True)
            raise DownloadError(
                f"download of {label!r} from {url} failed its SHA-256 check (expected {sha256}, got {got}); "
                "the file was deleted: try again, or check the URL / expected checksum"
            )
    if verify is not None:
        try:
            verify(part)
        except Exception:
            part.unlink(missing_ok=True)
            raise
    dest.parent.mkdir(parents=True, exist_ok=True)
    os.replace(part, dest)
    return dest


def _fetch(url: str, part: Path, *, size: int | None, timeout: float, progress: bool, label: str) -> None:
    """One attempt: request from the partial file's length, append, check the total size.

    Long because: one resumable HTTP attempt with its error mapping and size check, read best in one piece.
    """
    offset = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": "offreg", "Accept-Encoding": "identity"}
    if offset:
        headers["Range"] = f"bytes={offset}-"
    try:
        resp = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # the partial file is not a prefix the server knows: restart
            part.unlink(missing_ok=True)
            raise _Retryable("HTTP 416 for a resumed request; restarting from byte 0") from None
        if 500 <= e.code < 600 or e.code in (408, 429):
            raise _Retryable(f"HTTP {e.code} {e.reason}") from None
        raise DownloadError(
            f"download of {label!r} failed: {url} answered HTTP {e.code} {e.reason}; "
            "check the name, or the base URL ($OFFREG_D4RL_BASE_URL) if you set one"
        ) from None
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException) as e:
        reason = getattr(e, "reason", e)
        if isinstance(reason, socket.gaierror):
            raise _Offline(f"cannot resolve the host ({reason}); no network?") from None
        kind = "timed out" if isinstance(reason, TimeoutError | socket.timeout) else f"network error: {reason}"
        raise _Retryable(kind) from None
    with resp:
        status = resp.status
        total: int | None = None
        length = resp.headers.get("Content-Length")
        if status == 206:
            m = re.match(r"bytes (\d+)-(\d+)/(\d+|\*)", resp.headers.get("Content-Range", ""))
            if not m or int(m.group(1)) != offset:
                part.unlink(missing_ok=True)
                raise _Retryable("the server answered a resumed request with a different range; restarting")
            total = int(m.group(3)) if m.group(3) != "*" else None
        else:  # 200: the whole file, whatever we asked for
            offset = 0
            total = int(length) if length is not None else None
        if total is None and length is not None:
            total = offset + int(length)
        if size is not None and total is not None and total != size:
            raise DownloadError(
                f"download of {label!r}: {url} serves {total} bytes but {size} were expected; "
                "check the URL or the expected size"
            )
        mode = "ab" if offset else "wb"
        bar = tqdm(
            total=total, initial=offset, unit="B", unit_scale=True, unit_divisor=1024,
            desc=label, disable=not progress, file=sys.stderr, leave=False,
        )
        written = offset
        try:
            with open(part, mode) as f, bar:
                while True:
                    try:
                        block = resp.read(CHUNK)
                    except http.client.IncompleteRead as e:
                        f.write(e.partial)
                        written += len(e.partial)
                        raise _Retryable(f"connection closed after {written} of {total} bytes") from None
                    except TimeoutError:
                        raise _Retryable(f"timed out after {written} of {total} bytes") from None
                    except (ConnectionError, http.client.HTTPException) as e:
                        raise _Retryable(f"connection lost after {written} bytes ({e})") from None
                    if not block:
                        break
                    f.write(block)
                    written += len(block)
                    bar.update(len(block))
        except OSError as e:
            if isinstance(e, TimeoutError | ConnectionError):
                raise _Retryable(f"connection lost after {written} bytes ({e})") from None
            raise DownloadError(f"download of {label!r}: cannot write {part} ({e}); check disk space") from None
    expected = total if total is not None else size
    if expected is not None and written != expected:
        raise _Retryable(f"body cut short: {written} of {expected} bytes")
    if size is not None and written != size:
        part.unlink(missing_ok=True)
        raise DownloadError(f"download of {label!r}: got {written} bytes but {size} were expected")
