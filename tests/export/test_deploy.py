"""Deployment TFLite files (`enc-export-tflite --deploy`) in the clients apps use: MediaPipe's
`ImageSegmenter` (the task library behind its Android, iOS and web APIs) and LiteRT's
interpreter, each compared with our own `Segmenter` on real ContextShapes images."""

import numpy as np
import pytest

from enc_tf.data.context_shapes import CLASSES, SCENES, render_scene
from enc_tf.errors import ConfigError, ModelFileError
from enc_tf.export.deploy import (
    DeploymentRunner,
    convert_deployment,
    deployment_model,
    deployment_outputs,
)
from enc_tf.export.metadata import add_metadata, read_metadata
from tests.export.conftest import SIZE
from tests.export.mediapipe_client import mediapipe_masks

INFO = {
    "name": "EncNet-test",
    "description": "a test file",
    "version": "enc_tf test",
    "author": "the tests",
    "license": "CC0-1.0",
}


def _scenes(count, seed):
    rng = np.random.default_rng(seed)
    scenes = sorted(SCENES)
    pairs = [render_scene(scenes[i % len(scenes)], SIZE, rng) for i in range(count)]
    return np.stack([p[0] for p in pairs]), np.stack([p[1] for p in pairs]).astype("int32")


@pytest.fixture(scope="module")
def trained_mobilenet(tmp_path_factory):
    """EncNet-MobileNetV3-Small with ContextShapes' eight classes, trained on 48 scenes of
    SIZE px until its predictions are confident (as a trained model's are: int8 agreement
    is a property of the margins between classes), saved as `.keras`; and 6 validation
    scenes (uint8 RGB)."""
    import keras

    from enc_tf import build_encnet
    from enc_tf.contracts.images import normalize
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.optimizers import EncNetSGD

    keras.utils.set_random_seed(0)
    model = build_encnet(
        len(CLASSES.names),
        backbone="mobilenetv3_small",
        output_stride=16,
        class_names=CLASSES.names,
        palette=CLASSES.palette,
    )
    losses, weights = encnet_losses()
    model.compile(optimizer=EncNetSGD(0.02), loss=losses, loss_weights=weights)
    images, labels = _scenes(48, seed=1)
    targets = {
        "seg": labels,
        "aux": labels,
        "se": np.asarray(presence_targets(labels, len(CLASSES.names))),
    }
    model.fit(np.asarray(normalize(images)), targets, batch_size=8, epochs=25, verbose=0)
    path = str(tmp_path_factory.mktemp("deploy") / "encnet_mobilenet.keras")
    model.save(path)
    images = _scenes(6, seed=2)[0]
    return path, images, _segmenter_labels(path, images)


def _segmenter_labels(path, images):
    from enc_tf.inference import Segmenter

    segmenter = Segmenter(path, crop_size=SIZE)
    return np.stack([segmenter(image).labels for image in images])


def _deployment_file(path, mode, target, tmp_path, confidences=False):
    from enc_tf.artifacts import load_keras_model
    from enc_tf.contracts.images import normalize

    model = load_keras_model(path).keras_model
    representative = None
    if mode == "int8":  # calibrated on training scenes, as the command calibrates
        calibration = np.asarray(normalize(_scenes(16, seed=1)[0]))
        representative = lambda: iter(calibration)  # noqa: E731
    flatbuffer = convert_deployment(model, mode, SIZE, representative, target, confidences)
    flatbuffer = add_metadata(flatbuffer, CLASSES.names, INFO)
    out = tmp_path / f"{mode}_{target}.tflite"
    out.write_bytes(flatbuffer)
    return str(out)


def _mediapipe_labels(file, images, expected):
    """MediaPipe ImageSegmenter's category masks of `images`, its label list and shape
    checked."""
    masks, labels = mediapipe_masks(file, images)
    assert labels == list(CLASSES.names)
    assert masks.shape == expected.shape
    # Not a model that paints everything one class: the scenes' backgrounds at least.
    assert len(np.unique(expected)) >= 3
    return masks


def test_mediapipe_segments_float32_file_as_our_segmenter(trained_mobilenet, tmp_path, capsys):
    """MediaPipe's ImageSegmenter runs the float32 file as it is: its category mask agrees
    with `Segmenter` on >= 99% of the pixels of validation images, and its labels are the
    model's class names."""
    path, images, expected = trained_mobilenet
    file = _deployment_file(path, "float32", "mediapipe", tmp_path)
    agreement = float(np.mean(_mediapipe_labels(file, images, expected) == expected))
    with capsys.disabled():
        print(f"\nMediaPipe ImageSegmenter vs Segmenter, float32: {agreement:.4f}")
    assert agreement >= 0.99


def _reference_kernel_labels(file, images):
    """The file's category labels from LiteRT's reference kernels (no delegate), which
    compute the same on every CPU."""
    from ai_edge_litert import interpreter as litert

    interpreter = litert.Interpreter(
        model_path=file, experimental_op_resolver_type=litert.OpResolverType.BUILTIN_REF
    )
    interpreter.allocate_tensors()
    (given,), scores = interpreter.get_input_details(), interpreter.get_output_details()[-1]
    labels = []
    for image in images:
        interpreter.set_tensor(given["index"], image[None].astype(given["dtype"]))
        interpreter.invoke()
        labels.append(np.argmax(interpreter.get_tensor(scores["index"])[0], -1))
    return np.stack(labels)


def _segmenter_margins(path, images):
    """Per pixel, how far `Segmenter`'s top class leads the next: top-2 probability gap."""
    from enc_tf.inference import Segmenter

    segmenter = Segmenter(path, crop_size=SIZE)
    probabilities = np.stack([segmenter(i, probabilities=True).probabilities for i in images])
    top2 = np.sort(probabilities, axis=-1)[..., -2:]
    return top2[..., 1] - top2[..., 0]


# Where the float model leads by this much, int8's rounding must not change the class.
CONFIDENT_MARGIN = 0.5


def test_mediapipe_segments_int8_file_as_our_segmenter(trained_mobilenet, tmp_path, capsys):
    """The int8 file: MediaPipe's mask is LiteRT's (XNNPACK, as apps run it); the quantized
    model keeps `Segmenter`'s class wherever the float model leads by a top-2 probability gap
    of 0.5 or more (>= 99.5% of those pixels, at least 40% of all), on XNNPACK and on LiteRT's
    reference kernels, and on the reference kernels agrees on >= 90% of all pixels; its
    convolutions are int8, and only the kept-float Encoding path, the softmax and the
    (de)quantization at the ends compute in float.

    int8 flips only pixels with thin margins, and how many pixels have thin margins depends
    on how confident this small model came out of its 150 training steps: with the same
    recipe, changes at the level of float rounding in training gave 92.0%, 96.6%, 98.7% and
    99.6% overall, always 100% where the gap was 0.5 or more. The overall figure is judged on
    the reference kernels because the optimized int8 kernels round differently per CPU: on a
    2-core EPYC with AVX2 XNNPACK agreed with `Segmenter` on 99.31%, on one with AVX-512 VNNI
    on 84.68% (reference kernels 98.65%, TFLite's own optimized kernels 87.53%; same code, a
    model trained on that machine), 100% of the confident pixels on both kernels."""
    path, images, expected = trained_mobilenet
    file = _deployment_file(path, "int8", "mediapipe", tmp_path)
    masks = _mediapipe_labels(file, images, expected)
    runner = DeploymentRunner(model_path=file)
    xnnpack = np.stack([np.argmax(runner(image)["confidences"], -1) for image in images])
    assert np.mean(masks == xnnpack) >= 0.999
    reference = _reference_kernel_labels(file, images)
    confident = _segmenter_margins(path, images) >= CONFIDENT_MARGIN
    with capsys.disabled():
        print(
            f"\nint8 vs Segmenter: reference kernels {np.mean(reference == expected):.4f} "
            f"({np.mean((reference == expected)[confident]):.4f} of the {confident.mean():.2f} "
            f"confident), XNNPACK / MediaPipe {np.mean(xnnpack == expected):.4f} "
            f"({np.mean((xnnpack == expected)[confident]):.4f})"
        )
    assert confident.mean() >= 0.4
    assert np.mean((reference == expected)[confident]) >= 0.995
    assert np.mean((xnnpack == expected)[confident]) >= 0.995  # what apps run, on any CPU
    assert np.mean(reference == expected) >= 0.90
    float_ops = runner.report()["float_ops"]
    conv_ops = {
        op["op_name"]
        for op in runner.interpreter._get_ops_details()
        if op["op_name"] in ("CONV_2D", "DEPTHWISE_CONV_2D")
    }
    assert conv_ops and not conv_ops & set(float_ops), float_ops
    assert set(float_ops) <= FLOAT_OPS_OF_INT8, float_ops


# What may compute in float in an int8 file: the ends, the final softmax, and the Encoding
# path that the int8 export keeps float (its sub-layers and op types, enc_tf.export.tflite).
FLOAT_OPS_OF_INT8 = {
    "QUANTIZE",
    "DEQUANTIZE",
    "SOFTMAX",
    "MEAN",
    "LOGISTIC",
    "BATCH_MATMUL",
    "FULLY_CONNECTED",
    "ADD",
    "SUB",
    "MUL",
    "RESHAPE",
    "SUM",
    "SQUARE",
    "RSQRT",
    "SQRT",
    "SQUARED_DIFFERENCE",
    "TRANSPOSE",
    "MAXIMUM",
    "DIV",
}


def test_litert_runs_the_uint8_file_and_reads_its_metadata(trained_mobilenet, tmp_path):
    """The `uint8` target in LiteRT's interpreter: uint8 pixels in, a uint8 category mask
    (and the probabilities) out, agreeing with `Segmenter`; the metadata reads back."""
    path, images, expected = trained_mobilenet
    file = _deployment_file(path, "float32", "uint8", tmp_path, confidences=True)
    runner = DeploymentRunner(model_path=file)
    report = runner.report()
    assert report["input"] == "uint8"
    assert report["outputs"] == {
        "category_mask": ("uint8", (1, SIZE, SIZE)),
        "confidences": ("float32", (1, SIZE, SIZE, len(CLASSES.names))),
    }
    results = [runner(image) for image in images]
    masks = np.stack([r["category_mask"] for r in results])
    for result in results:
        np.testing.assert_array_equal(result["category_mask"], np.argmax(result["confidences"], -1))
        np.testing.assert_allclose(result["confidences"].sum(-1), 1.0, atol=1e-5)
    assert np.mean(masks == expected) >= 0.99
    with open(file, "rb") as f:
        metadata = read_metadata(f.read())
    assert metadata == {
        **INFO,
        "min_parser_version": "1.5.0",
        "input_mean": [0.0],
        "input_std": [1.0],
        "outputs": runner.output_order(),
        "labels": list(CLASSES.names),
    }


def test_deployment_errors():
    from tests.support.tiny_models import tiny_segmenter

    with pytest.raises(ConfigError, match="target must be one of"):
        deployment_outputs("android")
    many = tiny_segmenter(num_classes=300)
    with pytest.raises(ConfigError, match="at most 256 classes; this model has 300"):
        deployment_model(many, 16, "uint8")
    deployment_model(many, 16, "mediapipe")  # probabilities: any class count
    bare = convert_deployment(tiny_segmenter(3), "float32", 8)
    with pytest.raises(ModelFileError, match="app.tflite has no TFLite metadata"):
        read_metadata(bare, "app.tflite")


def test_cli_deploy(tmp_path, capfd):
    """`enc-export-tflite MODEL --deploy`: the file with metadata, one line saying what it
    takes and returns; deployment options without --deploy, or of the other target, are
    one-line errors that write nothing."""
    from enc_tf.export.tflite_cli import main
    from tests.support.tiny_models import tiny_segmenter

    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3).save(model_path)
    classes = tmp_path / "classes.yaml"
    classes.write_text("[road, car, sky]\n")
    out = tmp_path / "app.tflite"
    args = [model_path, "--size", "16", "--out", str(out), "--classes", str(classes)]
    assert main([*args, "--deploy", "--author", "me", "--license", "MIT"]) == 0
    printed = capfd.readouterr().out
    assert "for mediapipe" in printed and "confidences float32 [1, 16, 16, 3]" in printed
    metadata = read_metadata(out.read_bytes())
    assert metadata["labels"] == ["road", "car", "sky"]
    assert (metadata["author"], metadata["license"]) == ("me", "MIT")
    assert metadata["name"] == "Functional"  # a plain Keras model has no backbone to name
    assert main([*args, "--deploy", "uint8", "--confidences"]) == 0
    names = read_metadata(out.read_bytes())["outputs"]  # the file's order of its outputs
    assert names == DeploymentRunner(model_path=str(out)).output_order()
    assert sorted(names) == ["category_mask", "confidences"]
    assert "cannot run a uint8-input file" in capfd.readouterr().out
    out.unlink()
    for bad, message in (
        (["--author", "me"], "--author is an option of --deploy"),
        (["--deploy", "--confidences"], "--confidences is an option of --deploy uint8"),
    ):
        assert main([*args, *bad]) == 2, bad
        err = capfd.readouterr().err
        assert message in err and "Traceback" not in err, err
        assert not out.exists()
