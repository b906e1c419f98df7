"""Train EncNet: python train.py --config configs/<recipe>.yaml [--set key.sub=value ...]"""

import sys

from enc_tf.training.cli import main

if __name__ == "__main__":
    sys.exit(main())
