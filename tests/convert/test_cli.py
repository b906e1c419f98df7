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
