import os
import subprocess

import numpy as np

from tests.support import layouts
from tests.support.commands import command


def _run(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        command("enc-data", *args),
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


def test_check_reports_every_problem_at_once(tmp_path):
    root = tmp_path / "ds"
    layouts.write_folder(str(root), np.random.default_rng(0), n=4, with_split=False)
    (root / "images" / "img0.png").write_bytes(b"broken")
    layouts.save_mask(str(root / "masks" / "img1.png"), np.full((10, 14), 42))
    layouts.save_mask(str(root / "masks" / "img2.png"), np.zeros((3, 3)))
    result = _run("check", "--dataset", "folder", "--root", str(root))
    assert result.returncode == 1, result.stderr
    assert "3 problem(s)" in result.stdout
    assert (
        "img0.png" in result.stdout
        and "[42]" in result.stdout
        and "img2.png is 3x3" in result.stdout
    )
    os.remove(root / "images" / "img0.png")
    os.remove(root / "masks" / "img1.png")
    os.remove(root / "masks" / "img2.png")
    layouts.write_folder(str(tmp_path / "good"), np.random.default_rng(1), n=2, with_split=False)
    ok = _run("check", "--dataset", "folder", "--root", str(tmp_path / "good"))
    assert ok.returncode == 0 and "0 problem(s)" in ok.stdout and "road" in ok.stdout
    # progress in a log (stderr is not a terminal): a line per tenth of the work, the last 2/2
    assert "checking [" in ok.stderr and "2/2 samples" in ok.stderr, ok.stderr


def test_errors_and_conversion(tmp_path):
    unknown = _run("check", "--dataset", "coco", "--root", str(tmp_path))
    assert unknown.returncode == 2 and "invalid choice: 'coco'" in unknown.stderr
    missing = _run(
        "check", "--dataset", "ade20k", "--root", str(tmp_path / "nope"), "--split", "val"
    )
    assert missing.returncode == 2 and "not found" in missing.stderr
    layouts.write_ade20k(str(tmp_path / "ade"), np.random.default_rng(2))
    converted = _run(
        "to-tfrecord",
        "--dataset",
        "ade20k",
        "--root",
        str(tmp_path / "ade"),
        "--split",
        "val",
        "--out",
        str(tmp_path / "tfr"),
        "--shards",
        "2",
    )
    assert converted.returncode == 0, converted.stderr
    assert "wrote 3 examples in 2 shards" in converted.stdout
    assert "writing [" in converted.stderr and "3/3 examples" in converted.stderr


def test_check_lists_images_without_masks_with_every_other_problem(tmp_path):
    root = tmp_path / "ds"
    layouts.write_folder(str(root), np.random.default_rng(3), n=4, with_split=False)
    os.remove(root / "masks" / "img0.png")
    os.remove(root / "masks" / "img3.png")
    layouts.save_mask(str(root / "masks" / "img1.png"), np.full((10, 14), 42))
    result = _run("check", "--dataset", "folder", "--root", str(root))
    assert result.returncode == 1, result.stderr
    assert "2 samples, 3 problem(s)" in result.stdout
    assert (
        f"img0.png has no mask in {root / 'masks'}" in result.stdout
        and "img3.png has no mask" in result.stdout
    )
    assert "img1.png has values [42]" in result.stdout


def test_to_tfrecord_refuses_non_positive_shard_counts(tmp_path):
    layouts.write_folder(str(tmp_path / "ds"), np.random.default_rng(4), n=3, with_split=False)
    for bad in ("-2", "0", "two"):
        result = _run(
            "to-tfrecord",
            "--dataset",
            "folder",
            "--root",
            str(tmp_path / "ds"),
            "--out",
            str(tmp_path / "tfr"),
            "--shards",
            bad,
        )
        assert result.returncode == 2 and "must be a positive integer" in result.stderr, (
            result.stderr
        )
        assert "Traceback" not in result.stderr and result.stderr.count("error:") == 1
        assert not os.path.exists(tmp_path / "tfr")
