"""Reading images and label maps with Pillow, with errors that name the file."""

import os

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from enc_tf.errors import DataError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


def list_images(directory, what="directory"):
    """The image files (by `IMAGE_EXTENSIONS`, any case) in `directory`, sorted.

    Raises:
        DataError: naming `what` and `directory` when it holds no image.
    """
    found = sorted(
        os.path.join(directory, f)
        for f in os.listdir(directory)
        if f.lower().endswith(IMAGE_EXTENSIONS)
    )
    if not found:
        raise DataError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) in {what} {directory}.")
    return found


def check_pixels(width, height, max_pixels, name):
    """A `DataError` naming `name` when a `width x height` image has more than `max_pixels`
    pixels (None: no limit)."""
    if max_pixels is not None and width * height > max_pixels:
        raise DataError(
            f"{name} is {width} x {height} = {width * height} pixels, over the limit of "
            f"{max_pixels} (--max-pixels); downscale it or raise the limit if memory allows."
        )


def _open(path, what, max_pixels=None):
    try:
        image = Image.open(path)
        check_pixels(*image.size, max_pixels, f"{what.capitalize()} {path}")  # before decoding
        image.load()
    except FileNotFoundError as err:
        raise DataError(f"{what} not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"Cannot read {what} {path}: {err}") from err
    return image


def read_image(path, max_pixels=None):
    """Reads an image as `(H, W, 3)` uint8 RGB.

    EXIF orientation is applied; grayscale, RGBA (alpha dropped), palette,
    CMYK and 16-bit images are converted to 8-bit RGB (see `rgb_uint8`). An image of
    more than `max_pixels` pixels is refused from its header, before it is decoded.
    """
    return image_to_rgb(_open(path, "image", max_pixels), path)


def rgb_uint8(array, name="<image>"):
    """An image array as `(H, W, 3)` uint8 RGB; the one place where pixel depth is converted.

    The scale follows the dtype, never the values, so a dark and a bright
    16-bit image keep their relative brightness: uint8 as it is, uint16
    divided by 257 (65535 -> 255), float in [0, 1] times 255.

    Args:
        array: `(H, W)` grey, `(H, W, 1)`, `(H, W, 3)` RGB or `(H, W, 4)` RGBA
            (alpha dropped).
        name: the image's name in error messages.

    Raises:
        DataError: naming `name`, for another shape or dtype, or floats outside [0, 1].
    """
    array = np.asarray(array)
    if array.ndim == 2:
        array = array[..., None]
    if array.ndim != 3 or array.shape[-1] not in (1, 3, 4) or min(array.shape[:2]) < 1:
        raise DataError(
            f"{name}: expected an (H, W), (H, W, 1), (H, W, 3) or (H, W, 4) image, "
            f"got shape {array.shape}."
        )
    if array.dtype == np.uint16:
        array = np.rint(array / 257.0).astype(np.uint8)
    elif np.issubdtype(array.dtype, np.floating):
        if array.size and (np.isnan(array).any() or array.min() < 0 or array.max() > 1):
            raise DataError(f"{name}: float images must lie in [0, 1].")
        array = np.rint(array * 255.0).astype(np.uint8)
    elif array.dtype != np.uint8:
        raise DataError(
            f"{name}: unsupported dtype {array.dtype}; use uint8, uint16 or float in [0, 1]."
        )
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, -1)
    return np.ascontiguousarray(array[..., :3])


def image_to_rgb(image, name="<image>"):
    """A PIL image as `(H, W, 3)` uint8 RGB, as `read_image` (EXIF orientation applied).

    16-bit modes (`I;16*`, and `I`, which older Pillow gives 16-bit PNGs) are
    scaled by `rgb_uint8` as 16-bit data, whatever their values.
    """
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I"):
        array = np.asarray(image)
        if image.mode == "I" and array.size and (array.min() < 0 or array.max() > 65535):
            raise DataError(
                f"Image {name} is 32-bit (mode I) with values outside 0-65535 "
                f"([{array.min()}, {array.max()}]); give 8- or 16-bit images."
            )
        return rgb_uint8(array.astype(np.uint16), name)
    if image.mode == "F":
        raise DataError(f"Image {name} is floating point (mode F); expected 8- or 16-bit pixels.")
    return rgb_uint8(np.asarray(image.convert("RGB"), dtype=np.uint8), name)


def read_label(path):
    """Reads a label map as `(H, W)` integers: palette indices or single-channel values
    (uint8 or uint16 as stored, else int64).

    RGB(A) colour-coded masks are rejected: give palette or single-channel PNGs.
    """
    image = _open(path, "mask")
    if image.mode in ("RGB", "RGBA", "CMYK", "YCbCr", "LAB", "HSV"):
        raise DataError(
            f"Mask {path} is a {image.mode} colour image; masks must be single-channel or palette "
            "images whose values are class indices."
        )
    if image.mode == "LA":
        image = image.getchannel("L")
    label = np.asarray(image)
    # Palette and 8/16-bit masks keep their unsigned dtype (no int64 copy); others, int64.
    return label if label.dtype in (np.uint8, np.uint16) else label.astype(np.int64)


def apply_label_map(label, lookup, ignore_index, path="<mask>"):
    """Maps raw mask values to train ids through `lookup` (raw value -> id, -1 = invalid).

    Raises:
        DataError: naming the file and every value that is neither a class nor ignored.
    """
    label = np.asarray(label)
    if label.dtype in (np.uint8, np.uint16) and label.size and label.max() < len(lookup):
        # Train ids fit int16 (-1 marks a value that is not a class): one pass maps, and a
        # mask with no such value is done; else the values are listed below for the error.
        mapped = np.take(lookup.astype(np.int16), label)
        if mapped.min() >= 0:
            return mapped.astype(np.uint8)
    if label.dtype in (np.uint8, np.uint16):  # the values present by counting, not sorting
        values = np.flatnonzero(np.bincount(label.ravel()))
    else:
        values = np.unique(label)
    bad = values[(values < 0) | (values >= len(lookup))]
    if bad.size == 0:
        bad = values[lookup[values] < 0]
    if bad.size:
        raise DataError(
            f"Mask {path} has values {bad[:10].tolist()} that are neither a class nor the ignore "
            f"value {ignore_index}."
        )
    return lookup[label].astype(np.uint8)


def read_pair(image_path, label_path, lookup, ignore_index):
    """Reads and checks one sample: `(H, W, 3)` uint8 image and `(H, W)` uint8 train ids."""
    image = read_image(image_path)
    label = apply_label_map(read_label(label_path), lookup, ignore_index, label_path)
    if image.shape[:2] != label.shape:
        raise DataError(
            f"Image {image_path} is {image.shape[1]}x{image.shape[0]} but its mask {label_path} is "
            f"{label.shape[1]}x{label.shape[0]}."
        )
    return image, label
