"""enc_tf: EncNet (Context Encoding for Semantic Segmentation) in Keras 3."""

from enc_tf import backbones, layers, losses, metrics, models

# Registers the optimizer and schedule that training checkpoints are saved with,
# so that `import enc_tf` is enough to `keras.models.load_model` any of them.
from enc_tf import optimizers as _optimizers  # noqa: F401
from enc_tf.models import build_encnet, build_fcn
from enc_tf.version import __version__  # noqa: F401


def from_preset(spec, progress=True):
    """The self-describing Keras model a preset name, URL or path names (see
    `enc_tf.presets.from_preset`): downloaded, verified and converted on first use.

    Example:
        >>> model = enc_tf.from_preset("encnet_r50_ade20k")
    """
    from enc_tf.presets import from_preset as load  # the presets pull in the converters

    return load(spec, progress)


__all__ = [
    "backbones",
    "build_encnet",
    "build_fcn",
    "from_preset",
    "layers",
    "losses",
    "metrics",
    "models",
]
