"""Fine-tuning from a trained model (`model.init_from`): matching layers copied, the
class-dependent ones reset for a new class count, anything else that differs refused."""

import csv
import os

import numpy as np
import pytest

from enc_tf.config import load_config
from enc_tf.data.classes import make_class_info
from enc_tf.errors import ConfigError
from enc_tf.models import build_encnet, build_fcn
from enc_tf.models.transfer import transfer_weights
from enc_tf.training import build_model, train
from tests.support import layouts
from tests.support.tiny_models import randomise_batch_norms

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RECIPE = os.path.join(ROOT, "configs", "folder_finetune_ade20k.yaml")
SMALL = dict(backbone="mobilenetv3_small_minimalistic", output_stride=16)


def _source(num_classes=5, **kwargs):
    model = build_encnet(num_classes, **{**SMALL, **kwargs})
    randomise_batch_norms(model, seed=4)
    return model


def test_a_new_class_count_resets_only_the_class_dependent_layers():
    source, target = _source(5), build_encnet(3, **SMALL)
    before = {w.path: w.numpy().copy() for w in target.weights}
    report = transfer_weights(source, target)
    assert report.reset == [
        "aux_head/aux_head/classifier",
        "enc_head/enc_head/classifier",
        "enc_head/enc_head/enc_module/se_head",
    ]
    assert not report.new and not report.unused and len(report.copied) > 50
    for mine, theirs in zip(target.weights, source.weights):
        if "classifier" in mine.path or "se_head" in mine.path:
            np.testing.assert_array_equal(mine.numpy(), before[mine.path])
        else:
            np.testing.assert_array_equal(mine.numpy(), theirs.numpy())


def test_the_same_class_count_copies_everything_and_missing_heads_are_new():
    source = _source(3, aux=False)
    report = transfer_weights(source, build_encnet(3, **SMALL))
    assert not report.reset and report.new == [
        "aux_head/aux_head/block/bn",
        "aux_head/aux_head/block/conv",
        "aux_head/aux_head/classifier",
    ]
    report = transfer_weights(_source(3), build_encnet(3, aux=False, **SMALL))
    assert report.unused == [
        "aux_head/aux_head/block/bn",
        "aux_head/aux_head/block/conv",
        "aux_head/aux_head/classifier",
    ]


def test_another_architecture_is_refused_with_the_differing_weights():
    with pytest.raises(ValueError, match="differ in shape") as err:
        transfer_weights(_source(3), build_encnet(3, head_channels=32, **SMALL))
    assert "enc_head/enc_head/conv5" in str(err.value)
    with pytest.raises(ValueError, match="has another backbone than the model"):
        transfer_weights(build_fcn(3, backbone="resnet50v1c"), build_encnet(3, **SMALL))


def _folder(root, names):
    layouts.write_folder(str(root), np.random.default_rng(0), names=names, n=6, with_split=False)
    (root / "splits").mkdir()
    (root / "splits" / "train.txt").write_text("img0\nimg1\nimg2\nimg3\n")
    (root / "splits" / "val.txt").write_text("img4\nimg5\n")


def test_init_from_a_missing_or_unfit_model_is_one_error(tmp_path):
    config = load_config(None, ["model.init_from=runs/none/model.keras", *_small_model()])
    with pytest.raises(Exception, match="Model not found: runs/none/model.keras"):
        build_model(config, make_class_info(["a", "b"]), False)
    path = tmp_path / "wide.keras"
    _source(3, head_channels=32).save(path)
    config = load_config(None, [f"model.init_from={path}", *_small_model()])
    with pytest.raises(ConfigError, match=f"model.init_from {path} does not fit"):
        build_model(config, make_class_info(["a", "b"]), False)


def _small_model():
    return [f"model.backbone={SMALL['backbone']}", "model.output_stride=16"]


@pytest.mark.slow
def test_the_finetune_recipe_runs_end_to_end_on_a_folder_dataset(tmp_path, caplog):
    """configs/folder_finetune_ade20k.yaml on a 3-class folder dataset, started from a
    5-class model (the recipe's preset swapped for a local file, and a small backbone)."""
    source = tmp_path / "trained.keras"
    _source(5).save(source)
    data = tmp_path / "data"
    _folder(data, ("sky", "road", "car"))
    config = load_config(
        RECIPE,
        [
            f"model.init_from={source}",
            *_small_model(),
            f"data.root={data}",
            "data.base_size=32",
            "data.crop_size=32",
            "train.batch_size=2",
            "train.steps_per_epoch=4",
            "train.epochs=4",
            "optimizer.base_lr=0.02",
            f"train.run_dir={tmp_path / 'run'}",
        ],
    )
    with caplog.at_level("INFO", logger="enc_tf.training.trainer"):
        model, history = train(config)
    message = next(r.getMessage() for r in caplog.records if "Fine-tuning from" in r.message)
    assert "re-initialised 3 for the new class count" in message and str(source) in message
    with open(tmp_path / "run" / "log.csv") as f:
        losses = [float(row["loss"]) for row in csv.DictReader(f)]
    assert len(losses) == 4 and losses[-1] < losses[0], losses
    saved = load_config(str(tmp_path / "run" / "config.yaml"))
    assert saved.model.init_from == str(source)
    from enc_tf.artifacts import load_model

    loaded = load_model(str(tmp_path / "run"))
    assert list(loaded.classes.names) == ["sky", "road", "car"] and loaded.num_classes == 3
