"""Export a trained model as a SavedModel for TensorFlow Serving (also `enc-export`).

python export/to_saved_model.py runs/context_shapes_encnet --base-dir exported --name encnet
"""

import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from _enc_tf_launch import enc_export as main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
