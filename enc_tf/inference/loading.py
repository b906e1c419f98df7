"""Loading a trained model for evaluation and inference: a `.keras` file, a run
directory, or a SavedModel written by `export/saved_model.py`."""

import dataclasses
import json
import os
from typing import Callable, Optional

import keras
import tensorflow as tf

from enc_tf.data.classes import ClassInfo, load_class_file, make_class_info

# Signature of our SavedModel exports that takes normalised float32 images and
# returns raw logits; evaluation runs the same sliding window on it as on Keras.
LOGITS_SIGNATURE = "logits"
CLASSES_ASSET = "classes.json"


@dataclasses.dataclass
class LoadedModel:
    """A model ready for the evaluators and the predictor.

    Attributes:
        logits_fn: `(B, h, w, 3)` normalised float32 -> dict with `seg`
            `(B, h, w, C)` logits and, when the model has them, `se` `(B, C)` logits.
        num_classes: `C`.
        classes: class names and palette when the model carries them (run
            directory config, SavedModel assets), else None.
        path: where it came from.
        run_config: the training `Config` of a run directory.
        keras_model: the Keras model (None for a SavedModel).
    """

    logits_fn: Callable
    num_classes: int
    classes: Optional[ClassInfo]
    path: str
    run_config: object = None
    keras_model: object = None


def _keras_fn(model):
    def fn(images):
        out = model(images, training=False)
        return out if isinstance(out, dict) else {"seg": out}

    return fn


def _run_dir_model(path):
    for name in ("model.keras", os.path.join("checkpoints", "best.keras"), os.path.join("checkpoints", "last.keras")):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise FileNotFoundError(f"Run directory {path!r} has no model.keras or checkpoints/{{best,last}}.keras.")


def _run_classes(config):
    from enc_tf.training.trainer import make_sources

    try:
        return make_sources(config.data)[1].classes
    except (OSError, ValueError):
        return None


def load_model(path):
    """A `LoadedModel` from a `.keras` file, a training run directory or a SavedModel directory."""
    import enc_tf  # noqa: F401  (registers the custom layers, losses and optimizer)

    if not os.path.exists(path):
        raise FileNotFoundError(f"Model not found: {path!r}")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        loaded = tf.saved_model.load(path)
        if LOGITS_SIGNATURE not in loaded.signatures:
            raise ValueError(f"SavedModel {path!r} has no {LOGITS_SIGNATURE!r} signature (signatures: "
                             f"{sorted(loaded.signatures)}); export it with export/saved_model.py.")
        signature = loaded.signatures[LOGITS_SIGNATURE]
        num_classes = int(signature.structured_outputs["seg"].shape[-1])
        classes = None
        asset = os.path.join(path, "assets", CLASSES_ASSET)
        if os.path.isfile(asset):
            with open(asset) as f:
                data = json.load(f)
            classes = make_class_info(data["names"], data.get("palette"))

        def fn(images):
            return signature(images=tf.convert_to_tensor(images, tf.float32))

        fn.loaded = loaded  # keeps the restored variables alive
        return LoadedModel(fn, num_classes, classes, path)
    run_config, classes = None, None
    model_path = path
    if os.path.isdir(path):
        from enc_tf.training.config import load_config

        config_path = os.path.join(path, "config.yaml")
        if not os.path.isfile(config_path):
            raise FileNotFoundError(f"{path!r} is neither a run directory (config.yaml) nor a SavedModel (saved_model.pb).")
        run_config = load_config(config_path)
        model_path = _run_dir_model(path)
        classes = _run_classes(run_config)
    elif not path.endswith(".keras"):
        raise ValueError(f"{path!r}: expected a .keras file, a run directory or a SavedModel directory.")
    try:
        model = keras.models.load_model(model_path, compile=False)
    except (ValueError, OSError, TypeError) as err:
        raise ValueError(f"Cannot load the Keras model {model_path!r}: {err}") from err
    outputs = model.output if isinstance(model.output, dict) else {"seg": model.output}
    if "seg" not in outputs:
        raise ValueError(f"{model_path!r} has no 'seg' output (outputs: {sorted(outputs)}).")
    num_classes = int(outputs["seg"].shape[-1])
    if classes is not None and classes.num_classes != num_classes:
        raise ValueError(f"{model_path!r} predicts {num_classes} classes but its run's class list has {classes.num_classes}.")
    return LoadedModel(_keras_fn(model), num_classes, classes, path, run_config, model)


def load_keras_model(path):
    """`load_model` for exporters: a `.keras` file or run directory, not a SavedModel."""
    loaded = load_model(path)
    if loaded.keras_model is None:
        raise ValueError(f"{path!r} is a SavedModel; export from the .keras model or the run directory.")
    return loaded


def export_classes(loaded, class_file=None):
    """The class list an export carries: `class_file` if given, else the run's, else
    `class_0..class_{C-1}`; checked against the model's class count."""
    classes = load_class_file(class_file) if class_file else loaded.classes
    classes = classes or make_class_info([f"class_{i}" for i in range(loaded.num_classes)])
    return check_classes(loaded, classes, class_file or "the run's class list")


def check_classes(loaded, classes, where):
    """`classes` if it matches the model's class count, else a clear error naming `where`."""
    if classes.num_classes != loaded.num_classes:
        raise ValueError(
            f"The model {loaded.path!r} predicts {loaded.num_classes} classes but {where} lists {classes.num_classes}."
        )
    return classes
