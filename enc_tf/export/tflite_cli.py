"""`enc-export-tflite`: `enc-export` with `--format tflite` as its default (see
`enc_tf.export.cli`)."""

import sys

from enc_tf.console import run_cli
from enc_tf.export.cli import build_parser, run


def main(argv=None):
    return run_cli(build_parser("enc-export-tflite", "tflite"), run, argv)


if __name__ == "__main__":
    sys.exit(main())
