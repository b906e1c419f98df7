"""The test-time protocols that turn a network into label maps of whole images.

- `PaperPredictor` (`paper.py`): the paper's multi-scale + flip + sliding-window
  protocol (EncNet paper, Section 4.1), used by `enc-eval`, `Segmenter` and `enc-predict`.
- `MMSegPredictor` (`mmseg.py`): MMSegmentation's test-time protocol, to reproduce its
  published mIoU with converted checkpoints (`enc-eval --protocol mmseg`).

Both take one normalised `(H, W, 3)` image: `probabilities(image)` -> `(H, W, C)`,
`predict(image)` -> `(H, W)` labels.
"""

from enc_tf.protocols.mmseg import (
    MMSEG_PRESETS,
    MMSEG_RATIOS,
    MMSegConfig,
    MMSegPredictor,
    check_settings,
    model_align_corners,
    slide_windows,
)
from enc_tf.protocols.paper import (
    CITYSCAPES_SCALES,
    PAPER_SCALES,
    PaperConfig,
    PaperPredictor,
    PaperResult,
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
    "PaperResult",
    "check_settings",
    "model_align_corners",
    "slide_windows",
    "window_starts",
]
