"""The test-time protocols that turn a network into label maps of whole images.

- `PaperPredictor` (`paper.py`): the paper's multi-scale + flip + sliding-window
  protocol (EncNet paper, Section 4.1), used by `enc-eval`, `Segmenter` and `enc-predict`.
- `MMSegPredictor` (`mmseg.py`): MMSegmentation's test-time protocol, to reproduce its
  published mIoU with converted checkpoints (`enc-eval --protocol mmseg`).

Both take one `(H, W, 3)` image, uint8 RGB or normalised float32:
`labels_and_probabilities(image)` -> `ProtocolResult` (labels, probabilities summed over
the passes when asked for, SE presence; made in bands of rows),
`probabilities(image)` -> `(H, W, C)`, `predict(image)` -> `(H, W)` labels.
"""

from enc_tf.protocols.common import ProtocolResult
from enc_tf.protocols.mmseg import (
    MMSEG_PRESETS,
    MMSEG_RATIOS,
    MMSegConfig,
    MMSegPredictor,
    check_settings,
    model_align_corners,
    preset_summary,
    slide_windows,
)
from enc_tf.protocols.paper import (
    CITYSCAPES_SCALES,
    PAPER_SCALES,
    PaperConfig,
    PaperPredictor,
    window_starts,
)

__all__ = [
    "CITYSCAPES_SCALES",
    "MMSEG_PRESETS",
    "MMSEG_RATIOS",
    "PAPER_SCALES",
    "MMSegConfig",
    "MMSegPredictor",
    "PaperConfig",
    "PaperPredictor",
    "ProtocolResult",
    "check_settings",
    "model_align_corners",
    "preset_summary",
    "slide_windows",
    "window_starts",
]
