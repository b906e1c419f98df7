"""Tiny datasets written in the real on-disk layouts of the standard datasets."""

import os

import numpy as np
from PIL import Image

from enc_tf.data.classes import voc_palette


def save_rgb(path, array, fmt=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    Image.fromarray(np.asarray(array, np.uint8)).save(path, format=fmt)


def save_mask(path, array, palette=False):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    image = Image.fromarray(np.asarray(array, np.uint8), mode="L")
    if palette:
        image = image.convert("P")
        image.putpalette([v for c in voc_palette(256) for v in c])
    image.save(path)


def random_pair(rng, h, w, values):
    return rng.integers(0, 256, (h, w, 3)), rng.choice(values, (h, w))


def write_ade20k(root, rng, n=3):
    """ADEChallengeData2016 with masks of values 0..150 (0 = other)."""
    base = os.path.join(root, "ADEChallengeData2016")
    masks = {}
    for split, folder in (("train", "training"), ("val", "validation")):
        for i in range(n):
            stem = f"ADE_{folder}_{i:08d}"
            image, mask = random_pair(rng, 20 + i, 24, [0, 1, 5, 150])
            save_rgb(os.path.join(base, "images", folder, stem + ".jpg"), image)
            save_mask(os.path.join(base, "annotations", folder, stem + ".png"), mask)
            masks[(split, stem)] = mask
    return masks


def write_voc(root, rng):
    """VOCdevkit/VOC2012 with palette masks (255 = boundary) and an SBD aug list."""
    base = os.path.join(root, "VOCdevkit", "VOC2012")
    masks = {}
    stems = [f"2007_{i:06d}" for i in range(5)]
    for stem in stems:
        image, mask = random_pair(rng, 18, 22, [0, 3, 20, 255])
        save_rgb(os.path.join(base, "JPEGImages", stem + ".jpg"), image)
        save_mask(os.path.join(base, "SegmentationClass", stem + ".png"), mask, palette=True)
        save_mask(os.path.join(base, "SegmentationClassAug", stem + ".png"), mask)
        masks[stem] = mask
    lists = os.path.join(base, "ImageSets", "Segmentation")
    os.makedirs(lists)
    for name, chosen in (("train", stems[:3]), ("val", stems[3:]), ("train_aug", stems)):
        with open(os.path.join(lists, f"{name}.txt"), "w") as f:
            f.write("\n".join(chosen) + "\n")
    return masks


def write_pascal_context(root, rng):
    """VOCdevkit/VOC2010 with the pre-converted 0..59 label PNGs (0 = background)."""
    base = os.path.join(root, "VOCdevkit", "VOC2010")
    masks = {}
    lists = os.path.join(base, "ImageSets", "SegmentationContext")
    os.makedirs(lists)
    for split in ("train", "val"):
        stems = [f"2008_{split}_{i}" for i in range(2)]
        for stem in stems:
            image, mask = random_pair(rng, 16, 16, [0, 1, 30, 59])
            save_rgb(os.path.join(base, "JPEGImages", stem + ".jpg"), image)
            save_mask(os.path.join(base, "SegmentationClassContext", stem + ".png"), mask)
            masks[stem] = mask
        with open(os.path.join(lists, f"{split}.txt"), "w") as f:
            f.write("\n".join(stems) + "\n")
    return masks


def write_cityscapes(root, rng):
    """leftImg8bit/ + gtFine/*_labelIds.png over two cities."""
    masks = {}
    for city in ("aachen", "bremen"):
        for i in range(2):
            stem = f"{city}_{i:06d}_000019"
            image, mask = random_pair(rng, 12, 24, [0, 7, 8, 26, 33, 4])
            save_rgb(
                os.path.join(root, "leftImg8bit", "train", city, stem + "_leftImg8bit.png"), image
            )
            save_mask(
                os.path.join(root, "gtFine", "train", city, stem + "_gtFine_labelIds.png"), mask
            )
            masks[stem] = mask
    return masks


def write_folder(root, rng, names=("road", "car", "tree"), n=4, with_split=True):
    """images/ + masks/ + classes.yaml (+ splits/)."""
    masks = {}
    for i in range(n):
        stem = f"img{i}"
        image, mask = random_pair(rng, 10, 14, [0, 1, 2, 255])
        save_rgb(os.path.join(root, "images", stem + ".png"), image)
        save_mask(os.path.join(root, "masks", stem + ".png"), mask)
        masks[stem] = mask
    with open(os.path.join(root, "classes.yaml"), "w") as f:
        f.write("names: [" + ", ".join(names) + "]\n")
    if with_split:
        os.makedirs(os.path.join(root, "splits"))
        with open(os.path.join(root, "splits", "train.txt"), "w") as f:
            f.write("img0\nimg2\n")
    return masks
