"""`enc-convert` on damaged or wrong checkpoint files: one line naming the file, exit 2."""

import os
import re

import numpy as np
import pytest

from enc_tf.convert.cli import main as convert_main


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err


@pytest.fixture()
def checkpoint(tmp_path):
    path = tmp_path / "encnet.npz"
    np.savez(
        path,
        **{f"pretrained.layer1.{i}.weight": np.arange(2000, dtype=np.float32) for i in range(4)},
    )
    return path


def test_damaged_checkpoints(checkpoint, tmp_path, capsys):
    data = checkpoint.read_bytes()
    out = str(tmp_path / "out" / "m.keras")
    cases = {
        "truncated.npz": (data[: len(data) // 2], "corrupt or truncated"),
        "empty.npz": (b"", r"is empty \(0 bytes\)"),
        "text.npz": (b"not a zip file at all" * 10, "corrupt or truncated"),
    }
    for name, (content, message) in cases.items():
        (tmp_path / name).write_bytes(content)
        assert convert_main(["pytorch-encoding", str(tmp_path / name), "--out", out]) == 2, name
        err = _one_error_line(capsys)
        assert str(tmp_path / name) in err
        assert re.search(message, err), err
    assert not os.path.exists(os.path.dirname(out))


def test_a_file_that_is_not_an_encnet_state_dict(checkpoint, tmp_path, capsys):
    assert (
        convert_main(["pytorch-encoding", str(checkpoint), "--out", str(tmp_path / "m.keras")]) == 2
    )
    err = _one_error_line(capsys)
    assert str(checkpoint) in err and "not a PyTorch-Encoding EncNet/FCN state_dict" in err


def test_bad_arguments(checkpoint, tmp_path, capsys):
    assert (
        convert_main(
            ["pytorch-encoding", str(tmp_path / "missing.npz"), "--out", str(tmp_path / "m.keras")]
        )
        == 2
    )
    assert "Checkpoint not found" in _one_error_line(capsys)
    assert convert_main(["pytorch-encoding", str(checkpoint), "--out", str(tmp_path / "m.h5")]) == 2
    assert "--out must end in .keras" in _one_error_line(capsys)
    assert (
        convert_main(
            [
                "pytorch-encoding",
                str(checkpoint),
                "--out",
                str(tmp_path / "m.keras"),
                "--num-classes",
                "0",
            ]
        )
        == 2
    )
    assert "--num-classes must be a positive integer, got 0" in _one_error_line(capsys)
    (tmp_path / "state.txt").write_text("hello")
    assert (
        convert_main(
            ["pytorch-encoding", str(tmp_path / "state.txt"), "--out", str(tmp_path / "m.keras")]
        )
        == 2
    )
    assert "state.txt" in _one_error_line(capsys)


# --- MMSegmentation checkpoints and the way back, through real .pth files -----------------


@pytest.fixture(scope="module")
def mmseg_pth(tmp_path_factory):
    """The parity oracle's weights as MMSegmentation 0.x publishes a checkpoint: a `.pth`
    with `state_dict` and `meta` (`config` text, `CLASSES`, `PALETTE`)."""
    import torch

    from tests.support import oracle

    variant = "mmseg_ade_r50"
    state = oracle.state_dict(variant, oracle.MMSEG_DIR)
    cfg = oracle.meta(variant, oracle.MMSEG_DIR)["model"]["resolved_model_cfg"]
    names = [f"class {i}" for i in range(150)]
    meta = {
        "config": f"model = {cfg!r}\n",
        "CLASSES": tuple(names),
        "PALETTE": [[i, 255 - i, 7] for i in range(150)],
        "mmcv_version": "1.2.0",
    }
    path = tmp_path_factory.mktemp("mmseg") / "encnet_r50-d8_ade20k.pth"
    payload = {"meta": meta, "state_dict": {k: torch.from_numpy(v) for k, v in state.items()}}
    torch.save(payload, path)
    return path, state, names


@pytest.mark.slow
def test_mmseg_pth_to_keras_and_back(mmseg_pth, tmp_path, capsys):
    import keras
    import torch

    path, state, names = mmseg_pth
    out = tmp_path / "encnet.keras"
    assert convert_main(["mmseg", str(path), "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert '"align_corners": false' in printed and '"backbone": "resnet50v1c"' in printed
    assert '"test_cfg": {"mode": "whole"}' in printed and f"wrote {out}" in printed
    model = keras.saving.load_model(str(out))
    assert model.class_names == names and model.arguments["align_corners"] is False
    assert model.palette[3] == [3, 252, 7]
    # The way back, as a .pth MMSegmentation loads with torch.load(weights_only=True).
    back = tmp_path / "back.pth"
    assert convert_main(["to-torch", str(out), "--format", "mmseg", "--out", str(back)]) == 0
    assert "(363 mmseg keys)" in capsys.readouterr().out
    loaded = torch.load(back, weights_only=True)
    assert len(loaded["state_dict"]) == 363
    for key, value in state.items():
        np.testing.assert_array_equal(loaded["state_dict"][key].numpy(), value, err_msg=key)
    assert loaded["meta"]["CLASSES"] == names
    # ... and it converts again without any option: its meta holds align_corners.
    again = tmp_path / "again.keras"
    assert convert_main(["mmseg", str(back), "--out", str(again)]) == 0
    assert '"align_corners": "meta"' in capsys.readouterr().out


def test_mmseg_needs_align_corners_when_the_checkpoint_has_no_config(mmseg_pth, tmp_path, capsys):
    path, state, _ = mmseg_pth
    npz = tmp_path / "bare.npz"
    np.savez(npz, **state)
    out = tmp_path / "m.keras"
    assert convert_main(["mmseg", str(npz), "--out", str(out)]) == 2
    err = _one_error_line(capsys)
    assert str(npz) in err and "give --align-corners" in err
    assert not out.exists()
    assert convert_main(["mmseg", str(path), "--out", str(out), "--align-corners"]) == 2
    assert "align_corners=True contradicts the checkpoint's config" in _one_error_line(capsys)


@pytest.mark.slow
def test_mmseg_npz_with_options_and_dataset_classes(mmseg_pth, tmp_path, capsys):
    import keras

    from enc_tf.data.classes import ADE20K

    _, state, _ = mmseg_pth
    npz = tmp_path / "bare.npz"
    np.savez(npz, **state)
    out = tmp_path / "m.keras"
    argv = ["mmseg", str(npz), "--out", str(out), "--no-align-corners", "--dataset", "ade20k"]
    assert convert_main(argv) == 0
    assert '"align_corners": "given"' in capsys.readouterr().out
    model = keras.saving.load_model(str(out))
    assert model.class_names == list(ADE20K.names)
    # The Cityscapes class list (19) does not fit 150 classes: one line, nothing written.
    other = tmp_path / "c.keras"
    argv = ["mmseg", str(npz), "--out", str(other), "--no-align-corners"]
    assert convert_main([*argv, "--dataset", "cityscapes"]) == 2
    assert "class_names has 19 names for 150 classes" in _one_error_line(capsys)
    assert not other.exists()


def test_each_converter_names_the_other_format(mmseg_pth, tmp_path, capsys):
    path, _, _ = mmseg_pth
    out = str(tmp_path / "m.keras")
    assert convert_main(["pytorch-encoding", str(path), "--out", out]) == 2
    assert "looks like a mmseg checkpoint" in _one_error_line(capsys)
    pe = tmp_path / "pe.npz"
    np.savez(pe, **{"pretrained.conv1.0.weight": np.zeros((64, 3, 3, 3), np.float32)})
    assert convert_main(["mmseg", str(pe), "--out", out, "--no-align-corners"]) == 2
    assert "looks like a pytorch-encoding checkpoint" in _one_error_line(capsys)


def test_a_truncated_pth_is_named(mmseg_pth, tmp_path, capsys):
    path, _, _ = mmseg_pth
    cut = tmp_path / "cut.pth"
    cut.write_bytes(path.read_bytes()[:10_000_000])
    assert convert_main(["mmseg", str(cut), "--out", str(tmp_path / "m.keras")]) == 2
    err = _one_error_line(capsys)
    assert str(cut) in err and "corrupt or truncated" in err


def test_to_torch_checks_its_arguments(tmp_path, capsys):
    from tests.support.tiny_models import tiny_segmenter

    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3).save(model_path)
    out = str(tmp_path / "s.npz")
    assert convert_main(["to-torch", model_path, "--format", "mmseg", "--out", out]) == 2
    assert "cannot be written as mmseg" in _one_error_line(capsys)
    assert convert_main(["to-torch", model_path, "--format", "mmseg", "--out", "s.h5"]) == 2
    assert "--out must end in .npz or .pth" in _one_error_line(capsys)
    missing = str(tmp_path / "missing.keras")
    assert convert_main(["to-torch", missing, "--format", "mmseg", "--out", out]) == 2
    assert "missing.keras" in _one_error_line(capsys)
    assert not os.path.exists(out)
