"""A preset, a URL or a path wherever a model is taken: the first use downloads (from
127.0.0.1), verifies, converts and caches; the second touches no network."""

import hashlib
import os

import numpy as np
import pytest
from PIL import Image

from enc_tf.convert import mmseg
from enc_tf.data.classes import CITYSCAPES
from enc_tf.errors import ConfigError, ModelFileError
from enc_tf.inference import Segmenter
from enc_tf.inference.cli import main as predict_main
from enc_tf.models import build_encnet
from enc_tf.presets import DownloadError, from_preset, model_path, registry
from enc_tf.protocols import MMSEG_PRESETS
from enc_tf.state_dicts import write_state_dict
from tests.support.http_server import Route, serve
from tests.support.tiny_models import randomise_batch_norms

URL_PATH = "/mmsegmentation/v0.5/encnet/encnet_test/encnet_test_20200101-{}.pth"


@pytest.fixture(autouse=True)
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("ENC_TF_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ENC_TF_TIMEOUT", "1")
    for name in ("ENC_TF_OFFLINE", "ENC_TF_MIRROR"):
        monkeypatch.delenv(name, raising=False)
    return tmp_path / "home"


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A Cityscapes EncNet R-50-D8 as MMSegmentation 0.x publishes it (`state_dict` and a
    `meta` with the config text, CLASSES and PALETTE), and the model it came from."""
    pytest.importorskip("torch")
    model = build_encnet(
        19,
        backbone="resnet50v1c",
        align_corners=False,  # as MMSegmentation's 512x1024 Cityscapes configs
        class_names=list(CITYSCAPES.names),
        palette=[list(c) for c in CITYSCAPES.palette],
    )
    randomise_batch_norms(model, seed=2)
    meta = {"mmseg_version": "0.5.0", **mmseg.meta_from_model(model)}
    path = str(tmp_path_factory.mktemp("publisher") / "encnet.pth")
    write_state_dict(mmseg.state_dict_from_model(model, batches_tracked=True), path, meta)
    body = open(path, "rb").read()
    return body, hashlib.sha256(body).hexdigest(), model


def _preset(base, digest, name="encnet_test_cityscapes", classes=19):
    return registry.Preset(
        name, "model", (base + URL_PATH.format(digest[:8]),), "sha256:" + digest[:8], "mmseg",
        "resnet50v1c", "a test", dataset="cityscapes", num_classes=classes,
        eval_preset="cityscapes", crop_size=64, miou=1.0, miou_ms=2.0,
    )  # fmt: skip


@pytest.mark.slow
def test_a_preset_downloads_converts_caches_and_predicts(checkpoint, monkeypatch, home, tmp_path):
    body, digest, original = checkpoint
    route = Route(body)
    with serve({URL_PATH.format(digest[:8]): route}) as base:
        preset = _preset(base, digest)
        monkeypatch.setitem(registry.PRESETS, preset.name, preset)
        model = from_preset(preset.name, progress=False)
        converted = model_path(preset.name)
        stamp = os.stat(converted).st_mtime_ns
        images = np.random.default_rng(0).normal(size=(1, 64, 64, 3)).astype(np.float32)
        np.testing.assert_allclose(
            model(images)["seg"], original(images)["seg"], rtol=1e-4, atol=1e-4
        )
        assert list(model.class_names) == list(CITYSCAPES.names)
        # The second use: no request, no new conversion, also offline.
        monkeypatch.setenv("ENC_TF_OFFLINE", "1")
        # MMSegmentation's model predicts with its test settings (a smaller box, to be quick).
        small = {**MMSEG_PRESETS["cityscapes"], "scale": (96, 48)}
        monkeypatch.setitem(MMSEG_PRESETS, "cityscapes", small)
        segmenter = Segmenter.from_preset(preset.name)
        assert segmenter.protocol == "mmseg" and segmenter.predictor.config.scale == (96, 48)
        paper = Segmenter.from_preset(preset.name, protocol="paper")
        assert paper.predictor.config.crop_size == 64  # the preset's training crop
        assert paper(np.zeros((40, 70, 3), np.uint8)).labels.shape == (40, 70)
        labels = segmenter(np.zeros((40, 70, 3), np.uint8)).labels
        assert labels.shape == (40, 70)
        image = tmp_path / "street.png"
        Image.fromarray(np.zeros((40, 70, 3), np.uint8)).save(image)
        np.testing.assert_array_equal(segmenter(str(image)).labels, labels)  # a file path
        assert predict_main([preset.name, str(image), "--out", str(tmp_path / "out")]) == 0
        assert (tmp_path / "out" / "street_labels.png").is_file()
        # A file that is not what the preset says is refused (another class count).
        monkeypatch.delenv("ENC_TF_OFFLINE")
        liar = _preset(base, digest, name="encnet_test_liar", classes=150)
        monkeypatch.setitem(registry.PRESETS, liar.name, liar)
        with pytest.raises(ModelFileError, match="it is not the preset's file"):
            model_path(liar.name)
        # The converted model is all a later use needs: the download may be gone.
        for name in os.listdir(home / "downloads"):
            os.remove(home / "downloads" / name)
        monkeypatch.setenv("ENC_TF_OFFLINE", "1")
        assert model_path(preset.name) == converted
    assert route.requests == 1 and os.stat(converted).st_mtime_ns == stamp
    assert sorted(os.listdir(home / "models")) == sorted(
        [os.path.basename(converted), os.path.basename(converted) + ".lock"]
        + [f"encnet_test_liar-{digest[:8]}.keras.lock"]
    )


def test_the_mirror_serves_the_real_preset_paths_and_the_digest_is_checked(
    checkpoint, monkeypatch, home
):
    """`ENC_TF_MIRROR` with the published path of MMSegmentation's ADE20K EncNet: the
    fixture is not the published file, so the digest check refuses it, naming both."""
    body, digest, _ = checkpoint
    preset = registry.find("encnet_r50_ade20k")
    path = preset.urls[0].split("download.openmmlab.com", 1)[1]
    route = Route(body)
    with serve({path: route}) as base:
        monkeypatch.setenv("ENC_TF_MIRROR", base)
        with pytest.raises(DownloadError) as err:
            model_path("encnet_r50_ade20k")
    message = str(err.value)
    assert base + path in message and preset.parsed_digest.value in message and digest in message
    assert route.requests == 1 and not os.path.exists(home / "downloads" / preset.filename)


def test_unknown_names_and_wrong_kinds_are_one_line(home):
    with pytest.raises(ConfigError, match="did you mean encnet_r50_ade20k"):
        model_path("encnet_r50_ade2k")
    with pytest.raises(ConfigError, match="names backbone weights"):
        model_path("resnet50s.gluon_in1k")
    with pytest.raises(ModelFileError, match="Model not found"):
        model_path("runs/missing/model.keras")
    with pytest.raises(ConfigError, match="must name a"):
        model_path("http://127.0.0.1:9/model.zip")


def test_a_keras_url_with_a_pinned_digest(checkpoint, tmp_path, home):
    """`enc-predict https://.../model.keras#sha256=...`: fetched once, verified, loaded."""
    model = build_encnet(3, backbone="mobilenetv3_small_minimalistic", output_stride=16)
    model.save(tmp_path / "m.keras")
    body = (tmp_path / "m.keras").read_bytes()
    digest = hashlib.sha256(body).hexdigest()
    route = Route(body)
    with serve({"/models/m.keras": route, "/other/m.keras": Route(body)}) as base:
        local = model_path(f"{base}/models/m.keras#sha256={digest}")
        assert open(local, "rb").read() == body
        # Another URL with the same file name and a wrong pin: refused, and the first
        # one's cached file is untouched.
        with pytest.raises(DownloadError, match="expected 00000000"):
            model_path(f"{base}/other/m.keras#sha256={'0' * 64}")
        assert model_path(f"{base}/models/m.keras#sha256={digest}") == local
    assert route.requests == 1 and open(local, "rb").read() == body
