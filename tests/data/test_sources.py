import os

import numpy as np
import pytest

from enc_tf.data import (
    ADE20K,
    CITYSCAPES,
    PASCAL_CONTEXT,
    VOC,
    DataError,
    PipelineConfig,
    build_dataset,
    get_source,
)
from enc_tf.data.classes import CITYSCAPES_LABEL_TO_TRAIN_ID
from tests.support import layouts


def _eval_labels(source):
    """Labels of every sample through the evaluation pipeline, in source order."""
    dataset = build_dataset(source, "eval", PipelineConfig(batch_size=1), aux=False, se_loss=False)
    return [targets["seg"][0].numpy() for _, targets in dataset]


def test_ade20k(tmp_path):
    masks = layouts.write_ade20k(str(tmp_path), np.random.default_rng(0))
    for root in (str(tmp_path), str(tmp_path / "ADEChallengeData2016")):
        source = get_source("ade20k", root, "val")
        assert len(source.samples) == 3 and source.classes is ADE20K
    for (stem_path, _), label in zip(source.samples, _eval_labels(source)):
        raw = masks[("val", os.path.splitext(os.path.basename(stem_path))[0])]
        np.testing.assert_array_equal(label, np.where(raw == 0, 255, raw - 1))
    with pytest.raises(DataError, match="'train' or 'val'"):
        get_source("ade20k", str(tmp_path), "test")


def test_voc_and_sbd_aug(tmp_path):
    masks = layouts.write_voc(str(tmp_path), np.random.default_rng(1))
    train = get_source("voc", str(tmp_path), "train")
    assert [os.path.basename(p) for p, _ in train.samples] == [
        "2007_000000.jpg",
        "2007_000001.jpg",
        "2007_000002.jpg",
    ]
    assert train.classes is VOC
    for (path, mask_path), label in zip(train.samples, _eval_labels(train)):
        assert "SegmentationClass" + os.sep in mask_path
        np.testing.assert_array_equal(
            label, masks[os.path.basename(path)[:-4]]
        )  # palette indices, 255 kept
    aug = get_source("voc", str(tmp_path / "VOCdevkit"), "train_aug")
    assert len(aug.samples) == 5 and all("SegmentationClassAug" in m for _, m in aug.samples)
    os.remove(tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation" / "train_aug.txt")
    with pytest.raises(DataError, match="SBD-augmented list is missing"):
        get_source("voc", str(tmp_path), "train_aug")


def test_pascal_context(tmp_path):
    masks = layouts.write_pascal_context(str(tmp_path), np.random.default_rng(2))
    source = get_source("pascal_context", str(tmp_path), "val")
    assert (
        len(source.samples) == 2 and source.classes is PASCAL_CONTEXT and source.num_classes == 59
    )
    for (path, _), label in zip(source.samples, _eval_labels(source)):
        raw = masks[os.path.basename(path)[:-4]]
        np.testing.assert_array_equal(label, np.where(raw == 0, 255, raw - 1))


def test_cityscapes_label_ids_become_train_ids(tmp_path):
    masks = layouts.write_cityscapes(str(tmp_path), np.random.default_rng(3))
    source = get_source("cityscapes", str(tmp_path), "train")
    assert len(source.samples) == 4 and source.classes is CITYSCAPES
    for (path, _), label in zip(source.samples, _eval_labels(source)):
        raw = masks[os.path.basename(path).replace("_leftImg8bit.png", "")]
        expected = np.vectorize(lambda v: CITYSCAPES_LABEL_TO_TRAIN_ID.get(int(v), 255))(raw)
        np.testing.assert_array_equal(label, expected)
    assert {7: 0, 26: 13, 33: 18}.items() <= CITYSCAPES_LABEL_TO_TRAIN_ID.items()


def test_folder_with_split_and_mapping(tmp_path):
    masks = layouts.write_folder(str(tmp_path), np.random.default_rng(4))
    source = get_source("folder", str(tmp_path), "train")
    assert [os.path.basename(p) for p, _ in source.samples] == ["img0.png", "img2.png"]
    assert source.classes.names == ("road", "car", "tree")
    everything = get_source("folder", str(tmp_path), None)
    assert len(everything.samples) == 4
    np.testing.assert_array_equal(_eval_labels(everything)[1], masks["img1"])
    shifted = get_source("folder", str(tmp_path), None, label_mapping="reduce_zero")
    raw = masks["img1"]
    np.testing.assert_array_equal(
        _eval_labels(shifted)[1], np.where((raw == 0) | (raw == 255), 255, raw - 1)
    )


def test_folder_problems_are_named(tmp_path):
    layouts.write_folder(str(tmp_path), np.random.default_rng(5))
    os.remove(tmp_path / "masks" / "img3.png")
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask \['img3'\]"):
        get_source("folder", str(tmp_path), None)
    with pytest.raises(DataError, match="Split list not found.*nosuch.txt"):
        get_source("folder", str(tmp_path), "nosuch")
    with pytest.raises(DataError, match="Dataset directory not found"):
        get_source("folder", str(tmp_path / "missing"), None)
    os.makedirs(tmp_path / "empty" / "images")
    os.makedirs(tmp_path / "empty" / "masks")
    with pytest.raises(DataError, match="no images found"):
        get_source("folder", str(tmp_path / "empty"), None, classes=str(tmp_path / "classes.yaml"))
    with pytest.raises(DataError, match="Unknown dataset 'coco'"):
        get_source("coco", str(tmp_path), "train")


def test_class_files(tmp_path):
    from enc_tf.data import load_class_file

    (tmp_path / "c.json").write_text('{"names": ["a", "b"], "palette": [[1, 2, 3], [4, 5, 6]]}')
    assert load_class_file(str(tmp_path / "c.json")).palette == ((1, 2, 3), (4, 5, 6))
    (tmp_path / "list.yaml").write_text("- a\n- b\n- c\n")
    assert load_class_file(str(tmp_path / "list.yaml")).num_classes == 3
    (tmp_path / "typo.yaml").write_text("name: [a]\n")
    with pytest.raises(ValueError, match="typo.yaml"):
        load_class_file(str(tmp_path / "typo.yaml"))
    (tmp_path / "short.yaml").write_text("names: [a, b]\npalette: [[1, 2, 3]]\n")
    with pytest.raises(ValueError, match="short.yaml': 2 class names but 1 palette"):
        load_class_file(str(tmp_path / "short.yaml"))


def test_voc_train_aug_in_deeplab_format(tmp_path):
    layouts.write_voc(str(tmp_path), np.random.default_rng(6))
    lists = tmp_path / "VOCdevkit" / "VOC2012" / "ImageSets" / "Segmentation"
    plain = [os.path.basename(p) for p, _ in get_source("voc", str(tmp_path), "train_aug").samples]
    stems = (lists / "train_aug.txt").read_text().split()
    (lists / "train_aug.txt").write_text(
        "".join(f"/JPEGImages/{s}.jpg /SegmentationClassAug/{s}.png\n" for s in stems)
    )
    aug = get_source("voc", str(tmp_path), "train_aug")
    assert [os.path.basename(p) for p, _ in aug.samples] == plain and len(plain) == 5
    assert all("SegmentationClassAug" in m for _, m in aug.samples)


def test_cityscapes_values_that_are_not_label_ids_are_errors(tmp_path):
    from enc_tf.data.io import read_pair
    from enc_tf.data.validate import check_source

    masks = layouts.write_cityscapes(str(tmp_path), np.random.default_rng(7))
    stem = sorted(masks)[1]
    bad = masks[stem].copy()
    bad[0, :3] = [250, 34, 0]  # 0 (unlabeled) and 255 are fine; 34 and 250 are not label ids
    bad[1, 0] = 255
    mask_path = tmp_path / "gtFine" / "train" / stem.split("_")[0] / f"{stem}_gtFine_labelIds.png"
    layouts.save_mask(str(mask_path), bad)
    source = get_source("cityscapes", str(tmp_path), "train")
    image_path = [i for i, m in source.samples if m == str(mask_path)][0]
    with pytest.raises(DataError, match=rf"{stem}_gtFine_labelIds.png has values \[34, 250\]"):
        read_pair(image_path, str(mask_path), source.lookup, source.ignore_index)
    problems, _ = check_source(source)
    assert len(problems) == 1 and "[34, 250]" in problems[0]


def test_sources_can_collect_images_without_masks(tmp_path):
    masks = layouts.write_pascal_context(str(tmp_path), np.random.default_rng(8))
    context = tmp_path / "VOCdevkit" / "VOC2010"
    os.remove(context / "SegmentationClassContext" / "2008_val_0.png")
    with pytest.raises(DataError, match=r"1 image\(s\) without a mask \['2008_val_0'\]"):
        get_source("pascal_context", str(tmp_path), "val")
    lenient = get_source("pascal_context", str(tmp_path), "val", strict=False)
    assert [os.path.basename(i) for i, _ in lenient.samples] == ["2008_val_1.jpg"]
    assert lenient.problems == (
        f"Image {context / 'JPEGImages' / '2008_val_0.jpg'} has no mask in "
        f"{context / 'SegmentationClassContext'}.",
    )
    assert len(masks) == 4


def test_the_readers_of_on_disk_layouts_are_the_named_datasets_that_are_not_generated():
    from enc_tf.config import DATASETS
    from enc_tf.data.sources import SOURCES

    assert set(SOURCES) == set(DATASETS) - {"context_shapes", "tfrecord"}
