import atexit
import os
import shutil
import tempfile

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# enc_tf's cache (datasets, downloads, time-budget plans) is the session's own, never the
# user's; tests that need another set ENC_TF_HOME themselves.
_HOME = tempfile.mkdtemp(prefix="enc_tf-test-home-")
os.environ["ENC_TF_HOME"] = _HOME
atexit.register(shutil.rmtree, _HOME, True)
