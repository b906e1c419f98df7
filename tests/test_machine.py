"""The machine's facts and the choices made from them (`enc_tf.machine`)."""

import json
import os
import subprocess
import sys

import pytest

from enc_tf.machine import BF16_CPU_FLAGS, ISA_FLAGS, cpu_flags, describe_machine, kernel_choices

PROBE = (
    "import json, tensorflow as tf\n"
    "from enc_tf.machine import kernel_choices\n"
    "from enc_tf.layers import TunedConv2D\n"
    "choices = kernel_choices()\n"
    "layer = TunedConv2D(4, 3, padding='same'); x = tf.zeros((1, 5, 5, 600))\n"
    "graph = tf.function(layer).get_concrete_function(x).graph\n"
    "convs = sum(op.type == 'Conv2D' for op in graph.get_operations())\n"
    "layer = TunedConv2D(128, 3, padding='same'); x = tf.zeros((1, 6, 6, 128))\n"
    "graph = tf.function(layer).get_concrete_function(x).graph\n"
    "kinds = [op.type for op in graph.get_operations()]\n"
    "print(json.dumps({'onednn': choices.onednn, 'split': choices.split_wide_convolutions,\n"
    "                  'convs': convs, 'line': choices.describe(),\n"
    "                  'winograd': choices.winograd, 'kinds': kinds}))\n"
)


@pytest.mark.parametrize("onednn", ["0", "1"])
def test_kernel_choices_read_the_kernels_tensorflow_runs(onednn):
    """TensorFlow's kernel library is fixed at its import (TF_ENABLE_ONEDNN_OPTS, else its
    default for the CPU): read back in a process of each kind; wide convolutions are split
    on a CPU with either, and 3x3 convolutions run by Winograd's algorithm."""
    env = {**os.environ, "TF_ENABLE_ONEDNN_OPTS": onednn, "TF_CPP_MIN_LOG_LEVEL": "3"}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    out = subprocess.run(
        [sys.executable, "-c", PROBE], capture_output=True, text=True, env=env, check=True
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["onednn"] is (onednn == "1")
    assert result["split"] is True and result["convs"] == 2  # 600 channels: 512 + 88
    assert result["winograd"] is True and "3x3 convolutions Winograd" in result["line"]
    assert "Conv2D" not in result["kinds"] and "BatchMatMulV2" in result["kinds"]
    assert ("oneDNN" if onednn == "1" else "Eigen (oneDNN off)") in result["line"]


def test_auto_precision_follows_the_cpu_flags():
    choices = kernel_choices()
    fast = choices.gpu or bool(cpu_flags() & set(BF16_CPU_FLAGS))
    assert choices.auto_precision == ("bfloat16" if fast else "float32")
    assert f"--precision auto = {choices.auto_precision}" in choices.describe()


def test_describe_machine_names_every_isa_flag():
    line = describe_machine()
    assert all(f"{flag}=" in line for flag in ISA_FLAGS)


def test_command_environment_turns_onednn_on_for_avx2_cpus_only():
    from enc_tf.machine import command_environment

    assert command_environment({"avx2", "fma"}, {}, "other") == {"TF_ENABLE_ONEDNN_OPTS": "1"}
    assert command_environment({"avx2", "avx512f", "avx512_vnni"}, {}, "other") == {
        "TF_ENABLE_ONEDNN_OPTS": "1"  # TensorFlow's own default there: the same kernels
    }
    assert command_environment({"neon", "asimd"}, {}, "other") == {}  # ARM: TensorFlow's
    assert command_environment({"avx2"}, {"TF_ENABLE_ONEDNN_OPTS": "0"}, "other") == {}


def test_command_environment_sets_glibc_malloc_thresholds_unless_the_user_did():
    from enc_tf.machine import MALLOC_SETTINGS, command_environment, malloc_thresholds

    ours = {name: str(value) for name, (_, value) in MALLOC_SETTINGS.items()}
    assert set(ours) == {"MALLOC_MMAP_THRESHOLD_", "MALLOC_TRIM_THRESHOLD_"}
    assert command_environment({"neon"}, {}, "glibc") == ours
    assert command_environment({"avx2"}, {}, "glibc") == {**ours, "TF_ENABLE_ONEDNN_OPTS": "1"}
    for user in (
        {"MALLOC_TRIM_THRESHOLD_": "0"},
        {"MALLOC_TOP_PAD_": "1"},
        {"MALLOC_MMAP_MAX_": "0"},
        {"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=4096"},
    ):
        assert command_environment({"neon"}, user, "glibc") == {}, user
        assert malloc_thresholds(user) == "the user's"
    # Variables that are not about the thresholds leave them to enc_tf.
    others = {"MALLOC_ARENA_MAX": "2", "MALLOC_PERTURB_": "1", "GLIBC_TUNABLES": "glibc.rtld.x=1"}
    assert command_environment({"neon"}, others, "glibc") == ours
    assert malloc_thresholds(others) == "the defaults"
    assert malloc_thresholds(ours) == "enc_tf's"


def test_malloc_settings_are_applied_only_with_glibc(monkeypatch):
    import enc_tf.machine as machine

    monkeypatch.setattr(machine, "c_library", lambda: "other")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    assert machine.apply_malloc_settings({"MALLOC_TRIM_THRESHOLD_": "1"}) == []
    assert machine.apply_malloc_settings({"TF_ENABLE_ONEDNN_OPTS": "1"}) == []
    assert "MALLOC_TRIM_THRESHOLD_" not in os.environ


# Image-sized blocks made, filled and freed by a thread other than the main one, as the input
# pipeline's threads do; prints the page faults per block.
CHURN = (
    "import resource, threading\n"
    "import numpy as np\n"
    "def churn():\n"
    "    rng, kept = np.random.default_rng(0), []\n"
    "    for _ in range(200):\n"
    "        kept.append(np.ones(int(rng.integers(1 << 20, 10 << 20)), np.uint8))\n"
    "        kept = kept[-3:]\n"
    "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
    "thread = threading.Thread(target=churn); thread.start(); thread.join()\n"
    "print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)\n"
)


@pytest.mark.skipif(
    __import__("enc_tf.machine").machine.c_library() != "glibc", reason="glibc's malloc"
)
def test_a_command_reuses_freed_image_blocks_in_its_threads():
    """A command's process (`_enc_tf_launch` applies the thresholds while running) touches
    far fewer new pages for image-sized blocks made and freed in a thread than a process with
    glibc's defaults; a child started with the command's environment, as few."""
    from enc_tf.machine import MALLOC_SETTINGS

    plain = {k: v for k, v in os.environ.items() if k not in MALLOC_SETTINGS}
    plain.pop("GLIBC_TUNABLES", None)

    def faults(code, env):
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
        )
        assert out.returncode == 0, out.stderr[-2000:]
        return float(out.stdout.split()[-1])

    default = faults(CHURN, plain)
    launched = faults(
        "import os, _enc_tf_launch as launch; launch._set_machine_environment()\n"
        "assert all(name in os.environ for name in launch._machine_module().MALLOC_SETTINGS)\n"
        + CHURN,
        plain,
    )
    child = faults(CHURN, {**plain, **{k: str(v) for k, (_, v) in MALLOC_SETTINGS.items()}})
    own_script = faults(  # as docs/benchmarks.md tells users to do in their own Python
        "from enc_tf.machine import apply_malloc_settings, command_environment\n"
        "from enc_tf.machine import malloc_thresholds\n"
        "assert malloc_thresholds() == 'the defaults'\n"
        "assert sorted(apply_malloc_settings(command_environment())) == sorted(\n"
        "    ['MALLOC_MMAP_THRESHOLD_', 'MALLOC_TRIM_THRESHOLD_'])\n"
        'assert malloc_thresholds() == "enc_tf\'s"\n' + CHURN,
        plain,
    )
    assert max(launched, child, own_script) < default / 3, (default, launched, child, own_script)


@pytest.mark.parametrize("user", [None, "0"])
def test_commands_start_tensorflow_with_the_machines_kernels(user):
    """A command (through `_enc_tf_launch`) runs oneDNN on an AVX2 CPU unless the user said
    otherwise; read back from TensorFlow in the command's process."""
    from enc_tf.machine import command_environment

    env = {k: v for k, v in os.environ.items() if k != "TF_ENABLE_ONEDNN_OPTS"}
    if user is not None:
        env["TF_ENABLE_ONEDNN_OPTS"] = user
    code = (
        "import _enc_tf_launch; _enc_tf_launch._set_machine_environment(); "
        "_enc_tf_launch._import_tensorflow_quietly([]); "
        "from enc_tf.machine import onednn_enabled; print(onednn_enabled())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr[-2000:]
    chosen = command_environment(environ=env).get("TF_ENABLE_ONEDNN_OPTS")
    if user == "0":
        assert out.stdout.strip() == "False"
    elif chosen == "1":
        assert out.stdout.strip() == "True"


def test_bfloat16_support_by_device_flags_and_onednn_cap():
    from enc_tf.machine import bfloat16_support

    bf16_cpu = {"avx2", "avx512f", "avx512_bf16"}
    assert bfloat16_support(True, False, set(), None) == "native"  # a GPU
    assert bfloat16_support(False, True, {"avx2", "fma"}, None) == "emulated"
    assert bfloat16_support(False, True, {"avx2"}, "AVX2") == "emulated"  # a real AVX2 CPU
    assert bfloat16_support(False, True, bf16_cpu, None) == "native"
    assert bfloat16_support(False, True, bf16_cpu, "avx512_core_bf16") == "native"
    assert bfloat16_support(False, True, {"amx_bf16"}, "AVX512_CORE_AMX") == "native"
    assert bfloat16_support(False, True, bf16_cpu, "AVX2") == "unavailable"
    assert bfloat16_support(False, True, bf16_cpu, "AVX512_CORE_VNNI") == "unavailable"
    assert bfloat16_support(False, False, bf16_cpu, "AVX2") == "native"  # Eigen: no cap


CAPPED = (
    "import json, os, tempfile\n"
    "from enc_tf.config import Config\n"
    "from enc_tf.errors import ConfigError\n"
    "from enc_tf.machine import kernel_choices\n"
    "from enc_tf.models.precision import resolve_precision\n"
    "from enc_tf.training.trainer import train\n"
    "try:\n"
    "    explicit = resolve_precision('bfloat16')\n"
    "except ConfigError as error:\n"
    "    explicit = str(error)\n"
    "choices = kernel_choices()\n"
    "config = Config()\n"
    "config.train.mixed_precision = 'mixed_bfloat16'\n"
    "config.train.run_dir = os.path.join(tempfile.mkdtemp(), 'run')\n"
    "training = 'not tried'  # where bfloat16 runs, this would train\n"
    "if choices.bfloat16 == 'unavailable':\n"
    "    try:\n"
    "        train(config)\n"
    "        training = 'trained'\n"
    "    except ConfigError as error:\n"
    "        training = str(error)\n"
    "    except BaseException as error:\n"
    "        training = repr(error)\n"
    "print(json.dumps({'auto': resolve_precision('auto'), 'explicit': explicit,\n"
    "                  'bfloat16': choices.bfloat16, 'line': choices.describe(),\n"
    "                  'training': training,\n"
    "                  'run_dir_made': os.path.exists(config.train.run_dir)}))\n"
)


def test_an_avx2_onednn_cap_never_runs_bfloat16_on_a_bf16_cpu():
    """`ONEDNN_MAX_CPU_ISA=AVX2` (how the benchmarks reproduce an AVX2 CPU): `auto` is
    float32 on every CPU, and where the CPU has bf16 instructions an explicit bfloat16 is
    refused in one line (TensorFlow's bfloat16 MatMul would end the process), as is training
    in mixed_bfloat16, before its run directory is made."""
    env = {**os.environ, "ONEDNN_MAX_CPU_ISA": "AVX2", "TF_ENABLE_ONEDNN_OPTS": "1"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    env.pop("CUDA_VISIBLE_DEVICES", None)
    out = subprocess.run(
        [sys.executable, "-c", CAPPED],
        capture_output=True,
        text=True,
        env=env,
        check=True,
        timeout=300,  # a training that is not refused would run for hours
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["auto"] == "float32"
    if cpu_flags() & set(BF16_CPU_FLAGS):
        assert result["bfloat16"] == "unavailable"
        assert "ONEDNN_MAX_CPU_ISA=AVX2" in result["explicit"] and "float32" in result["explicit"]
        assert "bfloat16 unavailable under the oneDNN cap" in result["line"]
        # Training in mixed_bfloat16 is refused before anything is written.
        assert result["training"].startswith("train.mixed_precision mixed_bfloat16 cannot run")
        assert not result["run_dir_made"]
    else:
        assert result["bfloat16"] == "emulated" and result["explicit"] == "bfloat16"
