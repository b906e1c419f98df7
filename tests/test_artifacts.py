"""Loading trained artifacts: a model carries its classes; a run directory is read without
its dataset."""

import logging

import keras
import numpy as np

from enc_tf.artifacts import RUN_CONFIG, RUN_MODEL, load_model
from enc_tf.config import Config, save_config
from enc_tf.data.context_shapes import CLASSES as CONTEXT_SHAPES
from enc_tf.models import build_encnet

NAMES = ["road", "car", "tree"]


def _run_dir(tmp_path, dataset, root, model):
    run = tmp_path / "run"
    run.mkdir()
    config = Config()
    config.data.dataset, config.data.root = dataset, str(root)
    save_config(config, str(run / RUN_CONFIG))
    model.save(str(run / RUN_MODEL))
    return run


def _tiny(**kwargs):
    return build_encnet(3, output_stride=16, aux=False, num_codes=4, **kwargs)


def test_a_model_carries_its_classes_and_a_run_directory_never_touches_the_dataset(tmp_path):
    palette = [[10, 20, 30], [40, 50, 60], [70, 80, 90]]
    missing = tmp_path / "nowhere"  # the dataset is gone
    run = _run_dir(tmp_path, "context_shapes", missing, _tiny(class_names=NAMES, palette=palette))
    loaded = load_model(str(run))
    assert (
        list(loaded.classes.names) == NAMES and [list(c) for c in loaded.classes.palette] == palette
    )
    assert not missing.exists()  # ContextShapes was not regenerated
    config = loaded.keras_model.get_config()
    assert (
        config["num_codes"] == 4
        and config["output_stride"] == 16
        and config["class_names"] == NAMES
    )
    assert config["input_normalization"]["mean"] == [0.485, 0.456, 0.406]


def test_an_older_model_gets_its_classes_from_the_run_config_without_the_dataset(tmp_path, caplog):
    plain = _tiny()
    old_style = keras.Model(plain.input, plain.output)  # saved as a plain functional model
    cache = tmp_path / "cache"
    shapes = build_encnet(CONTEXT_SHAPES.num_classes, output_stride=16, aux=False, num_codes=4)
    run = _run_dir(tmp_path, "context_shapes", cache, keras.Model(shapes.input, shapes.output))
    assert list(load_model(str(run)).classes.names) == list(CONTEXT_SHAPES.names)
    assert not cache.exists()
    # A folder dataset that is no longer there: no class names, a warning, no failure.
    other = tmp_path / "other"
    other.mkdir()
    run = _run_dir(other, "folder", tmp_path / "gone", old_style)
    with caplog.at_level(logging.WARNING):
        loaded = load_model(str(run))
    assert loaded.classes is None and "class" in caplog.text
    x = np.zeros((1, 32, 32, 3), "float32")
    assert loaded.logits_fn(x)["seg"].shape == (1, 32, 32, 3)
