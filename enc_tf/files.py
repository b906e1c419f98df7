"""Writing files and directories so that a crash never leaves a half-written one behind.

Every writer goes through a temporary name next to its target
(`.enc_tf-tmp-<pid>-<id>-<name>`: a name only enc_tf creates, with the writer's process
id), fsyncs what it wrote, then renames. A directory that replaces another is swapped
with the old one moved aside first (`.enc_tf-old-<pid>-<name>`), and the old one is
deleted only once the new one is in place. A process killed mid-write leaves only such
names; `remove_stale_temporaries` deletes the temporaries whose writer is dead and
finishes or rolls back an interrupted swap, so the target is always either the old
complete version or the new complete one. Files of any other name are never touched.
"""

import contextlib
import errno
import logging
import os
import re
import shutil
import sys
import time
import uuid
from typing import Callable

try:  # POSIX; elsewhere the locks below do nothing
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

logger = logging.getLogger(__name__)

HOME_VARIABLE = "ENC_TF_HOME"  # the one cache: downloads, generated datasets, time-budget plans
DEFAULT_HOME = os.path.join("~", ".cache", "enc_tf")
TEMP_PREFIX = ".enc_tf-tmp-"
ASIDE_PREFIX = ".enc_tf-old-"
_TEMPORARY = re.compile(re.escape(TEMP_PREFIX) + r"(\d+)-[0-9a-f]{12}-(.+)$")
_ASIDE = re.compile(re.escape(ASIDE_PREFIX) + r"(\d+)-(.+)$")


def cache_home() -> str:
    """enc_tf's cache directory: `$ENC_TF_HOME`, or `~/.cache/enc_tf`."""
    return os.path.abspath(os.path.expanduser(os.environ.get(HOME_VARIABLE) or DEFAULT_HOME))


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
    """A fresh temporary name next to `path` that ends with `path`'s name (keeps the
    extension) and carries this process's id."""
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{TEMP_PREFIX}{os.getpid()}-{uuid.uuid4().hex[:12]}-{name}")


def _aside_path(path: str) -> str:
    directory, name = os.path.split(os.path.abspath(path))
    return os.path.join(directory, f"{ASIDE_PREFIX}{os.getpid()}-{name}")


def process_alive(pid: int) -> bool:
    """Whether a process with this id runs on this machine (ours included)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


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
        try:
            write(tmp)
            _fsync_path(tmp)
        except BaseException as err:
            _close_hdf5_files(tmp)
            failure = _write_failure(err, tmp, path)
            if failure is None:
                raise
            raise failure from err
        if os.path.isdir(tmp) and os.path.exists(path):
            old = _aside_path(path)
            os.replace(path, old)
            _fsync_directory(directory)
        try:
            os.replace(tmp, path)
        except OSError:
            if old is not None:  # the new one is not in place: the old one goes back
                os.replace(old, path)
                old = None
            raise
        _fsync_directory(directory)
    finally:
        for leftover in (tmp, old):
            if leftover is not None and os.path.lexists(leftover):
                _remove(leftover)
    return path


def _write_failure(err: BaseException, tmp: str, path: str) -> OSError | None:
    """A failed write as one `OSError` naming `path` (not our temporary): a full disk
    however the writer reports it (OSError, h5py, TensorFlow's ResourceExhaustedError),
    or an OSError about the temporary. None: re-raise `err` as it is."""
    if "No space left on device" in str(err) or getattr(err, "errno", None) == errno.ENOSPC:
        return OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path)
    if isinstance(err, OSError) and tmp in f"{err} {err.filename}":
        message = os.strerror(err.errno) if err.errno else str(err).replace(tmp, path)
        return OSError(err.errno, " ".join(message.split()), path)
    return None


def _close_hdf5_files(prefix: str) -> None:
    """Closes the HDF5 files under `prefix` that a failed writer left open (h5py, when
    loaded). Left open, HDF5 retries their writes when it frees them later, and on a
    full disk that ends the process in a native crash instead of the one-line error."""
    h5py = sys.modules.get("h5py")
    if h5py is None:
        return
    for fid in h5py.h5f.get_obj_ids(types=h5py.h5f.OBJ_FILE):
        name = os.fsdecode(fid.name)
        if name.startswith(prefix):
            try:
                h5py.File(fid).close()
            except Exception as err:  # the failed writes fail again; the file is closed anyway
                logger.debug("Closing %s after a failed write: %s", name, err)


def write_bytes_atomic(data: bytes, path: str) -> str:
    """Writes `data` to `path` through `atomic_write`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)


def write_text_atomic(text: str, path: str) -> str:
    """Writes `text` (UTF-8) to `path` through `atomic_write`."""
    return write_bytes_atomic(text.encode("utf-8"), path)


def remove_stale_temporaries(directory: str, min_age_seconds: float = 0.0) -> list[str]:
    """Cleans up after writers that were killed in `directory` (not recursive).

    An interrupted directory swap is finished (the new version is in place: the old one
    is deleted) or rolled back (the new one is not: the old one returns to its name).
    Temporaries whose writer is dead are deleted; so are none of another running
    process's, and no file whose name enc_tf did not make. `min_age_seconds` also
    spares temporaries younger than that (a writer on another machine sharing the
    directory). Returns what was removed.
    """
    if not os.path.isdir(directory):
        return []
    removed = []
    now = time.time()
    for name in sorted(os.listdir(directory)):
        aside = _ASIDE.match(name)
        if aside and not process_alive(int(aside[1])):
            path, target = os.path.join(directory, name), os.path.join(directory, aside[2])
            try:
                if os.path.exists(target):
                    _remove(path)
                    removed.append(path)
                else:
                    os.replace(path, target)
                    logger.warning(
                        "Restored %s, which an interrupted write had moved aside", target
                    )
            except OSError as err:
                logger.warning("Could not recover the interrupted swap of %s: %s", target, err)
    for name in sorted(os.listdir(directory)):
        match = _TEMPORARY.match(name)
        if not match or process_alive(int(match[1])):
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


@contextlib.contextmanager
def file_lock(path: str, wait: bool = True, holder: str = ""):
    """An advisory lock on the file `path` (created if needed) for the block's duration; the
    OS releases it when the process dies, so a killed holder never leaves a stale lock.

    With `wait=False` a lock held by another process raises `BlockingIOError` at once,
    whose message is what the holder wrote into the file (`holder`, e.g. its PID).
    """
    if fcntl is None:  # pragma: no cover
        yield
        return
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            with open(path) as f:
                raise BlockingIOError(f.read().strip() or "unknown holder") from None
        if holder:
            os.ftruncate(fd, 0)
            os.write(fd, holder.encode())
        yield
    finally:
        os.close(fd)  # closing releases the lock
