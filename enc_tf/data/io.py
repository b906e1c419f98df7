"""Reading images and label maps with Pillow, with errors that name the file."""

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")


class DataError(ValueError):
    """A dataset file is missing, unreadable or inconsistent; the message names it."""


def _open(path, what):
    try:
        image = Image.open(path)
        image.load()
    except FileNotFoundError as err:
        raise DataError(f"{what} not found: {path}") from err
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise DataError(f"Cannot read {what} {path}: {err}") from err
    return image


def read_image(path):
    """Reads an image as `(H, W, 3)` uint8 RGB.

    EXIF orientation is applied; grayscale, RGBA (alpha dropped), palette,
    CMYK and 16-bit images are converted to 8-bit RGB.
    """
    return image_to_rgb(_open(path, "image"), path)


def image_to_rgb(image, name="<image>"):
    """A PIL image as `(H, W, 3)` uint8 RGB, as `read_image` (EXIF orientation applied)."""
    image = ImageOps.exif_transpose(image)
    if image.mode in ("I;16", "I;16B", "I;16L", "I"):
        array = np.asarray(image, dtype=np.float64)
        scale = 255.0 / 65535.0 if array.max(initial=0) > 255 else 1.0
        array = np.clip(np.rint(array * scale), 0, 255).astype(np.uint8)
        return np.repeat(array[..., None], 3, axis=-1)
    if image.mode == "F":
        raise DataError(f"Image {name} is floating point (mode F); expected 8- or 16-bit pixels.")
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_label(path):
    """Reads a label map as `(H, W)` integers: palette indices or single-channel values.

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
    return np.asarray(image).astype(np.int64)


def apply_label_map(label, lookup, ignore_index, path="<mask>"):
    """Maps raw mask values to train ids through `lookup` (raw value -> id, -1 = invalid).

    Raises:
        DataError: naming the file and every value that is neither a class nor ignored.
    """
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
