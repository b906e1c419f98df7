"""`enc-presets`: the table, and fetching ahead of use; failures are one line."""

import hashlib
import os
import subprocess

from enc_tf.presets import PRESETS, registry
from enc_tf.presets.cli import main
from tests.support.commands import command
from tests.support.http_server import Route, serve

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_list_prints_every_preset_and_its_aliases(capsys):
    assert main(["list"]) == 0
    out = capsys.readouterr().out
    for preset in PRESETS.values():
        assert f"| {preset.name} |" in out
    assert "encnet_r50_ade20k -> encnet_r50-d8_4xb4-160k_ade20k-512x512" in out
    assert main(["list", "--kind", "backbone"]) == 0
    assert "encnet_r50" not in capsys.readouterr().out


def test_fetch_downloads_a_backbone_preset(tmp_path, monkeypatch, capsys):
    body = os.urandom(1000)
    digest = hashlib.sha256(body).hexdigest()
    monkeypatch.setenv("ENC_TF_HOME", str(tmp_path))
    with serve({"/w/r50-x.pth": Route(body)}) as base:
        preset = registry.Preset(
            "test_r50", "backbone", (base + "/w/r50-x.pth",), "sha256:" + digest,
            "torch_state", "resnet50s", "a test",
        )  # fmt: skip
        monkeypatch.setitem(registry.PRESETS, preset.name, preset)
        assert main(["fetch", "test_r50"]) == 0
    path = str(tmp_path / "downloads" / "r50-x.pth")
    assert capsys.readouterr().out.strip() == f"test_r50: {path}"
    assert open(path, "rb").read() == body


def test_offline_with_an_empty_cache_is_one_line_naming_the_url_and_the_place(tmp_path):
    env = {
        **os.environ,
        "ENC_TF_HOME": str(tmp_path),
        "ENC_TF_OFFLINE": "1",
        "PYTHONPATH": ROOT,
        "TF_CPP_MIN_LOG_LEVEL": "2",
    }
    done = subprocess.run(
        command("enc-presets", "fetch", "encnet_r50_ade20k"),
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    preset = registry.find("encnet_r50_ade20k")
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 1 and len(lines) == 1, done.stderr
    assert preset.urls[0] in lines[0] and str(tmp_path / "downloads" / preset.filename) in lines[0]
