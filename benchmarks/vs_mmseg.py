"""enc_tf against MMSegmentation's EncNet R-50-D8 on the same CPU, in one run.

Cases (each in its own process, ours and the peer's alternating, medians over rounds):
- forward 480x480 batch 1, float32: our `tf.function` vs MMSegmentation's
  `encode_decode` under `torch.no_grad()`;
- training step 256x256 batch 2, float32: our `model.fit` (three losses, EncNetSGD)
  vs MMSegmentation's `model.loss` + backward + SGD;
- forward 480x480 batch 1 with `--precision bfloat16` (ours only; the ratio is to
  MMSegmentation's float32) and its argmax agreement with our float32, next to two
  measures of how much any rounding moves these weights' output: MMSegmentation's
  own bfloat16 (`torch.autocast`) against its float32, and our float32 run on the
  input rounded to bfloat16 (a 0.3% change).
Our forward cases run MMSegmentation's parity weights (tests/fixtures/oracle_mmseg), with
BatchNorm folded as enc-eval loads models, and once unfolded.
Both sides use 2 threads and the same architecture (`resnet50v1c`: MMSegmentation's
ResNetV1c with the 32-32-64 stem, 150 classes). Prints the CPU model and flags, the kernels
each side's convolutions ran on (oneDNN's verbose output) and enc_tf's per-machine choices.

`--isa avx2` runs both sides as on a CPU without AVX-512 (oneDNN, MKL and ATen capped at
AVX2), on any x86 machine; `--isa avx512` caps at AVX-512 without VNNI/BF16; `native` (the
default) caps nothing. Our cases run with what enc_tf's commands set on such a CPU
(`enc_tf.machine.command_environment`: TensorFlow's oneDNN kernels on AVX2 CPUs, where
TensorFlow alone would run its Eigen kernels); `TF_ENABLE_ONEDNN_OPTS=0` in the environment
measures Eigen instead.

MMSegmentation needs its own interpreter (torch, mmsegmentation 1.2, mmengine,
mmcv-lite 2.1, ftfy, regex); the benchmark skips it with a message when it is absent:
  python3 -m venv /tmp/mmseg && /tmp/mmseg/bin/pip install torch==2.13.0 \\
      mmsegmentation==1.2.2 mmengine "mmcv-lite==2.1.0" ftfy regex
  .venv/bin/python benchmarks/vs_mmseg.py --mmseg-python /tmp/mmseg/bin/python
Never part of `make test`.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

PEER = str(Path(__file__).resolve().parent / "mmseg_peer.py")
BACKBONE = "resnet50v1c"
NUM_CLASSES = 150
FORWARD = (1, 480)
TRAIN = (2, 256)
THREADS = 2


def run_peer(python, *args, timeout=1800):
    """Runs mmseg_peer.py under `python`; returns its JSON line."""
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    result = subprocess.run(
        [python, PEER, *map(str, args)], capture_output=True, text=True, timeout=timeout, env=env
    )
    if result.returncode != 0:
        raise RuntimeError(f"MMSegmentation case {args} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def peer_available(python):
    if python is None or not os.path.exists(python):
        return False
    probe = "import importlib.util as u; raise SystemExit(u.find_spec('mmseg') is None)"
    return subprocess.run([python, "-c", probe], capture_output=True).returncode == 0


def _set_threads():
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(THREADS)
    tf.config.threading.set_inter_op_parallelism_threads(THREADS)


def oracle_model():
    """EncNet R-50-D8 on MMSegmentation's parity weights (tests/fixtures/oracle_mmseg:
    recipe weights, BatchNorm statistics calibrated on random activations)."""
    from enc_tf.convert import mmseg
    from tests.support import oracle

    state = oracle.state_dict("mmseg_ade_r50", oracle.MMSEG_DIR)
    return mmseg.build_from_state(state, None, align_corners=False)[0]


def worker_save(path):
    from benchmarks.common import emit

    oracle_model().save(path)
    emit({"path": path})


def worker_forward(model_path, precision, fold, repeats):
    """Loads the model as enc-eval does (`load_model`: BatchNorm folded in place unless
    `fold` is "keep") and times its logits function at `precision`."""
    import numpy as np
    import tensorflow as tf

    from benchmarks.common import emit, median_seconds, peak_rss_mb
    from enc_tf.artifacts import load_model

    _set_threads()
    batch, size = FORWARD
    loaded = load_model(model_path, fold=fold == "fold").with_precision(precision)
    x = tf.constant(np.random.default_rng(0).normal(size=(batch, size, size, 3)).astype("float32"))
    for _ in range(2):
        loaded.logits_fn(x)["seg"].numpy()
    seconds = median_seconds(lambda: loaded.logits_fn(x)["seg"].numpy(), int(repeats))
    result = {"seconds": seconds, "peak_rss_mib": peak_rss_mb()}
    if precision != "float32":
        ours = loaded.logits_fn(x)["seg"].numpy().argmax(-1)
        full = load_model(model_path, fold=False).logits_fn
        reference = full(x)["seg"].numpy().argmax(-1)
        result["argmax_agreement"] = float(np.mean(ours == reference))
        # How far a rounding-sized change of the input alone moves float32's argmax.
        rounded = tf.cast(tf.cast(x, tf.bfloat16), tf.float32)
        moved = full(rounded)["seg"].numpy().argmax(-1)
        result["rounded_input_agreement"] = float(np.mean(moved == reference))
    emit(result)


def worker_train(steps):
    import time

    import keras
    import numpy as np

    from benchmarks.common import emit, peak_rss_mb
    from enc_tf import build_encnet
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.optimizers import EncNetSGD

    _set_threads()
    batch, size = TRAIN
    model = build_encnet(NUM_CLASSES, backbone=BACKBONE, input_shape=(size, size, 3))
    losses, weights = encnet_losses()
    model.compile(optimizer=EncNetSGD(0.01), loss=losses, loss_weights=weights)
    rng = np.random.default_rng(0)
    x = rng.normal(size=(batch, size, size, 3)).astype("float32")
    labels = rng.integers(0, NUM_CLASSES, size=(batch, size, size)).astype("int32")
    y = {"seg": labels, "aux": labels, "se": np.asarray(presence_targets(labels, NUM_CLASSES))}
    times = []

    class Clock(keras.callbacks.Callback):
        def on_train_batch_begin(self, batch, logs=None):
            self.start = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            times.append(time.perf_counter() - self.start)

    steps = int(steps)
    xs = np.repeat(x, steps + 2, axis=0)
    ys = {k: np.repeat(v, steps + 2, axis=0) for k, v in y.items()}
    model.fit(xs, ys, batch_size=batch, epochs=1, verbose=0, callbacks=[Clock()])
    emit({"seconds": statistics.median(times[2:]), "peak_rss_mib": peak_rss_mb()})


def _median(results, key="seconds"):
    return statistics.median(r[key] for r in results)


def main():
    from benchmarks.common import (
        add_isa_option,
        isa_environment,
        kernel_choices_line,
        kernels_used,
        machine,
        run_case,
    )

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--mmseg-python", help="interpreter with mmsegmentation installed")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds per case")
    parser.add_argument("--repeats", type=int, default=5, help="timed calls per process")
    add_isa_option(parser)
    args = parser.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        workers = {"save": worker_save, "forward": worker_forward, "train": worker_train}
        return workers[kind](*rest)
    caps = isa_environment(args.isa)
    os.environ.update(caps)  # every case and the peer run under it
    print(machine())
    print(f"--isa {args.isa}: " + (" ".join(f"{k}={v}" for k, v in caps.items()) or "no caps"))
    print(f"enc_tf's choices for this machine: {kernel_choices_line()}")
    peer = peer_available(args.mmseg_python)
    if peer:
        print(f"MMSegmentation's convolutions: {kernels_used(args.mmseg_python, torch=True)}")
    if not peer:
        print(
            "MMSegmentation is not available (give --mmseg-python, an interpreter with "
            "mmsegmentation installed): only enc_tf's figures are printed."
        )
    model_path = os.path.join(tempfile.mkdtemp(), "mmseg_parity_weights.keras")
    run_case(__file__, "save", model_path)
    from enc_tf.machine import kernel_choices  # TensorFlow starts under the caps above

    # bfloat16 only where the CPU computes it natively (emulated, it is slower than float32);
    # an --isa cap leaves oneDNN no bf16 instructions.
    bf16 = args.isa == "native" and kernel_choices().auto_precision == "bfloat16"
    if not bf16:
        print("The bfloat16 case is skipped: this CPU (or --isa) has no native bf16 arithmetic.")
    cases = {"forward f32": [], "forward f32 unfolded": [], "forward bf16": [], "train f32": []}
    peers = {"forward f32": [], "train f32": []}
    for _ in range(args.rounds):
        cases["forward f32"].append(
            run_case(__file__, "forward", model_path, "float32", "fold", args.repeats)
        )
        cases["forward f32 unfolded"].append(
            run_case(__file__, "forward", model_path, "float32", "keep", args.repeats)
        )
        if peer:
            peers["forward f32"].append(
                run_peer(args.mmseg_python, "forward", *FORWARD, args.repeats)
            )
        if bf16:
            cases["forward bf16"].append(
                run_case(__file__, "forward", model_path, "bfloat16", "fold", args.repeats)
            )
        cases["train f32"].append(run_case(__file__, "train", args.repeats))
        if peer:
            peers["train f32"].append(run_peer(args.mmseg_python, "train", *TRAIN, args.repeats))
    rows = [
        "| figure | enc_tf s | MMSegmentation s | ratio | goal | peak RSS MiB (ours, MMSeg) |",
        "|---|---|---|---|---|---|",
    ]
    goals = {
        "forward f32": "<= 0.85",
        "forward f32 unfolded": "-",
        "forward bf16": "<= 0.50",
        "train f32": "<= 0.70",
    }
    for name, results in cases.items():
        if not results:
            continue
        ours = _median(results)
        base = peers.get("forward f32" if name.startswith("forward") else name)
        theirs = _median(base) if base else None
        ratio = f"{ours / theirs:.2f}" if theirs else "-"
        rss = max(r["peak_rss_mib"] for r in results)
        peer_rss = f"{max(r['peak_rss_mib'] for r in base):.0f}" if base else "-"
        theirs_text = f"{theirs:.3f}" if theirs else "-"
        rows.append(
            f"| {name} | {ours:.3f} | {theirs_text} | {ratio} | {goals[name]} "
            f"| {rss:.0f}, {peer_rss} |"
        )
    print("\n".join(rows))
    if not bf16:
        return
    agreement = _median(cases["forward bf16"], "argmax_agreement")
    rounded = _median(cases["forward bf16"], "rounded_input_agreement")
    print(
        "argmax agreement with float32 on MMSegmentation's parity weights (random input):\n"
        f"  enc_tf --precision bfloat16: {100 * agreement:.2f}%\n"
        f"  enc_tf float32 on the input rounded to bfloat16: {100 * rounded:.2f}%"
    )
    if peer:
        theirs = run_peer(args.mmseg_python, "agreement", *FORWARD)
        print(
            "  MMSegmentation bfloat16 (torch.autocast): "
            f"{100 * theirs['argmax_agreement']:.2f}% "
            f"(error {theirs['relative_error']:.2f} of the largest logit)"
        )


if __name__ == "__main__":
    main()
