import json
import os
import subprocess
import sys

import numpy as np
import pytest

from enc_tf.data.classes import make_class_info
from enc_tf.export.onnx import (
    OnnxRunner,
    max_relative_error,
    to_onnx,
    write_onnx,
)
from enc_tf.export.onnx_cli import main as onnx_main
from enc_tf.export.tolerance import EXPORT_TOLERANCE
from enc_tf.models.logits import logits_function
from tests.support.tiny_models import tiny_segmenter


@pytest.fixture(scope="module")
def tiny():
    model = tiny_segmenter(3, seed=2)
    classes = make_class_info(["sky", "road", "car"])
    return model, classes, to_onnx(model, classes)


def test_graphs_for_onnx_hold_plain_convolutions():
    """On CPUs `TunedConv2D` runs by Winograd's algorithm; ONNX gets a Conv (its runtimes'
    kernels choose their algorithm), no transforms and matrix products."""
    from enc_tf.layers.conv import WINOGRAD_MIN_CHANNELS

    model = tiny_segmenter(3, seed=3, tuned_width=WINOGRAD_MIN_CHANNELS)
    proto = to_onnx(model)
    kinds = [node.op_type for node in proto.graph.node]
    assert kinds.count("Conv") == 3 and kinds.count("MatMul") == 1, kinds  # 1: the se head
    images = np.random.default_rng(0).normal(size=(2, 10, 14, 3)).astype(np.float32)
    np.testing.assert_allclose(
        OnnxRunner(proto)(images)["seg"], logits_function(model)(images)["seg"], atol=1e-4
    )


@pytest.mark.parametrize("users", [None, "TRUE"])
def test_tf2onnx_optimizes_in_place_unless_the_user_says_otherwise(monkeypatch, users):
    """tf2onnx's optimizers on copies of the graph cost an EncNet-ResNet50s export 3 GB
    more memory. A user's own TF2ONNX_CATCH_ERRORS is left as it is (tf2onnx 1.17 reads
    any value as "in place"), and the variable is as before after the export."""
    import tf2onnx.optimizer

    seen = []
    original = tf2onnx.optimizer.optimize_graph

    def optimize_graph(graph, catch_errors=True, optimizers=None):
        seen.append(catch_errors)
        return original(graph, catch_errors, optimizers)

    monkeypatch.setattr(tf2onnx.optimizer, "optimize_graph", optimize_graph)
    if users is None:
        monkeypatch.delenv("TF2ONNX_CATCH_ERRORS", raising=False)
    else:
        monkeypatch.setenv("TF2ONNX_CATCH_ERRORS", users)
    to_onnx(tiny_segmenter(3))
    assert seen == [False]
    assert os.environ.get("TF2ONNX_CATCH_ERRORS") == users


def test_dynamic_sizes_match_keras(tiny):
    model, _, proto = tiny
    runner = OnnxRunner(proto)
    assert runner.input_shape == ("batch", "height", "width", 3)
    assert sorted(runner.outputs) == ["se", "seg"]
    rng = np.random.default_rng(0)
    for shape in [(1, 16, 16, 3), (3, 13, 29, 3)]:
        images = rng.normal(size=shape).astype(np.float32)
        expected = logits_function(model)(images)
        out = runner(images)
        assert out["seg"].shape == shape[:3] + (3,) and out["se"].shape == (shape[0], 3)
        for key in ("seg", "se"):
            np.testing.assert_allclose(out[key], expected[key].numpy(), rtol=1e-5, atol=1e-5)
    single = runner(images[1])
    np.testing.assert_allclose(single["seg"], out["seg"][1], atol=1e-6)


def test_metadata_carries_classes_and_normalisation(tiny):
    _, classes, proto = tiny
    runner = OnnxRunner(proto)
    assert runner.classes == classes
    assert json.loads(runner.metadata["mean"]) == pytest.approx([0.485, 0.456, 0.406])
    assert json.loads(runner.metadata["std"]) == pytest.approx([0.229, 0.224, 0.225])


def test_fixed_size_and_input_checks(tiny):
    model, _, _ = tiny
    runner = OnnxRunner(to_onnx(model, size=16))
    assert runner.input_shape[1:] == (16, 16, 3) and runner.classes is None
    with pytest.raises(ValueError, match=r"takes \['batch', 16, 16, 3\], got \[1, 8, 8, 3\]"):
        runner(np.zeros((1, 8, 8, 3), np.float32))
    with pytest.raises(ValueError, match="float32, got float64"):
        runner(np.zeros((1, 16, 16, 3)))
    with pytest.raises(ValueError, match="size must be positive"):
        to_onnx(model, size=0)
    with pytest.raises(ValueError, match="opset must be in 11..18, got 21"):
        to_onnx(model, opset=21)


def test_runs_in_a_fresh_process_without_tensorflow(tiny, tmp_path):
    """What a deployment does: only onnxruntime, the file and NumPy."""
    model, _, proto = tiny
    path = write_onnx(proto, str(tmp_path / "m.onnx"))
    images = np.random.default_rng(3).normal(size=(2, 24, 20, 3)).astype(np.float32)
    np.save(tmp_path / "x.npy", images)
    script = (
        "import sys, numpy as np, onnxruntime as ort\n"
        f"s = ort.InferenceSession({path!r}, providers=['CPUExecutionProvider'])\n"
        f"out = s.run(['seg', 'se'], {{'images': np.load({str(tmp_path / 'x.npy')!r})}})\n"
        f"np.save({str(tmp_path / 'seg.npy')!r}, out[0])\n"
        "assert 'tensorflow' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", script], check=True, timeout=120)
    np.testing.assert_allclose(
        np.load(tmp_path / "seg.npy"), np.asarray(model(images)["seg"]), atol=1e-5
    )


@pytest.mark.slow
def test_encnet_matches_keras(trained_encnet, capsys):
    model, images = trained_encnet
    runner = OnnxRunner(to_onnx(model))
    errors = max_relative_error(model, runner, images[:2])
    # Another size through the same dynamic-shape model (not a multiple of 8).
    other = max_relative_error(model, runner, images[2:3, :52, :44])
    with capsys.disabled():
        print(f"\nEncNet ONNX Runtime vs Keras, max relative error: 64x64 {errors}, 52x44 {other}")
    assert set(errors) == {"seg", "se"}
    # seg: float32 rounding; se: amplified by the BatchNorm over codewords (see
    # EXPORT_TOLERANCE), 8e-5 on one AVX-512 CPU and 1.6e-4 on another.
    for measured in (errors, other):
        assert all(measured[k] < EXPORT_TOLERANCE[k] for k in measured), measured


def test_cli(tmp_path):
    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3).save(model_path)
    out = tmp_path / "m.onnx"
    assert onnx_main([model_path, "--out", str(out)]) == 0
    runner = OnnxRunner(out.read_bytes())
    assert runner.classes.names == ("class_0", "class_1", "class_2")
    assert onnx_main([model_path, "--out", str(tmp_path / "m.tflite")]) == 2
    assert onnx_main([str(tmp_path / "missing.keras"), "--out", str(out)]) == 2
    # A failed check writes nothing and keeps an earlier file.
    before = out.read_bytes()
    assert onnx_main([model_path, "--out", str(out), "--size", "16", "--tolerance", "-1"]) == 1
    assert out.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []
