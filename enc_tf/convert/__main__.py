import sys

from enc_tf.convert.cli import main

sys.exit(main())
