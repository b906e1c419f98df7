import sys

from enc_tf.data.cli import main

sys.exit(main())
