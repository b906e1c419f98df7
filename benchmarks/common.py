"""Shared measurement helpers: each case runs in its own process so that its
peak memory (the process's peak resident set size) is its own."""

import json
import os
import resource
import statistics
import subprocess
import sys
import time


def rss_mb():
    """Current resident set size in MiB (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def peak_rss_mb():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def median_seconds(fn, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(script, *args, timeout=1800):
    """Runs `script --worker args...` in a fresh process; returns its JSON result."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [sys.executable, script, "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if result.returncode != 0:
        raise RuntimeError(f"case {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def emit(result):
    """A worker's last stdout line is its JSON result."""
    print(json.dumps(result), flush=True)


def machine():
    """The CPU model, its usable cores and the flags that decide reduced-precision speed."""
    from enc_tf.machine import describe_machine  # the one reader of the CPU's facts

    return describe_machine()


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(lines)


def graph_gflop(fn, input_shape):
    """GFLOP of one call of `fn` (a function of one float32 tensor) on `input_shape`,
    counted by TensorFlow's profiler on the frozen graph (multiply-adds count 2)."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    concrete = tf.function(fn).get_concrete_function(tf.TensorSpec(input_shape, tf.float32))
    frozen = convert_variables_to_constants_v2(concrete)
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()
    ).with_empty_output()
    info = model_analyzer.profile(frozen.graph, options=options.build())
    return info.total_float_ops / 1e9
