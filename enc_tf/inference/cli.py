"""`enc-predict MODEL INPUT... --out DIR`: segment image files, directories or globs.

Writes per image `<name>_labels.png` (the label map as an index PNG with the
class palette embedded), `<name>_overlay.png` (colours over the image, with a
legend of the classes present), optionally `<name>_probabilities.npy`, and a
`predictions.json` with the classes present (pixel share) and, for models with
an SE head, the image-level class presence. An unreadable image is reported and
skipped; the others are still written (exit status 1 then).
"""

import argparse
import glob
import json
import logging
import os
import sys

import numpy as np

from enc_tf.data.classes import load_class_file
from enc_tf.data.io import IMAGE_EXTENSIONS, DataError, read_image
from enc_tf.evaluation.multi_scale import PAPER_SCALES
from enc_tf.files import atomic_write
from enc_tf.inference.predictor import Segmenter
from enc_tf.visualize import index_png, overlay

logger = logging.getLogger(__name__)


def expand_inputs(inputs):
    """Image paths from files, directories (their images, sorted) and glob patterns."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            found = sorted(os.path.join(item, f) for f in os.listdir(item) if f.lower().endswith(IMAGE_EXTENSIONS))
            if not found:
                raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in directory {item!r}.")
            paths += found
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise FileNotFoundError(f"No file matches {item!r}.")
            paths += found
        else:
            paths.append(item)  # a missing file is reported when it is read
    return paths


def _save(picture_or_array, path):
    if isinstance(picture_or_array, np.ndarray):
        atomic_write(path, lambda tmp: np.save(tmp, picture_or_array))
    else:
        atomic_write(path, lambda tmp: picture_or_array.save(tmp, format="PNG"))


def predict_files(segmenter, paths, out_dir, probabilities=False):
    """Segments each file into `out_dir`; returns `(summary, failures)`."""
    os.makedirs(out_dir, exist_ok=True)
    classes = segmenter.classes
    summary, failures = {}, {}
    for path in paths:
        try:
            image = read_image(path)
        except DataError as err:
            logger.error("Skipped: %s", err)
            failures[path] = str(err)
            continue
        result = segmenter(image, name=path)
        stem = os.path.join(out_dir, os.path.splitext(os.path.basename(path))[0])
        _save(index_png(result.labels, classes), f"{stem}_labels.png")
        _save(overlay(image, result.labels, classes), f"{stem}_overlay.png")
        if probabilities:
            _save(result.probabilities.astype(np.float32), f"{stem}_probabilities.npy")
        ids, counts = np.unique(result.labels, return_counts=True)
        entry = {"size": list(image.shape[:2]),
                 "classes": {classes.names[i]: round(float(c) / result.labels.size, 6) for i, c in zip(ids, counts)}}
        if result.presence is not None:
            entry["se_presence"] = {n: round(float(p), 6) for n, p in zip(classes.names, result.presence)}
        summary[path] = entry
        logger.info("%s -> %s_labels.png", path, stem)
    with open(os.path.join(out_dir, "predictions.json"), "w") as f:
        json.dump({"images": summary, "failed": failures}, f, indent=1)
    return summary, failures


def main(argv=None):
    parser = argparse.ArgumentParser(prog="enc-predict", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("model", help=".keras file, run directory or SavedModel directory")
    parser.add_argument("inputs", nargs="+", help="image files, directories or glob patterns")
    parser.add_argument("--out", default="predictions")
    parser.add_argument("--classes", help="class list (YAML/JSON) when the model does not carry one")
    parser.add_argument("--multi-scale", action="store_true", help="the paper's multi-scale + flip protocol")
    parser.add_argument("--scales", type=float, nargs="+", default=list(PAPER_SCALES))
    parser.add_argument("--base-size", type=int, default=520)
    parser.add_argument("--crop-size", type=int, default=480)
    parser.add_argument("--probabilities", action="store_true", help="also write the class probabilities (.npy)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(message)s")
    try:
        paths = expand_inputs(args.inputs)
        classes = load_class_file(args.classes) if args.classes else None
        segmenter = Segmenter(args.model, classes, args.multi_scale, args.base_size, args.crop_size, args.scales)
    except (DataError, FileNotFoundError, ValueError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    summary, failures = predict_files(segmenter, paths, args.out, args.probabilities)
    print(f"{len(summary)} image(s) written to {args.out}" + (f"; {len(failures)} failed (see predictions.json)" if failures else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
