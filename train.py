"""Train EncNet: python train.py --config configs/<recipe>.yaml [--set key.sub=value ...]"""

import sys

from _enc_tf_launch import enc_train as main

if __name__ == "__main__":
    sys.exit(main())
