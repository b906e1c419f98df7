"""Colouring label maps, legends and overlays (demo, TensorBoard images, enc-predict)."""

import numpy as np
from PIL import Image, ImageDraw


def colorize(labels, palette):
    """`(..., H, W)` labels -> `(..., H, W, 3)` uint8 colours; values outside the palette
    (the ignore value among them) are black."""
    table = np.zeros((256, 3), np.uint8)
    table[: len(palette)] = np.asarray(palette, np.uint8)
    return table[np.clip(np.asarray(labels), 0, 255)]


def add_legend(image, classes, shown, columns=4):
    """`image` (PIL) with a legend strip below it: a swatch and the name of each class in
    `shown`."""
    shown = [int(c) for c in shown if 0 <= int(c) < classes.num_classes]
    rows = (len(shown) + columns - 1) // columns
    canvas = Image.new("RGB", (image.width, image.height + 16 * rows + 8), "white")
    canvas.paste(image, (0, 0))
    draw = ImageDraw.Draw(canvas)
    width = max(1, image.width // columns)
    for i, c in enumerate(shown):
        x, y = 4 + (i % columns) * width, image.height + 4 + 16 * (i // columns)
        draw.rectangle([x, y, x + 12, y + 12], fill=tuple(classes.palette[c]), outline="black")
        draw.text((x + 16, y), classes.names[c], fill="black")
    return canvas


def side_by_side(views, titles, scale=3):
    """`(H, W, 3)` uint8 views in a row, enlarged `scale` times (nearest neighbour), each
    with its title in white on black in its top-left corner; a PIL image."""
    strip = np.concatenate([np.asarray(v, np.uint8) for v in views], axis=1)
    height, width = strip.shape[:2]
    picture = Image.fromarray(strip).resize((width * scale, height * scale), Image.NEAREST)
    draw = ImageDraw.Draw(picture)
    step = picture.width // len(views)
    for i, title in enumerate(titles):
        left, top, right, bottom = draw.textbbox((i * step + 4, 2), title)
        draw.rectangle([left - 2, top - 2, right + 2, bottom + 2], fill="black")
        draw.text((i * step + 4, 2), title, fill="white")
    return picture


def overlay(image, labels, classes, alpha=0.5):
    """The `(H, W, 3)` uint8 image blended with the coloured label map, with a legend of
    the classes present."""
    image, labels = np.asarray(image), np.asarray(labels)
    blended = np.empty(image.shape, np.uint8)
    shown = set()
    rows = max(1, (1 << 20) // max(1, image.shape[1]))  # bands of about a megapixel
    for first in range(0, image.shape[0], rows):
        part = slice(first, first + rows)
        coloured = colorize(labels[part], classes.palette).astype(np.float32)
        mixed = (1 - alpha) * image[part].astype(np.float32) + alpha * coloured
        blended[part] = np.clip(np.rint(mixed), 0, 255)
        shown.update(np.unique(labels[part]).tolist())
    return add_legend(Image.fromarray(blended), classes, np.array(sorted(shown)))


def index_png(labels, classes):
    """The label map as a palette ('P' mode) PIL image with the classes' colours embedded."""
    labels = np.asarray(labels)
    if labels.max(initial=0) > 255:
        raise ValueError("An index PNG holds at most 256 classes.")
    picture = Image.fromarray(labels.astype(np.uint8), "P")
    flat = [v for colour in classes.palette for v in colour]
    picture.putpalette(flat + [0] * (768 - len(flat)))
    return picture
