"""Facts about the machine a process runs on: the CPU's model, core count and feature flags.

The one reader of `/proc/cpuinfo`: the precision choice (`models.precision`), the training
time planner (`training.budget`) and the benchmarks' headers take their facts from here, and
the home of the choices that depend on the machine (`kernel_choices`).
"""

import contextlib
import contextvars
import dataclasses
import functools
import os
from typing import Optional

# The flags that decide which kernels (and so which speed) a CPU gets: AVX2 is the common
# x86 floor, AVX-512 and its VNNI/BF16 extensions (and AMX) speed up oneDNN's int8 and bf16.
ISA_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8")


@functools.lru_cache(maxsize=1)
def _cpuinfo():
    model, flags = "unknown CPU", frozenset()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                key = key.strip()
                if key == "model name" and model == "unknown CPU":
                    model = value.strip()
                elif key == "flags" and not flags:
                    flags = frozenset(value.split())
    except OSError:
        pass
    return model, flags


def cpu_flags():
    """The CPU's feature flags (`/proc/cpuinfo`; empty where it cannot be read)."""
    return _cpuinfo()[1]


def cpu_model():
    """The CPU's model name (`unknown CPU` where it cannot be read)."""
    return _cpuinfo()[0]


def usable_cores():
    """The cores this process may run on (its affinity mask: `taskset` narrows it)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def describe_machine():
    """One line: the CPU model, the usable cores and the ISA flags that decide speed."""
    flags = cpu_flags()
    shown = " ".join(f"{name}={'yes' if name in flags else 'no'}" for name in ISA_FLAGS)
    cores = usable_cores()
    return f"{cpu_model()}, {cores} core{'s' if cores != 1 else ''} ({shown})"


# The CPU flags on which `auto` precision picks bfloat16 (native bf16 arithmetic).
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")

ONEDNN_VARIABLE = "TF_ENABLE_ONEDNN_OPTS"
# `ONEDNN_MAX_CPU_ISA` values that leave oneDNN its bf16 instructions. Below them, on a CPU
# that has bf16 instructions, TensorFlow 2.21 still sends bfloat16 ops to oneDNN, which has no
# kernel for them: a bfloat16 MatMul ends the process (segmentation fault), a Conv2D fails.
ONEDNN_BF16_ISAS = (
    "AVX512_CORE_BF16",
    "AVX512_CORE_FP16",
    "AVX512_CORE_AMX",
    "AVX512_CORE_AMX_FP16",
    "AVX10_1_512",
    "AVX10_1_512_AMX",
    "AVX10_1_512_AMX_FP16",
    "ALL",
    "DEFAULT",
)


def bfloat16_support(gpu, onednn, flags, isa_cap):
    """How this machine runs bfloat16: `native` (a GPU, or a CPU with `BF16_CPU_FLAGS`),
    `emulated` (other CPUs: slower than float32), or `unavailable` (oneDNN on, its ISA
    capped by `ONEDNN_MAX_CPU_ISA` below bf16 on a CPU with bf16 instructions: TensorFlow's
    bfloat16 ops crash there, see `ONEDNN_BF16_ISAS`)."""
    if gpu:
        return "native"
    if not set(flags) & set(BF16_CPU_FLAGS):
        return "emulated"
    if onednn and isa_cap and isa_cap.strip().upper() not in ONEDNN_BF16_ISAS:
        return "unavailable"
    return "native"


# glibc's malloc, tuned for processes whose threads make and free image-sized blocks (the
# input pipeline's decoding and augmentation threads): blocks under 32 MB come from the heap,
# and up to 128 MB of freed heap is kept for the next image. glibc's own thresholds start at
# 128 kB and adapt upwards, but it gives freed memory back to the system early, so each image
# touched fresh pages again (about 950 page faults an image against 150 tuned:
# docs/benchmarks.md, "Choices per machine"). Each variable: (its `mallopt` parameter, value).
MALLOC_SETTINGS = {
    "MALLOC_MMAP_THRESHOLD_": (-3, 32 << 20),  # M_MMAP_THRESHOLD
    "MALLOC_TRIM_THRESHOLD_": (-1, 128 << 20),  # M_TRIM_THRESHOLD
}


def _malloc_variables():
    return {name: str(value) for name, (_, value) in MALLOC_SETTINGS.items()}


def c_library():
    """`glibc` on GNU/Linux, else `other` (the C library the allocator settings are for)."""
    try:
        version = os.confstr("CS_GNU_LIBC_VERSION")
    except (AttributeError, ValueError, OSError):
        version = None
    return "glibc" if version and version.startswith("glibc") else "other"


# glibc's variables for the thresholds: a user who set any of them (or its `glibc.malloc`
# tunable) keeps glibc as they set it.
_MALLOC_THRESHOLDS = ("MMAP_THRESHOLD", "TRIM_THRESHOLD", "TOP_PAD", "MMAP_MAX")


def _user_tuned_malloc(environ):
    tunables = environ.get("GLIBC_TUNABLES", "").lower()
    return any(
        f"MALLOC_{name}_" in environ or f"glibc.malloc.{name.lower()}" in tunables
        for name in _MALLOC_THRESHOLDS
    )


def command_environment(flags=None, environ=None, libc=None):
    """The variables enc_tf's commands set before TensorFlow starts (`_enc_tf_launch`), for a
    CPU with `flags` (default: this one's) and C library `libc` (default: this one's,
    `c_library`), leaving any the user set (`environ`).

    `TF_ENABLE_ONEDNN_OPTS=1` on x86 CPUs with AVX2: TensorFlow turns its oneDNN kernels on
    by itself only with AVX-512 VNNI/BF16 or AMX and runs its Eigen kernels on the other
    CPUs, where oneDNN's AVX2 kernels measured faster for EncNet's forward pass, training
    step and the demo's step (docs/benchmarks.md, "Choices per machine"). With glibc,
    `MALLOC_SETTINGS`, unless the user set glibc's malloc thresholds (`MALLOC_MMAP_THRESHOLD_`,
    `MALLOC_TRIM_THRESHOLD_`, `MALLOC_TOP_PAD_`, `MALLOC_MMAP_MAX_` or their tunables);
    glibc reads them when a process starts, so a command that is already running applies
    them with `apply_malloc_settings`. Elsewhere nothing (TensorFlow's and the C library's
    own defaults).
    """
    flags = cpu_flags() if flags is None else set(flags)
    environ = os.environ if environ is None else environ
    libc = c_library() if libc is None else libc
    wanted = {ONEDNN_VARIABLE: "1"} if "avx2" in flags else {}
    wanted = {key: value for key, value in wanted.items() if key not in environ}
    if libc == "glibc" and not _user_tuned_malloc(environ):
        wanted.update(_malloc_variables())
    return wanted


def apply_malloc_settings(variables):
    """Sets the `MALLOC_SETTINGS` among `variables` (name -> value, as `command_environment`
    gives them) in this running process with glibc's `mallopt`, and in its environment (for
    its child processes, and `kernel_choices().malloc`); returns the names set (none without
    glibc)."""
    import ctypes

    chosen = {name: variables[name] for name in MALLOC_SETTINGS if name in variables}
    if not chosen or c_library() != "glibc":
        return []
    mallopt = ctypes.CDLL(None).mallopt
    done = [name for name, value in chosen.items() if mallopt(MALLOC_SETTINGS[name][0], int(value))]
    os.environ.update({name: str(chosen[name]) for name in done})
    return done


@dataclasses.dataclass(frozen=True)
class KernelChoices:
    """The choices that depend on the machine, made here and nowhere else (the measured
    reasons: docs/benchmarks.md, "Choices per machine").

    Attributes:
        gpu: TensorFlow sees a GPU.
        onednn: TensorFlow runs its oneDNN kernels in this process. TensorFlow decides at
            import: `TF_ENABLE_ONEDNN_OPTS` when set (enc_tf's commands set it on x86 CPUs
            with AVX2, `command_environment`), else on for CPUs with AVX-512 VNNI/BF16 or AMX
            and off (its Eigen kernels) on the others.
        onednn_isa_cap: `ONEDNN_MAX_CPU_ISA` when set (oneDNN then uses no newer ISA).
        winograd: `TunedConv2D` runs its 3x3 convolutions by Winograd's F(2x2, 3x3): on
            CPUs (oneDNN's kernels with AVX-512 or AVX2, and Eigen's), not on GPUs (cuDNN
            picks its own algorithms) nor under `portable_kernels` (exports for other
            runtimes, which have their own).
        split_wide_convolutions: `TunedConv2D` runs the other convolutions with more than
            512 input channels as a sum of 512-channel ones: on CPUs, with oneDNN's kernels
            (AVX-512 or AVX2) and Eigen's alike; cuDNN takes them whole.
        bfloat16: `bfloat16_support`: `native`, `emulated` or `unavailable`.
        auto_precision: what `--precision auto` resolves to: bfloat16 where it is native,
            float32 elsewhere.
        malloc: the C allocator's thresholds: `enc_tf's` (`MALLOC_SETTINGS`, which enc_tf's
            commands set), `the user's` or `the defaults`.
    """

    gpu: bool
    onednn: bool
    onednn_isa_cap: Optional[str]
    winograd: bool
    split_wide_convolutions: bool
    bfloat16: str
    auto_precision: str
    malloc: str = "the defaults"

    def describe(self):
        backend = "GPU" if self.gpu else ("oneDNN" if self.onednn else "Eigen (oneDNN off)")
        cap = f" capped at {self.onednn_isa_cap}" if self.onednn_isa_cap and self.onednn else ""
        split = "split" if self.split_wide_convolutions else "whole"
        winograd = "Winograd" if self.winograd else "direct"
        return (
            f"kernels: {backend}{cap}; 3x3 convolutions {winograd}; wide convolutions {split}; "
            f"--precision auto = {self.auto_precision}"
            + (
                " (bfloat16 unavailable under the oneDNN cap)"
                if self.bfloat16 == "unavailable"
                else ""
            )
            + f"; malloc thresholds: {self.malloc}"
        )


def onednn_enabled():
    """Whether TensorFlow runs its oneDNN kernels in this process (fixed when TensorFlow
    was imported)."""
    from tensorflow.python.util import _pywrap_util_port

    return bool(_pywrap_util_port.IsMklEnabled())


_PORTABLE = contextvars.ContextVar("enc_tf_portable_kernels", default=False)


@contextlib.contextmanager
def portable_kernels():
    """Within it, `kernel_choices()` chooses for a graph that another runtime will run
    (TFLite, ONNX): no Winograd, whose transforms those runtimes would run as separate ops
    (their own convolution kernels choose their algorithms)."""
    token = _PORTABLE.set(True)
    try:
        yield
    finally:
        _PORTABLE.reset(token)


def kernel_choices():
    """This process's `KernelChoices` (reads TensorFlow's devices and build: call it after
    the program has set TensorFlow up, not at import)."""
    import tensorflow as tf

    gpu = bool(tf.config.list_physical_devices("GPU"))
    onednn = onednn_enabled()
    cap = os.environ.get("ONEDNN_MAX_CPU_ISA") or None
    bfloat16 = bfloat16_support(gpu, onednn, cpu_flags(), cap)
    return KernelChoices(
        gpu=gpu,
        onednn=onednn,
        onednn_isa_cap=cap,
        winograd=not gpu and not _PORTABLE.get(),
        split_wide_convolutions=not gpu,
        bfloat16=bfloat16,
        auto_precision="bfloat16" if bfloat16 == "native" else "float32",
        malloc=malloc_thresholds(),
    )


def malloc_thresholds(environ=None):
    """Whose malloc thresholds this process runs with, as its environment says: `enc_tf's`
    (`MALLOC_SETTINGS`), `the user's` or `the defaults`."""
    environ = os.environ if environ is None else environ
    if all(environ.get(name) == value for name, value in _malloc_variables().items()):
        return "enc_tf's"
    return "the user's" if _user_tuned_malloc(environ) else "the defaults"
