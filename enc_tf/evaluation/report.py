"""Evaluation outputs: terminal table, JSON, confusion matrix (.npy) and its picture."""

import json
import os

import numpy as np
from PIL import Image, ImageDraw

from enc_tf.files import atomic_write, remove_stale_temporaries


def _json_safe(value):
    """NaN (a class in neither ground truth nor prediction) becomes null: strict JSON."""
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    if isinstance(value, (float, np.floating)):
        return None if not np.isfinite(value) else float(value)
    if isinstance(value, np.integer):
        return int(value)
    return value


def confusion_picture(matrix, class_names=None, cell=None):
    """A PIL image of the row-normalised confusion matrix (ground truth rows, prediction
    columns; white 0 to dark blue 1), with class names when there are at most 60 classes."""
    matrix = np.asarray(matrix, np.float64)
    c = len(matrix)
    rows = matrix.sum(1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    cell = cell or max(4, min(24, 960 // max(c, 1)))
    colours = (255 - norm[..., None] * np.array([225, 185, 75])).astype(
        np.uint8
    )  # towards (30, 70, 180)
    grid = Image.fromarray(colours, "RGB").resize((c * cell, c * cell), Image.NEAREST)
    names = list(class_names) if class_names is not None and c <= 60 else None
    margin = 8 + (6 * max(len(n) for n in names) if names else 0)
    canvas = Image.new("RGB", (grid.width + margin + 8, grid.height + margin + 24), "white")
    canvas.paste(grid, (margin, margin + 16))
    draw = ImageDraw.Draw(canvas)
    draw.text((margin, 2), "rows: ground truth, columns: prediction (row-normalised)", fill="black")
    if names:
        for i, name in enumerate(names):
            draw.text((4, margin + 16 + i * cell + max(0, cell // 2 - 6)), name, fill="black")
        for i, name in enumerate(names):  # column labels: first letters, to keep it compact
            draw.text((margin + i * cell + 1, margin + 4), name[: max(1, cell // 6)], fill="black")
    return canvas


def write_report(out_dir, scores, matrix, extra=None):
    """Writes `evaluation.json` (every number, plus `extra`), `confusion_matrix.npy` and
    `confusion_matrix.png` into `out_dir`, each atomically; returns their paths."""
    os.makedirs(out_dir, exist_ok=True)
    remove_stale_temporaries(out_dir)  # of a killed earlier report
    paths = {
        name: os.path.join(out_dir, name)
        for name in ("evaluation.json", "confusion_matrix.npy", "confusion_matrix.png")
    }
    record = {**scores, **(extra or {})}
    record["notes"] = {
        "mean_iou": "the original's convention: mean over all classes, absent classes count 0",
        "mean_iou_present": (
            "mean over classes present in ground truth or prediction: MMSegmentation's mIoU, "
            "the figure to compare with its published results"
        ),
    }

    def write_json(tmp):
        with open(tmp, "w") as f:
            json.dump(_json_safe(record), f, indent=1, allow_nan=False)

    def write_npy(tmp):
        with open(tmp, "wb") as f:
            np.save(f, np.asarray(matrix, np.int64))

    atomic_write(paths["evaluation.json"], write_json)
    atomic_write(paths["confusion_matrix.npy"], write_npy)
    atomic_write(
        paths["confusion_matrix.png"],
        lambda tmp: confusion_picture(matrix, scores.get("class_names")).save(tmp, format="PNG"),
    )
    return paths


__all__ = ["confusion_picture", "write_report"]


def format_scores(scores):
    """A terminal table: per-class IoU with names, then the summary numbers."""
    names = scores.get("class_names") or [str(i) for i in range(len(scores["per_class_iou"]))]
    lines = [f"{'class':<20s} {'IoU':>7s}"]
    for name, iou in zip(names, scores["per_class_iou"]):
        lines.append(f"{name:<20s} {'   n/a' if np.isnan(iou) else f'{100 * iou:6.2f}'}")
    lines.append(
        f"pixAcc {100 * scores['pixel_accuracy']:.2f}  "
        f"mIoU {100 * scores['mean_iou']:.2f} (original: mean over all classes)  "
        f"mIoU {100 * scores['mean_iou_present']:.2f} (classes present)"
    )
    return "\n".join(lines)
