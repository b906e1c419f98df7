"""`enc-predict MODEL INPUT... --out DIR`: segment image files, directories or globs.

Writes per image `<name>_labels.png` (the label map as an index PNG with the
class palette embedded), `<name>_overlay.png` (colours over the image, with a
legend of the classes present), optionally `<name>_probabilities.npy`, and a
`predictions.json` with, per input, its output name, the classes present (pixel
share) and, for models with an SE head, the image-level class presence.

Output names: `<name>` is the input's path below the deepest directory that holds
all inputs, without its extension (`a/x.jpg b/y.png` -> `a/x`, `b/y`; inputs from
one directory -> just the stem). Inputs that would share a name keep their
extension (`a/x.jpg a/x.png` -> `a/x.jpg`, `a/x.png`); so no output is ever
written over another.

An image that cannot be read or segmented is reported and skipped; the others are
still written, `predictions.json` always lists both (exit status 1 then).
"""

import argparse
import glob
import json
import logging
import math
import os
import sys

import numpy as np
import tensorflow as tf

from enc_tf.artifacts import read_class_file
from enc_tf.console import ProgressBar, add_precision_option, command_parser, error_line, run_cli
from enc_tf.data.io import list_images, read_image
from enc_tf.errors import ConfigError, DataError, EncTfError
from enc_tf.files import atomic_write, remove_stale_temporaries, write_text_atomic
from enc_tf.inference.segmenter import (
    DEFAULT_MAX_PIXELS,
    PROTOCOLS,
    Segmenter,
    resolve_protocol,
)
from enc_tf.presets import MODEL_HELP, find
from enc_tf.protocols import MMSEG_PRESETS, PAPER_SCALES, preset_summary
from enc_tf.visualize import index_png, overlay

logger = logging.getLogger(__name__)

PREDICTIONS_FILE = "predictions.json"
PROTOCOL_LABELS = {"protocol": "--protocol", "mmseg_preset": "--mmseg-preset"}


def expand_inputs(inputs):
    """Image paths from files, directories (their images, sorted) and glob patterns; each
    path once."""
    paths = []
    for item in inputs:
        if os.path.isdir(item):
            paths += list_images(item)
        elif any(ch in item for ch in "*?["):
            found = sorted(glob.glob(item))
            if not found:
                raise DataError(f"No file matches {item!r}.")
            paths += found
        else:
            paths.append(item)  # a missing file is reported when it is read
    seen, unique = set(), []
    for path in paths:
        key = os.path.realpath(path)
        if key not in seen:
            seen.add(key)
            unique.append(path)
    return unique


def output_names(paths):
    """`{path: name}`: each input's output name (see the module docstring), unique per input.

    Raises:
        DataError: when two inputs would still share a name (`x.jpg` next to `x.jpg.png`).
    """
    if not paths:
        return {}
    absolute = [os.path.abspath(p) for p in paths]
    root = os.path.commonpath([os.path.dirname(p) for p in absolute])
    relative = [os.path.relpath(p, root) for p in absolute]
    stems = [os.path.splitext(r)[0] for r in relative]
    # casefold: on case-insensitive file systems `X.png` and `x.png` are one output.
    counts = {}
    for stem in stems:
        counts[stem.casefold()] = counts.get(stem.casefold(), 0) + 1
    names = {
        path: stem if counts[stem.casefold()] == 1 else rel
        for path, stem, rel in zip(paths, stems, relative)
    }
    taken = {}
    for path, name in names.items():
        other = taken.setdefault(name.casefold(), path)
        if other != path:
            raise DataError(
                f"The inputs {other} and {path} would both write {name}_labels.png; "
                "rename one of them."
            )
    return names


def _save(picture_or_array, path):
    if isinstance(picture_or_array, np.ndarray):
        atomic_write(path, lambda tmp: np.save(tmp, picture_or_array))
    else:
        atomic_write(path, lambda tmp: picture_or_array.save(tmp, format="PNG"))


def _describe(err):
    """One line for a skipped image."""
    if isinstance(err, tf.errors.OpError):  # TensorFlow appends the graph's call stack
        return (
            f"{type(err).__name__}: "
            f"{err.message.strip().splitlines()[0] if err.message.strip() else ''}"
        )
    line = error_line(err)
    return line if isinstance(err, (EncTfError, OSError)) else f"{type(err).__name__}: {line}"


def _predict_one(segmenter, path, stem, probabilities):
    classes = segmenter.classes
    image = read_image(path, segmenter.max_pixels)
    result = segmenter(image, name=path, probabilities=probabilities)
    _save(index_png(result.labels, classes), f"{stem}_labels.png")
    _save(overlay(image, result.labels, classes), f"{stem}_overlay.png")
    if probabilities:
        _save(result.probabilities.astype(np.float32), f"{stem}_probabilities.npy")
    counts = np.bincount(result.labels.ravel())
    ids = np.flatnonzero(counts)
    counts = counts[ids]
    entry = {
        "size": list(image.shape[:2]),
        "classes": {
            classes.names[i]: round(float(c) / result.labels.size, 6) for i, c in zip(ids, counts)
        },
    }
    if result.presence is not None:
        entry["se_presence"] = {
            n: round(float(p), 6) for n, p in zip(classes.names, result.presence)
        }
    return entry


def predict_files(segmenter, paths, out_dir, probabilities=False, progress=None):
    """Segments each file into `out_dir` and writes `predictions.json`; returns
    `(summary, failures)`. Calls `progress(done, total)` after each file when given.

    Any failure of one image (unreadable, too large, a model error) is logged and
    recorded in `failures`; the other images are still processed.
    """
    names = output_names(paths)
    os.makedirs(out_dir, exist_ok=True)
    for directory in sorted(
        {os.path.dirname(os.path.join(out_dir, n)) for n in names.values()} | {out_dir}
    ):
        remove_stale_temporaries(directory)
    summary, failures = {}, {}
    for done, path in enumerate(paths, 1):
        stem = os.path.join(out_dir, names[path])
        try:
            entry = _predict_one(segmenter, path, stem, probabilities)
        except Exception as err:  # one image's failure, whatever it is, must not lose the others
            logger.debug("Segmenting %s failed", path, exc_info=True)
            failures[path] = _describe(err)
            logger.error("Skipped %s: %s", path, failures[path])
        else:
            summary[path] = {"output": names[path], **entry}
            logger.debug("%s -> %s_labels.png", path, stem)
        if progress is not None:
            progress(done, len(paths))
    text = json.dumps({"images": summary, "failed": failures}, indent=1, allow_nan=False)
    write_text_atomic(text, os.path.join(out_dir, PREDICTIONS_FILE))
    return summary, failures


def _protocol(args):
    """`(protocol, mmseg_preset)` from the options and the model (see `resolve_protocol`)."""
    protocol, mmseg_preset = resolve_protocol(
        args.model, args.protocol, args.mmseg_preset, PROTOCOL_LABELS
    )
    for flag, value in (("--base-size", args.base_size), ("--crop-size", args.crop_size)):
        if protocol == "mmseg" and value is not None:
            raise ConfigError(
                f"{flag} applies to --protocol paper only; --protocol mmseg uses the settings "
                f"of --mmseg-preset ({mmseg_preset})."
            )
    return protocol, mmseg_preset


def _window(args):
    """`--crop-size` / `--base-size`, else a preset's training crop, else the paper's 480/520."""
    preset = find(args.model)
    crop = args.crop_size or (preset.crop_size if preset and preset.crop_size else 480)
    base = args.base_size or max(520, crop)
    return base, crop


def _check_arguments(args):
    if args.max_pixels < 1:
        raise ConfigError(f"--max-pixels must be a positive integer, got {args.max_pixels}.")
    for flag, value in (("--base-size", args.base_size), ("--crop-size", args.crop_size)):
        if value is not None and value < 1:
            raise ConfigError(f"{flag} must be a positive integer, got {value}.")
    for scale in args.scales:
        if not (math.isfinite(scale) and scale > 0):
            raise ConfigError(f"--scales must be positive numbers, got {scale}.")


def run(args):
    _check_arguments(args)
    paths = expand_inputs(args.inputs)
    output_names(paths)  # name clashes are refused before the model is loaded
    classes = read_class_file(args.classes) if args.classes else None
    protocol, mmseg_preset = _protocol(args)
    base_size, crop_size = _window(args)
    segmenter = Segmenter(
        args.model,
        classes,
        args.multi_scale,
        base_size,
        crop_size,
        args.scales,
        precision=args.precision,
        max_pixels=args.max_pixels,
        protocol=protocol,
        mmseg_preset=mmseg_preset,
    )
    summary, failures = predict_files(
        segmenter, paths, args.out, args.probabilities, ProgressBar("images", "segmenting")
    )
    print(
        f"{len(summary)} image(s) written to {args.out}"
        + (f"; {len(failures)} failed (see predictions.json)" if failures else "")
    )
    return 1 if failures else 0


def main(argv=None):
    parser = command_parser("enc-predict", __doc__)
    add_precision_option(parser)
    parser.add_argument("model", help=MODEL_HELP + ", or SavedModel directory")
    parser.add_argument("inputs", nargs="+", help="image files, directories or glob patterns")
    parser.add_argument(
        "--out", default="predictions", help="the directory to write label maps and overlays into"
    )
    parser.add_argument(
        "--classes", help="class list (YAML/JSON) when the model does not carry one"
    )
    parser.add_argument(
        "--protocol",
        choices=PROTOCOLS,
        help="paper: the paper's test-time protocol; mmseg: MMSegmentation's (default: mmseg "
        "for the models MMSegmentation published, with their settings; else paper)",
    )
    parser.add_argument(
        "--mmseg-preset",
        choices=sorted(MMSEG_PRESETS),
        help=f"--protocol mmseg: MMSegmentation's test settings, {preset_summary()} (default: "
        "the preset model's own)",
    )
    parser.add_argument(
        "--multi-scale",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="multi-scale + flip: the paper's scales of --base-size, or MMSegmentation's "
        "ratios of its scale box",
    )
    parser.add_argument(
        "--scales",
        type=float,
        nargs="+",
        default=list(PAPER_SCALES),
        help="the scales (ratios) of --multi-scale",
    )
    parser.add_argument(
        "--base-size",
        type=int,
        help="--protocol paper: multi-scale base size (default: max(520, crop size))",
    )
    parser.add_argument(
        "--crop-size",
        type=int,
        help="--protocol paper: sliding-window side (default: a preset's training crop, else 480)",
    )
    parser.add_argument(
        "--probabilities",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="also write the class probabilities (.npy)",
    )
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=DEFAULT_MAX_PIXELS,
        help="refuse larger images, read from the file's header before decoding "
        f"(default {DEFAULT_MAX_PIXELS})",
    )
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
