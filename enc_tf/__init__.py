"""enc_tf: EncNet (Context Encoding for Semantic Segmentation) in Keras 3."""

from enc_tf import backbones, layers, losses, models
from enc_tf.models import build_encnet, build_fcn

__version__ = "0.1.0"

__all__ = ["backbones", "build_encnet", "build_fcn", "layers", "losses", "models"]
