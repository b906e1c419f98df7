"""Writing files and directories so that a crash never leaves a half-written one behind.

Every writer goes through a temporary name next to its target (`.tmp-<id>-<name>`),
fsyncs what it wrote, then renames. A process killed mid-write leaves only such a
temporary, which `remove_stale_temporaries` deletes on the next start of the same
command; the target is either the old complete file or the new complete file.
"""

import logging
import os
import re
import shutil
import time
import uuid
from typing import Callable

logger = logging.getLogger(__name__)

TEMP_PREFIX = ".tmp-"


def _fsync_path(path: str) -> None:
    """Flushes a file, or every file of a directory tree and the directories, to disk."""
    if os.path.isdir(path):
        for root, _, files in os.walk(path):
            for name in files:
                _fsync_path(os.path.join(root, name))
            _fsync_directory(root)
        return
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_directory(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # some file systems do not open directories
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def temporary_path(path: str) -> str:
    """A fresh temporary name next to `path` that ends with `path`'s name (keeps the extension)."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{TEMP_PREFIX}{uuid.uuid4().hex}-{name}")


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        os.remove(path)


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Calls `write(tmp)` on a temporary path next to `path`, fsyncs it, then renames it to `path`.

    `write` may create a file or a directory at `tmp`. The temporary is removed if
    `write` fails, and an existing `path` is only replaced once the new one is
    complete and on disk. For a directory, an existing `path` is moved aside first
    (two renames: a directory cannot replace a non-empty one in one step).
    """
    path = os.path.abspath(path)
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    # Not created here (as mkstemp would, with mode 0600): the writer creates it with the
    # usual permissions.
    tmp = temporary_path(path)
    old = None
    try:
        write(tmp)
        _fsync_path(tmp)
        if os.path.isdir(tmp) and os.path.exists(path):
            old = temporary_path(path)
            os.replace(path, old)
        os.replace(tmp, path)
        _fsync_directory(directory)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and os.path.lexists(leftover):
                _remove(leftover)
    return path


def write_bytes_atomic(data: bytes, path: str) -> str:
    """Writes `data` to `path` through `atomic_write`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def write_text_atomic(text: str, path: str) -> str:
    """Writes `text` (UTF-8) to `path` through `atomic_write`."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def remove_stale_temporaries(
    directory: str, min_age_seconds: float = 0.0, older_names: re.Pattern | None = None
) -> list[str]:
    """Deletes the temporaries that killed writes left in `directory` (not recursive).

    Call it when a command starts, before it writes into `directory`: no other
    writer of this command is running then. `min_age_seconds` spares temporaries
    younger than that (another process may be writing them). `older_names` also
    matches the temporaries of an earlier naming scheme. Returns what was removed.
    """
    if not os.path.isdir(directory):
        return []
    removed = []
    now = time.time()
    for name in sorted(os.listdir(directory)):
        if not (name.startswith(TEMP_PREFIX) or (older_names and older_names.match(name))):
            continue
        path = os.path.join(directory, name)
        try:
            if now - os.lstat(path).st_mtime < min_age_seconds:
                continue
            _remove(path)
        except OSError as err:
            logger.warning("Could not remove the stale temporary %s: %s", path, err)
            continue
        removed.append(path)
    if removed:
        logger.info(
            "Removed %d stale temporary file(s) of interrupted writes in %s",
            len(removed),
            directory,
        )
    return removed
