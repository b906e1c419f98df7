"""The paths users run, enc_tf against MMSegmentation on the same CPU, model and files.

Model: EncNet R-50-D8 on MMSegmentation's parity weights (150 classes, as
benchmarks/vs_mmseg.py). Files: ADE20K-like 683x512 JPEGs with PNG masks (written here).
Each case runs in its own process, ours then the peer's:
- predict, seconds per image file: our `Segmenter` vs `mmseg.apis.inference_model` (its
  ADE20K test pipeline: whole-image inference in the 2048x512 box), ours with each
  protocol: MMSegmentation's (`protocol="mmseg"`, the default for the models it published)
  and the paper's single scale (the image's own resolution through 480 windows);
- multi-scale + flip, seconds per image: enc-eval's code path with the paper's protocol
  (scales 0.5-1.75 of base 520, 480 windows, flips) vs MMSegmentation's `tta_pipeline` with
  `SegTTAModel` (ratios 0.5-1.75 of the image, whole-image passes, flips);
- training input pipeline, images per second (decode, each recipe's augmentation, batches of
  8): our `build_dataset` on two cores (tf.data threads) vs MMSegmentation's
  ADE20KDataset `train_pipeline` in a DataLoader with 2 worker processes plus its data
  preprocessor.
Per-image figures are medians after the first image (tracing, warm-up).

  .venv/bin/python benchmarks/vs_mmseg_paths.py --mmseg-python /tmp/mmseg/bin/python \\
      [--images 4 --tta-images 2 --isa native|avx2|avx512]
Never part of `make test`.
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

CROP = 480  # enc-eval's and the recipe's defaults for ADE20K (base 520)
BASE = 520
BATCH = 8


def worker_predict(model_path, folder, protocol):
    from benchmarks.common import emit, peak_rss_mb, per_image_seconds
    from benchmarks.vs_mmseg import _set_threads
    from enc_tf.inference import Segmenter

    _set_threads()
    files = sorted(str(p) for p in Path(folder, "images").glob("*.jpg"))
    if protocol == "mmseg":
        segmenter = Segmenter(model_path, protocol="mmseg", mmseg_preset="ade20k")
    else:
        segmenter = Segmenter(model_path, crop_size=CROP, base_size=BASE)
    seconds = per_image_seconds(lambda i: segmenter(files[i]).labels, len(files))
    emit({"seconds": seconds, "peak_rss_mib": peak_rss_mb()})


def worker_multi_scale(model_path, folder):
    """enc-eval's code path (`enc_tf.evaluation.cli.run`) with the paper's multi-scale + flip
    protocol, timed per image through its progress callback."""
    from benchmarks.common import emit, peak_rss_mb
    from benchmarks.vs_mmseg import _set_threads
    from enc_tf.artifacts import load_model
    from enc_tf.data import PipelineConfig, build_dataset, folder_source
    from enc_tf.data.pipeline import NumpyIterator
    from enc_tf.evaluation.protocol import evaluate_protocol
    from enc_tf.protocols import PAPER_SCALES, PaperConfig, PaperPredictor

    _set_threads()
    loaded = load_model(model_path)
    source = folder_source(folder)
    predictor = PaperPredictor(
        loaded.logits_fn, loaded.num_classes, PaperConfig(BASE, CROP, PAPER_SCALES, True)
    )
    data = build_dataset(source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False)
    examples = data.map(lambda image, targets: (image[0], targets["seg"][0]))
    stamps = [time.perf_counter()]

    def progress(done, total):
        stamps.append(time.perf_counter())

    with NumpyIterator(examples, source) as arrays:
        evaluate_protocol(predictor, arrays, source.ignore_index, progress=progress)
    times = [b - a for a, b in zip(stamps[1:], stamps[2:])]  # after the first image
    emit({"seconds": statistics.median(times), "peak_rss_mib": peak_rss_mb()})


def worker_pipeline(folder, batches):
    from benchmarks.common import emit, peak_rss_mb
    from benchmarks.data import pipeline_rate
    from benchmarks.vs_mmseg import _set_threads
    from enc_tf.data import PipelineConfig, folder_source

    _set_threads()
    config = PipelineConfig(batch_size=BATCH, base_size=BASE, crop_size=CROP)
    rate = pipeline_rate(folder_source(folder), config, int(batches))
    emit({"images_per_second": rate, "peak_rss_mib": peak_rss_mb()})


def _row(name, ours, theirs, goal, form):
    ratio = f"{ours / theirs:.2f}" if theirs else "-"
    theirs = form.format(theirs) if theirs else "-"
    return f"| {name} | {form.format(ours)} | {theirs} | {ratio} | {goal} |"


def main():
    from benchmarks.common import (
        add_isa_option,
        isa_environment,
        kernel_choices_line,
        machine,
        run_case,
        write_ade_like,
    )
    from benchmarks.vs_mmseg import peer_available, run_peer

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--worker", nargs="*")
    parser.add_argument("--mmseg-python", help="interpreter with mmsegmentation installed")
    parser.add_argument("--images", type=int, default=4, help="files for predict (>= 2)")
    parser.add_argument("--tta-images", type=int, default=2, help="files for multi-scale (>= 2)")
    parser.add_argument(
        "--batches", type=int, default=30, help="timed batches of the pipeline (8 images each)"
    )
    add_isa_option(parser)
    args = parser.parse_args()
    if args.worker is not None:
        kind, *rest = args.worker
        workers = {
            "predict": worker_predict,
            "multi_scale": worker_multi_scale,
            "pipeline": worker_pipeline,
        }
        return workers[kind](*rest)
    os.environ.update(isa_environment(args.isa))
    print(machine())
    print(f"enc_tf's choices for this machine: {kernel_choices_line()}")
    peer = peer_available(args.mmseg_python)
    if not peer:
        print("MMSegmentation is not available (--mmseg-python): only enc_tf's figures.")
    tmp = tempfile.mkdtemp()
    folders = {}
    for name, count in (("predict", args.images), ("tta", args.tta_images), ("pipeline", 48)):
        folders[name] = os.path.join(tmp, name)
        write_ade_like(folders[name], count=count)
    model_path = os.path.join(tmp, "mmseg_parity_weights.keras")
    run_case(str(Path(__file__).parent / "vs_mmseg.py"), "save", model_path)
    cases = (  # name, our worker and its arguments, the peer's case, files, goal
        (
            "predict (mmseg protocol), s/image",
            ("predict", "mmseg"),
            "predict",
            "predict",
            "<= 0.75",
        ),
        ("predict (paper single scale), s/image", ("predict", "paper"), "predict", "predict", "-"),
        ("multi-scale + flip, s/image", ("multi_scale",), "tta", "tta", "<= 0.77 (1.3x images/s)"),
    )
    rows, peer_seconds = [], {}
    for name, (worker, *extra), peer_case, files, goal in cases:
        ours = run_case(__file__, worker, model_path, folders[files], *extra)["seconds"]
        if peer and peer_case not in peer_seconds:
            peer_seconds[peer_case] = run_peer(args.mmseg_python, peer_case, folders[files])[
                "seconds"
            ]
        rows.append(_row(name, ours, peer_seconds.get(peer_case), goal, "{:.2f}"))
    ours = run_case(__file__, "pipeline", folders["pipeline"], args.batches)["images_per_second"]
    theirs = None
    if peer:
        theirs = run_peer(args.mmseg_python, "pipeline", folders["pipeline"], args.batches, 2)
        theirs = theirs["images_per_second"]
    rows.append(_row("input pipeline, images/s", ours, theirs, ">= 1.3", "{:.1f}"))
    print("| path | enc_tf | MMSegmentation | ratio | goal |\n|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
