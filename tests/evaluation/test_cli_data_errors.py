"""`enc-eval` on damaged data: every run ends promptly with one line naming the file and value."""

import os
import subprocess

import numpy as np
import pytest

from tests.support import layouts
from tests.support.commands import command
from tests.support.tiny_models import tiny_segmenter

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _eval(*args, timeout=120):
    # Level 2 is run_cli's default; TensorFlow reads it at import, before run_cli could set it.
    env = {**os.environ, "PYTHONPATH": ROOT, "TF_CPP_MIN_LOG_LEVEL": "2"}
    try:
        return subprocess.run(
            command("enc-eval", *args),
            capture_output=True,
            text=True,
            timeout=timeout,
            env=env,
            start_new_session=True,
        )
    except subprocess.TimeoutExpired as err:
        pytest.fail(
            f"enc-eval hung for {timeout} s after a data error; "
            f"output: {(err.stderr or b'')[-1000:]!r}"
        )


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    path = str(tmp_path_factory.mktemp("model") / "tiny.keras")
    tiny_segmenter(3, seed=4).save(path)
    return path


def test_bad_mask_value_ends_every_run_with_one_line(tmp_path, model_path):
    # Enough images that tf.data's parallel map still runs Python decoders when the error arrives:
    # before the fix, runs hung at exit or aborted ("terminate called without an active exception").
    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    for i in range(60):
        layouts.save_rgb(
            str(root / "images" / f"img{i:03d}.png"), rng.integers(0, 256, (120, 160, 3))
        )
        layouts.save_mask(
            str(root / "masks" / f"img{i:03d}.png"), np.full((120, 160), 44 if i == 3 else i % 3)
        )
    (root / "classes.yaml").write_text("names: [road, car, tree]\n")
    args = [
        model_path,
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "",
        "--crop-size",
        "8",
        "--out",
        str(tmp_path / "out"),
    ]
    for _ in range(3):
        result = _eval(*args)
        assert result.returncode == 1, result.stderr[-3000:]
        assert "Traceback" not in result.stderr, result.stderr[-3000:]
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and "img003.png" in errors[0] and "[44]" in errors[0], (
            result.stderr[-3000:]
        )
    assert not (tmp_path / "out" / "evaluation.json").exists()


def test_label_mapping_offers_the_real_choices(tmp_path, model_path):
    result = _eval(model_path, "--label-mapping", "minus_one", timeout=60)
    assert result.returncode == 2
    assert "invalid choice: 'minus_one'" in result.stderr and "identity" in result.stderr
    assert "reduce_zero" in result.stderr


def test_an_empty_tfrecord_shard_is_named_instead_of_skipped(tmp_path, model_path):
    from enc_tf.data import folder_source, write_tfrecords

    layouts.write_folder(str(tmp_path / "src"), np.random.default_rng(1), n=4, with_split=False)
    converted = write_tfrecords(
        folder_source(str(tmp_path / "src")), str(tmp_path / "tfr" / "val"), num_shards=2
    )
    open(converted.files[1], "wb").close()
    result = _eval(
        model_path,
        "--dataset",
        "tfrecord",
        "--root",
        str(tmp_path / "tfr"),
        "--split",
        "val",
        "--crop-size",
        "8",
        "--out",
        str(tmp_path / "out"),
        timeout=60,
    )
    assert result.returncode == 2, result.stderr[-3000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert (
        len(errors) == 1
        and os.path.basename(converted.files[1]) in errors[0]
        and "holds 0 examples" in errors[0]
    )
    assert not (tmp_path / "out").exists()
