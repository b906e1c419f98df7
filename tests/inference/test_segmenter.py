import json

import numpy as np
import pytest
from PIL import Image

from enc_tf.data.augment import normalize
from enc_tf.data.classes import make_class_info
from enc_tf.errors import ConfigError
from enc_tf.inference import Segmenter, load_model, to_rgb_array
from enc_tf.inference.cli import main as predict_main
from enc_tf.inference.segmenter import resolve_protocol
from enc_tf.protocols import MMSEG_PRESETS, MMSegConfig, MMSegPredictor, PaperConfig, PaperPredictor
from tests.support.tiny_models import tiny_segmenter


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    tiny_segmenter(3).save(path)
    return path


def test_to_rgb_array_accepts_every_mode():
    rgb = np.random.default_rng(0).integers(0, 256, (5, 6, 3), dtype=np.uint8)
    np.testing.assert_array_equal(to_rgb_array(rgb), rgb)
    np.testing.assert_array_equal(to_rgb_array(np.dstack([rgb, np.full((5, 6), 7, np.uint8)])), rgb)
    np.testing.assert_array_equal(to_rgb_array(Image.fromarray(rgb).convert("RGBA")), rgb)
    grey = to_rgb_array(rgb[..., 0])
    assert grey.shape == (5, 6, 3) and np.array_equal(grey[..., 2], rgb[..., 0])
    np.testing.assert_array_equal(to_rgb_array(rgb.astype(np.uint16) * 257), rgb)
    np.testing.assert_array_equal(to_rgb_array(rgb / 255.0), rgb)
    with pytest.raises(ValueError, match="shape"):
        to_rgb_array(np.zeros((5, 6, 2), np.uint8))
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        to_rgb_array(np.full((2, 2, 3), 3.0))
    with pytest.raises(ValueError, match="dtype"):
        to_rgb_array(np.zeros((2, 2, 3), np.int64))


def test_segmenter_single_and_multi_scale(model_path):
    loaded = load_model(model_path)
    assert loaded.num_classes == 3 and loaded.classes is None
    rng = np.random.default_rng(1)
    image = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    # Native resolution through the sliding window (70 > crop 32).
    segmenter = Segmenter(loaded, crop_size=32)
    assert segmenter(image).probabilities is None  # kept only when asked for
    result = segmenter(image, probabilities=True)
    np.testing.assert_array_equal(result.labels, segmenter(image).labels)
    assert result.labels.shape == (40, 70) and result.labels.dtype == np.int32
    np.testing.assert_allclose(result.probabilities.sum(-1), 1.0, atol=1e-5)
    assert result.presence.shape == (3,) and np.all((result.presence > 0) & (result.presence < 1))
    windows = PaperPredictor(loaded.logits_fn, 3, PaperConfig(70, 32, (1.0,), False))
    np.testing.assert_array_equal(result.labels, windows.predict(normalize(image).numpy()))
    # Multi-scale + flip: the mean over its 4 passes.
    multi = Segmenter(loaded, multi_scale=True, base_size=48, crop_size=32, scales=(0.75, 1.0))
    out = multi(Image.fromarray(image), probabilities=True)
    np.testing.assert_allclose(out.probabilities.sum(-1), 1.0, atol=1e-5)
    reference = PaperPredictor(loaded.logits_fn, 3, PaperConfig(48, 32, (0.75, 1.0), True))
    np.testing.assert_allclose(
        out.probabilities, reference.probabilities(normalize(image).numpy()) / 4, atol=1e-6
    )
    with pytest.raises(ValueError, match="predicts 3 classes but the class list lists 2"):
        Segmenter(loaded, classes=make_class_info(["a", "b"]))


def test_predict_cli_end_to_end(model_path, tmp_path):
    inputs = tmp_path / "in"
    inputs.mkdir()
    rng = np.random.default_rng(2)
    Image.fromarray(rng.integers(0, 256, (30, 40, 3), dtype=np.uint8)).save(inputs / "rgb.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 25), dtype=np.uint8)).save(inputs / "grey.png")
    Image.fromarray(rng.integers(0, 65535, (22, 18), dtype=np.uint16)).save(inputs / "deep.png")
    Image.fromarray(rng.integers(0, 256, (16, 16, 4), dtype=np.uint8), "RGBA").save(
        inputs / "alpha.png"
    )
    rotated = Image.fromarray(rng.integers(0, 256, (10, 30, 3), dtype=np.uint8))
    exif = rotated.getexif()
    exif[0x0112] = 6  # rotate 90 degrees: displayed as 30 x 10
    rotated.save(inputs / "exif.jpg", exif=exif)
    (inputs / "broken.png").write_bytes(b"not a png")
    classes = tmp_path / "classes.yaml"
    classes.write_text("names: [sky, sea, sand]\n")
    out = tmp_path / "out"
    code = predict_main(
        [
            model_path,
            str(inputs),
            "--out",
            str(out),
            "--classes",
            str(classes),
            "--crop-size",
            "32",
            "--probabilities",
        ]
    )
    assert code == 1  # one file failed; the others were written
    summary = json.loads((out / "predictions.json").read_text())
    assert list(summary["failed"]) == [str(inputs / "broken.png")]
    assert len(summary["images"]) == 5
    for stem, size in {
        "rgb": (30, 40),
        "grey": (20, 25),
        "deep": (22, 18),
        "alpha": (16, 16),
        "exif": (30, 10),
    }.items():
        labels = Image.open(out / f"{stem}_labels.png")
        assert labels.mode == "P" and labels.size == size[::-1]
        assert labels.getpalette()[:9] == [
            *make_class_info(["sky", "sea", "sand"]).palette[0],
            *make_class_info(["sky", "sea", "sand"]).palette[1],
            *make_class_info(["sky", "sea", "sand"]).palette[2],
        ]
        assert np.asarray(labels).max() < 3
        overlay = Image.open(out / f"{stem}_overlay.png")
        assert overlay.width == size[1] and overlay.height > size[0]  # legend below
        assert np.load(out / f"{stem}_probabilities.npy").shape == (*size, 3)
        entry = summary["images"][
            str(inputs / f"{stem}{'.jpg' if stem in ('rgb', 'exif') else '.png'}")
        ]
        assert set(entry["classes"]) <= {"sky", "sea", "sand"} and set(entry["se_presence"]) == {
            "sky",
            "sea",
            "sand",
        }
        assert abs(sum(entry["classes"].values()) - 1) < 1e-4
    # Clear errors: an empty directory, a class list of the wrong length.
    (tmp_path / "empty").mkdir()
    assert predict_main([model_path, str(tmp_path / "empty"), "--out", str(out)]) == 2
    classes.write_text("names: [a, b]\n")
    assert (
        predict_main(
            [model_path, str(inputs / "rgb.jpg"), "--classes", str(classes), "--out", str(out)]
        )
        == 2
    )
    assert predict_main([str(tmp_path / "missing.keras"), str(inputs / "rgb.jpg")]) == 2


def test_to_rgb_array_scales_uint16_by_dtype_as_files_are(tmp_path):
    from enc_tf.data.io import read_image

    dark = np.array([[0, 128, 255]], np.uint16)  # a 16-bit image whose brightest pixel is 255
    Image.fromarray(dark).save(tmp_path / "dark.png")
    np.testing.assert_array_equal(to_rgb_array(dark)[..., 0], [[0, 0, 1]])
    np.testing.assert_array_equal(to_rgb_array(dark), read_image(str(tmp_path / "dark.png")))


def test_segmenter_and_cli_in_bfloat16(model_path, tmp_path):
    image = np.random.default_rng(2).integers(0, 256, size=(30, 26, 3)).astype(np.uint8)
    reference = Segmenter(model_path)(image, probabilities=True)
    segmenter = Segmenter(model_path, precision="bfloat16")
    assert segmenter.model.precision == "bfloat16" and reference is not None
    result = segmenter(image, probabilities=True)
    assert np.mean(result.labels == reference.labels) > 0.9
    assert 0 < np.abs(result.probabilities - reference.probabilities).max() < 0.05
    Image.fromarray(image).save(tmp_path / "a.png")
    out = tmp_path / "pred"
    argv = [model_path, str(tmp_path / "a.png"), "--out", str(out), "--precision", "bfloat16"]
    assert predict_main(argv) == 0
    assert (out / "a_labels.png").exists()


def _counting(loaded):
    """`loaded` whose logits function counts the images it is run on."""
    import dataclasses

    import tensorflow as tf

    seen = tf.Variable(0, dtype=tf.int32)

    @tf.function
    def logits_fn(images):
        seen.assign_add(tf.shape(images)[0])
        return loaded.logits_fn(images)

    return dataclasses.replace(loaded, logits_fn=logits_fn), seen


def test_presence_comes_from_the_pass_that_segments(tmp_path, model_path):
    """The SE presence costs no forward pass of its own: every image through the network is
    a window of the label map's passes (one for an image within the crop, six for a 40 x 70
    image with a 32 window), with or without an SE head; presence is the sigmoid of the
    window's SE logits, the largest over windows."""
    import keras
    import tensorflow as tf

    images = keras.Input((None, None, 3))
    plain = keras.Model(images, {"seg": keras.layers.Conv2D(3, 3, padding="same")(images)})
    path = str(tmp_path / "plain.keras")
    plain.save(path)
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (24, 20, 3), dtype=np.uint8)
    large = rng.integers(0, 256, (40, 70, 3), dtype=np.uint8)
    for loaded, outputs in ((load_model(path), ("seg",)), (load_model(model_path), ("se", "seg"))):
        assert loaded.outputs == outputs
        counted, seen = _counting(loaded)
        segmenter = Segmenter(counted, crop_size=32)
        result = segmenter(small)
        assert int(seen.numpy()) == 1
        if "se" not in outputs:
            assert result.presence is None
            continue
        window = segmenter.predictor.pad(normalize(small).numpy(), 32, 32)[None]
        expected = tf.sigmoid(loaded.logits_fn(window)["se"])[0].numpy()
        np.testing.assert_allclose(result.presence, expected, rtol=1e-6)
        seen.assign(0)
        result = segmenter(large)
        assert int(seen.numpy()) == 6
        assert result.presence.shape == (3,) and np.all(result.presence > 0)


def test_mmsegmentation_protocol_one_pass_at_its_scale(model_path, tmp_path):
    """`protocol="mmseg"`: the image resized into the preset's box, one network pass (as
    MMSegmentation's `inference_model`), labels and probabilities at the image's size as
    `MMSegPredictor`'s, the SE presence from that pass; `enc-predict --protocol mmseg` writes
    the same labels."""
    import tensorflow as tf

    loaded = load_model(model_path)
    counted, seen = _counting(loaded)
    segmenter = Segmenter(counted, protocol="mmseg", mmseg_preset="ade20k")
    image = np.random.default_rng(3).integers(0, 256, (40, 70, 3), dtype=np.uint8)
    result = segmenter(image, probabilities=True)
    assert int(seen.numpy()) == 1 and segmenter.protocol == "mmseg"
    config = MMSegConfig(**MMSEG_PRESETS["ade20k"])
    reference = MMSegPredictor(loaded.logits_fn, 3, config)
    normalised = normalize(image).numpy()
    np.testing.assert_allclose(result.probabilities, reference.probabilities(normalised), atol=1e-5)
    np.testing.assert_array_equal(result.labels, reference.predict(normalised))
    assert result.labels.shape == (40, 70)
    view = tf.image.resize(normalised[None], config.pass_size(40, 70, 1.0))  # 512 x 896
    expected = tf.sigmoid(loaded.logits_fn(view)["se"])[0].numpy()
    np.testing.assert_allclose(result.presence, expected, rtol=1e-5)
    path = tmp_path / "x.png"
    Image.fromarray(image).save(path)
    out = tmp_path / "out"
    args = [model_path, str(path), "--out", str(out), "--protocol", "mmseg"]
    assert predict_main([*args, "--mmseg-preset", "ade20k"]) == 0
    written = np.asarray(Image.open(out / "x_labels.png"))
    np.testing.assert_array_equal(written, segmenter(image).labels)


def test_the_protocol_of_a_published_model():
    """MMSegmentation's models predict with its settings by default; the others with the
    paper's; a bad choice is a `ConfigError` naming it."""
    assert resolve_protocol("encnet_r50-d8_512x512_80k_ade20k") == ("mmseg", "ade20k")
    assert resolve_protocol("encnet_r50-d8_769x769_40k_cityscapes") == ("mmseg", "cityscapes-769")
    assert resolve_protocol("encnet_r50-d8_512x512_80k_ade20k", "paper") == ("paper", None)
    assert resolve_protocol("resnet50s.gluon_in1k") == ("paper", None)
    assert resolve_protocol("run/model.keras", "mmseg", "cityscapes") == ("mmseg", "cityscapes")
    with pytest.raises(ConfigError, match="protocol must be one of paper, mmseg, got 'tta'"):
        resolve_protocol("run/model.keras", "tta")
    with pytest.raises(ConfigError, match="mmseg_preset must be one of .* got None"):
        resolve_protocol("run/model.keras", "mmseg")
