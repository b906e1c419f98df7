"""Keeping TensorFlow's native noise out of users' terminals: its start-up lines (CUDA
probes, oneDNN notes, absl's "before InitializeLog" lines) and the progress lines that
the TFLite converter and interpreter print from C++ ("fully_quantize: 0, ...",
"Created TensorFlow Lite XNNPACK delegate").

Quiet unless the user asked for TensorFlow's messages with `TF_CPP_MIN_LOG_LEVEL=0` in
the environment (the commands' `--verbose` sets it). Nothing here runs on import: the
commands hide TensorFlow's import-time lines before `enc_tf` is imported (`_enc_tf_launch`).
"""

import contextlib
import os
import sys
import warnings


def quiet_requested() -> bool:
    return os.environ.get("TF_CPP_MIN_LOG_LEVEL", "2") != "0"


@contextlib.contextmanager
def _to_devnull(*fds):
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(fd) for fd in fds]
    try:
        with open(os.devnull, "w") as null:
            for fd in fds:
                os.dup2(null.fileno(), fd)
        yield
    finally:
        for fd, copy in zip(fds, saved):
            os.dup2(copy, fd)
            os.close(copy)


@contextlib.contextmanager
def native_output_quieted():
    """Drops what native code writes to stdout and stderr inside the block, and TensorFlow's
    Python warnings, unless the user asked for TensorFlow's messages. Wrap single native
    calls only: enc_tf's own log lines inside the block would be dropped too."""
    if not quiet_requested():
        yield
        return
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", category=UserWarning, module="tensorflow")
        with _to_devnull(1, 2):
            yield
