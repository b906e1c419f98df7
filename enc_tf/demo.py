"""`make demo`: train EncNet-ResNet50s on ContextShapes, evaluate it, draw predictions.

`python -m enc_tf.demo [--config configs/context_shapes.yaml] [--set key=value ...]`
"""

import argparse
import json
import logging
import os
import sys

import numpy as np
from PIL import Image, ImageDraw

from enc_tf.data import PipelineConfig, build_dataset, denormalize
from enc_tf.evaluation import evaluate, format_scores
from enc_tf.training import load_config, make_sources, train
from enc_tf.visualize import add_legend, colorize

DEFAULT_CONFIG = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs", "context_shapes.yaml")


def prediction_panel(image, label, prediction, classes):
    """input | ground truth | prediction, side by side, with a legend of the classes shown."""
    strip = np.concatenate([denormalize(image), colorize(label, classes.palette), colorize(prediction, classes.palette)], axis=1)
    shown = sorted(set(np.unique(label).tolist()) | set(np.unique(prediction).tolist()) - {255})
    shown = [c for c in shown if c < classes.num_classes]
    scale = 3
    panel = Image.fromarray(strip).resize((strip.shape[1] * scale, strip.shape[0] * scale), Image.NEAREST)
    draw = ImageDraw.Draw(panel)
    third = panel.width // 3
    for i, title in enumerate(("input", "ground truth", "prediction")):
        draw.text((i * third + 4, 2), title, fill="white")
    return add_legend(panel, classes, shown)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m enc_tf.demo", description=__doc__)
    parser.add_argument("--config", default=DEFAULT_CONFIG)
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--num-images", type=int, default=6)
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    config = load_config(args.config, args.set)
    model, _ = train(config)
    _, val_source = make_sources(config.data)
    classes = val_source.classes
    data = build_dataset(val_source, "eval", PipelineConfig(batch_size=8), aux=False, se_loss=False)
    scores, matrix = evaluate(model, data, classes.num_classes, val_source.ignore_index, classes.names)
    run_dir = config.train.run_dir
    out_dir = os.path.join(run_dir, "predictions")
    os.makedirs(out_dir, exist_ok=True)
    images, targets = next(iter(data.unbatch().batch(args.num_images)))
    predictions = np.argmax(model(images, training=False)["seg"], -1)
    for i in range(len(images)):
        prediction_panel(images[i].numpy(), targets["seg"][i].numpy(), predictions[i], classes).save(
            os.path.join(out_dir, f"val_{i:02d}.png")
        )
    with open(os.path.join(run_dir, "evaluation.json"), "w") as f:
        json.dump(scores, f, indent=1)
    np.save(os.path.join(run_dir, "confusion_matrix.npy"), matrix)
    print(format_scores(scores))
    print(f"\nmodel:        {os.path.join(run_dir, 'model.keras')}")
    print(f"checkpoints:  {os.path.join(run_dir, 'checkpoints')}")
    print(f"predictions:  {out_dir}")
    print(f"evaluation:   {os.path.join(run_dir, 'evaluation.json')} (+ confusion_matrix.npy)")
    print(f"logs:         {os.path.join(run_dir, 'log.csv')}, TensorBoard: tensorboard --logdir {os.path.join(run_dir, 'tensorboard')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
