"""The one command-line frame: one line per expected failure, its exit status, quiet TensorFlow."""

import argparse
import io
import logging
import os
import subprocess

import pytest

from enc_tf.console import DownloadProgress, ProgressBar, run_cli
from enc_tf.errors import ConfigError, DataError
from tests.support.commands import command

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _parser():
    parser = argparse.ArgumentParser(prog="probe")
    parser.add_argument("what")
    return parser


def _fail(args):
    if args.what == "config":
        raise ConfigError("train.epochs must be positive,\n  got 0.")
    if args.what == "data":
        raise DataError("Mask m.png has values [44].", exit_code=1)
    if args.what == "disk":
        raise OSError(28, "No space left on device", "/runs/x/model.keras")
    if args.what == "bug":
        raise KeyError("a bug in enc_tf")
    return 3


@pytest.mark.parametrize(
    "what, code, line",
    [
        ("config", 2, "error: train.epochs must be positive, got 0."),
        ("data", 1, "error: Mask m.png has values [44]."),
        ("disk", 1, "error: No space left on device: /runs/x/model.keras"),
    ],
)
def test_expected_failures_are_one_line_and_their_exit_status(what, code, line, capsys):
    assert run_cli(_parser(), _fail, [what]) == code
    assert capsys.readouterr().err.splitlines() == [line]


def test_a_bug_keeps_its_traceback_and_a_status_passes_through():
    with pytest.raises(KeyError):
        run_cli(_parser(), _fail, ["bug"])
    assert run_cli(_parser(), _fail, ["ok"]) == 3


def _stderr_lines(*flags):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONPATH": ROOT}
    argv = command("enc-data", "check", "--dataset", "folder", "--root", "/nonexistent/dataset")
    done = subprocess.run(argv + list(flags), env=env, capture_output=True, text=True, timeout=120)
    return done.returncode, [line for line in done.stderr.splitlines() if line.strip()]


def test_tensorflow_start_up_noise_is_hidden_unless_verbose():
    code, lines = _stderr_lines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: "), lines
    code, verbose = _stderr_lines("--verbose")
    assert code == 2 and len(verbose) > 1 and verbose[-1] == lines[0], verbose


class _Terminal(io.StringIO):
    def isatty(self):
        return True


def test_progress_bar_redraws_in_place_on_a_terminal_and_ends_the_line():
    stream = _Terminal()
    bar = ProgressBar("images", "segmenting", stream=stream, width=10, interval=0)
    for done in range(1, 5):
        bar(done, 4)
    text = stream.getvalue()
    assert text.count("\r") == 4 and text.endswith("[##########] 4/4 images\n"), text
    assert "segmenting [#####.....] 2/4 images" in text and " left" in text


def test_progress_bar_logs_each_tenth_off_a_terminal(caplog):
    stream = io.StringIO()
    bar = ProgressBar("samples", "checking", stream=stream)
    with caplog.at_level(logging.INFO, logger="enc_tf.console"):
        for done in range(1, 101):
            bar(done, 100)
    lines = [r.getMessage() for r in caplog.records]
    assert stream.getvalue() == "" and len(lines) == 10, lines
    assert lines[0].startswith("checking [===") and "10/100 samples" in lines[0]
    assert "100/100 samples" in lines[-1]


def test_download_progress_is_silent_off_a_terminal_and_counts_megabytes_on_one(caplog):
    with caplog.at_level(logging.INFO):
        DownloadProgress(stream=io.StringIO())(5_000_000, 10_000_000)
    assert not caplog.records
    stream = _Terminal()
    DownloadProgress(stream=stream)(10_000_000, 10_000_000)
    assert "10.0/10.0 MB" in stream.getvalue()
