"""Writing files so that a crash never leaves a half-written one behind."""

import os
import uuid
from typing import Callable


def atomic_write(path: str, write: Callable[[str], None]) -> str:
    """Calls `write(tmp)` on a temporary path next to `path`, then renames it to `path`.

    The temporary file ends with `path`'s name, so it keeps the extension (some writers
    choose the format by it); it is removed if `write` fails, and an existing `path` is
    only replaced once the new file is complete.
    """
    directory, name = os.path.split(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    # Not created here (as mkstemp would, with mode 0600): the writer creates it with the
    # usual permissions.
    tmp = os.path.join(directory, f".tmp-{uuid.uuid4().hex}-{name}")
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
