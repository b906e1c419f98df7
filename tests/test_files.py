import os

import pytest

from enc_tf import files
from enc_tf.files import atomic_write, write_bytes_atomic
from tests.support.files import dead_pid, stale_temporary_name


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


def _directory_writer(text):
    def write(tmp):
        os.makedirs(tmp)
        with open(os.path.join(tmp, "saved_model.pb"), "w") as f:
            f.write(text)

    return write


def test_only_temporaries_of_dead_writers_are_removed(tmp_path):
    mine = stale_temporary_name("a.keras", pid=os.getpid())  # a running writer's
    dead = stale_temporary_name("b.keras")
    for name in (mine, dead, ".tmp-my-notes.txt", ".tmp-draft", "notes.tmp", ".hidden"):
        (tmp_path / name).write_text("x")
    removed = files.remove_stale_temporaries(str(tmp_path))
    assert removed == [str(tmp_path / dead)]
    assert sorted(os.listdir(tmp_path)) == sorted(
        [mine, ".tmp-my-notes.txt", ".tmp-draft", "notes.tmp", ".hidden"]
    )


@pytest.mark.parametrize("moment", ["after moving the old aside", "after the new is in place"])
def test_a_swap_killed_between_its_renames_is_rolled_back_or_finished(tmp_path, moment):
    target = tmp_path / "1"
    files.atomic_write(str(target), _directory_writer("old"))
    # What a writer killed during the swap leaves (its PID is dead): the old version
    # moved aside, and the new one either still under its temporary name or in place.
    pid = dead_pid()
    aside = tmp_path / f"{files.ASIDE_PREFIX}{pid}-1"
    os.replace(target, aside)
    new = tmp_path / stale_temporary_name("1", pid=pid)
    _directory_writer("new")(str(new))
    if moment == "after the new is in place":
        os.replace(new, target)
    files.remove_stale_temporaries(str(tmp_path))
    expected = "old" if moment == "after moving the old aside" else "new"
    assert (target / "saved_model.pb").read_text() == expected
    assert os.listdir(tmp_path) == ["1"]


def test_a_failed_second_rename_puts_the_old_version_back(tmp_path, monkeypatch):
    target = tmp_path / "1"
    files.atomic_write(str(target), _directory_writer("old"))
    real = os.replace

    def failing(src, dst):
        if os.path.basename(str(src)).startswith(files.TEMP_PREFIX):
            raise OSError(28, "No space left on device", str(dst))
        real(src, dst)

    monkeypatch.setattr(files.os, "replace", failing)
    with pytest.raises(OSError):
        files.atomic_write(str(target), _directory_writer("new"))
    assert (target / "saved_model.pb").read_text() == "old"
    assert os.listdir(tmp_path) == ["1"]


def test_a_held_lock_refuses_a_second_holder_and_names_the_first(tmp_path):
    lock = str(tmp_path / "run.lock")
    with files.file_lock(lock, wait=False, holder="pid 123"):
        with pytest.raises(BlockingIOError, match="pid 123"):
            with files.file_lock(lock, wait=False):
                pass
    with files.file_lock(lock, wait=False):  # released with the first holder
        pass
