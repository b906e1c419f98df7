"""The export commands on damaged inputs and leftovers of killed runs: one line, exit 1 or 2."""

import os

import pytest
import tensorflow as tf

from enc_tf.data.classes import make_class_info
from enc_tf.export import export_saved_model
from enc_tf.export.cli import main as export_main
from enc_tf.export.onnx_cli import main as onnx_main
from enc_tf.export.tflite_cli import main as tflite_main
from tests.inference.damaged_models import damaged_keras_files
from tests.support.files import stale_temporary_name
from tests.support.tiny_models import tiny_segmenter


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    tiny_segmenter(3).save(path)
    return path


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert "Traceback" not in err and len(err.splitlines()) == 1, err
    assert err.startswith("error: "), err
    return err


@pytest.mark.parametrize("command", ["export", "tflite", "onnx"])
def test_damaged_models_are_one_line_naming_the_file(model_path, tmp_path, capsys, command):
    for kind, path in damaged_keras_files(model_path, tmp_path).items():
        if command == "export":
            code = export_main([path, "--base-dir", str(tmp_path / "serving")])
        elif command == "tflite":
            code = tflite_main([path, "--out", str(tmp_path / "m.tflite"), "--size", "16"])
        else:
            code = onnx_main([path, "--out", str(tmp_path / "m.onnx")])
        assert code == 2, kind
        err = _one_error_line(capsys)
        assert path in err, err
        assert ("non-finite" if kind == "nan" else "truncated") in err, err
    assert not (tmp_path / "m.tflite").exists() and not (tmp_path / "m.onnx").exists()


def test_bad_sizes_name_the_option(model_path, tmp_path, capsys):
    assert tflite_main([model_path, "--out", str(tmp_path / "m.tflite"), "--size", "0"]) == 2
    assert "--size must be a positive integer" in _one_error_line(capsys)
    assert (
        tflite_main(
            [
                model_path,
                "--out",
                str(tmp_path / "m.tflite"),
                "--size",
                "8",
                "--mode",
                "int8",
                "--calibration-dir",
                str(tmp_path / "nothing"),
            ]
        )
        == 2
    )
    assert "--calibration-dir" in _one_error_line(capsys)
    assert onnx_main([model_path, "--out", str(tmp_path / "m.onnx"), "--size", "-3"]) == 2
    assert "--size must be a positive integer (the input's height and width), got -3" in (
        _one_error_line(capsys)
    )
    assert export_main([model_path, "--base-dir", str(tmp_path), "--model-version", "0"]) == 2
    assert "--model-version must be a positive integer, got 0" in _one_error_line(capsys)
    assert export_main([model_path, "--base-dir", str(tmp_path), "--max-size", "-1"]) == 2
    assert "--max-size must be >= 0" in _one_error_line(capsys)
    assert not os.listdir(tmp_path)


@pytest.mark.parametrize(
    "argv, message",
    [
        (
            ["--format", "onnx", "--out", "m.onnx", "--mode", "int8"],
            "--mode is an option of --format tflite, not of --format onnx",
        ),
        (
            ["--format", "tflite", "--out", "m.tflite", "--base-dir", "s"],
            "--base-dir is an option of --format saved_model, not of --format tflite",
        ),
        (
            ["--format", "tflite", "--out", "m.tflite", "--no-check"],
            "--check is an option of --format onnx",
        ),
        (["--base-dir", "s", "--size", "64"], "--size is an option of --format tflite / onnx"),
        (["--base-dir", "s", "--out", "m.onnx"], "writes into --base-dir"),
        (["--format", "saved_model"], "needs --base-dir"),
        (["--format", "tflite"], "--format tflite needs --out, the file to write"),
        (["--format", "onnx", "--out", "m.tflite"], "--out must end in .onnx"),
    ],
)
def test_one_export_command_refuses_options_of_other_formats(
    model_path, tmp_path, capsys, monkeypatch, argv, message
):
    monkeypatch.chdir(tmp_path)
    assert export_main([model_path, *argv]) == 2
    assert message in _one_error_line(capsys)
    assert not os.listdir(tmp_path)  # refused before any work


def test_the_aliases_are_the_one_command_with_another_default_format(model_path, tmp_path):
    out = tmp_path / "m.tflite"
    assert tflite_main([model_path, "--out", str(out), "--size", "16"]) == 0
    first = out.read_bytes()
    assert export_main([model_path, "--format", "tflite", "--out", str(out), "--size", "16"]) == 0
    assert out.read_bytes() == first
    assert onnx_main([model_path, "--out", str(tmp_path / "m.onnx"), "--size", "16"]) == 0
    assert (tmp_path / "m.onnx").stat().st_size > 0


def test_failed_onnx_check_is_one_line_exit_1(model_path, tmp_path, capsys):
    assert (
        onnx_main(
            [model_path, "--out", str(tmp_path / "m.onnx"), "--size", "16", "--tolerance", "-1"]
        )
        == 1
    )
    assert "not written" in _one_error_line(capsys)


def test_leftovers_of_killed_exports_are_removed(model_path, tmp_path):
    models = tmp_path / "serving" / "encnet"
    models.mkdir(parents=True)
    killed = stale_temporary_name("1")  # enc_tf.files' temporary of a killed export
    (models / killed).mkdir()
    (models / killed / "saved_model.pb").write_bytes(b"half")
    running = stale_temporary_name("2", pid=os.getpid())  # a running writer's: spared
    (models / running).mkdir()
    # The user's own files, whatever their names, are never touched.
    (models / ".hidden").write_text("not ours")
    (models / ".tmp-my-notes").mkdir()
    (models / ".tmp-draft.txt").write_text("two days of work")
    assert export_main([model_path, "--base-dir", str(tmp_path / "serving")]) == 0
    assert sorted(os.listdir(models)) == sorted(
        [".hidden", ".tmp-draft.txt", ".tmp-my-notes", "1", running]
    )
    out = tmp_path / "files"
    out.mkdir()
    (out / stale_temporary_name("m.tflite")).write_bytes(b"half")
    assert tflite_main([model_path, "--out", str(out / "m.tflite"), "--size", "16"]) == 0
    assert sorted(os.listdir(out)) == ["m.tflite"]
    (out / stale_temporary_name("m.onnx")).write_bytes(b"half")
    assert onnx_main([model_path, "--out", str(out / "m.onnx"), "--size", "16"]) == 0
    assert sorted(os.listdir(out)) == ["m.onnx", "m.tflite"]


def test_an_existing_version_is_replaced_in_one_rename(tmp_path):
    model = tiny_segmenter(3)
    classes = make_class_info(["a", "b", "c"])
    first = export_saved_model(model, classes, str(tmp_path), "m")
    marker = os.path.join(first, "old-only")
    open(marker, "w").close()
    assert (
        export_saved_model(model, classes, str(tmp_path), "m", version=1, overwrite=True) == first
    )
    assert not os.path.exists(marker)  # the whole directory was replaced, not merged into
    assert sorted(os.listdir(os.path.join(tmp_path, "m"))) == ["1"]


@pytest.fixture(scope="module")
def serving(tmp_path_factory):
    path = export_saved_model(
        tiny_segmenter(3),
        make_class_info(["a", "b", "c"]),
        str(tmp_path_factory.mktemp("serving")),
        "encnet",
    )
    return tf.saved_model.load(path)


@pytest.mark.parametrize(
    "signature,dtype",
    [("serving_default", tf.uint8), ("probabilities", tf.uint8), ("logits", tf.float32)],
)
def test_a_batch_of_zero_images_is_an_error_naming_the_input(serving, signature, dtype):
    with pytest.raises(tf.errors.InvalidArgumentError, match="images: the batch holds no image"):
        serving.signatures[signature](images=tf.zeros((0, 8, 8, 3), dtype))
    # One image still works.
    assert serving.signatures[signature](images=tf.zeros((1, 8, 8, 3), dtype))


def test_a_batch_of_zero_encoded_images_is_an_error_naming_the_input(serving):
    with pytest.raises(
        tf.errors.InvalidArgumentError, match="encoded_images: the batch holds no image"
    ):
        serving.signatures["encoded"](encoded_images=tf.constant([], tf.string))
