"""Bilinear resizing: the one function every part of enc_tf resizes features and images with,
and the layer that resizes to the spatial size of a reference tensor."""

import keras
import numpy as np
import tensorflow as tf


def resize_bilinear(images, size, align_corners=True):
    """Bilinear resize of `(B, H, W, C)` images (float, or integer such as uint8) to
    `size = (height, width)`.

    `align_corners=True` aligns the corner pixels of input and output (the original's
    `F.interpolate(..., align_corners=True)`); False uses half-pixel centres (as
    `tf.image.resize` and MMSegmentation's `align_corners=False`). TF's
    `ResizeBilinear` kernel is the one op that implements both conventions and maps
    to the TFLite `RESIZE_BILINEAR` builtin. Returns float32.
    """
    return tf.raw_ops.ResizeBilinear(
        images=images,
        size=tf.cast(size, tf.int32),
        align_corners=bool(align_corners),
        half_pixel_centers=not align_corners,
    )


def resize_nearest(labels, size):
    """Nearest-neighbour resize of `(B, H, W, C)` label maps to `size = (height, width)`, with
    half-pixel centres (as `tf.image.resize(..., method="nearest")`); keeps the dtype."""
    return tf.raw_ops.ResizeNearestNeighbor(
        images=labels, size=tf.cast(size, tf.int32), align_corners=False, half_pixel_centers=True
    )


@keras.saving.register_keras_serializable(package="enc_tf")
class BilinearResize(keras.layers.Layer):
    """Resizes `x` bilinearly to the height and width of `reference`.

    With `align_corners=True` (the original's `F.interpolate(...,
    align_corners=True)`) the corner pixels of input and output are aligned;
    `tf.image.resize` uses half-pixel centres instead, which `align_corners=False`
    selects. TF's `ResizeBilinear` kernel is used because it is the one op that
    implements both conventions and maps to the TFLite `RESIZE_BILINEAR` builtin.

    Args:
        align_corners: bool, see above.
        **kwargs: base layer arguments.

    Input shape:
        A list `[x, reference]`: `x` is `(B, h, w, C)`, `reference` is
        `(B, H, W, ...)`.

    Output shape:
        `(B, H, W, C)`.

    Example:
    >>> x, ref = keras.random.normal((1, 4, 5, 3)), keras.ops.zeros((1, 32, 40, 3))
    >>> BilinearResize()([x, ref]).shape
    (1, 32, 40, 3)
    """

    def __init__(self, align_corners=True, **kwargs):
        super().__init__(**kwargs)
        self.align_corners = bool(align_corners)

    def call(self, inputs):
        x, reference = inputs
        resized = resize_bilinear(x, tf.shape(reference)[1:3], self.align_corners)
        return tf.cast(resized, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        x_shape, reference_shape = input_shape
        return (x_shape[0], reference_shape[1], reference_shape[2], x_shape[-1])

    def get_config(self):
        config = super().get_config()
        config.update({"align_corners": self.align_corners})
        return config


def _sampling(in_size, out_size, align_corners, first=0, stop=None):
    """TF's `ResizeBilinear` sampling of output positions `first..stop-1`: lower and upper
    input indices and the weight of the upper, computed as its kernel does in float32
    (`compute_interpolation_weights`: position `i x scale` with aligned corners, else
    `(i + 0.5) x scale - 0.5`; lower `max(floor, 0)`, upper `min(ceil, in_size - 1)`)."""
    stop = out_size if stop is None else stop
    index = np.arange(first, stop, dtype=np.float32)
    if align_corners:
        scale = np.float32(in_size - 1) / np.float32(out_size - 1) if out_size > 1 else 0
        position = index * np.float32(scale)
    else:
        scale = np.float32(in_size) / np.float32(out_size)
        position = (index + np.float32(0.5)) * scale - np.float32(0.5)
    floor = np.floor(position)
    lower = np.maximum(floor.astype(np.int64), 0)
    upper = np.minimum(np.ceil(position).astype(np.int64), in_size - 1)
    return lower, upper, (position - floor).astype(np.float32)


def source_rows(first, stop, in_height, out_height, align_corners=True):
    """The input rows `[y0, y1)` that output rows `[first, stop)` of a bilinear resize
    from `in_height` to `out_height` rows read."""
    lower, upper, _ = _sampling(in_height, out_height, align_corners, first, stop)
    return int(lower.min()), int(upper.max()) + 1


def resize_rows_bilinear(
    rows, y0, first, stop, in_height, out_size, align_corners=True, scratch=None
):
    """Output rows `[first, stop)` of `resize_bilinear(map, out_size, align_corners)`,
    computed from the input rows `rows = map[y0:y1]` only (`source_rows` says which), so
    that a large output is made band by band with memory for the band alone. `rows` is
    `(n, W, C)`; returns `(stop - first, out_width, C)` float32, the arithmetic of TF's
    kernel repeated in NumPy.

    `scratch` (an `enc_tf.scratch.Scratch`): the working arrays and the result are its
    arrays `resize.*`, so band after band reuses their memory; the result is then valid
    until the next call with the same `scratch`. Without it they are new arrays. Rows
    that need no resizing come back as a view of `rows`."""
    out_height, out_width = out_size
    rows = np.asarray(rows, np.float32)
    if (in_height, rows.shape[1]) == (out_height, out_width):
        return rows[first - y0 : stop - y0]
    y_lo, y_hi, y_w = _sampling(in_height, out_height, align_corners, first, stop)
    x_lo, x_hi, x_w = _sampling(rows.shape[1], out_width, align_corners)
    if y_lo.min() < y0 or y_hi.max() - y0 >= len(rows):
        raise ValueError(
            f"Output rows {first}..{stop - 1} read input rows {y_lo.min()}..{y_hi.max()}; "
            f"got rows {y0}..{y0 + len(rows) - 1}."
        )

    def array(name, shape):
        return np.empty(shape, np.float32) if scratch is None else scratch.array(name, shape)

    # Each input row is resized along x once (TF's kernel does it per output row: the same
    # values, as often as output rows read the row), then output rows blend two of them.
    # The indices are in range (checked above; `_sampling` clamps x), so `take` runs with
    # mode="clip", which writes into `out` directly ("raise" would buffer a copy).
    across_shape = (len(rows), out_width, rows.shape[2])
    left = np.take(rows, x_lo, axis=1, out=array("resize.left", across_shape), mode="clip")
    across = np.take(rows, x_hi, axis=1, out=array("resize.across", across_shape), mode="clip")
    across -= left
    across *= x_w[None, :, None]
    across += left  # left + (right - left) * x_weight
    out_shape = (stop - first, out_width, rows.shape[2])
    top = np.take(across, y_lo - y0, axis=0, out=array("resize.top", out_shape), mode="clip")
    out = np.take(across, y_hi - y0, axis=0, out=array("resize.out", out_shape), mode="clip")
    out -= top
    out *= y_w[:, None, None]
    out += top  # top + (bottom - top) * y_weight
    return out
