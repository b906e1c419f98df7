"""Loading trained artifacts: a model carries its classes; a run directory is read without
its dataset."""

from enc_tf.artifacts import RUN_CONFIG, RUN_MODEL, load_model
from enc_tf.config import Config, save_config
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
