"""Our commands in a subprocess, the way the installed `enc-*` scripts run them (through
`_enc_tf_launch`, which hides TensorFlow's start-up lines)."""

import sys


def command(name, *args):
    """The argv that runs the console script `name` (`enc-data`, ...) with `args`."""
    entry = name.replace("-", "_")
    launch = f"import sys, _enc_tf_launch; sys.exit(_enc_tf_launch.{entry}())"
    return [sys.executable, "-c", launch, *map(str, args)]
