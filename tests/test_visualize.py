import numpy as np
from PIL import Image

from enc_tf.data.classes import make_class_info
from enc_tf.visualize import colorize, index_png, overlay


def test_colorize():
    out = colorize(np.array([[0, 1, 255]]), [(1, 2, 3), (4, 5, 6)])
    np.testing.assert_array_equal(out, [[[1, 2, 3], [4, 5, 6], [0, 0, 0]]])


def test_index_png_embeds_the_palette_and_overlay_adds_a_legend():
    classes = make_class_info(["a", "b", "c"])
    labels = np.array([[0, 2], [2, 2]])
    picture = index_png(labels, classes)
    assert picture.mode == "P" and np.array_equal(np.asarray(picture), labels)
    assert picture.getpalette()[3:6] == list(classes.palette[1])
    image = np.full((2, 2, 3), 100, np.uint8)
    out = overlay(image, labels, classes, alpha=0.5)
    assert isinstance(out, Image.Image) and out.width == 2 and out.height > 2
    expected = np.rint(0.5 * 100 + 0.5 * np.asarray(classes.palette[2])).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(out)[1, 1], expected)
