"""The root scripts stay thin, run from any directory, and never shadow an installed package."""

import glob
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPTS = ["train.py"] + sorted(
    os.path.relpath(p, ROOT) for p in glob.glob(os.path.join(ROOT, "export", "*.py"))
)


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_root_script_shadows_no_importable_module(script):
    # `python export/onnx.py` puts export/ first on sys.path, so a script named like a
    # package (onnx, tensorflow, ...) hides that package from everything it imports.
    stem = os.path.splitext(os.path.basename(script))[0]
    probe = "import importlib.util, sys; print(importlib.util.find_spec(sys.argv[1]) is None)"
    found = subprocess.run(
        [sys.executable, "-c", probe, stem], cwd="/", capture_output=True, text=True
    )
    assert found.stdout.strip() == "True", f"{script} shadows the installed module {stem!r}"


@pytest.mark.parametrize("script", SCRIPTS)
def test_a_root_script_answers_help(script):
    done = subprocess.run(
        [sys.executable, os.path.join(ROOT, script), "--help"],
        cwd="/",
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0 and "usage:" in done.stdout, done.stderr[-2000:]
