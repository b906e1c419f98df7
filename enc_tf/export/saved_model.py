"""SavedModel export for TensorFlow Serving, with pre- and postprocessing in the graph.

Signatures (all batch-first; images in a batch share one size):

- `serving_default`: `images` uint8 `[B, H, W, 3]`, any size ->
  `labels` int32 `[B, H, W]`, `se_probabilities` float32 `[B, C]`.
- `probabilities`: the same, plus `probabilities` float32 `[B, H, W, C]`.
- `encoded`: `encoded_images` string `[B]` (JPEG/PNG/BMP/GIF bytes) -> as `serving_default`.
- `logits`: `images` float32 `[B, H, W, 3]` normalised -> `seg` `[B, H, W, C]` and
  `se` `[B, C]` logits, for `enc-eval` and `enc-predict` (sliding window, multi-scale).

Inside the graph: ImageNet normalisation, padding to a multiple of the output stride
(bottom/right, black; the logits are cropped back), and, when `max_size` is set, a
bilinear downscale of larger inputs whose outputs are resized back to the input size.
Models without an SE head return `se_probabilities` of shape `[B, 0]`.

Every signature refuses an image of more than `max_pixels` pixels (height x width; set
at export, `DEFAULT_MAX_PIXELS` = 4096 x 4096) with an `InvalidArgumentError` that says
so, before any work on it. `encoded` reads the size each file declares in its header
(JPEG's frame header, PNG's IHDR, GIF's screen, BMP's info header) before decoding, so a
small file that declares a huge image (a decompression bomb) costs nothing.
"""

import json
import logging
import os

import keras
import tensorflow as tf

from enc_tf.artifacts import CLASSES_ASSET, SERVING_SIGNATURES
from enc_tf.contracts.images import PAD_VALUE, long_side_size_tf, normalize
from enc_tf.data.classes import ClassInfo
from enc_tf.errors import ConfigError
from enc_tf.files import atomic_write
from enc_tf.layers.resize import resize_bilinear
from enc_tf.models.logits import model_logits

logger = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 4096 * 4096


def _unsigned(data, offset, length, big_endian):
    """The unsigned integer in the bytes `data[offset:offset + length]` (int64)."""
    raw = tf.cast(tf.io.decode_raw(tf.strings.substr(data, offset, length), tf.uint8), tf.int64)
    powers = range(length - 1, -1, -1) if big_endian else range(length)
    return tf.reduce_sum(raw * tf.constant([256**i for i in powers], tf.int64))


def declared_pixels(data):
    """Height x width that an encoded image's header declares (int64), read without
    decoding it; 0 for a file too short to have a header (decoding then fails)."""
    length = tf.strings.length(data)
    magic = tf.strings.substr(data, 0, 4)

    def jpeg():
        shape = tf.cast(tf.io.extract_jpeg_shape(data), tf.int64)
        return shape[0] * shape[1]

    def png():  # IHDR: width, height as 4-byte big-endian at offsets 16 and 20
        return _unsigned(data, 16, 4, True) * _unsigned(data, 20, 4, True)

    def gif():  # logical screen: width, height as 2-byte little-endian at 6 and 8
        return _unsigned(data, 6, 2, False) * _unsigned(data, 8, 2, False)

    def bmp():  # BITMAPINFOHEADER: int32 width at 18, height at 22 (negative: top-down)
        width = _unsigned(data, 18, 4, False)
        height = _unsigned(data, 22, 4, False)
        height = tf.where(height >= 2**31, 2**32 - height, height)
        return width * height

    return tf.case(
        [
            (length < 26, lambda: tf.constant(0, tf.int64)),
            (tf.strings.substr(magic, 0, 2) == b"\xff\xd8", jpeg),
            (magic == b"\x89PNG", png),
            (tf.strings.substr(magic, 0, 3) == b"GIF", gif),
            (tf.strings.substr(magic, 0, 2) == b"BM", bmp),
        ],
        default=lambda: tf.constant(0, tf.int64),
        exclusive=False,
    )


def inference_view(model):
    """A functional model over the same layers and weights, without the optimizer.

    A model fresh from training tracks its optimizer, and `tf.saved_model.save` would
    write its slots too (twice the size for SGD with momentum).
    """
    try:
        inputs, outputs = model.input, model.output
    except (AttributeError, ValueError):  # not a functional model: used as it is
        return model
    return keras.Model(inputs, outputs, name=model.name)


class ServingModule(tf.Module):
    """The model with its serving signatures.

    Args:
        model: a Keras segmentation model (dict outputs `seg`, optional `se`).
        classes: `ClassInfo`, written as the `classes.json` asset.
        multiple: pad inputs to a multiple of this (the output stride).
        max_size: downscale inputs whose long side exceeds this (None: never).
        max_pixels: refuse images of more pixels than this (height x width).
    """

    def __init__(
        self, model, classes: ClassInfo, multiple=8, max_size=None, max_pixels=DEFAULT_MAX_PIXELS
    ):
        super().__init__()
        self.model = inference_view(model)
        self.multiple = int(multiple)
        self.max_size = int(max_size) if max_size else 0
        if not isinstance(max_pixels, int) or isinstance(max_pixels, bool) or max_pixels < 1:
            raise ConfigError(f"max_pixels must be a positive integer, got {max_pixels!r}.")
        self.max_pixels = max_pixels
        self.num_classes = int(model.output["seg"].shape[-1])
        if classes.num_classes != self.num_classes:
            raise ConfigError(
                f"The model predicts {self.num_classes} classes but the class list has "
                f"{classes.num_classes}."
            )
        self.classes = classes
        self._pad_value = tf.constant(PAD_VALUE, tf.float32)
        self.serving_default = tf.function(
            self._serve_default,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
        )
        self.probabilities = tf.function(
            self._serve_probabilities,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")],
        )
        self.encoded = tf.function(
            self._serve_encoded,
            input_signature=[tf.TensorSpec([None], tf.string, name="encoded_images")],
        )
        self.logits = tf.function(
            self._logits,
            input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")],
        )

    def _check(self, images, name="images"):
        # The restored signatures do not enforce the declared rank and channel count;
        # the checks run before anything else uses the images. An empty batch would
        # otherwise fail deep inside the model (or return empty outputs in some layers).
        images = tf.ensure_shape(images, [None, None, None, 3], name=name)
        shape = tf.shape(images, out_type=tf.int64)
        batch = tf.debugging.assert_positive(
            shape[:1], message=f"{name}: the batch holds no image (batch size 0)"
        )
        positive = tf.debugging.assert_positive(
            shape[1:3], message=f"{name}: height and width must be positive"
        )
        with tf.control_dependencies([batch, positive]):
            size = self._check_pixels(shape[1] * shape[2], name)
        with tf.control_dependencies([size]):
            return tf.identity(images)

    def _check_pixels(self, pixels, name):
        return tf.debugging.assert_less_equal(
            pixels,
            tf.constant(self.max_pixels, tf.int64),
            message=f"{name}: the image has more pixels (height x width, first value) than this "
            f"export accepts ({self.max_pixels}; enc-export --max-pixels)",
        )

    def _logits(self, images):
        images = self._check(images)
        outputs = model_logits(self.model, images)
        se = outputs["se"] if "se" in outputs else tf.zeros([tf.shape(outputs["seg"])[0], 0])
        return {"seg": outputs["seg"], "se": se}

    def _predict(self, images):
        """uint8 images -> (probabilities at the input size, SE probabilities)."""
        images = self._check(images)
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        x = normalize(images)
        if self.max_size:
            long_side = tf.minimum(tf.maximum(height, width), self.max_size)
            new_h, new_w = long_side_size_tf(height, width, long_side)
            x = resize_bilinear(x, tf.stack([new_h, new_w]), align_corners=True)
        h, w = tf.shape(x)[1], tf.shape(x)[2]
        pad_h = (self.multiple - h % self.multiple) % self.multiple
        pad_w = (self.multiple - w % self.multiple) % self.multiple
        padded = (
            tf.pad(x - self._pad_value, [[0, 0], [0, pad_h], [0, pad_w], [0, 0]]) + self._pad_value
        )
        outputs = self._logits(padded)
        probabilities = tf.nn.softmax(outputs["seg"][:, :h, :w], axis=-1)
        if self.max_size:
            probabilities = resize_bilinear(
                probabilities, tf.stack([height, width]), align_corners=True
            )
        return probabilities, tf.sigmoid(outputs["se"])

    def _serve_default(self, images):
        probabilities, presence = self._predict(images)
        return {
            "labels": tf.argmax(probabilities, -1, output_type=tf.int32),
            "se_probabilities": presence,
        }

    def _serve_probabilities(self, images):
        probabilities, presence = self._predict(images)
        return {
            "labels": tf.argmax(probabilities, -1, output_type=tf.int32),
            "probabilities": probabilities,
            "se_probabilities": presence,
        }

    def _serve_encoded(self, encoded_images):
        def decode(data):
            with tf.control_dependencies([self._check_pixels(declared_pixels(data), "encoded")]):
                image = tf.io.decode_image(data, channels=3, expand_animations=False)
            return tf.ensure_shape(image, [None, None, 3])

        batch = tf.debugging.assert_positive(
            tf.shape(encoded_images),
            message="encoded_images: the batch holds no image (batch size 0)",
        )
        with tf.control_dependencies([batch]):
            encoded_images = tf.identity(encoded_images)
        images = tf.map_fn(
            decode, encoded_images, fn_output_signature=tf.TensorSpec([None, None, 3], tf.uint8)
        )
        return self._serve_default(images)

    def signatures(self):
        return {name: getattr(self, name).get_concrete_function() for name in SERVING_SIGNATURES}


def export_saved_model(
    model,
    classes,
    base_dir,
    model_name="encnet",
    version=None,
    overwrite=False,
    multiple=8,
    max_size=None,
    max_pixels=DEFAULT_MAX_PIXELS,
):
    """Writes `<base_dir>/<model_name>/<version>/` (TF Serving's layout) and returns its path.

    `version` defaults to one more than the highest existing version (1 for the
    first). The SavedModel is written to a temporary directory next to it, flushed
    to disk and renamed when complete (`enc_tf.files.atomic_write`): TF Serving,
    which watches `<model_name>/`, never sees a partial version. An existing version
    is only replaced with `overwrite=True`.
    """
    model_dir = os.path.join(base_dir, model_name)
    os.makedirs(model_dir, exist_ok=True)
    existing = [int(d) for d in os.listdir(model_dir) if d.isdigit()]
    version = int(version) if version is not None else max(existing, default=0) + 1
    if version < 1:
        raise ConfigError(f"version must be a positive integer, got {version}.")
    target = os.path.join(model_dir, str(version))
    if os.path.exists(target) and not overwrite:
        raise FileExistsError(
            f"{target} exists; pass overwrite=True (--overwrite) or another version."
        )
    module = ServingModule(model, classes, multiple, max_size, max_pixels)

    def write(export_dir):
        tf.saved_model.save(module, export_dir, signatures=module.signatures())
        assets = os.path.join(export_dir, "assets")
        os.makedirs(assets, exist_ok=True)
        with open(os.path.join(assets, CLASSES_ASSET), "w") as f:
            json.dump({**classes.to_dict(), "num_classes": classes.num_classes}, f)

    atomic_write(target, write)
    logger.info("SavedModel written to %s", target)
    return target
