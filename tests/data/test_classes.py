"""The standard datasets' class lists and palettes agree with MMSegmentation's."""

import numpy as np
import pytest

from enc_tf.data import ADE20K, CITYSCAPES, PASCAL_CONTEXT, VOC
from tests.data import mmseg_metainfo as mmseg


@pytest.mark.parametrize(
    "ours, names, palette",
    [
        (ADE20K, mmseg.ADE20K_CLASSES, mmseg.ADE20K_PALETTE),
        (VOC, mmseg.VOC_CLASSES, mmseg.VOC_PALETTE),
        (PASCAL_CONTEXT, mmseg.PASCAL_CONTEXT_59_CLASSES, mmseg.PASCAL_CONTEXT_59_PALETTE),
        (CITYSCAPES, mmseg.CITYSCAPES_CLASSES, mmseg.CITYSCAPES_PALETTE),
    ],
    ids=["ade20k", "voc", "pascal_context", "cityscapes"],
)
def test_class_names_and_palette_match_mmsegmentation(ours, names, palette):
    assert len(names) == len(palette) == ours.num_classes
    # MMSegmentation spells ADE20K's class 7 "bed " (a trailing space).
    wrong = [
        (i, ours.names[i], name) for i, name in enumerate(names) if ours.names[i] != name.strip()
    ]
    assert not wrong, (
        f"{len(wrong)} of {len(names)} names differ (index, ours, MMSegmentation): {wrong[:5]}"
    )
    np.testing.assert_array_equal(np.array(ours.palette), np.array(palette))
