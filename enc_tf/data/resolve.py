"""One way from a dataset's description (a `DataConfig` or command-line flags) to its sources.

Used by training, `enc-eval`, `enc-export --format tflite` (calibration images) and
`python -m enc_tf.data`.
"""

import os

from enc_tf.config import DATASETS
from enc_tf.data.context_shapes import ensure_context_shapes
from enc_tf.data.sources import get_source
from enc_tf.data.tfrecord import read_tfrecord_source
from enc_tf.errors import DataError


def resolve_source(
    dataset, root, split, classes=None, label_mapping=None, strict=True, context_shapes=None
):
    """The source of one split.

    Args:
        dataset: one of `DATASETS`.
        root: the dataset directory (`context_shapes`: its cache directory, "" = default;
            `tfrecord`: the directory holding one sub-directory per split).
        split: split name; for `folder`, None or "" means every image.
        classes, label_mapping: `folder` datasets only (class list file, `identity`
            or `reduce_zero`); an error for the others.
        strict: False lists images without masks in `source.problems` instead of raising.
        context_shapes: `(num_train, num_val, image_size)` of a generated ContextShapes.
    """
    if dataset not in DATASETS:
        raise DataError(f"Unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}.")
    if dataset != "folder" and (classes or (label_mapping not in (None, "", "identity"))):
        raise DataError("--classes and --label-mapping apply to --dataset folder only.")
    if dataset == "context_shapes":
        root = ensure_context_shapes(root or None, *(context_shapes or ()))
        return get_source("folder", root, split, strict=strict)
    if not root:
        raise DataError(f"The {dataset} dataset needs its root directory (--root, data.root).")
    if dataset == "tfrecord":
        return read_tfrecord_source(os.path.join(root, split or ""))
    if dataset == "folder":
        kwargs = {"classes": classes or None}
        if label_mapping:
            kwargs["label_mapping"] = label_mapping
        return get_source("folder", root, split or None, strict=strict, **kwargs)
    return get_source(dataset, root, split, strict=strict)


def sources_from_config(data):
    """`(train, val)` sources of a `DataConfig`."""
    kwargs = {}
    if data.dataset == "folder":
        kwargs = {"classes": data.classes or None, "label_mapping": data.label_mapping}
    shapes = (data.context_shapes_train, data.context_shapes_val, data.context_shapes_size)
    return tuple(
        resolve_source(data.dataset, data.root, split, context_shapes=shapes, **kwargs)
        for split in (data.train_split, data.val_split)
    )
