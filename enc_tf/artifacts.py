"""Trained artifacts: what a run directory and a SavedModel export contain, and loading
any of them (`.keras` file, run directory, SavedModel) with its class list.

Producers (training, the exporters) and consumers (evaluation, inference, export)
both import this module; neither imports the other.
"""

import dataclasses
import json
import logging
import os
import zipfile
from typing import Callable, Optional

import keras
import numpy as np
import tensorflow as tf

import enc_tf.models  # noqa: F401  (registers the layers a .keras file names)
from enc_tf.config import load_config
from enc_tf.data.classes import ClassInfo, load_class_file, make_class_info
from enc_tf.errors import ConfigError, DataError, EncTfError, ModelFileError
from enc_tf.models.logits import logits_function
from enc_tf.models.precision import resolve_precision, with_precision
from enc_tf.models.transforms import fold_batch_norms

logger = logging.getLogger(__name__)

# A training run directory (written by enc_tf.training).
RUN_CONFIG = "config.yaml"  # the resolved `Config`
RUN_MODEL = "model.keras"  # the final model
RUN_LOG = "log.csv"  # one row per committed epoch
CHECKPOINTS = "checkpoints"  # last.keras, best.keras and checkpoints.json
BACKUP = "backup"  # resume points (epoch-<N>.weights.h5)

# A SavedModel export (written by enc_tf.export.saved_model): its signatures and assets.
# `logits` takes normalised float32 images and returns raw logits; evaluation runs the
# same sliding window on it as on Keras.
LOGITS_SIGNATURE = "logits"
SERVING_SIGNATURES = ("serving_default", "probabilities", "encoded", LOGITS_SIGNATURE)
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
        precision: what the Keras model computes in (`float32` or `bfloat16`).
        outputs: the names `logits_fn` returns (`seg`, and `se` when the model has an SE
            head), as read by `check_finite_outputs`.
    """

    logits_fn: Callable
    num_classes: int
    classes: Optional[ClassInfo]
    path: str
    run_config: object = None
    keras_model: object = None
    precision: str = "float32"
    outputs: tuple = ("seg",)

    def with_precision(self, precision):
        """This model computing in `precision` (`float32`, `bfloat16` or `auto`, see
        `enc_tf.models.precision`). A SavedModel runs in the precision it was exported
        with (`enc-export --precision`): `float32` (the default) and `auto` leave it,
        `bfloat16` is an error."""
        resolved = resolve_precision(precision)
        if self.keras_model is None:
            if precision in ("auto", "float32"):
                return self
            raise ConfigError(
                f"{self.path} is a SavedModel, which runs in the precision it was exported "
                f"with: --precision {precision} applies to .keras models and run directories "
                f"(export with `enc-export --precision {precision}`)."
            )
        if resolved == self.precision:
            return self
        model = with_precision(self.keras_model, resolved)
        return dataclasses.replace(
            self, logits_fn=logits_function(model), precision=resolved, keras_model=model
        )


def _run_dir_model(path):
    for name in (
        RUN_MODEL,
        os.path.join(CHECKPOINTS, "best.keras"),
        os.path.join(CHECKPOINTS, "last.keras"),
    ):
        candidate = os.path.join(path, name)
        if os.path.isfile(candidate):
            return candidate
    raise ModelFileError(
        f"Run directory {path} has no model.keras or checkpoints/{{best,last}}.keras."
    )


def _load_saved_model(path):
    try:
        loaded = tf.saved_model.load(path)
    except (
        Exception
    ) as err:  # protobuf, TensorFlow and OS errors alike: the directory is not a usable export
        logger.debug("Loading %s failed", path, exc_info=True)
        raise ModelFileError(
            f"Cannot load the SavedModel {path} (truncated or corrupt?): "
            f"{type(err).__name__}: {err}"
        ) from err
    if LOGITS_SIGNATURE not in loaded.signatures:
        raise ModelFileError(
            f"SavedModel {path} has no {LOGITS_SIGNATURE!r} signature (signatures: "
            f"{sorted(loaded.signatures)}); export it with enc-export."
        )
    signature = loaded.signatures[LOGITS_SIGNATURE]
    num_classes = int(signature.structured_outputs["seg"].shape[-1])
    classes = None
    asset = os.path.join(path, "assets", CLASSES_ASSET)
    if os.path.isfile(asset):
        try:
            with open(asset) as f:
                data = json.load(f)
            classes = make_class_info(data["names"], data.get("palette"))
        except (ValueError, KeyError, TypeError) as err:
            raise ModelFileError(
                f"{asset}: not a valid class list ({type(err).__name__}: {err})."
            ) from err

    def fn(images):
        return signature(images=tf.convert_to_tensor(images, tf.float32))

    fn.loaded = loaded  # keeps the restored variables alive
    return LoadedModel(fn, num_classes, classes, path)


def _load_keras_file(path):
    """The Keras model in a `.keras` file; a `ModelFileError` naming the file if it is not a
    complete one."""
    size = os.path.getsize(path)
    if size == 0:
        raise ModelFileError(
            f"{path} is empty (0 bytes): the file is truncated; save or copy the model again."
        )
    if not zipfile.is_zipfile(path):
        raise ModelFileError(
            f"{path} is not a .keras archive ({size} bytes, no zip directory): "
            "the file is truncated or corrupt; save or copy the model again."
        )
    try:
        return keras.models.load_model(path, compile=False)
    except (
        Exception
    ) as err:  # zip, HDF5, JSON and deserialisation errors alike: the file is unusable
        logger.debug("Loading %s failed", path, exc_info=True)
        if "safe_mode" in str(err):
            raise ModelFileError(
                f"Refused to load {path}: it holds Python code (a Lambda layer's function), "
                "which Keras's safe mode does not run; enc_tf loads only models that need no "
                "code from the file. Rebuild the model without Lambda layers."
            ) from err
        raise ModelFileError(
            f"Cannot load the Keras model {path}: the file is corrupt or truncated "
            f"({type(err).__name__}: {err})."
        ) from err


def check_finite_outputs(loaded, size=32):
    """Runs the model once on a small test image; a `ModelFileError` if any output is NaN or
    inf. Returns `loaded` with the names of its outputs (`LoadedModel.outputs`).

    A model whose weights hold NaN (a diverged run saved anyway) predicts one class
    everywhere and would write NaN into every report; it is refused up front.
    """
    ramp = np.linspace(-2.0, 2.0, size * size * 3, dtype=np.float32).reshape(1, size, size, 3)
    outputs = loaded.logits_fn(ramp)
    outputs = outputs if isinstance(outputs, dict) else {"seg": outputs}
    for name, value in outputs.items():
        if not np.all(np.isfinite(np.asarray(value, np.float32))):
            raise ModelFileError(
                f"The model {loaded.path} outputs non-finite values (NaN or inf) in {name!r} on a "
                "test image: its weights are broken (a diverged training?); use another checkpoint."
            )
    return dataclasses.replace(loaded, outputs=tuple(sorted(outputs)))


def model_classes(model):
    """The class list a model carries (`EncNet`/`FCN` saved by enc_tf), or None."""
    names = getattr(model, "class_names", None)
    if not names:
        return None
    return make_class_info(names, getattr(model, "palette", None))


def load_model(path, fold=True):
    """A `LoadedModel` from a `.keras` file, a training run directory or a SavedModel directory.

    Args:
        path: the model.
        fold: fold every BatchNorm that follows a convolution into it
            (`enc_tf.models.transforms.fold_batch_norms`), for evaluation, prediction
            and export; `False` keeps the trained layers (to convert or train them).

    Raises:
        ModelFileError: naming the file when it is missing, truncated, corrupt,
            not a model, or a model whose outputs are NaN/inf.
    """
    if not os.path.exists(path):
        raise ModelFileError(f"Model not found: {path}")
    if os.path.isdir(path) and os.path.isfile(os.path.join(path, "saved_model.pb")):
        return check_finite_outputs(_load_saved_model(path))
    run_config = None
    model_path = path
    if os.path.isdir(path):
        config_path = os.path.join(path, RUN_CONFIG)
        if not os.path.isfile(config_path):
            raise ModelFileError(
                f"{path} is neither a run directory (config.yaml) nor a SavedModel "
                "(saved_model.pb)."
            )
        run_config = load_config(config_path)
        model_path = _run_dir_model(path)
    elif not path.endswith(".keras"):
        raise ModelFileError(
            f"{path}: expected a .keras file, a run directory or a SavedModel directory."
        )
    model = _load_keras_file(model_path)
    outputs = model.output if isinstance(model.output, dict) else {"seg": model.output}
    if "seg" not in outputs:
        raise ModelFileError(f"{model_path} has no 'seg' output (outputs: {sorted(outputs)}).")
    num_classes = int(outputs["seg"].shape[-1])
    classes = model_classes(model)
    if fold:  # the loaded model is ours alone: folded in place
        model = fold_batch_norms(model, copy=False)
    return check_finite_outputs(
        LoadedModel(logits_function(model), num_classes, classes, path, run_config, model)
    )


def load_keras_model(path, fold=True):
    """`load_model` for exporters: a `.keras` file or run directory, not a SavedModel."""
    loaded = load_model(path, fold)
    if loaded.keras_model is None:
        raise ModelFileError(
            f"{path} is a SavedModel; export from the .keras model or the run directory."
        )
    return loaded


def export_classes(loaded, class_file=None):
    """The class list an export carries: `class_file` if given, else the run's, else
    `class_0..class_{C-1}`; checked against the model's class count."""
    classes = read_class_file(class_file) if class_file else loaded.classes
    classes = classes or make_class_info([f"class_{i}" for i in range(loaded.num_classes)])
    return check_classes(loaded, classes, class_file or "the run's class list")


def read_class_file(path):
    """`load_class_file`, with its errors as a `DataError` naming the file."""
    try:
        return load_class_file(path)
    except EncTfError:
        raise
    except (FileNotFoundError, ValueError) as err:
        raise DataError(str(err)) from err


def check_classes(loaded, classes, where):
    """`classes` if it matches the model's class count, else a `ConfigError` naming `where`."""
    if classes.num_classes != loaded.num_classes:
        raise ConfigError(
            f"The model {loaded.path!r} predicts {loaded.num_classes} classes but {where} "
            f"lists {classes.num_classes}."
        )
    return classes
