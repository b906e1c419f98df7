"""MMSegmentation's test-time protocol, to reproduce its published mIoU with converted models.

As MMSegmentation's `EncoderDecoder.predict` (`whole_inference`, `slide_inference`,
`postprocess_result`) and `SegTTAModel.merge_preds`, one pass per ratio and flip:

1. The image is resized with kept aspect ratio into the box `scale = (long, short)`
   (mmcv `Resize(scale, keep_ratio=True)`: bilinear, half-pixel centres, no antialias).
   Ratio `r` makes the box `(int(long r), int(short r))` (0.x's `MultiScaleFlipAug`) or
   the image's own size times `r` (1.x's `tta_pipeline`).
2. "whole": the network sees the resized image once. "slide": crop-sized windows at
   `i * stride`, the last shifted back inside the image (no padding); their logits are
   summed and divided by the per-pixel count.
3. The logits are resized to the original size with the model's `align_corners` (a
   flipped pass is flipped back); the passes' softmax probabilities are averaged. A
   single pass's labels are the argmax of its logits (`postprocess_result`).
"""

import dataclasses
import math
import numbers
from typing import Callable, Optional, Sequence

import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import kept_ratio_size, normalize
from enc_tf.errors import ConfigError
from enc_tf.layers.resize import (
    BilinearResize,
    resize_bilinear,
    resize_rows_bilinear,
    source_rows,
)
from enc_tf.protocols.common import (
    Presence,
    ProtocolResult,
    banded_result,
    host_view,
    input_image,
    normalised,
    row_bands,
    seg_and_presence,
)
from enc_tf.scratch import ScratchPool

MMSEG_RATIOS = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)  # MMSegmentation's `img_ratios`
MODES = ("whole", "slide")
RATIOS_OF = ("scale", "image")
RESIZE_RULE = (
    "aspect kept into the scale box (mmcv rescale_size, sides int(x + 0.5)); bilinear, "
    "half-pixel centres, no antialias, on the normalised float image"
)
MERGE_RULE = (
    "slide: window logits summed and divided by the per-pixel count; logits resized to the "
    "original size with align_corners, flips undone; softmax averaged over ratios and flips; "
    "argmax"
)

# MMSegmentation's EncNet test settings (configs/encnet and configs/_base_/datasets).
MMSEG_PRESETS = {
    "ade20k": {"scale": (2048, 512), "mode": "whole", "align_corners": False},
    "cityscapes": {"scale": (2048, 1024), "mode": "whole", "align_corners": False},
    "cityscapes-769": {
        "scale": (2049, 1025),
        "mode": "slide",
        "crop_size": 769,
        "stride": 513,
        "align_corners": True,
    },
}


def preset_summary() -> str:
    """`MMSEG_PRESETS` in one line, for help texts: `ade20k (whole, 2048 512), ...`."""
    parts = []
    for name, preset in MMSEG_PRESETS.items():
        slide = preset["mode"] == "slide"
        window = f", crop {preset['crop_size']}, stride {preset['stride']}" if slide else ""
        parts.append(
            f"{name} ({preset['mode']}, {preset['scale'][0]} {preset['scale'][1]}{window})"
        )
    return ", ".join(parts)


def _is_count(value):
    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and value >= 1


def _is_ratio(value):
    try:
        return math.isfinite(float(value)) and float(value) > 0
    except (TypeError, ValueError):
        return False


def _rules(settings):
    """`(field, ok, requirement)` for every `MMSegConfig` field in `settings`."""
    scale, crop = settings.get("scale"), settings.get("crop_size")
    rules = {
        "scale": (
            isinstance(scale, (tuple, list)) and len(scale) == 2 and all(map(_is_count, scale)),
            "two positive integers (long, short)",
        ),
        "mode": (settings.get("mode") in MODES, f"one of {', '.join(MODES)}"),
        "crop_size": (_is_count(crop), "a positive integer"),
        "stride": (
            _is_count(settings.get("stride"))
            and (not _is_count(crop) or settings["stride"] <= crop),
            f"an integer from 1 to the crop size {crop}",
        ),
        "ratios": (
            isinstance(settings.get("ratios"), (tuple, list))
            and len(settings["ratios"]) > 0
            and all(map(_is_ratio, settings["ratios"])),
            "positive numbers",
        ),
        "flip": (isinstance(settings.get("flip"), bool), "true or false"),
        "align_corners": (isinstance(settings.get("align_corners"), bool), "true or false"),
        "ratios_of": (settings.get("ratios_of") in RATIOS_OF, f"one of {', '.join(RATIOS_OF)}"),
        "window_batch": (_is_count(settings.get("window_batch")), "a positive integer"),
    }
    return [(field, *rules[field]) for field in rules if field in settings]


def check_settings(settings: dict, labels: Optional[dict] = None) -> None:
    """Raises a `ConfigError` for the first bad value among `MMSegConfig` fields in `settings`.

    The message names the field as `labels[field]` when given (a command-line
    option, say) and the value: `--slide-stride must be an integer from 1 to the
    crop size 769, got 800.`
    """
    labels = labels or {}
    for field, ok, requirement in _rules(settings):
        if not ok:
            value = settings[field]
            value = list(value) if isinstance(value, tuple) else value
            raise ConfigError(f"{labels.get(field, field)} must be {requirement}, got {value!r}.")


@dataclasses.dataclass(frozen=True)
class MMSegConfig:
    """MMSegmentation's test settings (`test_pipeline`, `test_cfg`, `tta_pipeline`).

    Attributes:
        scale: `(long, short)`, the box each image is resized into with its aspect
            kept (`Resize(scale=(2048, 512), keep_ratio=True)`).
        mode: "whole" or "slide" (`test_cfg.mode`).
        crop_size: slide window side (`test_cfg.crop_size`).
        stride: slide window stride (`test_cfg.stride`), 1 to `crop_size`.
        ratios: test-time ratios; `(1.0,)` is single-scale.
        flip: add horizontally flipped passes.
        align_corners: the model's bilinear convention (`decode_head.align_corners`),
            used to resize the logits to the original size.
        ratios_of: "scale": ratio `r` resizes into `(int(long r), int(short r))`
            (MMSegmentation 0.x's `MultiScaleFlipAug`, behind the published
            multi-scale figures); "image": into the image's own size times `r`
            (1.x's `tta_pipeline`, `Resize(scale_factor=r, keep_ratio=True)`).
        window_batch: windows per network call (slide).
    """

    scale: Sequence[int] = (2048, 512)
    mode: str = "whole"
    crop_size: int = 769
    stride: int = 513
    ratios: Sequence[float] = (1.0,)
    flip: bool = False
    align_corners: bool = False
    ratios_of: str = "scale"
    window_batch: int = 4

    def __post_init__(self):
        check_settings({f.name: getattr(self, f.name) for f in dataclasses.fields(self)})

    def pass_size(self, height: int, width: int, ratio: float) -> tuple:
        """`(h, w)` the image is resized to for one ratio (Python ints)."""
        if self.ratios_of == "image":  # mmcv `_scale_size`, then `rescale_size`
            box = (int(width * float(ratio) + 0.5), int(height * float(ratio) + 0.5))
        else:  # `MultiScaleFlipAug`: `(int(long * r), int(short * r))`
            box = (int(self.scale[0] * ratio), int(self.scale[1] * ratio))
        return kept_ratio_size(height, width, max(box), min(box))

    def description(self) -> dict:
        """What runs, for reports: every setting that changes the prediction."""
        slide = self.mode == "slide"
        return {
            "protocol": "mmseg",
            "mode": self.mode,
            "scale": list(self.scale),
            "ratios": [float(r) for r in self.ratios],
            "ratios_of": self.ratios_of,
            "flip": self.flip,
            "crop_size": self.crop_size if slide else None,
            "stride": self.stride if slide else None,
            "align_corners": self.align_corners,
            "resize": RESIZE_RULE,
            "merge": MERGE_RULE,
        }


def slide_windows(length: int, crop: int, stride: int) -> list:
    """`[(start, end), ...]` of MMSegmentation's sliding windows along a side of `length`.

    `max(length - crop + stride - 1, 0) // stride + 1` windows start at `i * stride`;
    one that would pass the end is shifted back to end there. A window is shorter
    than `crop` only when `length` is: 2049 with crop 769 and stride 513 gives
    starts 0, 513, 1026, 1280.
    """
    count = max(length - crop + stride - 1, 0) // stride + 1
    ends = [min(i * stride + crop, length) for i in range(count)]
    return [(max(end - crop, 0), end) for end in ends]


def model_align_corners(model) -> Optional[bool]:
    """The bilinear convention a Keras segmentation model upsamples its logits with, or None.

    `EncNet`/`FCN` keep it in their config; a plain functional model saved by
    enc_tf in its `seg` `BilinearResize` layer. None for anything else.
    """
    arguments = getattr(model, "arguments", None)
    if isinstance(arguments, dict) and "align_corners" in arguments:
        return bool(arguments["align_corners"])
    layers = [layer for layer in getattr(model, "layers", []) if layer.name == "seg"]
    if layers and isinstance(layers[0], BilinearResize):
        return layers[0].align_corners
    return None


class MMSegPredictor:
    """Class probabilities of whole images by MMSegmentation's test-time protocol.

    Args:
        logits_fn: `(B, h, w, 3)` normalised float32 images of any size ->
            `(B, h, w, C)` logits at the input size (or a dict with them under
            `seg`, and the SE head's presence logits under `se`): a Keras model or
            `LoadedModel.logits_fn`.
        num_classes: `C`.
        config: `MMSegConfig`.

    Call `labels_and_probabilities(image)` with one `(H, W, 3)` image, uint8 RGB or
    normalised float32: a `ProtocolResult` whose output rows are made in bands from the
    passes' logits (memory holds the logits at the passes' sizes, not the image's
    probabilities). `probabilities(image)` returns the `(H, W, C)` mean over ratios and
    flips of the softmax probabilities; `predict(image)` its argmax. Every network call
    runs through one `tf.function` traced once for all sizes.
    """

    def __init__(self, logits_fn: Callable, num_classes: int, config: MMSegConfig = MMSegConfig()):
        self.config = config
        self.num_classes = int(num_classes)

        @tf.function(input_signature=[tf.TensorSpec((None, None, None, 3), tf.float32)])
        def batch_outputs(images):
            return seg_and_presence(logits_fn(images), tf.shape(images)[0])

        self._outputs = batch_outputs
        self._scratches = ScratchPool()  # working memory kept for the next images

    @property
    def num_passes(self) -> int:
        return len(self.config.ratios) * (2 if self.config.flip else 1)

    def _logits(self, views, presence):
        logits, seen = self._outputs(views)
        if presence is not None:
            presence.add(seen.numpy())
        return host_view(logits)

    def view_logits(self, view: np.ndarray, presence: Optional[Presence] = None) -> np.ndarray:
        """`(h, w, C)` logits of one resized `(h, w, 3)` image: one pass (read-only, the
        network output's own buffer), or the windows' mean; the SE presence of every network
        input goes to `presence` when given."""
        c = self.config
        if c.mode == "whole":
            return self._logits(view[None], presence)[0]
        h, w = view.shape[:2]
        spans = [
            (ys, xs)
            for ys in slide_windows(h, c.crop_size, c.stride)
            for xs in slide_windows(w, c.crop_size, c.stride)
        ]
        total = np.zeros((h, w, self.num_classes), np.float32)
        count = np.zeros((h, w, 1), np.float32)
        for i in range(0, len(spans), c.window_batch):
            batch = spans[i : i + c.window_batch]
            windows = np.stack([view[y0:y1, x0:x1] for (y0, y1), (x0, x1) in batch])
            for ((y0, y1), (x0, x1)), logits in zip(batch, self._logits(windows, presence)):
                total[y0:y1, x0:x1] += logits
                count[y0:y1, x0:x1] += 1
        return total / count

    def _resized(self, image, size):
        """The normalised image at `size` (a uint8 image is resized, then normalised: the
        same values up to rounding, without a float copy at the original size)."""
        if tuple(size) == image.shape[:2]:
            return normalised(image)
        resized = resize_bilinear(image[None], size, align_corners=False)[0]
        return (normalize(resized) if image.dtype == np.uint8 else resized).numpy()

    def labels_and_probabilities(self, image, probabilities=False) -> ProtocolResult:
        """A `ProtocolResult`: the label map; the probabilities summed over ratios and flips
        only when `probabilities` (they take `H x W x C x 4` bytes); whether they were
        finite; the SE head's class presence. One pass and no probabilities: the argmax of
        the resized logits, as MMSegmentation's `postprocess_result`."""
        image = input_image(image)
        h, w = image.shape[:2]
        presence = Presence()
        flips = (False, True) if self.config.flip else (False,)
        align = self.config.align_corners

        def passes():  # each pass's logits at its size, flips undone (a reversed view)
            for ratio in self.config.ratios:
                resized = self._resized(image, self.config.pass_size(h, w, ratio))
                for flip in flips:
                    view = np.ascontiguousarray(resized[:, ::-1]) if flip else resized
                    yield self.view_logits(view, presence)[:, :: -1 if flip else 1]

        with self._scratches.scratch() as scratch:  # working memory kept between images

            def resized_rows(logits, first, stop, softmax=True):
                y0, y1 = source_rows(first, stop, logits.shape[0], h, align)
                rows = resize_rows_bilinear(
                    logits[y0:y1], y0, first, stop, logits.shape[0], (h, w), align, scratch
                )
                return host_view(tf.nn.softmax(rows, axis=-1)) if softmax else rows

            if self.num_passes == 1:  # the pass's rows, band by band
                (only,) = passes()
                return banded_result(
                    (h, w),
                    self.num_classes,
                    lambda first, stop: resized_rows(only, first, stop, probabilities),
                    probabilities,
                    presence,
                )
            # Several passes: each adds its probabilities at the image's size into one sum
            # as it is made, so memory holds the sum and one pass, not every pass (12 passes
            # of a 683 x 512 image with 150 classes took 6.4 GB of memory that way).
            total = scratch.array("sum", (h, w, self.num_classes))
            for i, logits in enumerate(passes()):
                for first, stop in row_bands(h, w, self.num_classes):
                    rows = resized_rows(logits, first, stop)
                    if i:
                        total[first:stop] += rows
                    else:
                        total[first:stop] = rows
                del logits  # before the next pass is made (`rows` are softmax's own)
            return banded_result(
                (h, w),
                self.num_classes,
                lambda first, stop: total[first:stop],
                probabilities,
                presence,
            )

    def probabilities(self, image: np.ndarray) -> np.ndarray:
        """`(H, W, C)` float32: softmax probabilities averaged over ratios and flips."""
        return self.labels_and_probabilities(image, True).probabilities / self.num_passes

    def predict(self, image: np.ndarray) -> np.ndarray:
        """`(H, W)` int32 label map."""
        return self.labels_and_probabilities(image).labels
