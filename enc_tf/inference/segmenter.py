"""Segmenting users' images: NumPy arrays or PIL images in, label maps out."""

import dataclasses
import os
from typing import Optional

import numpy as np
from PIL import Image

from enc_tf.artifacts import check_classes, load_model
from enc_tf.console import DownloadProgress
from enc_tf.data.classes import make_class_info
from enc_tf.data.io import check_pixels, image_to_rgb, read_image, rgb_uint8
from enc_tf.errors import ConfigError, ModelFileError
from enc_tf.presets import find, model_path
from enc_tf.protocols import (
    MMSEG_PRESETS,
    PAPER_SCALES,
    MMSegConfig,
    MMSegPredictor,
    PaperConfig,
    PaperPredictor,
    model_align_corners,
)


@dataclasses.dataclass
class Prediction:
    """One image's result.

    Attributes:
        labels: `(H, W)` int32 class indices at the input's size.
        probabilities: `(H, W, C)` float32 class probabilities (mean over the passes),
            when asked for (`Segmenter(image, probabilities=True)`), else None.
        presence: `(C,)` float32 image-level class presence from the SE head
            (sigmoid; per class the largest over the network inputs the prediction ran,
            `ProtocolResult.presence`), or None when the model has no SE head.
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    presence: Optional[np.ndarray]


# The largest image `Segmenter` and `enc-predict` take by default: 100 megapixels. A
# 9000 x 9000 image with 8 classes peaks at 2.1 GiB in enc-predict; see
# docs/troubleshooting.md (memory on large images).
DEFAULT_MAX_PIXELS = 100_000_000


def to_rgb_array(image, name="<image>", max_pixels=None):
    """`(H, W, 3)` uint8 from a PIL image or an array: `(H, W)` grey, `(H, W, 1|3|4)`,
    uint8 or uint16 (scaled to 8 bits by dtype, as `enc_tf.data.io.rgb_uint8`) or float in
    [0, 1]; more than `max_pixels` pixels is a `DataError` (before a PIL image is decoded)."""
    if isinstance(image, Image.Image):
        check_pixels(*image.size, max_pixels, name)
        return image_to_rgb(image, name)
    shape = np.shape(image)
    if len(shape) >= 2:
        check_pixels(shape[1], shape[0], max_pixels, name)
    return rgb_uint8(image, name)


PROTOCOLS = ("paper", "mmseg")


def resolve_protocol(model, protocol=None, mmseg_preset=None, labels=None):
    """`(protocol, mmseg_preset)` a `Segmenter` predicts with (see its arguments): by
    default MMSegmentation's protocol and settings for a model it published (`model` a
    preset name), else the paper's. A `ConfigError` names a bad value as `labels[name]`
    (a command-line option, say) when given."""
    labels = {"protocol": "protocol", "mmseg_preset": "mmseg_preset", **(labels or {})}
    preset = find(model) if isinstance(model, str) else None
    published = preset.eval_preset if preset is not None else None
    protocol = protocol or ("mmseg" if published else "paper")
    if protocol not in PROTOCOLS:
        raise ConfigError(
            f"{labels['protocol']} must be one of {', '.join(PROTOCOLS)}, got {protocol!r}."
        )
    if protocol == "paper":
        if mmseg_preset is not None:
            raise ConfigError(f"{labels['mmseg_preset']} applies to the mmseg protocol only.")
        return protocol, None
    mmseg_preset = mmseg_preset or published
    if mmseg_preset not in MMSEG_PRESETS:
        raise ConfigError(
            f"{labels['mmseg_preset']} must be one of {', '.join(MMSEG_PRESETS)} for the mmseg "
            f"protocol, got {mmseg_preset!r}."
        )
    return protocol, mmseg_preset


class Segmenter:
    """Predicts label maps with a trained EncNet / FCN.

    Args:
        model: a `LoadedModel`, a path (`.keras`, run directory, SavedModel), a preset
            name (`enc-presets list`) or an http(s) URL (downloaded, verified and
            converted on first use, then read from the cache).
        classes: `ClassInfo` for names and colours (default: the model's own,
            else `class_<i>` with the VOC colours). Must match the class count.
        multi_scale: multi-scale + flip (the paper's scales of `base_size`, or
            MMSegmentation's ratios of its scale box); otherwise one pass: the paper's at
            the image's own resolution, through the sliding window when it is larger
            than `crop_size`, or MMSegmentation's whole image resized into its box.
        base_size, crop_size, scales, flip, window_batch: see `PaperConfig` (the scales
            are MMSegmentation's ratios under its protocol).
        precision: `float32`, `bfloat16` or `auto` (see `enc_tf.models.precision`).
        max_pixels: refuse larger images (None: no limit). Memory is bounded by bands of
            rows, not by the image's per-class probabilities; see docs/troubleshooting.md.
        protocol: `paper` (the paper's test-time protocol, Section 4.1) or `mmseg`
            (MMSegmentation's, with `mmseg_preset`'s settings). Default: `mmseg` for a
            model MMSegmentation published (its preset names the settings its mIoU was
            measured with), else `paper`.
        mmseg_preset: MMSegmentation's test settings (`MMSEG_PRESETS`: `ade20k`,
            `cityscapes`, `cityscapes-769`) for `protocol="mmseg"`; default: the
            preset model's own.

    Example:
        >>> segmenter = Segmenter("runs/context_shapes_encnet")
        >>> segmenter(np.zeros((200, 300, 3), np.uint8)).labels.shape
        (200, 300)
    """

    def __init__(
        self,
        model,
        classes=None,
        multi_scale=False,
        base_size=520,
        crop_size=480,
        scales=PAPER_SCALES,
        flip=True,
        window_batch=4,
        precision="float32",
        max_pixels=DEFAULT_MAX_PIXELS,
        protocol=None,
        mmseg_preset=None,
    ):
        protocol, mmseg_preset = resolve_protocol(model, protocol, mmseg_preset)
        loaded = (
            load_model(model_path(model, DownloadProgress())) if isinstance(model, str) else model
        )
        self.model = loaded.with_precision(precision)
        if classes is None:
            classes = self.model.classes or make_class_info(
                [f"class_{i}" for i in range(self.model.num_classes)]
            )
        self.classes = check_classes(self.model, classes, "the class list")
        self.multi_scale = bool(multi_scale)
        self.max_pixels = max_pixels
        self.protocol = protocol
        scales = tuple(scales) if multi_scale else (1.0,)
        flip = bool(flip) and self.multi_scale
        if protocol == "paper":
            config = PaperConfig(base_size, crop_size, scales, flip, window_batch=window_batch)
            self.predictor = PaperPredictor(self.model.logits_fn, self.model.num_classes, config)
        else:
            config = MMSegConfig(
                **MMSEG_PRESETS[mmseg_preset], ratios=scales, flip=flip, window_batch=window_batch
            )
            align_corners = model_align_corners(self.model.keras_model)  # the model's own rule
            if align_corners is not None:
                config = dataclasses.replace(config, align_corners=align_corners)
            self.predictor = MMSegPredictor(self.model.logits_fn, self.model.num_classes, config)

    @classmethod
    def from_preset(cls, name, **kwargs):
        """A `Segmenter` for a published model by preset name (or a URL or path), predicting
        as it was published: MMSegmentation's models with its test settings, the others
        with the paper's protocol and the preset's training crop as the window (unless
        `crop_size` is given).

        Example:
            >>> segmenter = Segmenter.from_preset("encnet_r50_ade20k")
            >>> segmenter(Image.open("room.jpg")).labels.shape
        """
        preset = find(name)
        if preset is not None and preset.crop_size and "crop_size" not in kwargs:
            kwargs["crop_size"] = preset.crop_size
            kwargs.setdefault("base_size", max(520, preset.crop_size))
        return cls(name, **kwargs)

    def __call__(self, image, name="<image>", probabilities=False):
        """A `Prediction` for one image (a file path, PIL image or array, any size and mode). The
        per-class probabilities (`H x W x C` float32) are kept only when `probabilities`."""
        if isinstance(image, (str, os.PathLike)):  # a file: its size is checked before decoding
            name = os.fspath(image)
            rgb = read_image(name, self.max_pixels)
        else:
            rgb = to_rgb_array(image, name, self.max_pixels)
        if self.protocol == "paper":
            base = None if self.multi_scale else max(rgb.shape[:2])
            result = self.predictor.labels_and_probabilities(rgb, base, probabilities)
        else:
            result = self.predictor.labels_and_probabilities(rgb, probabilities)
        labels, scores, finite, presence = result
        if scores is not None:
            scores /= self.predictor.num_passes
        if not finite or (presence is not None and not np.all(np.isfinite(presence))):
            raise ModelFileError(
                f"The model {self.model.path} gave non-finite outputs (NaN or inf) for {name}; "
                "its weights are broken for such inputs.",
                exit_code=1,
            )
        return Prediction(labels, scores, presence)

    def predict(self, image):
        """The `(H, W)` int32 label map of one image."""
        return self(image).labels
