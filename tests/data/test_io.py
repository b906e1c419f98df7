import numpy as np
import pytest
from PIL import Image

from enc_tf.data.io import DataError, apply_label_map, read_image, read_label, read_pair
from enc_tf.data.sources import label_lookup


def test_image_modes_become_rgb(tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (6, 7, 3)).astype(np.uint8)
    gray = rgb[..., 0]
    Image.fromarray(gray, "L").save(tmp_path / "gray.png")
    np.testing.assert_array_equal(
        read_image(str(tmp_path / "gray.png")), np.repeat(gray[..., None], 3, -1)
    )
    rgba = np.concatenate([rgb, np.full((6, 7, 1), 7, np.uint8)], -1)
    Image.fromarray(rgba, "RGBA").save(tmp_path / "rgba.png")
    np.testing.assert_array_equal(read_image(str(tmp_path / "rgba.png")), rgb)
    Image.fromarray(rgb).convert("P").save(tmp_path / "pal.png")
    assert read_image(str(tmp_path / "pal.png")).shape == (6, 7, 3)
    deep = gray.astype(np.uint16) * 257
    Image.fromarray(deep).save(tmp_path / "deep.png")
    assert Image.open(tmp_path / "deep.png").mode.startswith("I")
    np.testing.assert_array_equal(read_image(str(tmp_path / "deep.png"))[..., 0], gray)


def test_exif_orientation_is_applied(tmp_path):
    image = Image.fromarray(np.zeros((4, 10, 3), np.uint8))  # 10 wide, 4 high
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees
    image.save(tmp_path / "rotated.jpg", exif=exif)
    assert read_image(str(tmp_path / "rotated.jpg")).shape == (10, 4, 3)


def test_bad_files_name_the_file(tmp_path):
    (tmp_path / "corrupt.jpg").write_bytes(b"\xff\xd8 not a jpeg")
    with pytest.raises(DataError, match="corrupt.jpg"):
        read_image(str(tmp_path / "corrupt.jpg"))
    with pytest.raises(DataError, match="not found.*absent.png"):
        read_image(str(tmp_path / "absent.png"))
    Image.fromarray(np.zeros((3, 3, 3), np.uint8)).save(tmp_path / "rgbmask.png")
    with pytest.raises(DataError, match="rgbmask.png.*single-channel or palette"):
        read_label(str(tmp_path / "rgbmask.png"))


def test_label_values_are_checked_and_mapped(tmp_path):
    lookup = label_lookup(3, "reduce_zero")
    label = np.array([[0, 1, 3], [255, 2, 2]])
    np.testing.assert_array_equal(apply_label_map(label, lookup, 255), [[255, 0, 2], [255, 1, 1]])
    with pytest.raises(DataError, match=r"m.png has values \[4, 9\]"):
        apply_label_map(np.array([[4, 9, 1]]), lookup, 255, "m.png")
    # Stored dtypes: uint8 / uint16 masks are mapped in one pass (their bad values then listed
    # by counting), others checked by sorting; all agree with the lookup table.
    for dtype in (np.uint8, np.uint16, np.int32, np.int64):
        mapped = apply_label_map(label.astype(dtype), lookup, 255)
        np.testing.assert_array_equal(mapped, [[255, 0, 2], [255, 1, 1]])
        assert mapped.dtype == np.uint8
        many = np.random.default_rng(0).choice([0, 1, 2, 3, 255], (64, 80)).astype(dtype)
        np.testing.assert_array_equal(apply_label_map(many, lookup, 255), lookup[many])
        with pytest.raises(DataError, match=r"m.png has values \[4, 9\]"):
            apply_label_map(np.array([[4, 9, 1, 3]], dtype), lookup, 255, "m.png")
    with pytest.raises(DataError, match=r"m.png has values \[-1\]"):
        apply_label_map(np.array([[-1, 1]], np.int32), lookup, 255, "m.png")
    Image.fromarray(np.full((2, 3), 300, np.uint16)).save(tmp_path / "wide.png")
    assert read_label(str(tmp_path / "wide.png")).max() == 300
    Image.fromarray(np.zeros((5, 6, 3), np.uint8)).save(tmp_path / "i.png")
    Image.fromarray(np.zeros((5, 7), np.uint8)).save(tmp_path / "m.png")
    with pytest.raises(DataError, match="i.png is 6x5 but its mask .*m.png is 7x5"):
        read_pair(str(tmp_path / "i.png"), str(tmp_path / "m.png"), lookup, 255)


def test_label_lookup_rules():
    with pytest.raises(ValueError, match="num_classes"):
        label_lookup(300)
    with pytest.raises(ValueError, match="Unknown label mapping"):
        label_lookup(3, "minus_one")
    cityscapes = label_lookup(19, {7: 0, 26: 13})
    assert cityscapes[7] == 0 and cityscapes[26] == 13 and cityscapes[4] == 255


def test_16_bit_images_are_scaled_by_depth_not_by_their_values(tmp_path):
    from enc_tf.data.io import rgb_uint8
    from enc_tf.inference import to_rgb_array

    # The same pixel value 255 in a dark 16-bit PNG (brightest pixel 255) and in a bright one.
    dark = np.array([[0, 128, 255]], np.uint16)
    bright = np.array([[0, 255, 65535]], np.uint16)
    Image.fromarray(dark).save(tmp_path / "dark.png")
    Image.fromarray(bright).save(tmp_path / "bright.png")
    assert Image.open(tmp_path / "dark.png").mode == "I;16"
    np.testing.assert_array_equal(read_image(str(tmp_path / "dark.png"))[..., 0], [[0, 0, 1]])
    np.testing.assert_array_equal(read_image(str(tmp_path / "bright.png"))[..., 0], [[0, 1, 255]])
    # Files, PIL images and arrays go through the same conversion.
    np.testing.assert_array_equal(to_rgb_array(dark), read_image(str(tmp_path / "dark.png")))
    np.testing.assert_array_equal(to_rgb_array(Image.open(tmp_path / "dark.png")), rgb_uint8(dark))
    # Older Pillow opens 16-bit PNGs as mode I: the same scale.
    np.testing.assert_array_equal(
        to_rgb_array(Image.fromarray(dark.astype(np.int32), "I")), rgb_uint8(dark)
    )
    with pytest.raises(DataError, match="big.*mode I.*70000"):
        to_rgb_array(Image.fromarray(np.array([[70000]], np.int32), "I"), "big")
