"""Writing files so that a crash never leaves a half-written one behind."""

import os
import tempfile
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Calls `write(tmp)` on a temporary path next to `path`, then renames it to `path`.

    The temporary file keeps `path`'s extension (some writers choose the format by
    it) and is removed if `write` fails; an existing `path` is only replaced once the
    new file is complete.
    """
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=os.path.splitext(path)[1], dir=directory)
    os.close(fd)
    try:
        write(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def write_bytes_atomic(data: bytes, path: str) -> str:
    """Writes `data` to `path` through `atomic_write`."""

    def write(tmp):
        with open(tmp, "wb") as f:
            f.write(data)

    return atomic_write(path, write)
