import numpy as np
import pytest

from enc_tf.export.tflite import MODES, TFLiteRunner, convert, inference_model
from enc_tf.export.tflite_cli import main as tflite_main
from enc_tf.export.tolerance import EXPORT_TOLERANCE
from tests.export.conftest import SIZE
from tests.support.tiny_models import tiny_segmenter


def _agreement(a, b):
    return float(np.mean(np.argmax(a, -1) == np.argmax(b, -1)))


@pytest.mark.slow
def test_encnet_float32_matches_keras_with_builtin_ops(trained_encnet, capsys):
    model, images = trained_encnet
    fixed = inference_model(model, SIZE)
    expected = {k: np.asarray(v) for k, v in fixed(images).items()}
    float32_bytes = convert(model, "float32", SIZE)
    float32 = TFLiteRunner(model_content=float32_bytes)
    assert float32.outputs == ["se", "seg"] and float32.input_shape == (1, SIZE, SIZE, 3)
    outputs = [float32(image) for image in images]
    errors = {
        k: max(float(np.abs(out[k] - expected[k][i]).max()) for i, out in enumerate(outputs))
        / max(float(np.abs(expected[k]).max()), 1e-6)
        for k in ("seg", "se")
    }
    with capsys.disabled():
        print(f"\nEncNet TFLite float32 vs Keras, max relative error: {errors}")
    assert all(errors[k] < EXPORT_TOLERANCE[k] for k in errors), errors
    assert len(float32_bytes) > 4 * 30e6  # float32 weights: about 4 bytes per parameter


@pytest.mark.slow
def test_encnet_quantized_argmax_agreement(trained_encnet, capsys):
    """float16 and int8 (Encoding path float) on the trained EncNet: per-pixel argmax
    agreement with Keras, printed so that CI logs show it."""
    model, images = trained_encnet
    expected = np.asarray(inference_model(model, SIZE)(images)["seg"])
    agreement = {}
    for mode in ("float16", "int8"):
        runner = TFLiteRunner(model_content=convert(model, mode, SIZE, lambda: iter(images)))
        agreement[mode] = float(
            np.mean([_agreement(runner(x)["seg"], e) for x, e in zip(images, expected)])
        )
    # Selective quantization: the Encoding path is float32, the backbone int8.
    dtypes = {d["name"]: d["dtype"] for d in runner.interpreter.get_tensor_details()}
    encoding = [n for n in dtypes if "/encoding_" in n]
    backbone = [n for n in dtypes if "/backbone_" in n]
    assert sum(dtypes[n] == np.float32 for n in encoding) > 5  # (the others: int32 shapes)
    assert not any(dtypes[n] in (np.int8, np.int16) for n in encoding)
    assert sum(dtypes[n] == np.int8 for n in backbone) > 100
    with capsys.disabled():
        print(f"\nEncNet TFLite argmax agreement with Keras: {agreement}")
    # Measured over runs: float16 0.993-0.994, int8 0.90-0.92 (four classes, each predicted
    # on 8-45% of the pixels: a model predicting one class would score < 0.5).
    assert agreement["float16"] > 0.98 and agreement["int8"] > 0.8, agreement


def test_conversion_prints_nothing(capfd):
    convert(tiny_segmenter(3), "float32", 16)
    assert capfd.readouterr().out == ""


@pytest.mark.parametrize("mode", ["float16", "dynamic_int8", "int8"])
def test_quantized_modes_on_a_small_model(mode):
    model = tiny_segmenter(3, seed=5)
    rng = np.random.default_rng(1)
    images = rng.normal(size=(4, 16, 16, 3)).astype("float32")
    runner = TFLiteRunner(model_content=convert(model, mode, 16, lambda: iter(images)))
    expected = np.asarray(model(images)["seg"])
    agreement = np.mean([_agreement(runner(x)["seg"], e) for x, e in zip(images, expected)])
    assert agreement > (0.99 if mode == "float16" else 0.85), agreement


def test_graphs_for_tflite_hold_plain_convolutions():
    """On CPUs `TunedConv2D` runs by Winograd's algorithm; TFLite gets a CONV_2D (its own
    kernels choose their algorithm), no transforms and matrix products."""
    from enc_tf.layers.conv import WINOGRAD_MIN_CHANNELS

    model = tiny_segmenter(3, seed=3, tuned_width=WINOGRAD_MIN_CHANNELS)
    runner = TFLiteRunner(model_content=convert(model, "float32", 12))
    ops = [op["op_name"] for op in runner.interpreter._get_ops_details()]
    assert ops.count("CONV_2D") == 3 and "BATCH_MATMUL" not in ops, ops
    image = np.random.default_rng(4).normal(size=(12, 12, 3)).astype("float32")
    np.testing.assert_allclose(
        runner(image)["seg"], np.asarray(model(image[None])["seg"])[0], atol=1e-4
    )


def test_errors():
    with pytest.raises(ValueError, match="mode"):
        convert(tiny_segmenter(3), "int4", 16)
    with pytest.raises(ValueError, match="representative"):
        convert(tiny_segmenter(3), "int8", 16)
    runner = TFLiteRunner(model_content=convert(tiny_segmenter(3), "float32", 16))
    with pytest.raises(ValueError, match=r"\(16, 16, 3\)"):
        runner(np.zeros((8, 8, 3), np.float32))
    assert set(MODES) == {"float32", "float16", "dynamic_int8", "int8"}
    for bad in (0, (16, 0), (16.5, 8), -3):
        with pytest.raises(ValueError, match="size must be"):
            convert(tiny_segmenter(3), "float32", bad)


def test_rectangular_input():
    model = tiny_segmenter(3, seed=2)
    runner = TFLiteRunner(model_content=convert(model, "float32", (16, 24)))
    assert runner.input_shape == (1, 16, 24, 3)
    image = np.random.default_rng(4).normal(size=(16, 24, 3)).astype("float32")
    np.testing.assert_allclose(
        runner(image)["seg"], np.asarray(model(image[None])["seg"])[0], atol=1e-4
    )


def test_cli(tmp_path, capfd):
    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3).save(model_path)
    out = tmp_path / "m.tflite"
    assert tflite_main([model_path, "--out", str(out), "--size", "16"]) == 0
    assert TFLiteRunner(model_path=str(out))(np.zeros((16, 16, 3), np.float32))["seg"].shape == (
        16,
        16,
        3,
    )
    assert (
        tflite_main([model_path, "--out", str(out), "--mode", "int8", "--size", "16"]) == 2
    )  # no calibration data
    images = tmp_path / "calib"
    images.mkdir()
    from PIL import Image

    Image.fromarray(np.random.default_rng(0).integers(0, 256, (20, 30, 3), dtype=np.uint8)).save(
        images / "a.png"
    )
    assert (
        tflite_main(
            [
                model_path,
                "--out",
                str(out),
                "--mode",
                "int8",
                "--size",
                "16",
                "--calibration-dir",
                str(images),
            ]
        )
        == 0
    )
    # The converter's and interpreter's native progress lines stay out of the terminal.
    printed = "".join(capfd.readouterr())
    assert "fully_quantize" not in printed and "XNNPACK delegate" not in printed, printed[-2000:]


def test_mobilenet_encnet_runs_wholly_on_xnnpack():
    """EncNet-MobileNetV3: float32 and int8 (Encoding path float) have builtin ops only and
    every op on the XNNPACK delegate; with everything quantized, only the Encoding's
    int8 SOFTMAX / BATCH_MATMUL and its ADDs stay on TFLite's kernels."""
    from enc_tf import build_encnet
    from enc_tf.export.tflite import delegate_coverage
    from enc_tf.models.transforms import fold_batch_norms
    from tests.support.tiny_models import randomise_batch_norms

    model = build_encnet(5, backbone="mobilenetv3_small", output_stride=16)
    randomise_batch_norms(model, seed=6)
    model = fold_batch_norms(model)
    images = np.random.default_rng(3).normal(size=(2, 64, 64, 3)).astype("float32")
    expected = np.asarray(inference_model(model, 64)(images)["seg"])
    coverage = {}
    variants = (
        ("float32", "float32", {}),
        ("int8", "int8", {}),
        ("int8_all", "int8", {"float_scopes": ()}),
    )
    for name, mode, kwargs in variants:
        flatbuffer = convert(model, mode, 64, lambda: iter(images), **kwargs)
        runner = TFLiteRunner(model_content=flatbuffer, num_threads=2)
        ops = {op["op_name"] for op in runner.interpreter._get_ops_details()}
        assert "HARD_SWISH" not in ops  # int8 HARD_SWISH would stay off XNNPACK
        coverage[name] = delegate_coverage(runner.interpreter)
        agreement = np.mean([_agreement(runner(x)["seg"], e) for x, e in zip(images, expected)])
        assert agreement > (0.999 if mode == "float32" else 0.8), (name, agreement)
    for mode in ("float32", "int8"):
        delegated, total, left = coverage[mode]
        assert delegated == total and left == {} and total > 150, (mode, coverage[mode])
    assert set(coverage["int8_all"][2]) <= {"ADD", "SUB", "SOFTMAX", "BATCH_MATMUL"}


def test_delegate_coverage_names_the_ops_left_behind():
    """Keras's own hard-swish becomes TFLite's HARD_SWISH, which XNNPACK runs only in float."""
    import keras

    from enc_tf.export.tflite import delegate_coverage

    images = keras.Input((16, 16, 3))
    x = keras.layers.Activation("hard_swish")(keras.layers.Conv2D(8, 3, padding="same")(images))
    model = keras.Model(images, {"seg": keras.layers.Conv2D(3, 1)(x)})
    data = np.random.default_rng(0).normal(size=(2, 16, 16, 3)).astype("float32")
    runner = TFLiteRunner(model_content=convert(model, "int8", 16, lambda: iter(data)))
    assert delegate_coverage(runner.interpreter) == (4, 5, {"HARD_SWISH": 1})


def test_resnet_file_in_mediapipe(trained_encnet, tmp_path):
    """EncNet-ResNet50s (the paper's backbone) as a deployment file (`--deploy`) in
    MediaPipe's ImageSegmenter: its category mask agrees with Keras's argmax on the same
    pixels (tests/export/test_deploy.py runs MobileNetV3 files on real images)."""
    from enc_tf.contracts.images import denormalize, normalize
    from enc_tf.export.deploy import convert_deployment
    from enc_tf.export.metadata import add_metadata
    from tests.export.mediapipe_client import mediapipe_masks

    model, normalised = trained_encnet
    images = denormalize(normalised)
    expected = np.argmax(inference_model(model, SIZE)(np.asarray(normalize(images)))["seg"], -1)
    flatbuffer = convert_deployment(model, "float32", SIZE)
    names = [f"class_{i}" for i in range(4)]
    file = tmp_path / "resnet.tflite"
    info = dict.fromkeys(("description", "version", "author", "license"), "")
    file.write_bytes(add_metadata(flatbuffer, names, {"name": "EncNet-resnet50s", **info}))
    masks, labels = mediapipe_masks(str(file), images)
    assert labels == names
    assert np.mean(masks == expected) >= 0.99
