"""Importing TensorFlow without its start-up noise (CUDA probes, oneDNN notes, absl's
"before InitializeLog" lines), which TensorFlow writes to the process's stderr from C++.

Quiet unless the user asked for TensorFlow's messages: `TF_CPP_MIN_LOG_LEVEL=0` in
the environment, or `--verbose` on the command line.
"""

import contextlib
import os
import sys


def quiet_requested() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") != "0" and "--verbose" not in sys.argv[1:]


@contextlib.contextmanager
def _stderr_to_devnull():
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tensorflow_quietly() -> None:
    """Imports TensorFlow with C++ INFO/WARNING logging off and its import-time lines dropped.

    An import error still surfaces: it is raised (and printed) after stderr is back.
    """
    if "tensorflow" in sys.modules or not quiet_requested():
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    with _stderr_to_devnull():
        import tensorflow

        # The first GPU probe logs a CUDA error on machines without one; probe here, quietly.
        # (Listing physical devices leaves the runtime uninitialised: threading can still be set.)
        tensorflow.config.list_physical_devices("GPU")
