"""The paper's multi-scale + flip + sliding-window inference (SPEC §8).

At each scale the image's long side is resized to `ceil(base_size * scale)`. If
that fits in the crop, the image is padded to the crop and run once; otherwise a
crop-sized window slides with stride `2/3 crop` over the (padded) image and the
windows' probabilities are averaged where they overlap. Each scale's
probabilities are resized to the original size and summed over scales and
horizontal flips. Windows are batched and each batch runs under `tf.function`.
Geometry, padding value and resizing follow the original's MultiEvalModule.
"""

import dataclasses
import math
from typing import Callable, Sequence

import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import PAD_VALUE, long_side_size, normalised_image
from enc_tf.errors import ConfigError
from enc_tf.layers.resize import resize_bilinear

PAPER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
CITYSCAPES_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)


@dataclasses.dataclass(frozen=True)
class MultiScaleConfig:
    """How an image is cut into network inputs.

    Attributes:
        base_size: the long side at scale 1.0 (520 for ADE20K/PASCAL, 2048 Cityscapes).
        crop_size: window size (the training crop: 480, 768 for Cityscapes).
        scales: scales of `base_size`; `(1.0,)` with `flip=False` is single-scale
            sliding-window inference.
        flip: add horizontally flipped inputs.
        stride_rate: window stride as a fraction of `crop_size`.
        window_batch: windows per network call.
    """

    base_size: int = 520
    crop_size: int = 480
    scales: Sequence[float] = PAPER_SCALES
    flip: bool = True
    stride_rate: float = 2.0 / 3.0
    window_batch: int = 4

    def __post_init__(self):
        for name in ("base_size", "crop_size", "window_batch"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(
                    f"{name} must be a positive integer, got {getattr(self, name)!r}."
                )
        if not self.scales or not all(
            math.isfinite(float(s)) and float(s) > 0 for s in self.scales
        ):
            raise ConfigError(f"scales must be positive numbers, got {list(self.scales)!r}.")
        if not 0 < self.stride_rate <= 1:
            raise ConfigError(f"stride_rate must be in (0, 1], got {self.stride_rate!r}.")


def window_starts(length, crop, stride):
    """Top/left corners of the windows covering `length` (>= crop), as the original's grid."""
    count = int(math.ceil(1.0 * (length - crop) / stride)) + 1
    return [i * stride for i in range(count)]


class MultiScalePredictor:
    """Class probabilities of whole images by the paper's multi-scale protocol.

    Args:
        logits_fn: `(B, crop, crop, 3)` normalised float32 images ->
            `(B, crop, crop, C)` logits (or a dict with them under `seg`): a
            Keras model or `LoadedModel.logits_fn`.
        num_classes: `C`.
        config: `MultiScaleConfig`.

    Call `probabilities(image)` with one normalised `(H, W, 3)` image: it
    returns the `(H, W, C)` sum over scales and flips of the class
    probabilities (the argmax is the prediction; divide by
    `num_passes` for a mean).
    """

    def __init__(
        self, logits_fn: Callable, num_classes: int, config: MultiScaleConfig = MultiScaleConfig()
    ):
        self.config = config
        self.num_classes = int(num_classes)
        crop = int(config.crop_size)
        spec = tf.TensorSpec((None, crop, crop, 3), tf.float32)

        @tf.function(input_signature=[spec])
        def window_probabilities(windows):
            inputs = tf.concat([windows, tf.reverse(windows, [2])], 0) if config.flip else windows
            logits = logits_fn(inputs)
            logits = logits["seg"] if isinstance(logits, dict) else logits
            probs = tf.nn.softmax(tf.cast(logits, tf.float32), axis=-1)
            if config.flip:
                n = tf.shape(windows)[0]
                probs = probs[:n] + tf.reverse(probs[n:], [2])
            return probs

        self._windows = window_probabilities
        self._pad_value = np.asarray(PAD_VALUE, np.float32)  # the original's -mean/std: black

    @property
    def num_passes(self):
        return len(self.config.scales) * (2 if self.config.flip else 1)

    def pad(self, image, height, width):
        """Pads `(h, w, 3)` at the bottom/right to at least `(height, width)` with black."""
        h, w = image.shape[:2]
        if h >= height and w >= width:
            return image
        out = np.empty((max(h, height), max(w, width), 3), np.float32)
        out[...] = self._pad_value
        out[:h, :w] = image
        return out

    def _run(self, windows):
        outputs = []
        step = int(self.config.window_batch)
        for i in range(0, len(windows), step):
            outputs.append(self._windows(np.stack(windows[i : i + step])).numpy())
        return np.concatenate(outputs, 0)

    def scale_probabilities(self, image, scale, base_size=None):
        """`(h_s, w_s, C)` flip-summed probabilities at one scale, before resizing back."""
        c = self.config
        crop = int(c.crop_size)
        h, w = image.shape[:2]
        long_size = int(math.ceil((base_size or c.base_size) * scale))
        height, width = long_side_size(h, w, long_size)
        resized = resize_bilinear(image[None], (height, width), align_corners=True)[0].numpy()
        if long_size <= crop:
            return self._run([self.pad(resized, crop, crop)])[0, :height, :width]
        padded = self.pad(resized, crop, crop)  # only the short side may be below the crop
        ph, pw = padded.shape[:2]
        stride = max(1, int(crop * c.stride_rate))
        corners = [
            (y, x) for y in window_starts(ph, crop, stride) for x in window_starts(pw, crop, stride)
        ]
        windows = [self.pad(padded[y : y + crop, x : x + crop], crop, crop) for y, x in corners]
        probs = self._run(windows)
        total = np.zeros((ph, pw, self.num_classes), np.float32)
        count = np.zeros((ph, pw, 1), np.float32)
        for (y, x), p in zip(corners, probs):
            y1, x1 = min(y + crop, ph), min(x + crop, pw)
            total[y:y1, x:x1] += p[: y1 - y, : x1 - x]
            count[y:y1, x:x1] += 1
        return (total / count)[:height, :width]

    def probabilities(self, image, base_size=None):
        """`(H, W, C)` float32: class probabilities summed over scales and flips.

        `base_size` overrides the configured one for this image (e.g. the
        image's own long side, for inference at its native resolution).
        """
        image = normalised_image(image)
        h, w = image.shape[:2]
        scores = np.zeros((h, w, self.num_classes), np.float32)
        for scale in self.config.scales:
            probs = self.scale_probabilities(image, scale, base_size)
            scores += resize_bilinear(probs[None], (h, w), align_corners=True)[0].numpy()
        return scores

    def predict(self, image, base_size=None):
        """`(H, W)` int32 label map."""
        return np.argmax(self.probabilities(image, base_size), -1).astype(np.int32)
