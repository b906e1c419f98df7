"""enc_tf: EncNet (Context Encoding for Semantic Segmentation) in Keras 3."""

import os as _os
import sys as _sys

if "tensorflow" not in _sys.modules:
    # TensorFlow's C++ INFO and WARNING lines (CUDA probes, oneDNN notes, the traceback of a
    # Python error inside tf.data quoted before our one-line error) are hidden unless the
    # user chose a level: TF_CPP_MIN_LOG_LEVEL=0 shows them all.
    _os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

from enc_tf import backbones, layers, losses, metrics, models

# Registers the optimizer and schedule that training checkpoints are saved with,
# so that `import enc_tf` is enough to `keras.models.load_model` any of them.
from enc_tf import optimizers as _optimizers  # noqa: F401
from enc_tf.models import build_encnet, build_fcn

__version__ = "0.1.0"

__all__ = ["backbones", "build_encnet", "build_fcn", "layers", "losses", "models"]
