"""Names that killed writers leave behind, for tests that clean up after them."""

import subprocess
import sys

from enc_tf.files import TEMP_PREFIX


def dead_pid():
    """The id of a process that has exited."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def stale_temporary_name(target_name, pid=None):
    """The temporary name an enc_tf writer killed while writing `target_name` left."""
    return f"{TEMP_PREFIX}{pid or dead_pid()}-0123456789ab-{target_name}"
