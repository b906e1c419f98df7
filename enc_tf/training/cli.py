"""`python train.py --config configs/<recipe>.yaml [--set key.sub=value ...]` (also `enc-train`).

Exit status: 0 when the run finished, 1 when it failed while training (a NaN/inf
loss, a data error, a write error; the last good state is kept and a restart
resumes from it), 2 for a configuration error found before anything ran.
"""

from enc_tf.config import load_config
from enc_tf.console import command_parser, run_cli
from enc_tf.training.trainer import train


def _run(args):
    train(load_config(args.config, args.set))


def main(argv=None):
    parser = command_parser("train.py", __doc__)
    parser.add_argument("--config", help="YAML recipe (configs/*.yaml); defaults when omitted")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config value, e.g. --set train.epochs=10 (repeatable)",
    )
    return run_cli(parser, _run, argv)
