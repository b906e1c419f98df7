"""`python train.py --config configs/<recipe>.yaml [--set key.sub=value ...]` (also `enc-train`)."""

import argparse
import logging
import sys

from enc_tf.data.io import DataError
from enc_tf.training.config import ConfigError, load_config
from enc_tf.training.trainer import train


def main(argv=None):
    parser = argparse.ArgumentParser(prog="train.py", description=__doc__)
    parser.add_argument("--config", help="YAML recipe (configs/*.yaml); defaults when omitted")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="override a config value, e.g. --set train.epochs=10 (repeatable)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = load_config(args.config, args.set)
        train(config)
    except (ConfigError, DataError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0
