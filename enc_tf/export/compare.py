"""Exporting a model in several formats and scoring every variant against Keras.

Used by `make demo` (SavedModel, TFLite float32 and int8, ONNX next to the Keras
model) and `benchmarks/export.py` (all variants, with latency).
"""

import dataclasses
import logging
import os
import time
from pathlib import Path
from typing import Callable, Dict, List

import numpy as np
import tensorflow as tf

from enc_tf.metrics import label_confusion, segmentation_scores
from enc_tf.models.logits import logits_function
from enc_tf.models.precision import with_precision

logger = logging.getLogger(__name__)

Runner = Callable[[np.ndarray], Dict[str, np.ndarray]]
VARIANTS = (
    "saved_model",
    "saved_model_bfloat16",
    "tflite_float32",
    "tflite_float16",
    "tflite_dynamic_int8",
    "tflite_int8",
    "tflite_int8_all",
    "onnx",
)


@dataclasses.dataclass
class Variant:
    """One exported model: `run(image (S, S, 3) normalised) -> {"seg": (S, S, C), "se": (C,)}`."""

    name: str
    run: Runner
    path: str
    size_bytes: int


@dataclasses.dataclass
class VariantScore:
    name: str
    size_bytes: int
    latency_ms: float  # median over the images, batch 1
    agreement: float  # fraction of pixels whose argmax equals Keras's
    se_error: float  # largest |SE logit - Keras SE logit| (nan without an SE head)
    mean_iou: float
    pixel_accuracy: float


def _path_size(path):
    path = Path(path)
    return (
        path.stat().st_size
        if path.is_file()
        else sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
    )


def validation_examples(source, count=None):
    """`([(image (S, S, 3) normalised, label (S, S))], S)` from a source's validation
    split, whole images; they must share one square size (the TFLite input size)."""
    from enc_tf.data import PipelineConfig, build_dataset

    data = build_dataset(source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False)
    if count is not None:
        data = data.take(count)
    examples = [(x[0].numpy(), t["seg"][0].numpy()) for x, t in data]
    size = examples[0][0].shape[0]
    if any(x.shape[:2] != (size, size) for x, _ in examples):
        raise ValueError("Comparing exports needs square validation images of one size.")
    return examples, size


def keras_runner(model) -> Runner:
    """Keras through one `tf.function`, batch 1."""
    function = logits_function(model)

    def run(image):
        return {k: np.asarray(v)[0] for k, v in function(image[None]).items()}

    return run


def export_variants(
    model, classes, out_dir, size, representative=None, names=VARIANTS, num_threads=None
) -> List[Variant]:
    """Exports `model` as each of `names` (see `VARIANTS`) into `out_dir`; returns runners.

    TFLite variants take `size x size` inputs; `representative` (a callable yielding
    normalised training images of that size) is needed for the int8 ones.
    `num_threads` is given to the TFLite and ONNX Runtime runners (None: their default).
    """
    from enc_tf.export.saved_model import export_saved_model
    from enc_tf.export.tflite import TFLiteRunner, convert, write_tflite

    unknown = set(names) - set(VARIANTS)
    if unknown:
        raise ValueError(f"Unknown export variants {sorted(unknown)}; choose from {VARIANTS}.")
    os.makedirs(out_dir, exist_ok=True)
    variants = []
    for name in names:
        start = time.perf_counter()
        if name.startswith("saved_model"):
            precision = "bfloat16" if name.endswith("bfloat16") else "float32"
            path = export_saved_model(
                with_precision(model, precision), classes, out_dir, name, version=1, overwrite=True
            )
            signature = tf.saved_model.load(path).signatures["logits"]
            run = (lambda sig: lambda x: {k: v.numpy()[0] for k, v in sig(images=x[None]).items()})(
                signature
            )
        elif name == "onnx":
            from enc_tf.export.onnx import OnnxRunner, to_onnx, write_onnx

            proto = to_onnx(model, classes)
            path = write_onnx(proto, os.path.join(out_dir, "encnet.onnx"))
            run = OnnxRunner(proto, num_threads=num_threads)
        else:
            suffix = name[
                len("tflite_") :
            ]  # a TFLite mode, or int8_all: int8 with nothing kept float
            mode = "int8" if suffix == "int8_all" else suffix
            kwargs = {"float_scopes": ()} if suffix == "int8_all" else {}
            flatbuffer = convert(
                model, mode, size, representative if mode == "int8" else None, **kwargs
            )
            path = write_tflite(flatbuffer, os.path.join(out_dir, f"encnet_{suffix}.tflite"))
            run = TFLiteRunner(model_content=flatbuffer, num_threads=num_threads)
        logger.info("Exported %s to %s in %.0f s", name, path, time.perf_counter() - start)
        variants.append(Variant(name, run, path, _path_size(path)))
    return variants


def score_variants(variants, examples, num_classes, ignore_index, reference: Runner):
    """Runs every variant on `examples` (`[(image (S, S, 3), label (S, S))]`) and scores it.

    Agreement and SE error are measured against `reference` (the Keras model's
    runner; include it in `variants` as well to get its own row).
    """
    reference_outputs = [reference(x) for x, _ in examples]
    scores = []
    for variant in variants:
        variant.run(examples[0][0])  # warm-up
        times, matrix, agree, se_error = [], np.zeros((num_classes, num_classes), np.int64), [], 0.0
        for (image, label), expected in zip(examples, reference_outputs):
            start = time.perf_counter()
            out = variant.run(image)
            times.append(time.perf_counter() - start)
            prediction = np.argmax(out["seg"], -1)
            matrix += label_confusion(label, prediction, num_classes, ignore_index)
            agree.append(np.mean(prediction == np.argmax(expected["seg"], -1)))
            if "se" in out and "se" in expected:
                se_error = max(se_error, float(np.abs(out["se"] - expected["se"]).max()))
            else:
                se_error = float("nan")
        result = segmentation_scores(matrix)
        scores.append(
            VariantScore(
                variant.name,
                variant.size_bytes,
                1e3 * float(np.median(times)),
                float(np.mean(agree)),
                se_error,
                float(result["mean_iou"]),
                float(result["pixel_accuracy"]),
            )
        )
    return scores


def format_table(scores: List[VariantScore], latency=True) -> str:
    header = ["variant", "size MiB", "argmax = Keras", "max SE logit error", "mIoU", "pixAcc"]
    if latency:
        header.insert(1, "latency ms")
    rows = []
    for s in scores:
        row = [
            s.name,
            f"{s.size_bytes / 2**20:.1f}",
            f"{100 * s.agreement:.2f}%",
            f"{s.se_error:.3f}",
            f"{100 * s.mean_iou:.2f}",
            f"{100 * s.pixel_accuracy:.2f}",
        ]
        if latency:
            row.insert(1, f"{s.latency_ms:.0f}")
        rows.append(row)
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows)]
    line = " | ".join(f"{{:<{w}}}" for w in widths)
    return "\n".join(
        [line.format(*header), "-+-".join("-" * w for w in widths)]
        + [line.format(*r) for r in rows]
    )
