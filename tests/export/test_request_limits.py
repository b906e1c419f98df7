"""The SavedModel refuses images larger than its export allows, before any work on them:
`encoded` reads each file's declared size from its header, so a small file declaring a
huge image (a decompression bomb) cannot take the server's memory."""

import io
import resource
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from enc_tf.data.classes import make_class_info
from enc_tf.export import export_saved_model
from tests.support.tiny_models import tiny_segmenter

LIMIT = 64 * 64


@pytest.fixture(scope="module")
def signatures(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    path = export_saved_model(
        tiny_segmenter(3), make_class_info(["a", "b", "c"]), str(base), max_pixels=LIMIT
    )
    return tf.saved_model.load(path).signatures


def _encoded(size, kind):
    buffer = io.BytesIO()
    pixels = np.random.default_rng(0).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    Image.fromarray(pixels).save(buffer, format=kind)
    return buffer.getvalue()


def _png_bomb(width, height):
    """A valid PNG header declaring `width x height`, with one tiny compressed row."""

    def chunk(kind, data):
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0" * 64))


@pytest.mark.parametrize("kind", ["PNG", "JPEG", "GIF", "BMP"])
def test_each_format_within_the_limit_runs_and_over_it_is_refused(signatures, kind):
    ok = signatures["encoded"](encoded_images=tf.constant([_encoded((60, 40), kind)]))
    assert ok["labels"].shape == (1, 40, 60)
    with pytest.raises(tf.errors.InvalidArgumentError, match="more pixels .* accepts \\(4096"):
        signatures["encoded"](encoded_images=tf.constant([_encoded((80, 60), kind)]))


def test_a_header_only_bomb_is_refused_without_decoding(signatures):
    bomb = _png_bomb(20000, 20000)
    assert len(bomb) < 200
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(tf.errors.InvalidArgumentError, match="more pixels"):
        signatures["encoded"](encoded_images=tf.constant([bomb]))
    grown_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
    assert grown_kib < 100 * 1024  # decoding it would take 1.2 GB


def test_the_images_signatures_check_the_tensor_size(signatures):
    small = tf.zeros((1, 40, 60, 3), tf.uint8)
    assert signatures["serving_default"](images=small)["labels"].shape == (1, 40, 60)
    for name in ("serving_default", "probabilities"):
        with pytest.raises(tf.errors.InvalidArgumentError, match="more pixels"):
            signatures[name](images=tf.zeros((1, 65, 64, 3), tf.uint8))
