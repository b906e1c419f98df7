"""Where a dataset's files are, which split, and how mask values become train ids.

A `SegmentationSource` is a list of (image, mask) paths plus the class list and
a lookup from raw mask values to train ids. The pipeline (`pipeline.py`)
turns any source into a `tf.data.Dataset`.
"""

import dataclasses
import os

import numpy as np

from enc_tf.contracts.labels import IGNORE_INDEX
from enc_tf.data import classes as class_lists
from enc_tf.data.io import IMAGE_EXTENSIONS, DataError

LOOKUP_SIZE = 256
LABEL_MAPPINGS = ("identity", "reduce_zero")


@dataclasses.dataclass(frozen=True, eq=False)
class SegmentationSource:
    """A split of a segmentation dataset on disk.

    Attributes:
        name: dataset name (`folder`, `ade20k`, ...).
        split: split name.
        samples: tuple of `(image_path, mask_path)`.
        classes: `ClassInfo` (index = train id).
        lookup: int64 array of `LOOKUP_SIZE`: raw mask value -> train id, the
            ignore index, or -1 for a value that may not occur.
        ignore_index: label value of ignored pixels.
        problems: messages about listed or found images that could not be
            paired with a mask (only with `strict=False`; `check` reports them).
    """

    name: str
    split: str
    samples: tuple
    classes: class_lists.ClassInfo
    lookup: np.ndarray
    ignore_index: int = IGNORE_INDEX
    problems: tuple = ()

    @property
    def num_examples(self):
        return len(self.samples)

    @property
    def num_classes(self):
        return self.classes.num_classes


def label_lookup(
    num_classes, mapping="identity", ignore_index=IGNORE_INDEX, num_raw_values=LOOKUP_SIZE
):
    """Raw mask value -> train id table.

    Args:
        num_classes: number of classes.
        mapping: `identity` (value v is class v) or `reduce_zero` (value 0 is
            ignored and value v is class v - 1, as ADE20K and PASCAL Context),
            or a dict `{raw value: train id}` (unlisted values below
            `num_raw_values` are ignored).
        ignore_index: the value that marks ignored pixels, kept as it is.
        num_raw_values: with a dict, the raw values `>= num_raw_values` (other
            than `ignore_index`) may not occur in a mask.
    """
    if not 0 < num_classes <= ignore_index < LOOKUP_SIZE:
        raise ValueError(
            f"Need 0 < num_classes ({num_classes}) <= ignore_index ({ignore_index}) "
            f"< {LOOKUP_SIZE}."
        )
    lookup = np.full(LOOKUP_SIZE, -1, np.int64)
    if isinstance(mapping, dict):
        lookup[:num_raw_values] = ignore_index
        for raw, train_id in mapping.items():
            lookup[int(raw)] = int(train_id)
    elif mapping == "identity":
        lookup[:num_classes] = np.arange(num_classes)
    elif mapping == "reduce_zero":
        lookup[0] = ignore_index
        lookup[1 : num_classes + 1] = np.arange(num_classes)
    else:
        raise ValueError(
            f"Unknown label mapping {mapping!r}; choose one of {LABEL_MAPPINGS} or a dict."
        )
    lookup[ignore_index] = ignore_index
    return lookup


def _require_dir(path, what):
    if not os.path.isdir(path):
        raise DataError(f"{what} directory not found: {path}")
    return path


def _files_by_stem(directory, extensions, suffix=""):
    found = {}
    for name in sorted(os.listdir(directory)):
        stem, ext = os.path.splitext(name)
        if ext.lower() in extensions and stem.endswith(suffix):
            found[stem[: len(stem) - len(suffix)] if suffix else stem] = os.path.join(
                directory, name
            )
    return found


def _split_stem(entry):
    """A split-list entry's stem: `2007_000032`, or a path as in DeepLab's lists
    (`/JPEGImages/2007_000032.jpg /SegmentationClassAug/2007_000032.png`: the first one)."""
    stem, ext = os.path.splitext(os.path.basename(entry))
    return stem if ext.lower() in IMAGE_EXTENSIONS else os.path.basename(entry)


def _read_split_list(path):
    if not os.path.isfile(path):
        raise DataError(f"Split list not found: {path}")
    with open(path) as f:
        stems = [_split_stem(line.split()[0]) for line in f if line.strip()]
    if not stems:
        raise DataError(f"Split list {path} is empty.")
    return stems


def _pair(stems, images, masks, where, mask_dir, strict=True):
    """`(samples, problems)`: the `(image, mask)` paths of `stems`, and a message per stem
    without a pair.

    With `strict`, any unpaired stem is a `DataError` instead.
    """
    no_image = [s for s in stems if s not in images]
    no_mask = [s for s in stems if s in images and s not in masks]
    if strict and (no_image or no_mask):
        raise DataError(
            f"{where}: {len(no_mask)} image(s) without a mask {no_mask[:5]}, "
            f"{len(no_image)} listed sample(s) without an image {no_image[:5]}."
        )
    if not stems:
        raise DataError(f"{where}: no images found.")
    problems = tuple(f"Image {images[s]} has no mask in {mask_dir}." for s in no_mask)
    problems += tuple(f"Listed sample {s!r} has no image ({where})." for s in no_image)
    samples = tuple((images[s], masks[s]) for s in stems if s in images and s in masks)
    return samples, problems


def find_class_file(root):
    """The class list of a folder dataset: `root/classes.yaml` (or `.yml`, `.json`), or None."""
    candidates = [os.path.join(root, f"classes{ext}") for ext in (".yaml", ".yml", ".json")]
    return next((c for c in candidates if os.path.isfile(c)), None)


def folder_source(
    root,
    split=None,
    classes=None,
    images_dir="images",
    masks_dir="masks",
    label_mapping="identity",
    ignore_index=IGNORE_INDEX,
    strict=True,
):
    """Any `images/` + `masks/` pair matched by file stem.

    Args:
        root: dataset directory.
        split: name of a split list `root/splits/<split>.txt` (one stem per
            line), or None for every image.
        classes: `ClassInfo`, a path to a YAML/JSON class list, or None to read
            `root/classes.yaml` (or `.yml`, `.json`).
        images_dir, masks_dir: sub-directories of `root`.
        label_mapping: see `label_lookup`.
        ignore_index: mask value of ignored pixels.
        strict: an image without a mask is a `DataError`; with False it is
            left out and described in `problems` (every source takes it).
    """
    _require_dir(root, "Dataset")
    if classes is None:
        classes = find_class_file(root)
        if classes is None:
            raise DataError(
                f"No class list given and none found in {root} (classes.yaml or classes.json)."
            )
    if isinstance(classes, str):
        classes = class_lists.load_class_file(classes)
    images = _files_by_stem(
        _require_dir(os.path.join(root, images_dir), "Images"), IMAGE_EXTENSIONS
    )
    masks = _files_by_stem(_require_dir(os.path.join(root, masks_dir), "Masks"), IMAGE_EXTENSIONS)
    stems = (
        sorted(images)
        if split is None
        else _read_split_list(os.path.join(root, "splits", f"{split}.txt"))
    )
    samples, problems = _pair(
        stems, images, masks, f"{root} (split {split})", os.path.join(root, masks_dir), strict
    )
    lookup = label_lookup(classes.num_classes, label_mapping, ignore_index)
    return SegmentationSource(
        "folder", split or "all", samples, classes, lookup, ignore_index, problems
    )


def _find_root(root, marker):
    """Accepts the dataset folder itself or a parent that contains it."""
    nested = os.path.join(root, marker)
    return nested if os.path.isdir(nested) else root


def ade20k_source(root, split="train", ignore_index=IGNORE_INDEX, strict=True):
    """ADEChallengeData2016: `images/{training,validation}/*.jpg`, `annotations/.../*.png`.

    Mask value 0 ("other") is ignored and value v is class v - 1 (150 classes).
    """
    folder = {"train": "training", "val": "validation"}.get(split)
    if folder is None:
        raise DataError(f"ADE20K split must be 'train' or 'val', got {split!r}.")
    root = _find_root(root, "ADEChallengeData2016")
    images = _files_by_stem(
        _require_dir(os.path.join(root, "images", folder), "ADE20K images"), (".jpg",)
    )
    mask_dir = _require_dir(os.path.join(root, "annotations", folder), "ADE20K annotations")
    masks = _files_by_stem(mask_dir, (".png",))
    samples, problems = _pair(
        sorted(images), images, masks, f"ADE20K {split} in {root}", mask_dir, strict
    )
    lookup = label_lookup(150, "reduce_zero", ignore_index)
    return SegmentationSource(
        "ade20k", split, samples, class_lists.ADE20K, lookup, ignore_index, problems
    )


def voc_source(root, split="train", ignore_index=IGNORE_INDEX, strict=True):
    """PASCAL VOC 2012: `JPEGImages`, palette PNGs in `SegmentationClass`, split lists in
    `ImageSets/Segmentation`. Split `train_aug` is the 10,582-image SBD-augmented set:
    `SegmentationClassAug/` masks and `ImageSets/Segmentation/train_aug.txt` (or
    `trainaug.txt` / `aug.txt`), one id per line or DeepLab's
    `/JPEGImages/<id>.jpg /SegmentationClassAug/<id>.png`. Value 255 (object
    boundaries) is ignored.
    """
    root = _find_root(_find_root(root, "VOCdevkit"), "VOC2012")
    images = _files_by_stem(_require_dir(os.path.join(root, "JPEGImages"), "VOC images"), (".jpg",))
    lists = os.path.join(root, "ImageSets", "Segmentation")
    if split == "train_aug":
        names = [
            n
            for n in ("train_aug.txt", "trainaug.txt", "aug.txt")
            if os.path.isfile(os.path.join(lists, n))
        ]
        if not names:
            raise DataError(
                f"The SBD-augmented list is missing from {lists} "
                "(train_aug.txt, trainaug.txt or aug.txt); "
                "convert SBD into SegmentationClassAug/ and write the list first."
            )
        stems = _read_split_list(os.path.join(lists, names[0]))
        mask_dir = _require_dir(os.path.join(root, "SegmentationClassAug"), "VOC aug masks")
    else:
        stems = _read_split_list(os.path.join(lists, f"{split}.txt"))
        mask_dir = _require_dir(os.path.join(root, "SegmentationClass"), "VOC masks")
    masks = _files_by_stem(mask_dir, (".png",))
    samples, problems = _pair(
        stems, images, masks, f"PASCAL VOC {split} in {root}", mask_dir, strict
    )
    lookup = label_lookup(21, "identity", ignore_index)
    return SegmentationSource(
        "voc", split, samples, class_lists.VOC, lookup, ignore_index, problems
    )


def pascal_context_source(root, split="train", ignore_index=IGNORE_INDEX, strict=True):
    """PASCAL Context, 59 classes, from the widely used pre-converted label PNGs
    (`VOC2010/SegmentationClassContext`, `ImageSets/SegmentationContext/{train,val}.txt`).
    Value 0 (background) is ignored and value v is class v - 1.
    """
    root = _find_root(_find_root(root, "VOCdevkit"), "VOC2010")
    images = _files_by_stem(
        _require_dir(os.path.join(root, "JPEGImages"), "PASCAL Context images"), (".jpg",)
    )
    mask_dir = _require_dir(os.path.join(root, "SegmentationClassContext"), "PASCAL Context masks")
    masks = _files_by_stem(mask_dir, (".png",))
    stems = _read_split_list(os.path.join(root, "ImageSets", "SegmentationContext", f"{split}.txt"))
    samples, problems = _pair(
        stems, images, masks, f"PASCAL Context {split} in {root}", mask_dir, strict
    )
    lookup = label_lookup(59, "reduce_zero", ignore_index)
    return SegmentationSource(
        "pascal_context", split, samples, class_lists.PASCAL_CONTEXT, lookup, ignore_index, problems
    )


def cityscapes_source(root, split="train", ignore_index=IGNORE_INDEX, strict=True):
    """Cityscapes: `leftImg8bit/<split>/<city>/*_leftImg8bit.png` with
    `gtFine/<split>/<city>/*_gtFine_labelIds.png`; the 34 label ids map to the 19 train ids.
    """
    image_root = _require_dir(os.path.join(root, "leftImg8bit", split), "Cityscapes images")
    mask_root = _require_dir(os.path.join(root, "gtFine", split), "Cityscapes gtFine")
    images, masks = {}, {}
    for city in sorted(os.listdir(image_root)):
        images.update(_files_by_stem(os.path.join(image_root, city), (".png",), "_leftImg8bit"))
        if os.path.isdir(os.path.join(mask_root, city)):
            masks.update(
                _files_by_stem(os.path.join(mask_root, city), (".png",), "_gtFine_labelIds")
            )
    samples, problems = _pair(
        sorted(images), images, masks, f"Cityscapes {split} in {root}", mask_root, strict
    )
    # Label ids 0-33 that are not one of the 19 classes are ignored; any other value is an error.
    lookup = label_lookup(
        19,
        class_lists.CITYSCAPES_LABEL_TO_TRAIN_ID,
        ignore_index,
        class_lists.CITYSCAPES_NUM_LABEL_IDS,
    )
    return SegmentationSource(
        "cityscapes", split, samples, class_lists.CITYSCAPES, lookup, ignore_index, problems
    )


SOURCES = {
    "folder": folder_source,
    "ade20k": ade20k_source,
    "voc": voc_source,
    "pascal_context": pascal_context_source,
    "cityscapes": cityscapes_source,
}


def get_source(dataset, root, split, **kwargs):
    """The source of a dataset by name (`folder`, `ade20k`, `voc`, `pascal_context`,
    `cityscapes`)."""
    if dataset not in SOURCES:
        raise DataError(
            f"Unknown dataset {dataset!r}; choose one of {sorted(SOURCES)} (or 'tfrecord')."
        )
    return SOURCES[dataset](root, split=split, **kwargs)
