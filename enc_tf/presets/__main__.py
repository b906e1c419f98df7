import sys

from enc_tf.presets.cli import main

sys.exit(main())
