"""Facts about the machine a process runs on: the CPU's model, core count and feature flags.

The one reader of `/proc/cpuinfo`: the precision choice (`models.precision`), the training
time planner (`training.budget`) and the benchmarks' headers take their facts from here.
"""

import functools
import os

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
