"""ContextShapes: a built-in, procedurally generated dataset where context decides.

Four scene types, each a background and its own kind of object. The backgrounds
come in two look-alike pairs: `sand` (beach) and `earth` (farm) are drawn from
one texture distribution, `sea` (coast) and `lake` (pond) from another, so a
background pixel's neighbourhood cannot tell the pair apart; only the objects
in the scene can (the paper's Fig. 1: sand vs earth, skyscraper vs building).

The objects (three or four), the scene's only cues, stand in a band along one side of
the image (`CUE_BAND` of its size, the side drawn per image); the rest is background
only. At the default 384 pixels much of it lies farther from every cue than a
MobileNetV3's receptive field reaches: a model that labels a pixel from its
neighbourhood must guess there, one that encodes the whole scene need not.

The dataset is written in the Folder layout (`images/`, `masks/` palette PNGs,
`classes.yaml`, `splits/{train,val}.txt`) into a cache directory on first use
and reused afterwards, so it goes through the same code path as users' data.
"""

import json
import logging
import os

import numpy as np
from PIL import Image, ImageDraw

from enc_tf.config import CONTEXT_SHAPES_MIN_SIZE, DataConfig
from enc_tf.data.classes import ClassInfo, save_class_file
from enc_tf.files import atomic_write, cache_home, remove_stale_temporaries

logger = logging.getLogger(__name__)
VERSION = 2
# The default dataset is the one a recipe gets without `data.context_shapes_*`.
DEFAULT_TRAIN = DataConfig.context_shapes_train
DEFAULT_VAL = DataConfig.context_shapes_val
DEFAULT_SIZE = DataConfig.context_shapes_size
CUE_BAND = 0.25  # depth of the band holding the objects, as a fraction of the image size
OBJECT_SIZE = (0.07, 0.1)  # an object's half-extent, as a fraction of the image size
CLASSES = ClassInfo(
    names=("sand", "earth", "sea", "lake", "umbrella", "tractor", "boat", "duck"),
    palette=(
        (194, 178, 128),
        (120, 72, 40),
        (0, 105, 148),
        (64, 164, 223),
        (220, 30, 30),
        (30, 150, 50),
        (245, 245, 245),
        (245, 225, 30),
    ),
)
BACKGROUNDS = (0, 1, 2, 3)  # the look-alike pairs: (0, 1) and (2, 3)
# scene: (background class, texture, object classes)
SCENES = {
    "beach": (0, "grainy", (4,)),
    "farm": (1, "grainy", (5,)),
    "coast": (2, "wavy", (6,)),
    "pond": (3, "wavy", (7,)),
}
SHAPES = {4: "triangle", 5: "box", 6: "hull", 7: "ellipse"}
SIDES = ("top", "bottom", "left", "right")


def _texture(kind, size, rng):
    """A `(size, size, 3)` float background; both scenes of a pair draw from one distribution."""
    h = w = size
    if kind == "grainy":
        base = np.array([176.0, 150.0, 105.0]) + rng.uniform(-20, 20, 3)
        blobs = rng.normal(0, 1, (h // 16 + 2, w // 16 + 2))
        blobs = np.kron(blobs, np.ones((16, 16)))[:h, :w, None] * 10
        return base + blobs + rng.normal(0, 14, (h, w, 3))
    base = np.array([40.0, 120.0, 180.0]) + rng.uniform(-20, 20, 3)
    rows = np.arange(h)[:, None, None]
    waves = 14 * np.sin(rows * rng.uniform(0.3, 0.6) + rng.uniform(0, 2 * np.pi))
    return base + waves + rng.normal(0, 10, (h, w, 3))


def _outline(shape, cx, cy, s):
    """`(method, points or box)` of an object of half-extent `s` centred at `(cx, cy)`."""
    if shape == "triangle":
        return "polygon", [(cx, cy - s), (cx - s, cy + s), (cx + s, cy + s)]
    if shape == "hull":
        return "polygon", [
            (cx - s, cy - s / 2),
            (cx + s, cy - s / 2),
            (cx + s / 2, cy + s / 2),
            (cx - s / 2, cy + s / 2),
        ]
    if shape == "ellipse":
        return "ellipse", [cx - s, cy - s / 2, cx + s, cy + s / 2]
    return "rectangle", [cx - s, cy - 0.6 * s, cx + s, cy + 0.6 * s]  # box


def cue_band(side, size):
    """`(rows, cols)` slices of the band that holds a scene's objects."""
    depth = int(round(CUE_BAND * size))
    full = slice(0, size)
    near, far = slice(0, depth), slice(size - depth, size)
    return {
        "top": (near, full),
        "bottom": (far, full),
        "left": (full, near),
        "right": (full, far),
    }[side]


def _object_centres(side, count, size, half_extents, rng):
    """Centres spread along the band (one slot each), inside it across."""
    depth = CUE_BAND * size
    slot = size / count
    centres = []
    for i, s in enumerate(half_extents):
        along = (i + 0.5) * slot + rng.uniform(-1, 1) * max(slot / 2 - s, 0)
        across = rng.uniform(s, depth - s)
        if side in ("bottom", "right"):
            across = size - across
        centres.append((along, across) if side in ("top", "bottom") else (across, along))
    return centres


def render_scene(scene, size, rng, objects=None):
    """One `(size, size, 3)` uint8 image and its `(size, size)` uint8 label map.

    `objects` (class ids) replaces the scene's own kinds of object, each drawn at least once:
    a probe for whether a model labels an object by its look or by the scene it stands in
    (the dataset itself never mixes them).
    """
    background, texture, own = SCENES[scene]
    objects = own if objects is None else tuple(int(k) for k in objects)
    if not objects or any(k not in SHAPES for k in objects) or len(objects) > 3:
        raise ValueError(f"objects: 1-3 object class ids of {sorted(SHAPES)}, got {objects}")
    image = Image.fromarray(np.clip(_texture(texture, size, rng), 0, 255).astype(np.uint8))
    mask = Image.new("L", (size, size), background)
    draw_image, draw_mask = ImageDraw.Draw(image), ImageDraw.Draw(mask)
    side = SIDES[int(rng.integers(len(SIDES)))]
    kinds = [int(k) for k in rng.choice(objects, int(rng.integers(3, 5)))]
    kinds[: len(objects)] = objects  # every object kind of the scene at least once
    half_extents = rng.uniform(*OBJECT_SIZE, len(kinds)) * size
    for class_id, s, (cx, cy) in zip(
        kinds, half_extents, _object_centres(side, len(kinds), size, half_extents, rng)
    ):
        method, outline = _outline(SHAPES[class_id], cx, cy, s)
        colour = CLASSES.palette[class_id]
        jitter = tuple(int(np.clip(c + rng.uniform(-15, 15), 0, 255)) for c in colour)
        getattr(draw_image, method)(outline, fill=jitter)
        getattr(draw_mask, method)(outline, fill=class_id)
    pixels = np.asarray(image).astype(np.float64) + rng.normal(0, 4, (size, size, 3))
    return np.clip(pixels, 0, 255).astype(np.uint8), np.asarray(mask, np.uint8)


def _palette_png(label):
    image = Image.fromarray(label, mode="L").convert("P")
    flat = [v for colour in CLASSES.palette for v in colour]
    image.putpalette(flat + [0] * (768 - len(flat)))
    return image


def write_context_shapes(
    root, num_train=DEFAULT_TRAIN, num_val=DEFAULT_VAL, image_size=DEFAULT_SIZE, seed=0
):
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


def ensure_context_shapes(
    cache_dir=None, num_train=DEFAULT_TRAIN, num_val=DEFAULT_VAL, image_size=DEFAULT_SIZE, seed=0
):
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
    if min(num_train, num_val) < 1 or image_size < CONTEXT_SHAPES_MIN_SIZE:
        raise ValueError(
            f"ContextShapes needs num_train, num_val >= 1 and image_size >= "
            f"{CONTEXT_SHAPES_MIN_SIZE}, got {params}."
        )
    cache_dir = cache_dir or cache_home()
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
