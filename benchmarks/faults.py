"""Fault soak: a small training job killed at seeded random moments, restarted each time.

    python benchmarks/faults.py [--kills 10] [--seed 0] [--epochs 8] [--steps 4]
        [--signals KILL,TERM,INT] [--keep DIR]

Each kill sends one of `--signals`, drawn with the moment: SIGKILL (no chance to clean up),
SIGTERM (a scheduler's stop) or SIGINT (Ctrl-C); the process is then waited for.

The kill moments are drawn from: a random delay after the start (mostly mid-epoch),
while a resume point is being written (`backup/.enc_tf-tmp-*`), while a checkpoint is being
written (`checkpoints/.enc_tf-tmp-*`), and right after a `log.csv` row appears (before its
epoch is committed). After the last restart the run finishes, and the script checks
it against an uninterrupted run of the same config (dropout 0, deterministic ops):

- every epoch appears exactly once in log.csv;
- the optimizer's step counter equals epochs x steps;
- checkpoints.json's best epoch is the best score's epoch in log.csv;
- every checkpoint loads with finite weights; no temporary file is left;
- every epoch saw the same batches (its training loss equals the uninterrupted run's);
- the final weights equal the uninterrupted run's.

Prints the CPU, every kill (moment, what the restart resumed from) and a table of checks.
"""

import argparse
import csv
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.dirname(os.path.abspath(__file__)), ROOT]  # this checkout's enc_tf
from common import machine, table  # noqa: E402

from enc_tf.files import TEMP_PREFIX  # noqa: E402

MOMENTS = ("delay", "backup write", "checkpoint write", "log row")


def _command(work, run, epochs, steps):
    overrides = [
        f"data.root={work}/cache",
        "data.context_shapes_train=8",
        "data.context_shapes_val=4",
        "data.context_shapes_size=64",
        "data.base_size=64",
        "data.crop_size=48",
        "model.output_stride=16",
        "model.dropout=0.0",
        "train.batch_size=2",
        f"train.steps_per_epoch={steps}",
        f"train.epochs={epochs}",
        f"train.run_dir={run}",
        "train.deterministic=true",
        "optimizer.base_lr=0.004",
    ]
    return [sys.executable, os.path.join(ROOT, "train.py")] + [
        a for o in overrides for a in ("--set", o)
    ]


def _temporaries(directory):
    return (
        [n for n in os.listdir(directory) if n.startswith(TEMP_PREFIX)]
        if os.path.isdir(directory)
        else []
    )


def _rows(run):
    path = os.path.join(run, "log.csv")
    if not os.path.isfile(path):
        return []
    with open(path) as f:
        return list(csv.DictReader(f))


def _moment(kind, run, delay, started):
    if kind == "delay":
        return lambda: time.monotonic() - started > delay
    if kind in ("backup write", "checkpoint write"):
        # A write of this start, not a leftover of the previous kill (which the start removes).
        directory = os.path.join(run, "backup" if kind == "backup write" else "checkpoints")
        leftovers = set(_temporaries(directory))
        return lambda: bool(set(_temporaries(directory)) - leftovers)
    rows = len(_rows(run))
    return lambda: len(_rows(run)) > rows


def _kill_at(command, env, log_path, moment, sig=signal.SIGKILL, timeout=600):
    """Runs `command` until `moment()` holds, then sends `sig` to it and waits (SIGKILL after
    60 s if it has not ended); False if it ended first."""
    with open(log_path, "w") as log:
        process = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        try:
            while not moment() and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.005)
            if process.poll() is not None:
                return False
            os.killpg(process.pid, sig)
            try:
                process.wait(60)
            except subprocess.TimeoutExpired:
                pass
            return True
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def _resumed_from(log_path):
    with open(log_path) as f:
        for line in f:
            if "Resuming after epoch" in line:
                return int(line.split("Resuming after epoch")[1].split()[0])
    return 0


def _check_run(run, reference, epochs, steps):
    import keras
    import numpy as np

    from enc_tf.training.run_state import non_finite_variables, resume_point_arrays

    rows, ref_rows = _rows(run), _rows(reference)
    checks = []
    epochs_logged = [int(r["epoch"]) for r in rows]
    checks.append(
        ("every epoch once in log.csv", epochs_logged == list(range(epochs)), str(epochs_logged))
    )
    model = keras.models.load_model(os.path.join(run, "model.keras"))
    iterations = int(model.optimizer.iterations.numpy())
    checks.append(
        (
            "step counter = epochs x steps",
            iterations == epochs * steps,
            f"{iterations} = {epochs} x {steps}",
        )
    )
    index = json.load(open(os.path.join(run, "checkpoints", "checkpoints.json")))
    scores = [float(r["val_seg_mean_iou"]) for r in rows]
    best = int(np.argmax(scores))
    checks.append(
        (
            "best.keras = best score's epoch",
            index["best"]["epoch"] == best,
            f"index {index['best']['epoch']}, log {best}",
        )
    )
    finite = all(
        not non_finite_variables(
            keras.models.load_model(os.path.join(run, "checkpoints", f"{n}.keras")).weights
        )
        for n in ("last", "best")
    )
    checks.append(("checkpoints load, finite", finite, "last.keras, best.keras"))
    left = [
        os.path.join(d, n)
        for d in (run, os.path.join(run, "checkpoints"), os.path.join(run, "backup"))
        for n in _temporaries(d)
    ]
    checks.append(("no temporary file left", not left, f"{len(left)} left"))
    losses = [float(r["loss"]) for r in rows]
    ref_losses = [float(r["loss"]) for r in ref_rows]
    loss_gap = max(abs(a - b) for a, b in zip(losses, ref_losses))
    checks.append(
        (
            "same batches per epoch (train loss)",
            loss_gap <= 1e-6 * max(map(abs, ref_losses)),
            f"max |loss - uninterrupted| = {loss_gap:.3g}",
        )
    )
    a = resume_point_arrays(os.path.join(run, "backup", f"epoch-{epochs:05d}.weights.h5"))
    b = resume_point_arrays(os.path.join(reference, "backup", f"epoch-{epochs:05d}.weights.h5"))
    gap = max(
        float(np.max(np.abs(a[k].astype("float64") - b[k]))) for k in b if b[k].dtype.kind == "f"
    )
    checks.append(
        (
            "final weights = uninterrupted run's",
            a.keys() == b.keys() and gap <= 1e-6,
            f"max abs difference {gap:.3g} over {len(b)} arrays",
        )
    )
    return checks


def main():
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--kills", type=int, default=10)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=4)
    parser.add_argument(
        "--signals", default="KILL,TERM,INT", help="signals to stop the run with (drawn per kill)"
    )
    parser.add_argument(
        "--keep", help="keep the runs in this directory (default: a temporary one, removed)"
    )
    args = parser.parse_args()
    work = args.keep or tempfile.mkdtemp(prefix="enc_tf_faults_")
    os.makedirs(work, exist_ok=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ROOT}
    print(f"CPU: {machine()}")
    reference, run = os.path.join(work, "uninterrupted"), os.path.join(work, "killed")
    started = time.monotonic()
    done = subprocess.run(
        _command(work, reference, args.epochs, args.steps), env=env, capture_output=True, text=True
    )
    if done.returncode:
        sys.exit(f"the uninterrupted run failed:\n{done.stderr[-3000:]}")
    print(f"uninterrupted run: {time.monotonic() - started:.0f} s")

    rng = random.Random(args.seed)
    signals = [name.strip().upper() for name in args.signals.split(",") if name.strip()]
    for name in signals:
        if name not in ("KILL", "TERM", "INT"):
            sys.exit(f"--signals takes KILL, TERM and INT, got {name!r}")
    command = _command(work, run, args.epochs, args.steps)
    kills, attempts = [], 0
    while len(kills) < args.kills and attempts < 3 * args.kills:
        attempts += 1
        kind = (
            MOMENTS[len(kills) % len(MOMENTS)] if len(kills) < len(MOMENTS) else rng.choice(MOMENTS)
        )
        delay = rng.uniform(8.0, 40.0)
        sig = getattr(signal, "SIG" + rng.choice(signals))
        log_path = os.path.join(work, f"attempt-{attempts:02d}.log")
        t0 = time.monotonic()
        if not _kill_at(command, env, log_path, _moment(kind, run, delay, t0), sig):
            print(
                f"  attempt {attempts}: the run finished before '{kind}'; "
                "starting over is not needed"
            )
            break
        kills.append(
            (
                len(kills) + 1,
                sig.name,
                kind + (f" ({delay:.1f} s)" if kind == "delay" else ""),
                _resumed_from(log_path),
                len(_rows(run)),
            )
        )
    final_log = os.path.join(work, "final.log")
    with open(final_log, "w") as log:
        finished = subprocess.run(command, env=env, stdout=log, stderr=subprocess.STDOUT)
    print(
        table(
            (
                "kill",
                "signal",
                "moment",
                "that start resumed after epoch",
                "log.csv rows at the kill",
            ),
            kills,
        )
    )
    if finished.returncode:
        sys.exit(f"the final restart failed (exit {finished.returncode}); see {final_log}")
    checks = _check_run(run, reference, args.epochs, args.steps)
    print(
        table(
            ("check", "passed", "measured"), [(c, "yes" if ok else "NO", m) for c, ok, m in checks]
        )
    )
    print(
        f"{len(kills)} kills, {sum(ok for _, ok, _ in checks)}/{len(checks)} checks passed, "
        f"{time.monotonic() - started:.0f} s in all"
    )
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)
    sys.exit(0 if all(ok for _, ok, _ in checks) else 1)


if __name__ == "__main__":
    main()
