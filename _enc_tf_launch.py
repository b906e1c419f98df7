"""Where enc_tf's commands start: `enc-train`, `enc-eval`, ... and the repository's scripts.

Each command imports TensorFlow with its start-up lines hidden (CUDA probes, oneDNN notes,
absl's "before InitializeLog" lines), then runs the command's `main`. This happens here,
in a module outside the `enc_tf` package, because importing any part of `enc_tf` imports
TensorFlow, and a library must not redirect its users' stderr, set their environment or
read their command line when it is imported: only a program may, and this is the program.

`--verbose` (every command has it) or `TF_CPP_MIN_LOG_LEVEL=0` in the environment keep
TensorFlow's messages; `--verbose` also sets `TF_CPP_MIN_LOG_LEVEL=0` for the run, which
is what the library reads (`enc_tf.quiet`) when it quiets native code later.

Before TensorFlow starts, the command also sets what `enc_tf.machine.command_environment`
chooses for this CPU and C library (TensorFlow's oneDNN kernels on AVX2 CPUs; glibc's malloc
thresholds), unless the user set it.
"""

import importlib
import importlib.util
import os
import sys


def _machine_module():
    """`enc_tf/machine.py` (standard library only) loaded on its own: importing it as
    `enc_tf.machine` would import the package, and TensorFlow with it, too early."""
    package = importlib.util.find_spec("enc_tf")
    path = os.path.join(package.submodule_search_locations[0], "machine.py")
    spec = importlib.util.spec_from_file_location("_enc_tf_machine_facts", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _set_machine_environment():
    machine = _machine_module()
    chosen = machine.command_environment()
    if "tensorflow" in sys.modules:  # its kernel library was fixed at its import
        chosen = {name: value for name, value in chosen.items() if name in machine.MALLOC_SETTINGS}
    os.environ.update(chosen)  # for this process's TensorFlow and for child processes
    machine.apply_malloc_settings(chosen)  # glibc read its variables at this process's start


def _import_tensorflow_quietly(argv):
    if "--verbose" in argv:
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
    if "tensorflow" in sys.modules or os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "0":
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    null = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(null, 2)
        import tensorflow

        # The first GPU probe logs a CUDA error on machines without one: probe here, hidden.
        # (Listing physical devices leaves the runtime uninitialised: threading can still be set.)
        tensorflow.config.list_physical_devices("GPU")
    finally:
        os.dup2(saved, 2)  # an import error is raised (and printed) after stderr is back
        os.close(saved)
        os.close(null)


def command(module):
    """The entry point that runs `module.main()` after importing TensorFlow quietly."""

    def run(argv=None):
        _set_machine_environment()
        _import_tensorflow_quietly(sys.argv[1:] if argv is None else argv)
        return importlib.import_module(module).main(argv)

    run.module = module
    return run


enc_convert = command("enc_tf.convert.cli")
enc_data = command("enc_tf.data.cli")
enc_demo = command("enc_tf.demo")
enc_eval = command("enc_tf.evaluation.cli")
enc_export = command("enc_tf.export.cli")
enc_export_onnx = command("enc_tf.export.onnx_cli")
enc_export_tflite = command("enc_tf.export.tflite_cli")
enc_predict = command("enc_tf.inference.cli")
enc_presets = command("enc_tf.presets.cli")
enc_qat = command("enc_tf.training.qat")
enc_train = command("enc_tf.training.cli")
