"""Export a trained model to ONNX (also `enc-export-onnx`).

python export/to_onnx.py runs/context_shapes_encnet --out encnet.onnx
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _enc_tf_launch import enc_export_onnx as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
