"""The smallest real training run: EncNet-ResNet50s on a 8-image ContextShapes at 48 px."""

import os
import sys

from enc_tf.data import ensure_context_shapes

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def tiny_overrides(tmp_path, run_dir, steps, *extra):
    """`--set` values of the tiny run (ContextShapes generated once under `tmp_path/cache`): the
    smallest backbone, whose checkpoints are 7 MB instead of ResNet-50's 100 MB; `extra`
    values come last and win."""
    cache = str(tmp_path / "cache")
    ensure_context_shapes(cache, 8, 4, 64)
    return [
        f"data.root={cache}",
        "data.context_shapes_train=8",
        "data.context_shapes_val=4",
        "data.context_shapes_size=64",
        "data.base_size=64",
        "data.crop_size=48",
        "model.backbone=mobilenetv3_small_minimalistic",
        "model.output_stride=16",
        "train.batch_size=2",
        f"train.steps_per_epoch={steps}",
        f"train.run_dir={run_dir}",
        "optimizer.base_lr=0.004",
        *extra,
    ]


def train_command(overrides):
    """`python train.py --set ...` of this checkout."""
    return [sys.executable, os.path.join(ROOT, "train.py")] + [
        a for o in overrides for a in ("--set", o)
    ]
