"""Shared measurement helpers: each case runs in its own process so that its
peak memory (the process's peak resident set size) is its own."""

import json
import os
import resource
import signal
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


def per_image_seconds(step, count):
    """Median seconds of `step(i)` over images 1..count-1 (image 0 warms up: tracing)."""
    step(0)
    times = []
    for i in range(1, count):
        start = time.perf_counter()
        step(i)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def case_environment():
    """A case's environment: this one, plus what enc_tf's commands set on this CPU before
    TensorFlow starts (`enc_tf.machine.command_environment`: oneDNN on AVX2 CPUs), so that
    the cases run the kernels users' commands run."""
    from _enc_tf_launch import _machine_module  # enc_tf.machine without TensorFlow

    return {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", **_machine_module().command_environment()}


def step_timer():
    """A Keras callback whose `times` are the seconds of each `fit` step (each waits for its
    loss, so that the step has finished)."""
    import keras

    class StepTimes(keras.callbacks.Callback):
        def __init__(self):
            super().__init__()
            self.times = []

        def on_train_batch_begin(self, step, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, step, logs=None):
            float(logs["loss"])
            self.times.append(time.perf_counter() - self.start)

    return StepTimes()


def run_case(script, *args, timeout=1800):
    """Runs `script --worker args...` in a fresh process (`case_environment`); returns its
    JSON result."""
    env = case_environment()
    result = subprocess.run(
        [sys.executable, script, "--worker", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )
    if result.returncode != 0:
        code = result.returncode
        how = f"killed by {signal.Signals(-code).name}" if code < 0 else f"exit status {code}"
        raise RuntimeError(f"case {args} failed ({how}):\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def emit(result):
    """A worker's last stdout line is its JSON result."""
    print(json.dumps(result), flush=True)


def machine():
    """The CPU model, its usable cores, the flags that decide speed, and the kernels the
    cases' TensorFlow runs."""
    from enc_tf.machine import describe_machine  # the one reader of the CPU's facts

    return f"{describe_machine()}; TensorFlow's convolutions: {kernels_used()}"


def kernel_choices_line():
    """enc_tf's per-machine choices (`enc_tf.machine.kernel_choices`) in this process, with
    the C allocator's thresholds of the cases it runs (`case_environment`)."""
    import dataclasses

    from enc_tf.machine import kernel_choices, malloc_thresholds

    choices = kernel_choices()
    return dataclasses.replace(choices, malloc=malloc_thresholds(case_environment())).describe()


def table(header, rows):
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    fmt = " | ".join(f"{{:<{w}}}" for w in widths)
    lines = [fmt.format(*header), "-+-".join("-" * w for w in widths)]
    lines += [fmt.format(*map(str, row)) for row in rows]
    return "\n".join(lines)


def graph_gflop(fn, input_shape):
    """GFLOP of one call of `fn` (a function of one float32 tensor) on `input_shape`,
    counted by TensorFlow's profiler on the frozen graph (multiply-adds count 2). Traced
    under `portable_kernels()`: the model's own arithmetic (direct convolutions), the same
    on every machine, not what Winograd's algorithm leaves of it on a CPU."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import convert_variables_to_constants_v2
    from tensorflow.python.profiler import model_analyzer, option_builder

    from enc_tf.machine import portable_kernels

    with portable_kernels():
        spec = tf.TensorSpec(input_shape, tf.float32)
        concrete = tf.function(fn).get_concrete_function(spec)
    frozen = convert_variables_to_constants_v2(concrete)
    options = option_builder.ProfileOptionBuilder(
        option_builder.ProfileOptionBuilder.float_operation()
    ).with_empty_output()
    info = model_analyzer.profile(frozen.graph, options=options.build())
    return info.total_float_ops / 1e9


# `--isa`: the instruction-set class a benchmark runs at, on both sides. oneDNN (TensorFlow's
# and torch's) honours ONEDNN_MAX_CPU_ISA, MKL honours MKL_ENABLE_INSTRUCTIONS and torch's own
# vectorised kernels ATEN_CPU_CAPABILITY. Each class also gets what enc_tf's commands set on
# such a CPU (`enc_tf.machine.command_environment` for the class's flags: TensorFlow's oneDNN
# kernels on AVX2), so that the figures are those a user of that class gets.
ISA_CAPS = {
    "native": {},
    "avx2": {
        "ONEDNN_MAX_CPU_ISA": "AVX2",
        "MKL_ENABLE_INSTRUCTIONS": "AVX2",
        "ATEN_CPU_CAPABILITY": "avx2",
    },
    "avx512": {
        "ONEDNN_MAX_CPU_ISA": "AVX512_CORE",
        "MKL_ENABLE_INSTRUCTIONS": "AVX512",
        "ATEN_CPU_CAPABILITY": "avx512",
    },
}
CLASS_FLAGS = {"avx2": ("avx2",), "avx512": ("avx2", "avx512f")}  # what such a CPU reports

_TF_PROBE = (
    "import tensorflow as tf\n"
    "from enc_tf.machine import onednn_enabled\n"
    "x = tf.random.normal((1, 32, 32, 64)); k = tf.random.normal((3, 3, 64, 64))\n"
    "tf.nn.conv2d(x, k, 1, 'SAME').numpy()\n"
    "print('onednn_enabled', onednn_enabled())\n"
)
_TORCH_PROBE = (
    "import torch\n"
    "torch.nn.Conv2d(64, 64, 3)(torch.randn(1, 64, 32, 32))\n"
    "print('aten_capability', torch.backends.cpu.get_cpu_capability())\n"
)


def add_isa_option(parser):
    parser.add_argument(
        "--isa",
        choices=sorted(ISA_CAPS),
        default="native",
        help="run both sides at this instruction-set class (avx2: the class of CPUs without "
        "AVX-512, reproduced on any x86 machine); the kernels each side ran are printed",
    )


def isa_environment(isa):
    """The variables `--isa` sets for both sides: the caps, and the kernel library enc_tf's
    commands would choose on a CPU of that class (a variable the user set is kept). Not the C
    allocator's thresholds: MMSegmentation runs with its users' defaults, our cases get them
    from `case_environment`."""
    from _enc_tf_launch import _machine_module  # enc_tf.machine without TensorFlow

    machine = _machine_module()
    chosen = machine.command_environment(CLASS_FLAGS.get(isa))
    kernels = {k: v for k, v in chosen.items() if k not in machine.MALLOC_SETTINGS}
    return {**kernels, **ISA_CAPS[isa]}


def kernels_used(python=None, torch=False):
    """What a convolution ran on in a case (torch: under this environment), from oneDNN's verbose
    output: `"oneDNN <isa>, <implementation>"`, `"Eigen (oneDNN off)"` for TensorFlow
    without oneDNN; torch adds its ATen capability. Checks that an `--isa` cap took effect."""
    env = {**(os.environ if torch else case_environment()), "ONEDNN_VERBOSE": "1"}
    code = _TORCH_PROBE if torch else _TF_PROBE
    result = subprocess.run(
        [python or sys.executable, "-c", code], capture_output=True, text=True, env=env
    )
    isa, implementations, facts = None, [], {}
    for line in result.stdout.splitlines():
        fields = line.split(",")
        if line.startswith("onednn_verbose") and "isa:" in line:
            isa = line.split("isa:", 1)[1].strip()
        elif line.startswith("onednn_verbose") and fields[2:4] == ["primitive", "exec"]:
            if fields[5] == "convolution" and fields[6] not in implementations:
                implementations.append(fields[6])
        elif line.startswith(("onednn_enabled", "aten_capability")):
            key, value = line.split(maxsplit=1)
            facts[key] = value
    if result.returncode != 0:
        return f"probe failed: {result.stderr.strip().splitlines()[-1:]}"
    if facts.get("onednn_enabled") == "False":
        return "Eigen (oneDNN off)"
    text = f"oneDNN {isa or '?'}, convolution {'/'.join(implementations) or '?'}"
    if "aten_capability" in facts:
        text += f", ATen {facts['aten_capability']}"
    return text


def write_ade_like(root, count=48, size=(512, 683), num_classes=150, seed=0):
    """`count` ADE20K-like JPEGs (smooth colour blocks with noise) and PNG masks of
    `num_classes` labels under `root/images` and `root/masks`, with a classes.yaml."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    h, w = size
    for i in range(count):
        smooth = np.kron(rng.integers(0, 256, (h // 16 + 1, w // 16 + 1, 3)), np.ones((16, 16, 1)))[
            :h, :w
        ]
        image = np.clip(smooth + rng.normal(0, 12, (h, w, 3)), 0, 255).astype(np.uint8)
        mask = np.kron(rng.integers(0, num_classes, (h // 32 + 1, w // 32 + 1)), np.ones((32, 32)))[
            :h, :w
        ]
        Image.fromarray(image).save(os.path.join(root, "images", f"{i:04d}.jpg"), quality=90)
        Image.fromarray(mask.astype(np.uint8)).save(os.path.join(root, "masks", f"{i:04d}.png"))
    with open(os.path.join(root, "classes.yaml"), "w") as f:
        f.write("names: [" + ", ".join(f"c{i}" for i in range(num_classes)) + "]\n")
