"""The preset registry: complete, consistent with the publishers' naming, one name per file."""

import re

from enc_tf.backbones import BACKBONES
from enc_tf.presets import IMAGENET, PRESETS, find, list_presets, table
from enc_tf.presets.download import digest_from_url
from enc_tf.presets.registry import suggestions
from enc_tf.protocols import MMSEG_PRESETS


def test_every_name_and_alias_finds_one_preset():
    names = [n for p in PRESETS.values() for n in (p.name, *p.aliases)]
    assert len(names) == len(set(names))
    for preset in PRESETS.values():
        for name in (preset.name, *preset.aliases):
            assert find(name) is preset


def test_a_torch_hub_filename_states_the_preset_digest():
    # The digest of every .pth preset is the one its filename publishes.
    for preset in PRESETS.values():
        if preset.filename.endswith(".pth"):
            assert digest_from_url(preset.urls[0]) == preset.parsed_digest, preset.name
        else:  # keras.applications publishes full MD5 digests
            assert re.fullmatch(r"md5:[0-9a-f]{32}", preset.digest), preset.name


def test_the_twelve_mmsegmentation_encnets():
    models = list_presets("model")
    assert len(models) == 12
    assert {p.dataset for p in models} == {"ade20k", "cityscapes"}
    for p in models:
        assert p.eval_preset in MMSEG_PRESETS, p.name
        assert p.align_corners == MMSEG_PRESETS[p.eval_preset]["align_corners"], p.name
        assert p.num_classes == {"ade20k": 150, "cityscapes": 19}[p.dataset]
        assert p.miou < p.miou_ms
        assert p.urls[0].startswith("https://download.openmmlab.com/mmsegmentation/v0.5/encnet/")
        assert p.aliases[0] in p.urls[0]  # the 0.x config name is the file's directory
    assert find("encnet_r50_ade20k").name == "encnet_r50-d8_4xb4-160k_ade20k-512x512"


def test_every_backbone_has_imagenet_weights_of_its_own():
    assert set(IMAGENET) == set(BACKBONES)
    for backbone, name in IMAGENET.items():
        assert find(name).kind == "backbone" and find(name).backbone == backbone
    for preset in list_presets("backbone"):
        assert preset.backbone in BACKBONES


def test_table_and_suggestions():
    text = table()
    assert len(text.splitlines()) == len(PRESETS) + 2
    assert "| encnet_r101-d8_4xb4-160k_ade20k-512x512 | model | resnet101v1c | ade20k | 150 |" in (
        text
    )
    assert "42.61 / 44.01" in text
    assert "encnet_r50_ade20k" in suggestions("encnet_r50_ade2k")
