"""`enc-predict` on awkward inputs: every failure is one line, per image where it can be."""

import json
import os

import keras
import numpy as np
import pytest
from PIL import Image

from enc_tf.artifacts import LoadedModel, load_model
from enc_tf.errors import DataError, ModelFileError
from enc_tf.inference import Segmenter
from enc_tf.inference.cli import main as predict_main
from enc_tf.inference.cli import output_names, predict_files
from tests.inference.damaged_models import damaged_keras_files
from tests.support.files import stale_temporary_name
from tests.support.tiny_models import tiny_segmenter


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    tiny_segmenter(3).save(path)
    return path


def _image(path, height, width, seed=0, value=None):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = (
        rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        if value is None
        else np.full((height, width, 3), value, np.uint8)
    )
    Image.fromarray(pixels).save(path)
    return str(path)


def _strict_json(path):
    def refuse(constant):
        raise AssertionError(f"{path} holds {constant}, which is not JSON")

    with open(path) as f:
        return json.load(f, parse_constant=refuse)


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    return err


def test_multi_scale_on_an_extreme_aspect_ratio(model_path, tmp_path, capsys):
    inputs = tmp_path / "in"
    _image(inputs / "a_wide.png", 2, 300)  # at scale 0.5 the short side rounds to 0 in the original
    _image(inputs / "b_tall.png", 300, 2, seed=1)
    _image(inputs / "c_square.png", 20, 20, seed=2)
    out = tmp_path / "out"
    code = predict_main(
        [
            model_path,
            str(inputs),
            "--out",
            str(out),
            "--multi-scale",
            "--base-size",
            "48",
            "--crop-size",
            "32",
            "--scales",
            "0.5",
            "1.0",
        ]
    )
    assert code == 0, capsys.readouterr().err
    summary = _strict_json(out / "predictions.json")
    assert summary["failed"] == {} and len(summary["images"]) == 3
    assert np.asarray(Image.open(out / "a_wide_labels.png")).shape == (2, 300)
    assert np.asarray(Image.open(out / "b_tall_labels.png")).shape == (300, 2)


def _dark_images_give_nan(num_classes=3):
    """A model whose logits are NaN where the image is darker than the ImageNet mean
    (sqrt of a negative)."""
    images = keras.Input((None, None, 3))
    seg = keras.layers.Conv2D(num_classes, 3, padding="same")(images)
    gate = keras.ops.sqrt(keras.ops.mean(images, axis=(1, 2, 3), keepdims=True))
    seg = seg * gate
    se = keras.layers.Dense(num_classes)(keras.layers.GlobalAveragePooling2D()(seg))
    model = keras.Model(images, {"seg": seg, "se": se})
    return LoadedModel(
        lambda x: model(x, training=False),
        num_classes,
        None,
        "dark_nan.keras",
        None,
        model,
        outputs=("se", "seg"),
    )


def test_one_failing_image_is_skipped_and_the_rest_written(tmp_path, caplog):
    inputs = tmp_path / "in"
    # 32 x 32, the crop: no black padding that would darken the bright images.
    paths = [
        _image(inputs / "1_bright.png", 32, 32, value=250),
        _image(inputs / "2_dark.png", 32, 32, value=5),
        str(inputs / "3_missing.png"),
        _image(inputs / "4_bright.png", 32, 32, value=240),
    ]
    segmenter = Segmenter(_dark_images_give_nan(), crop_size=32)
    out = tmp_path / "out"
    summary, failures = predict_files(segmenter, paths, str(out))
    assert sorted(summary) == [paths[0], paths[3]]
    assert set(failures) == {paths[1], paths[2]}
    assert "non-finite" in failures[paths[1]] and "dark_nan.keras" in failures[paths[1]]
    assert "not found" in failures[paths[2]]
    written = _strict_json(out / "predictions.json")  # never NaN: a strict JSON reader accepts it
    assert written == json.loads(json.dumps({"images": summary, "failed": failures}))
    assert (out / "4_bright_labels.png").is_file() and not (out / "2_dark_labels.png").exists()
    assert "Skipped" in caplog.text


def test_inputs_with_the_same_stem_get_distinct_outputs(model_path, tmp_path, capsys):
    root = tmp_path / "in"
    paths = [
        _image(root / "a" / "x.jpg", 8, 8),
        _image(root / "a" / "x.png", 9, 9, seed=1),
        _image(root / "b" / "x.png", 10, 10, seed=2),
    ]
    out = tmp_path / "out"
    code = predict_main([model_path, *paths, "--out", str(out), "--crop-size", "32"])
    assert code == 0
    assert "3 image(s) written" in capsys.readouterr().out
    summary = _strict_json(out / "predictions.json")
    expected = {paths[0]: "a/x.jpg", paths[1]: "a/x.png", paths[2]: "b/x"}
    assert {p: e["output"] for p, e in summary["images"].items()} == expected
    for path, name in expected.items():
        assert Image.open(out / f"{name}_labels.png").size == Image.open(path).size
        assert (out / f"{name}_overlay.png").is_file()


def test_output_name_rule():
    assert output_names(["d/x.jpg", "d/y.png"]) == {"d/x.jpg": "x", "d/y.png": "y"}
    assert output_names(["d/x.jpg"]) == {"d/x.jpg": "x"}
    assert output_names(["d/e/x.jpg", "d/f/g/y.png"]) == {
        "d/e/x.jpg": "e/x",
        "d/f/g/y.png": "f/g/y",
    }
    assert output_names(["d/X.jpg", "d/x.png"]) == {
        "d/X.jpg": "X.jpg",
        "d/x.png": "x.png",
    }  # one file on macOS
    with pytest.raises(
        DataError, match=r"d/x.jpg and d/x.jpg.png would both write x.jpg_labels.png"
    ):
        output_names(["d/x.jpg", "d/x.png", "d/x.jpg.png"])


def test_stale_temporaries_of_a_killed_run_are_removed(model_path, tmp_path):
    image = _image(tmp_path / "in" / "x.png", 8, 8)
    out = tmp_path / "out"
    out.mkdir()
    (out / stale_temporary_name("x_labels.png")).write_bytes(b"half a png")
    assert predict_main([model_path, image, "--out", str(out), "--crop-size", "32"]) == 0
    assert sorted(os.listdir(out)) == ["predictions.json", "x_labels.png", "x_overlay.png"]


@pytest.mark.parametrize(
    "kind,message",
    [
        ("empty", r"is empty \(0 bytes\): the file is truncated"),
        ("truncated", "is not a .keras archive .* truncated or corrupt"),
        ("corrupt", "corrupt or truncated .*BadZipFile"),
        ("bad_weights", "corrupt or truncated"),
        ("nan", "outputs non-finite values"),
    ],
)
def test_a_damaged_model_is_one_line_naming_the_file(model_path, tmp_path, capsys, kind, message):
    path = damaged_keras_files(model_path, tmp_path)[kind]
    with pytest.raises(ModelFileError, match=message):
        load_model(path)
    image = _image(tmp_path / "x.png", 8, 8)
    assert predict_main([path, image, "--out", str(tmp_path / "out")]) == 2
    err = _one_error_line(capsys)
    assert err.startswith("error: ") and path in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_bad_arguments_are_one_line(model_path, tmp_path, capsys):
    image = _image(tmp_path / "x.png", 8, 8)
    assert predict_main([model_path, image, "--crop-size", "0"]) == 2
    assert "--crop-size must be a positive integer, got 0" in _one_error_line(capsys)
    assert predict_main([model_path, image, "--multi-scale", "--scales", "1", "nan"]) == 2
    assert "--scales must be positive numbers, got nan" in _one_error_line(capsys)
    assert predict_main([model_path, image, "--protocol", "mmseg"]) == 2
    assert "--mmseg-preset must be one of ade20k" in _one_error_line(capsys)
    assert predict_main([model_path, image, "--mmseg-preset", "ade20k"]) == 2
    assert "--mmseg-preset applies to the mmseg protocol only" in _one_error_line(capsys)
    mmseg = ["--protocol", "mmseg", "--mmseg-preset", "ade20k", "--crop-size", "32"]
    assert predict_main([model_path, image, *mmseg]) == 2
    assert "--crop-size applies to --protocol paper only" in _one_error_line(capsys)
    assert predict_main([model_path, str(tmp_path / "*.jpeg")]) == 2
    assert "No file matches" in _one_error_line(capsys)
    assert predict_main([str(tmp_path / "missing.keras"), image]) == 2
    assert "Model not found" in _one_error_line(capsys)
    (tmp_path / "classes.yaml").write_text("names: [a, b\n")
    assert predict_main([model_path, image, "--classes", str(tmp_path / "classes.yaml")]) == 2
    assert "classes.yaml" in _one_error_line(capsys)
