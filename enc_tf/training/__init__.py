"""Training: typed configs, the original's optimizer recipe, and the model.fit trainer."""

from enc_tf.config import Config, ConfigError, load_config, save_config
from enc_tf.optimizers import EncNetSGD, PolyDecay
from enc_tf.training.trainer import build_model, train

__all__ = [
    "Config",
    "ConfigError",
    "EncNetSGD",
    "PolyDecay",
    "build_model",
    "load_config",
    "save_config",
    "train",
]
