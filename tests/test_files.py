import os

import pytest

from enc_tf.files import atomic_write, write_bytes_atomic


def test_write_bytes_atomic_creates_directories(tmp_path):
    path = str(tmp_path / "a" / "b" / "model.bin")
    assert write_bytes_atomic(b"abc", path) == path
    assert open(path, "rb").read() == b"abc"
    umask = os.umask(0o022)
    os.umask(umask)
    assert os.stat(path).st_mode & 0o777 == 0o666 & ~umask  # as open() would, not mkstemp's 0600
    write_bytes_atomic(b"new", path)
    assert open(path, "rb").read() == b"new"


def test_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path):
    path = str(tmp_path / "report.json")
    write_bytes_atomic(b"old", path)

    def half_write(tmp):
        assert tmp.endswith(".json") and os.path.dirname(tmp) == str(tmp_path)
        with open(tmp, "w") as f:
            f.write("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        atomic_write(path, half_write)
    assert open(path, "rb").read() == b"old"
    assert os.listdir(tmp_path) == ["report.json"]
