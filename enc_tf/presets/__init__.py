"""Published weights by name: the preset registry, careful downloads, and resolving a
preset, URL or path wherever a model or weights are taken."""

from enc_tf.artifacts import load_keras_model
from enc_tf.console import DownloadProgress
from enc_tf.presets.download import DownloadError, cache_home, fetch
from enc_tf.presets.registry import IMAGENET, PRESETS, Preset, find, list_presets, table
from enc_tf.presets.resolve import MODEL_HELP, backbone_weights_path, fetch_preset, model_path


def from_preset(spec, progress=True):
    """The self-describing Keras model (`EncNet`/`FCN`) a preset name, URL or path names,
    downloaded, verified and converted on first use (then read from the cache).

    Example:
        >>> model = from_preset("encnet_r50_ade20k")
        >>> model.class_names[:3]
        ['wall', 'building', 'sky']
    """
    path = model_path(spec, DownloadProgress() if progress else None)
    return load_keras_model(path, fold=False).keras_model


__all__ = [
    "IMAGENET",
    "MODEL_HELP",
    "PRESETS",
    "DownloadError",
    "Preset",
    "backbone_weights_path",
    "cache_home",
    "fetch",
    "fetch_preset",
    "find",
    "from_preset",
    "list_presets",
    "model_path",
    "table",
]
