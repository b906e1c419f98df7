"""Training: typed configs, the original's optimizer recipe, and the model.fit trainer."""

from enc_tf.training.config import Config, ConfigError, load_config, save_config
from enc_tf.training.optimizer import EncNetSGD, PolyDecay
from enc_tf.training.trainer import build_model, make_sources, train

__all__ = ["Config", "ConfigError", "EncNetSGD", "PolyDecay", "build_model", "load_config", "make_sources", "save_config", "train"]
