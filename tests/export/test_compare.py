import numpy as np
import pytest

from enc_tf.data.classes import make_class_info
from enc_tf.export.compare import (
    VARIANTS,
    Variant,
    export_variants,
    format_table,
    keras_runner,
    score_variants,
)
from tests.support.tiny_models import tiny_segmenter


def test_every_variant_is_exported_scored_and_tabulated(tmp_path):
    model = tiny_segmenter(3, seed=4)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 16, 16, 3)).astype(np.float32)
    reference = keras_runner(model)
    labels = [np.argmax(reference(x)["seg"], -1) for x in images]
    labels[0][0, :4] = 255  # ignored
    variants = export_variants(
        model, make_class_info(["a", "b", "c"]), str(tmp_path), 16, lambda: iter(images)
    )
    assert [v.name for v in variants] == list(VARIANTS)
    for v in variants:
        assert v.size_bytes > 0 and str(tmp_path) in v.path
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "encnet.onnx",
        "encnet_dynamic_int8.tflite",
        "encnet_float16.tflite",
        "encnet_float32.tflite",
        "encnet_int8.tflite",
        "encnet_int8_all.tflite",
        "saved_model",
        "saved_model_bfloat16",
    ]
    scores = score_variants(
        [Variant("keras", reference, "", 1)] + variants,
        list(zip(images, labels)),
        3,
        255,
        reference,
    )
    by_name = {s.name: s for s in scores}
    # Labels are Keras's own predictions: Keras scores 100%; exact exports match it.
    for name in ("keras", "saved_model", "tflite_float32", "onnx"):
        assert by_name[name].agreement == 1.0 and by_name[name].pixel_accuracy == 1.0, name
        assert by_name[name].se_error < 1e-4 and by_name[name].mean_iou == pytest.approx(1.0)
    assert by_name["tflite_float16"].agreement > 0.98
    # bfloat16 computes, so it is close but not exact.
    assert 0.95 < by_name["saved_model_bfloat16"].agreement <= 1.0
    assert 0 < by_name["saved_model_bfloat16"].se_error < 0.1
    for name in ("tflite_int8", "tflite_int8_all", "tflite_dynamic_int8"):
        assert 0.8 < by_name[name].agreement <= 1.0 and by_name[name].se_error > 0, name
    text = format_table(scores)
    assert [h.strip() for h in text.splitlines()[0].split(" | ")[:3]] == [
        "variant",
        "latency ms",
        "size MiB",
    ]
    assert len(text.splitlines()) == 11 and "tflite_int8_all" in text
    assert "latency" not in format_table(scores, latency=False)


def test_unknown_variant(tmp_path):
    with pytest.raises(ValueError, match="tflite_int4"):
        export_variants(
            tiny_segmenter(3),
            make_class_info(["a", "b", "c"]),
            str(tmp_path),
            16,
            None,
            ["tflite_int4"],
        )
