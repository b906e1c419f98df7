import json

import keras
import numpy as np
import pytest
from PIL import Image

from enc_tf.contracts.images import normalize
from enc_tf.data import folder_source
from enc_tf.data.io import read_pair
from enc_tf.evaluation.cli import main as eval_main
from enc_tf.layers.resize import BilinearResize
from enc_tf.metrics import label_confusion, segmentation_scores
from enc_tf.protocols import MMSegConfig, MMSegPredictor, PaperConfig, PaperPredictor
from tests.support import layouts
from tests.support.commands import command
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
    predictor = PaperPredictor(model, 3, PaperConfig(14, 8, (1.0,), False))
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
    predictor = PaperPredictor(model, 3, PaperConfig(12, 8, (0.75, 1.5), True))
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
                    command("enc-eval", *common, "--out", tmp_path / f"two{index}"),
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


def _upsampling_model(align_corners, seed=3):
    """A functional model whose `seg` layer is a `BilinearResize`, as enc_tf saves: it records
    its align_corners."""
    images = keras.Input((None, None, 3), name="images")
    low = keras.layers.Conv2D(3, 3, padding="same", name="conv")(
        keras.layers.AveragePooling2D(2, padding="same")(images)
    )
    seg = BilinearResize(align_corners, name="seg")([low, images])
    model = keras.Model(images, {"seg": seg})
    rng = np.random.default_rng(seed)
    model.set_weights([rng.normal(0, 0.6, w.shape).astype("float32") for w in model.weights])
    return model


def _folder_data(tmp_path):
    root = tmp_path / "data"
    layouts.write_folder(str(root), np.random.default_rng(0), n=3, with_split=False)
    source = folder_source(str(root))
    pairs = [read_pair(i, m, source.lookup, 255) for i, m in source.samples]
    return ["--dataset", "folder", "--root", str(root), "--split", ""], pairs


def _confusion(predictor, pairs):
    return sum(
        label_confusion(label, predictor.predict(normalize(image).numpy()), 3)
        for image, label in pairs
    )


def test_eval_cli_mmseg_protocol(tmp_path, capsys):
    data, pairs = _folder_data(tmp_path)
    model = _upsampling_model(align_corners=False)
    model_path = str(tmp_path / "upsampling.keras")
    model.save(model_path)

    # Whole, single scale: align_corners comes from the model.
    out = tmp_path / "whole"
    argv = [model_path, *data, "--protocol", "mmseg", "--mmseg-scale", "24", "16"]
    assert eval_main(argv + ["--out", str(out)]) == 0
    predictor = MMSegPredictor(model, 3, MMSegConfig(scale=(24, 16), align_corners=False))
    np.testing.assert_array_equal(
        np.load(out / "confusion_matrix.npy"), _confusion(predictor, pairs)
    )
    record = json.loads((out / "evaluation.json").read_text())
    protocol = record["protocol"]
    assert protocol["protocol"] == "mmseg" and protocol["mode"] == "whole"
    assert protocol["scale"] == [24, 16] and protocol["ratios"] == [1.0] and not protocol["flip"]
    assert protocol["crop_size"] is None and protocol["stride"] is None
    assert protocol["align_corners"] is False and protocol["align_corners_from"] == "model"
    assert protocol["compare_with_mmsegmentation"] == "mean_iou_present"
    assert "MMSegmentation" in record["notes"]["mean_iou_present"]
    assert "MMSegmentation's mIoU (mean_iou_present)" in capsys.readouterr().out

    # Slide, multi-scale with flip; an explicit --align-corners wins over the model's.
    out = tmp_path / "slide"
    options = ["--mmseg-mode", "slide", "--crop-size", "8", "--slide-stride", "5"]
    options += ["--multi-scale", "--scales", "0.75", "1.25", "--align-corners"]
    assert eval_main(argv + options + ["--window-batch", "3", "--out", str(out)]) == 0
    config = MMSegConfig(
        scale=(24, 16),
        mode="slide",
        crop_size=8,
        stride=5,
        ratios=(0.75, 1.25),
        flip=True,
        align_corners=True,
    )
    np.testing.assert_array_equal(
        np.load(out / "confusion_matrix.npy"), _confusion(MMSegPredictor(model, 3, config), pairs)
    )
    protocol = json.loads((out / "evaluation.json").read_text())["protocol"]
    assert protocol == {
        "model": model_path,
        "dataset": "folder",
        "split": "",
        "precision": "float32",
        **config.description(),
        "preset": None,
        "align_corners_from": "--align-corners",
        "compare_with_mmsegmentation": "mean_iou_present",
    }
    assert protocol["crop_size"] == 8 and protocol["stride"] == 5 and protocol["flip"] is True

    # A preset sets mode, scale, crop and stride; the model's align_corners still wins.
    out = tmp_path / "preset"
    argv = [model_path, *data, "--protocol", "mmseg", "--mmseg-preset", "cityscapes-769"]
    assert eval_main(argv + ["--limit", "1", "--out", str(out)]) == 0
    protocol = json.loads((out / "evaluation.json").read_text())["protocol"]
    assert (protocol["mode"], protocol["scale"], protocol["crop_size"], protocol["stride"]) == (
        "slide",
        [2049, 1025],
        769,
        513,
    )
    assert protocol["preset"] == "cityscapes-769" and protocol["align_corners"] is False

    # The paper's protocol is still the default, and says so.
    out = tmp_path / "paper"
    assert eval_main([model_path, *data, "--crop-size", "8", "--out", str(out)]) == 0
    protocol = json.loads((out / "evaluation.json").read_text())["protocol"]
    assert protocol["protocol"] == "paper" and protocol["crop_size"] == 8


def test_eval_cli_mmseg_bad_options_are_one_line(tmp_path, capsys):
    data, _ = _folder_data(tmp_path)
    plain = str(tmp_path / "plain.keras")
    tiny_segmenter(3, seed=4).save(plain)  # records no align_corners
    mmseg = [plain, *data, "--protocol", "mmseg"]
    slide = mmseg + ["--mmseg-mode", "slide"]
    cases = [
        (
            slide + ["--slide-stride", "0"],
            "--slide-stride must be an integer from 1 to the crop size 769, got 0.",
        ),
        (
            slide + ["--crop-size", "8", "--slide-stride", "9"],
            "--slide-stride must be an integer from 1 to the crop size 8, got 9.",
        ),
        (slide + ["--crop-size", "0"], "--crop-size must be a positive integer, got 0."),
        (
            mmseg + ["--mmseg-scale", "0", "16"],
            "--mmseg-scale must be two positive integers (long, short), got [0, 16].",
        ),
        (
            mmseg + ["--multi-scale", "--scales", "1", "-0.5"],
            "--scales must be positive numbers, got [1.0, -0.5].",
        ),
        (mmseg + ["--window-batch", "0"], "--window-batch must be a positive integer, got 0."),
        (mmseg + ["--crop-size", "8"], "--crop-size applies to --mmseg-mode slide only."),
        (mmseg + ["--scales", "1"], "--scales needs --multi-scale."),
        (mmseg + ["--base-size", "12"], "--base-size applies to --protocol paper only"),
        (
            [plain, *data, "--mmseg-scale", "24", "16"],
            "--mmseg-scale applies to --protocol mmseg only.",
        ),
        (mmseg, "--align-corners or --no-align-corners is needed"),  # the model does not say
    ]
    for argv, message in cases:
        assert eval_main(argv + ["--out", str(tmp_path / "out")]) == 2, argv
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and err.startswith(f"error: {message}"), (argv, err)
    assert not (tmp_path / "out").exists()
    # A value argparse cannot parse: its usage line and one error line naming the option.
    with pytest.raises(SystemExit) as exit_info:
        eval_main(mmseg + ["--mmseg-mode", "diagonal"])
    assert exit_info.value.code == 2 and "--mmseg-mode" in capsys.readouterr().err


def test_eval_cli_in_bfloat16(tmp_path, capsys):
    """--precision bfloat16 evaluates the float32 model's bfloat16 copy and says so; a
    SavedModel cannot change its precision."""
    from enc_tf.data.classes import make_class_info
    from enc_tf.export.saved_model import export_saved_model
    from enc_tf.models.precision import with_precision

    root = tmp_path / "data"
    layouts.write_folder(str(root), np.random.default_rng(0), n=3, with_split=False)
    model = tiny_segmenter(3, seed=4)
    model_path = str(tmp_path / "tiny.keras")
    model.save(model_path)
    data = ["--dataset", "folder", "--root", str(root), "--split", "", "--crop-size", "8"]
    out = tmp_path / "bf16"
    assert eval_main([model_path, *data, "--precision", "bfloat16", "--out", str(out)]) == 0
    record = json.loads((out / "evaluation.json").read_text())
    assert record["protocol"]["precision"] == "bfloat16"
    source = folder_source(str(root))
    pairs = [read_pair(i, m, source.lookup, 255) for i, m in source.samples]
    predictor = PaperPredictor(
        with_precision(model, "bfloat16"), 3, PaperConfig(14, 8, (1.0,), False)
    )
    expected = sum(
        label_confusion(label, predictor.predict(normalize(image).numpy(), max(image.shape[:2])), 3)
        for image, label in pairs
    )
    np.testing.assert_array_equal(np.load(out / "confusion_matrix.npy"), expected)
    classes = make_class_info(["road", "car", "tree"])
    exported = export_saved_model(model, classes, str(tmp_path / "serving"), "tiny")
    capsys.readouterr()
    assert eval_main([exported, *data, "--precision", "bfloat16", "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "is a SavedModel" in err and "--precision" in err
