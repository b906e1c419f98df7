r"""Export a trained model to TFLite (also `enc-export-tflite`).

python export/to_tflite.py runs/context_shapes_encnet --out encnet_int8.tflite \
    --mode int8 --size 128
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _enc_tf_launch import enc_export_tflite as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
