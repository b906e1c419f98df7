"""The paper's multi-scale + flip + sliding-window inference (EncNet paper, Section 4.1).

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

from enc_tf.contracts.images import PAD_VALUE, long_side_size
from enc_tf.errors import ConfigError
from enc_tf.layers.resize import resize_bilinear, resize_rows_bilinear, source_rows
from enc_tf.protocols.common import (
    Presence,
    banded_result,
    host_view,
    input_image,
    normalised,
    seg_and_presence,
    sum_into,
)
from enc_tf.scratch import ScratchPool

PAPER_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5, 1.75)
# A window batch holds at most about this many probabilities (128 MB).
WINDOW_VALUES = 1 << 25
CITYSCAPES_SCALES = (0.75, 1.0, 1.25, 1.5, 1.75, 2.0, 2.25)


@dataclasses.dataclass(frozen=True)
class PaperConfig:
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


class PaperPredictor:
    """Class probabilities of whole images by the paper's protocol (EncNet, Section 4.1):
    sliding windows at one scale or several, with or without flips (`PaperConfig`).

    Args:
        logits_fn: `(B, crop, crop, 3)` normalised float32 images ->
            `(B, crop, crop, C)` logits (or a dict with them under `seg`): a
            Keras model or `LoadedModel.logits_fn`.
        num_classes: `C`.
        config: `PaperConfig`.

    Call `probabilities(image)` with one normalised `(H, W, 3)` image (or a uint8 RGB
    one, normalised window by window, which saves a float copy of a large image): it
    returns the `(H, W, C)` sum over scales and flips of the class
    probabilities (the argmax is the prediction; divide by
    `num_passes` for a mean).
    """

    def __init__(self, logits_fn: Callable, num_classes: int, config: PaperConfig = PaperConfig()):
        self.config = config
        self.num_classes = int(num_classes)
        crop = int(config.crop_size)
        spec = tf.TensorSpec((None, crop, crop, 3), tf.float32)

        @tf.function(input_signature=[spec])
        def window_probabilities(windows):
            inputs = tf.concat([windows, tf.reverse(windows, [2])], 0) if config.flip else windows
            # The SE head's class presence of every input comes from the same pass.
            logits, presence = seg_and_presence(logits_fn(inputs), tf.shape(inputs)[0])
            probs = tf.nn.softmax(logits, axis=-1)
            if config.flip:
                n = tf.shape(windows)[0]
                probs = probs[:n] + tf.reverse(probs[n:], [2])
            return probs, presence

        self._windows = window_probabilities
        self._scratches = ScratchPool()  # working memory kept for the next images
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

    def _run(self, windows, presence):
        """The windows' flip-summed probabilities (NumPy); their SE presence goes to
        `presence` (a `Presence`), when there is one."""
        probs, seen = self._windows(windows)
        if presence is not None:
            presence.add(seen.numpy())
        return host_view(probs)

    def _scale_rows(self, image, scale, base_size=None, presence=None, scratch=None):
        """The flip-summed probabilities at one scale, before resizing back, as row bands
        in order: yields `(first_row, (rows, w_s, C) float32)`, plus the scale's size first.

        Windows run in batches of `window_batch`, a row of windows at a time, and add into
        a band as tall as a window; rows that no later window covers are divided by their
        window count and yielded. Memory holds one band, not the image's probabilities.
        The bands are `scratch.band`s when given (give them back once read), else new
        arrays.
        """
        c = self.config
        crop = int(c.crop_size)
        h, w = image.shape[:2]
        long_size = int(math.ceil((base_size or c.base_size) * scale))
        height, width = long_side_size(h, w, long_size)
        yield height, width
        if (height, width) == (h, w):
            resized = image  # uint8 stays uint8: windows are normalised one by one
        else:
            resized = normalised(image)
            resized = resize_bilinear(resized[None], (height, width), align_corners=True)[0]
            resized = resized.numpy()
        if long_size <= crop:
            window = self.pad(normalised(resized), crop, crop)[None]
            yield 0, self._run(window, presence)[0, :height, :width]
            return
        padded = resized  # only the short side may be below the crop: padded per window
        ph, pw = max(height, crop), max(width, crop)
        stride = max(1, int(crop * c.stride_rate))
        columns = window_starts(pw, crop, stride)
        # The band's memory is written before it is read (`_add_window`): an uninitialised
        # array, whose pages are touched once, not zero pages read and then copied.
        new_band = np.empty if scratch is None else scratch.band
        total = new_band((crop, pw, self.num_classes), np.float32)
        count = np.zeros((crop, pw, 1), np.float32)
        origin = 0  # the padded image's row that the band's first row holds
        carried = 0  # the band's top rows that the row of windows above wrote
        # Windows per call: the configured batch, fewer when one window's probabilities
        # are large (150 classes at 480 x 480 is 138 MB a window).
        step = max(1, min(int(c.window_batch), WINDOW_VALUES // (crop * crop * self.num_classes)))
        for y in window_starts(ph, crop, stride):
            if y > origin:  # rows origin..y-1 are complete: no later window covers them
                # The band goes on in new arrays, made before its complete rows are yielded
                # as views (which the reader may give back while this generator waits).
                done = y - origin
                finished = total, count
                total = self._band_from(total, done, new_band)
                count = self._band_from(count, done, np.zeros)
                yield from self._finish(*finished, origin, y, height, width)
                origin, carried = y, crop - done
            written = 0  # the columns this row of windows has written
            for i in range(0, len(columns), step):
                xs = columns[i : i + step]
                windows = np.stack(
                    [
                        self.pad(normalised(padded[y : y + crop, x : x + crop]), crop, crop)
                        for x in xs
                    ]
                )
                for x, p in zip(xs, self._run(windows, presence)):
                    x1 = min(x + crop, pw)
                    rows = min(crop, ph - y)
                    self._add_window(total, p[:rows, : x1 - x], x, carried, written)
                    count[:rows, x:x1] += 1
                    written = x1
        yield from self._finish(total, count, origin, ph, height, width)

    @staticmethod
    def _add_window(total, window, x, carried, written):
        """Adds a window's probabilities `(rows, width, C)` into the band at column `x`
        where earlier windows wrote (the top `carried` rows, from the row of windows above;
        columns before `written`, from the window to the left), and copies them into the
        rest, which no window wrote (the same sums: a copy is `0 + p`)."""
        rows, width = window.shape[:2]
        total[:carried, x : x + width] += window[:carried]
        split = min(max(written - x, 0), width)  # the window's columns that overlap
        total[carried:rows, x : x + split] += window[carried:, :split]
        total[carried:rows, x + split : x + width] = window[carried:, split:]

    @staticmethod
    def _band_from(band, done, new):
        """A band like `band` (`new(shape, dtype)`: `np.zeros`, or `np.empty` for a band
        written before it is read) holding its rows from `done` on at the top."""
        moved = new(band.shape, band.dtype)
        moved[: len(band) - done] = band[done:]
        return moved

    @staticmethod
    def _finish(total, count, origin, stop, height, width):
        """Rows `origin..stop-1` of the image's probabilities, the window mean: divided in
        place, yielded as a view of `total` (which the caller no longer writes)."""
        stop = min(stop, height)
        if stop > origin:
            rows = total[: stop - origin, :width]
            rows /= count[: stop - origin, :width]
            yield origin, rows

    def scale_probabilities(self, image, scale, base_size=None):
        """`(h_s, w_s, C)` flip-summed probabilities at one scale, before resizing back."""
        rows = self._scale_rows(image, scale, base_size)
        next(rows)
        return np.concatenate([band for _, band in rows], 0)

    def _passes(self, image, base_size, want_probabilities):
        """A `ProtocolResult`, made band by band: each scale streams its rows (`_scale_rows`),
        and output rows are resized back from the rows they read (`resize_rows_bilinear`, the
        same rule as `resize_bilinear`), summed over scales, and reduced to labels. Memory:
        the image, the labels, and bands; the full probabilities only when asked for. The
        bands' memory is kept for the next image (`enc_tf.scratch.Scratch`)."""
        image = input_image(image)
        h, w = image.shape[:2]
        presence = Presence()
        with self._scratches.scratch() as scratch:
            streams = [
                _RowStream(self._scale_rows(image, s, base_size, presence, scratch), scratch)
                for s in self.config.scales
            ]

            def band_scores(first, stop):
                total = scratch.array("band", (stop - first, w, self.num_classes))
                return sum_into(total, (s.resized_rows(first, stop, (h, w)) for s in streams))

            result = banded_result(
                (h, w), self.num_classes, band_scores, want_probabilities, presence
            )
            for stream in streams:
                stream.close()
            return result

    def probabilities(self, image, base_size=None):
        """`(H, W, C)` float32: class probabilities summed over scales and flips.

        `base_size` overrides the configured one for this image (e.g. the
        image's own long side, for inference at its native resolution).
        """
        return self._passes(image, base_size, True).probabilities

    def labels_and_probabilities(self, image, base_size=None, probabilities=False):
        """A `ProtocolResult`: the label map, the summed probabilities only when
        `probabilities` (they take `H x W x C x 4` bytes), whether every probability was
        finite (a broken model gives NaN), and the SE head's class presence."""
        return self._passes(image, base_size, probabilities)

    def predict(self, image, base_size=None):
        """`(H, W)` int32 label map (without keeping the image's probabilities)."""
        return self._passes(image, base_size, False).labels


class _RowStream:
    """One scale's probability rows, read in order and kept only while output rows need
    them (as the chunks the scale yields, never copied into one array)."""

    def __init__(self, rows, scratch):
        self._rows = rows
        self._scratch = scratch  # for the resized rows; the chunks' bands go back to it
        self.height, self.width = next(rows)
        self._chunks = []  # (first row, rows) in order

    def close(self):
        """Runs whatever windows of the scale are left (a scale whose last rows no output
        row read; none once its last row was read) and gives back every band it held: the
        image is done."""
        for _, rows in self._rows:
            self._scratch.give_back(rows)
        while self._chunks:
            self._scratch.give_back(self._chunks.pop(0)[1])

    def _read_to(self, stop):
        while not self._chunks or self._chunks[-1][0] + len(self._chunks[-1][1]) < stop:
            self._chunks.append(next(self._rows))

    def resized_rows(self, first, stop, size):
        """Output rows `[first, stop)` of this scale's probabilities resized to `size`, in
        the stream's `Scratch` arrays (valid until its next use) or a view of the scale's
        rows."""
        scratch = self._scratch
        y0, y1 = source_rows(first, stop, self.height, size[0])
        # A chunk that ends above y0 is read by no later row: its band can be reused (the
        # previous call's rows, which may be a view of it, were summed before this call).
        while self._chunks and self._chunks[0][0] + len(self._chunks[0][1]) <= y0:
            scratch.give_back(self._chunks.pop(0)[1])
        self._read_to(y1)
        parts = [
            chunk[max(0, y0 - start) : y1 - start]
            for start, chunk in self._chunks
            if start < y1 and start + len(chunk) > y0
        ]
        if len(parts) == 1:
            rows = parts[0]
        else:
            shape = (sum(len(part) for part in parts), *parts[0].shape[1:])
            rows = np.concatenate(parts, 0, out=scratch.array("rows", shape))
        return resize_rows_bilinear(rows, y0, first, stop, self.height, size, scratch=scratch)
