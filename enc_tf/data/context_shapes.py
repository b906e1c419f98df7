"""ContextShapes: a built-in, procedurally generated dataset where context decides.

Four scene types, each a background and two kinds of objects. The backgrounds
come in two look-alike pairs: `sand` (beach) and `earth` (farm) are drawn from
one texture distribution, `sea` (coast) and `lake` (pond) from another, so a
background pixel's neighbourhood cannot tell the pair apart; only the objects
in the scene can (the paper's Fig. 1: sand vs earth, skyscraper vs building).

The dataset is written in the Folder layout (`images/`, `masks/` palette PNGs,
`classes.yaml`, `splits/{train,val}.txt`) into a cache directory on first use
and reused afterwards, so it goes through the same code path as users' data.
"""

import json
import logging
import os

import numpy as np
from PIL import Image, ImageDraw

from enc_tf.data.classes import ClassInfo, save_class_file
from enc_tf.files import atomic_write, remove_stale_temporaries

logger = logging.getLogger(__name__)
VERSION = 1
CLASSES = ClassInfo(
    names=(
        "sand",
        "earth",
        "sea",
        "lake",
        "umbrella",
        "ball",
        "tractor",
        "haystack",
        "boat",
        "buoy",
        "duck",
        "reed",
    ),
    palette=(
        (194, 178, 128),
        (120, 72, 40),
        (0, 105, 148),
        (64, 164, 223),
        (220, 40, 40),
        (240, 220, 40),
        (40, 140, 60),
        (200, 150, 30),
        (235, 235, 235),
        (255, 120, 0),
        (110, 60, 20),
        (30, 80, 30),
    ),
)
# scene: (background class, texture, (object class, object class))
SCENES = {
    "beach": (0, "grainy", (4, 5)),
    "farm": (1, "grainy", (6, 7)),
    "coast": (2, "wavy", (8, 9)),
    "pond": (3, "wavy", (10, 11)),
}
# Object colours (RGB) and shapes.
OBJECTS = {
    4: ((220, 40, 40), "triangle"),
    5: ((240, 220, 40), "circle"),
    6: ((40, 140, 60), "box"),
    7: ((200, 150, 30), "ellipse"),
    8: ((235, 235, 235), "hull"),
    9: ((255, 120, 0), "circle"),
    10: ((110, 60, 20), "ellipse"),
    11: ((30, 80, 30), "bar"),
}


def _texture(kind, size, rng):
    """A background texture; both scenes of a pair draw from the same distribution."""
    h = w = size
    if kind == "grainy":
        base = np.array([176.0, 150.0, 105.0]) + rng.uniform(-20, 20, 3)
        blobs = rng.normal(0, 1, (h // 16 + 2, w // 16 + 2))
        blobs = np.kron(blobs, np.ones((16, 16)))[:h, :w, None] * 10
        image = base + blobs + rng.normal(0, 14, (h, w, 3))
    else:
        base = np.array([40.0, 120.0, 180.0]) + rng.uniform(-20, 20, 3)
        rows = np.arange(h)[:, None, None]
        waves = 14 * np.sin(rows * rng.uniform(0.3, 0.6) + rng.uniform(0, 2 * np.pi))
        image = base + waves + rng.normal(0, 10, (h, w, 3))
    return image


def _draw_object(draw_image, draw_mask, class_id, size, rng):
    colour, shape = OBJECTS[class_id]
    s = rng.uniform(0.08, 0.2) * size
    cx, cy = rng.uniform(s, size - s, 2)
    jitter = tuple(int(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in colour)
    if shape == "triangle":
        points = [(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)]
        draw_image.polygon(points, fill=jitter)
        draw_mask.polygon(points, fill=class_id)
        return
    if shape == "hull":
        points = [
            (cx - s, cy - s / 3),
            (cx + s, cy - s / 3),
            (cx + s / 2, cy + s / 2),
            (cx - s / 2, cy + s / 2),
        ]
        draw_image.polygon(points, fill=jitter)
        draw_mask.polygon(points, fill=class_id)
        return
    if shape == "circle":
        box = [cx - s / 2, cy - s / 2, cx + s / 2, cy + s / 2]
        method = "ellipse"
    elif shape == "ellipse":
        box = [cx - s, cy - s / 2, cx + s, cy + s / 2]
        method = "ellipse"
    elif shape == "box":
        box = [cx - s, cy - s / 2, cx + s, cy + s / 2]
        method = "rectangle"
    else:  # bar
        box = [cx - s / 6, cy - s, cx + s / 6, cy + s]
        method = "rectangle"
    getattr(draw_image, method)(box, fill=jitter)
    getattr(draw_mask, method)(box, fill=class_id)


def render_scene(scene, size, rng):
    """One `(size, size, 3)` uint8 image and its `(size, size)` uint8 label map."""
    background, texture, objects = SCENES[scene]
    image = Image.fromarray(np.clip(_texture(texture, size, rng), 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), background)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    count = int(rng.integers(2, 6))
    kinds = [objects[0], objects[1]] + list(rng.choice(objects, count - 2))
    for class_id in kinds:
        _draw_object(draw_image, draw_mask, int(class_id), size, rng)
    pixels = np.asarray(image).astype(np.float64) + rng.normal(0, 4, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(mask, np.uint8)


def _palette_png(label):
    image = Image.fromarray(label, mode="L").convert("P")
    flat = [v for colour in CLASSES.palette for v in colour]
    image.putpalette(flat + [0] * (768 - len(flat)))
    return image


def write_context_shapes(root, num_train=400, num_val=100, image_size=128, seed=0):
    """Generates ContextShapes into `root` (which must not exist); returns `root`."""
    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(root, "images"))
    os.makedirs(os.path.join(root, "masks"))
    os.makedirs(os.path.join(root, "splits"))
    scenes = sorted(SCENES)
    for split, count in (("train", num_train), ("val", num_val)):
        stems = []
        for index in range(count):
            scene = scenes[index % len(scenes)]
            image, label = render_scene(scene, image_size, rng)
            stem = f"{split}_{index:05d}_{scene}"
            Image.fromarray(image).save(os.path.join(root, "images", stem + ".png"))
            _palette_png(label).save(os.path.join(root, "masks", stem + ".png"))
            stems.append(stem)
        with open(os.path.join(root, "splits", f"{split}.txt"), "w") as f:
            f.write("\n".join(stems) + "\n")
    save_class_file(CLASSES, os.path.join(root, "classes.yaml"))
    return root


def default_cache_dir():
    return os.environ.get("ENC_TF_CACHE", os.path.join(os.path.expanduser("~"), ".cache", "enc_tf"))


def ensure_context_shapes(cache_dir=None, num_train=400, num_val=100, image_size=128, seed=0):
    """The ContextShapes directory for these settings: generated once, then reused.

    Generation happens in a temporary directory that is renamed when complete,
    so an interrupted run never leaves a half-written dataset behind.
    """
    params = {
        "version": VERSION,
        "num_train": num_train,
        "num_val": num_val,
        "image_size": image_size,
        "seed": seed,
    }
    if min(num_train, num_val) < 1 or image_size < 32:
        raise ValueError(
            f"ContextShapes needs num_train, num_val >= 1 and image_size >= 32, got {params}."
        )
    cache_dir = cache_dir or default_cache_dir()
    name = f"context_shapes-v{VERSION}-{image_size}px-{num_train}-{num_val}-seed{seed}"
    root = os.path.join(cache_dir, name)
    marker = os.path.join(root, "context_shapes.json")
    if os.path.isfile(marker):
        with open(marker) as f:
            if json.load(f) == params:
                return root
    remove_stale_temporaries(cache_dir, min_age_seconds=3600)  # spares another process's generation

    def write(tmp):
        write_context_shapes(tmp, num_train, num_val, image_size, seed)
        with open(os.path.join(tmp, "context_shapes.json"), "w") as f:
            json.dump(params, f)

    atomic_write(root, write)
    logger.info("Generated ContextShapes in %s", root)
    return root
