"""`python train.py --config configs/<recipe>.yaml [--set key.sub=value ...]` (also `enc-train`).

Exit status: 0 when the run finished, 1 when it failed while training (a NaN/inf
loss, a data error, a write error; the last good state is kept and a restart
resumes from it), 2 for a configuration error found before anything ran (a run
directory held by another training, or holding a run with another configuration,
included).
"""

import argparse

from enc_tf.config import load_config
from enc_tf.console import add_recipe_options, command_parser, run_cli
from enc_tf.training.trainer import train


def _run(args):
    train(load_config(args.config, args.set), restart=args.restart)


def main(argv=None):
    parser = command_parser("enc-train", __doc__)
    add_recipe_options(parser)
    parser.add_argument(
        "--restart",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="train.run_dir holds a run: move it aside (<run_dir>.replaced-<time>) and start "
        "afresh instead of resuming it",
    )
    return run_cli(parser, _run, argv)
