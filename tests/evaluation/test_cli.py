import json

import numpy as np
from PIL import Image

from enc_tf.contracts.images import normalize
from enc_tf.data import folder_source
from enc_tf.data.io import read_pair
from enc_tf.evaluation.cli import main as eval_main
from enc_tf.metrics import label_confusion, segmentation_scores
from enc_tf.prediction import MultiScaleConfig, MultiScalePredictor
from tests.support import layouts
from tests.support.tiny_models import tiny_segmenter


def test_eval_cli_single_and_multi_scale(tmp_path):
    root = tmp_path / "data"
    layouts.write_folder(str(root), np.random.default_rng(0), n=3, with_split=False)
    model = tiny_segmenter(3, seed=4)
    model_path = str(tmp_path / "tiny.keras")
    model.save(model_path)
    source = folder_source(str(root))
    pairs = [read_pair(i, m, source.lookup, 255) for i, m in source.samples]
    common = [
        model_path,
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "",
        "--crop-size",
        "8",
    ]

    out = tmp_path / "single"
    assert eval_main(common + ["--out", str(out)]) == 0
    predictor = MultiScalePredictor(model, 3, MultiScaleConfig(14, 8, (1.0,), False))
    expected = sum(
        label_confusion(label, predictor.predict(normalize(image).numpy(), max(image.shape[:2])), 3)
        for image, label in pairs
    )
    np.testing.assert_array_equal(np.load(out / "confusion_matrix.npy"), expected)
    record = json.loads((out / "evaluation.json").read_text())
    reference = segmentation_scores(expected, ["road", "car", "tree"])
    assert abs(record["mean_iou"] - reference["mean_iou"]) < 1e-12
    assert (
        record["class_names"] == ["road", "car", "tree"] and "mean_iou_present" in record["notes"]
    )
    assert record["protocol"]["mode"].startswith("single-scale")
    assert Image.open(out / "confusion_matrix.png").size[0] > 3 * 24

    out = tmp_path / "multi"
    assert (
        eval_main(
            common
            + ["--out", str(out), "--multi-scale", "--base-size", "12", "--scales", "0.75", "1.5"]
        )
        == 0
    )
    predictor = MultiScalePredictor(model, 3, MultiScaleConfig(12, 8, (0.75, 1.5), True))
    expected = sum(
        label_confusion(label, predictor.predict(normalize(image).numpy()), 3)
        for image, label in pairs
    )
    np.testing.assert_array_equal(np.load(out / "confusion_matrix.npy"), expected)
    assert json.loads((out / "evaluation.json").read_text())["protocol"]["flip"] is True

    # Errors name what is wrong.
    assert eval_main([model_path, "--out", str(out)]) == 2  # no data and not a run directory
    wrong = tiny_segmenter(4)
    wrong.save(str(tmp_path / "four.keras"))
    assert eval_main([str(tmp_path / "four.keras")] + common[1:]) == 2


def test_eval_cli_on_two_workers_sums_their_shards(tmp_path):
    import json as json_lib
    import os
    import subprocess
    import sys

    from tests.training.test_multi_worker import ROOT, _free_ports

    root = tmp_path / "data"
    layouts.write_folder(
        str(root), np.random.default_rng(1), n=5, with_split=False
    )  # shards of 3 and 2
    model_path = str(tmp_path / "tiny.keras")
    tiny_segmenter(3, seed=6).save(model_path)
    common = [
        model_path,
        "--dataset",
        "folder",
        "--root",
        str(root),
        "--split",
        "",
        "--crop-size",
        "8",
    ]
    assert eval_main(common + ["--out", str(tmp_path / "one")]) == 0
    workers = [f"127.0.0.1:{p}" for p in _free_ports(2)]
    processes = []
    try:
        for index in range(2):
            env = {
                **os.environ,
                "PYTHONPATH": ROOT,
                "TF_CPP_MIN_LOG_LEVEL": "3",
                "TF_CONFIG": json_lib.dumps(
                    {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
                ),
            }
            processes.append(
                subprocess.Popen(
                    [
                        sys.executable,
                        "-m",
                        "enc_tf.evaluation.cli",
                        *common,
                        "--out",
                        str(tmp_path / f"two{index}"),
                    ],
                    env=env,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    start_new_session=True,
                )
            )
        outputs = [p.communicate(timeout=300)[0] for p in processes]
    finally:
        for p in processes:
            if p.poll() is None:
                p.kill()
    assert [p.returncode for p in processes] == [0, 0], [o[-2000:] for o in outputs]
    # The chief writes the report: the sum over both workers' shards equals one process.
    np.testing.assert_array_equal(
        np.load(tmp_path / "two0" / "confusion_matrix.npy"),
        np.load(tmp_path / "one" / "confusion_matrix.npy"),
    )
    assert not (tmp_path / "two1").exists()
