"""What both test-time protocols share: the result for one image, the SE presence they
collect, their input images, and the bands of rows their outputs are made in."""

from typing import NamedTuple, Optional

import numpy as np
import tensorflow as tf

from enc_tf.contracts.images import normalised_image, normalize

# Output rows are made in bands of about this many float32 values (16 MB).
BAND_VALUES = 1 << 22


class ProtocolResult(NamedTuple):
    """One image by a test-time protocol (`PaperPredictor`, `MMSegPredictor`).

    Attributes:
        labels: `(H, W)` int32.
        probabilities: `(H, W, C)` float32 summed over the protocol's passes (scales or
            ratios, and flips; divide by `num_passes` for the mean), or None.
        finite: whether every probability was finite.
        presence: `(C,)` float32, the SE head's class presence (sigmoid): for each class,
            its largest value over the network inputs the protocol ran (windows and their
            flips; a class seen in any of them is present), or None for a model without
            an SE head. It costs no pass of its own.
    """

    labels: np.ndarray
    probabilities: Optional[np.ndarray]
    finite: bool
    presence: Optional[np.ndarray]


def row_bands(height, width, num_classes):
    """`(first, stop)` of the bands of output rows, about `BAND_VALUES` values each."""
    band = max(1, BAND_VALUES // max(1, width * num_classes))
    return [(first, min(height, first + band)) for first in range(0, height, band)]


def banded_result(size, num_classes, band_scores, want_probabilities, presence):
    """A `ProtocolResult` made band by band: `band_scores(first, stop)` gives output rows
    `[first, stop)` of the summed scores, `(stop - first, W, C)` float32, a band of about
    `BAND_VALUES` at a time; only the labels (and the scores when `want_probabilities`)
    are kept for the whole image. `presence`: a `Presence`."""
    h, w = size
    labels = np.empty((h, w), np.int32)
    scores = np.empty((h, w, num_classes), np.float32) if want_probabilities else None
    finite = True
    for first, stop in row_bands(h, w, num_classes):
        total = band_scores(first, stop)
        labels[first:stop] = np.argmax(total, -1)
        finite = finite and bool(np.isfinite(total).all())
        if scores is not None:
            scores[first:stop] = total
    return ProtocolResult(labels, scores, finite, presence.value)


def sum_into(total, parts):
    """`total` set to the sum of the arrays `parts` yields (the first copied in, so `total`
    needs no zeros), in order, each added before the next is made (so they may share
    memory, as results in one `Scratch` do). Returns `total`."""
    for i, part in enumerate(parts):
        if i:
            total += part
        else:
            np.copyto(total, part)
    return total


def seg_and_presence(outputs, batch):
    """`(logits, presence)` as float32 from a network's outputs (a tensor, or a dict with
    `seg` and, for EncNet, `se`); presence is the SE head's sigmoid, `(batch, 0)` without
    one. For use inside the protocols' `tf.function`s."""
    outputs = outputs if isinstance(outputs, dict) else {"seg": outputs}
    logits = tf.cast(outputs["seg"], tf.float32)
    if "se" in outputs:
        return logits, tf.sigmoid(tf.cast(outputs["se"], tf.float32))
    return logits, tf.zeros((batch, 0))


class Presence:
    """The largest SE presence per class over the network inputs seen so far."""

    def __init__(self):
        self.value = None

    def add(self, batch):
        """`batch`: `(N, C)` presences, or `(N, 0)` from a model without an SE head."""
        batch = np.asarray(batch)
        if batch.size == 0:
            return
        largest = batch.max(axis=0)
        self.value = largest if self.value is None else np.maximum(self.value, largest)


def input_image(image):
    """A uint8 RGB image as it is (normalised where a protocol reads it, which saves a float
    copy of a large image), else a normalised float32 one; a ValueError names a bad shape."""
    if isinstance(image, np.ndarray) and image.dtype == np.uint8:
        if image.ndim != 3 or image.shape[-1] != 3:
            raise ValueError(f"Expected one (H, W, 3) image, got shape {image.shape}.")
        return image
    return normalised_image(image)


def host_view(tensor):
    """An eager tensor's values as a read-only NumPy array on the tensor's own buffer (which
    it keeps alive). `Tensor.numpy()` copies: 0.1-0.3 s for one 480 x 480 window's
    probabilities of 150 classes, a tenth of a pass."""
    return np.asarray(tensor)


def normalised(image):
    """`image` normalised (`contracts.images.normalize`) when it is uint8 RGB."""
    if image.dtype == np.uint8:
        return normalize(tf.constant(image)).numpy()
    return image
