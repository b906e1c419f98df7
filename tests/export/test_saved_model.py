import os
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from enc_tf.data.augment import normalize
from enc_tf.data.classes import make_class_info
from enc_tf.export import export_saved_model
from enc_tf.export.cli import main as export_main
from enc_tf.inference import load_model
from tests.support.tiny_models import tiny_segmenter

CLIENT = os.path.join(os.path.dirname(__file__), "serving_client.py")
CLASSES = make_class_info(["sky", "sea", "sand"])


def _keras_reference(model, images):
    out = model(normalize(images).numpy())
    probabilities = tf.nn.softmax(out["seg"]).numpy()
    return probabilities, np.argmax(probabilities, -1), tf.sigmoid(out["se"]).numpy()


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    base = tmp_path_factory.mktemp("serving")
    model = tiny_segmenter(3, seed=3)
    path = export_saved_model(model, CLASSES, str(base), "encnet")
    return model, str(base), path


def test_layout_versions_and_overwrite(exported):
    model, base, path = exported
    assert path == os.path.join(base, "encnet", "1") and os.path.isfile(
        os.path.join(path, "saved_model.pb")
    )
    second = export_saved_model(model, CLASSES, base, "encnet")
    assert second.endswith(os.path.join("encnet", "2"))
    with pytest.raises(FileExistsError, match="exists"):
        export_saved_model(model, CLASSES, base, "encnet", version=2)
    before = os.stat(os.path.join(second, "saved_model.pb")).st_mtime_ns
    export_saved_model(model, CLASSES, base, "encnet", version=2, overwrite=True)
    assert os.stat(os.path.join(second, "saved_model.pb")).st_mtime_ns != before
    assert sorted(os.listdir(os.path.join(base, "encnet"))) == ["1", "2"]  # no temporary left
    with pytest.raises(ValueError, match="3 classes but the class list has 2"):
        export_saved_model(model, make_class_info(["a", "b"]), base, "other")


def test_a_model_fresh_from_training_is_exported_without_its_optimizer(tmp_path):
    model = tiny_segmenter(3, seed=1)
    model.compile(optimizer="adam", loss={"seg": "mse", "se": "mse"})
    x = np.zeros((2, 8, 8, 3), np.float32)
    model.fit(x, {"seg": np.zeros((2, 8, 8, 3)), "se": np.zeros((2, 3))}, verbose=0)
    assert len(model.optimizer.variables) > len(model.weights)
    path = export_saved_model(model, CLASSES, str(tmp_path), "m")
    saved = [
        shape
        for name, shape in tf.train.list_variables(os.path.join(path, "variables", "variables"))
        if not name.startswith("_CHECKPOINTABLE_OBJECT_GRAPH")
    ]
    assert sorted(saved) == sorted(list(w.shape) for w in model.weights)
    loaded = tf.saved_model.load(path)
    np.testing.assert_allclose(
        loaded.signatures["logits"](images=tf.constant(x + 1))["seg"],
        model(x + 1)["seg"],
        atol=1e-6,
    )


def test_serving_contract_in_a_fresh_process(exported, tmp_path):
    model, _, path = exported
    rng = np.random.default_rng(0)
    images = rng.integers(
        0, 256, (2, 21, 30, 3), dtype=np.uint8
    )  # not a multiple of 8: padded inside
    np.save(tmp_path / "images.npy", images)
    Image.fromarray(images[0]).save(tmp_path / "image.png")
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    result = subprocess.run(
        [
            sys.executable,
            CLIENT,
            path,
            str(tmp_path / "images.npy"),
            str(tmp_path / "image.png"),
            str(tmp_path / "out.npz"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    out = np.load(tmp_path / "out.npz")
    probabilities, labels, presence = _keras_reference(model, images)
    # Padding to a multiple of 8 changes the 'same' convolutions' borders only where the
    # padded pixels reach: compare away from the bottom/right edges, and the labels there.
    np.testing.assert_allclose(
        out["grpc_probabilities"][:, :19, :28], probabilities[:, :19, :28], atol=1e-5
    )
    assert out["grpc_probabilities"].shape == (2, 21, 30, 3)
    np.testing.assert_array_equal(out["grpc_labels"][:, :19, :28], labels[:, :19, :28])
    np.testing.assert_array_equal(out["rest_labels"], out["grpc_labels"])
    assert out["rest_labels"].dtype == np.int32 and out["rest_se_probabilities"].shape == (2, 3)
    np.testing.assert_array_equal(
        out["encoded_labels"][0], out["grpc_labels"][0]
    )  # PNG is lossless
    assert list(out["classes"]) == ["sky", "sea", "sand"]
    errors = list(out["errors"])
    assert "accepted" not in errors and all(
        "images" in e or "uint8" in e or "shape" in e for e in errors
    ), errors


def test_padding_makes_the_export_match_keras_on_multiples_of_8(exported):
    model, _, path = exported
    loaded = tf.saved_model.load(path)
    images = np.random.default_rng(1).integers(0, 256, (1, 24, 32, 3), dtype=np.uint8)
    probabilities, labels, presence = _keras_reference(model, images)
    out = loaded.signatures["probabilities"](images=tf.constant(images))
    np.testing.assert_allclose(out["probabilities"].numpy(), probabilities, atol=1e-5)
    np.testing.assert_allclose(out["se_probabilities"].numpy(), presence, atol=1e-5)
    np.testing.assert_array_equal(out["labels"].numpy(), labels)


def test_loaded_for_inference_equals_keras(exported, tmp_path):
    model, _, path = exported
    keras_path = str(tmp_path / "tiny.keras")
    model.save(keras_path)
    from_saved, from_keras = load_model(path), load_model(keras_path)
    assert from_saved.classes == CLASSES and from_saved.num_classes == 3
    x = normalize(np.random.default_rng(2).integers(0, 256, (2, 16, 16, 3))).numpy()
    np.testing.assert_allclose(
        from_saved.logits_fn(x)["seg"].numpy(), from_keras.logits_fn(x)["seg"].numpy(), atol=1e-5
    )


def test_export_cli_and_client_checks(tmp_path):
    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3).save(model_path)
    classes = tmp_path / "classes.yaml"
    classes.write_text("names: [a, b, c]\n")
    assert (
        export_main([model_path, "--base-dir", str(tmp_path / "out"), "--classes", str(classes)])
        == 0
    )
    assert (
        export_main([model_path, "--base-dir", str(tmp_path / "out"), "--model-version", "1"]) == 2
    )  # exists
    classes.write_text("names: [a, b]\n")
    assert (
        export_main([model_path, "--base-dir", str(tmp_path / "out"), "--classes", str(classes)])
        == 2
    )


def test_bfloat16_export_serves_close_to_float32(tmp_path):
    import tensorflow as tf

    model_path = str(tmp_path / "tiny.keras")
    model = tiny_segmenter(3, seed=5)
    model.save(model_path)
    base = str(tmp_path / "out")
    assert export_main([model_path, "--base-dir", base, "--name", "f32"]) == 0
    assert (
        export_main([model_path, "--base-dir", base, "--name", "bf16", "--precision", "bfloat16"])
        == 0
    )
    images = np.random.default_rng(0).integers(0, 256, size=(2, 24, 16, 3)).astype(np.uint8)
    outputs = {}
    for name in ("f32", "bf16"):
        serving = tf.saved_model.load(f"{base}/{name}/1").signatures["probabilities"]
        outputs[name] = serving(images=tf.constant(images))["probabilities"].numpy()
    difference = float(np.abs(outputs["bf16"] - outputs["f32"]).max())
    assert 0 < difference < 0.05, difference  # bfloat16 ran, and stays close
