"""The package as a user installs it: the wheel holds the library, its recipes and its
typing marker, and its console scripts run from a fresh virtual environment.

No network: the wheel is built with this environment's setuptools (no build isolation), and
the fresh environment borrows this one's dependencies (TensorFlow and the rest) through a
`.pth` line instead of downloading them; enc_tf itself comes only from the wheel.
"""

import importlib
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

import _enc_tf_launch
import enc_tf

ROOT = Path(__file__).resolve().parents[1]


def test_the_version_has_one_home():
    with open(ROOT / "pyproject.toml", "rb") as f:
        project = tomllib.load(f)["project"]
    assert "version" not in project and project["dynamic"] == ["version"]
    assert enc_tf.__version__.count(".") == 2


def test_every_command_starts_in_the_launcher_and_the_launcher_has_no_others():
    with open(ROOT / "pyproject.toml", "rb") as f:
        scripts = tomllib.load(f)["project"]["scripts"]
    entries = {name: f"_enc_tf_launch:{name.replace('-', '_')}" for name in scripts}
    assert scripts == entries
    launched = {n for n, v in vars(_enc_tf_launch).items() if hasattr(v, "module")}
    assert launched == {target.split(":")[1] for target in scripts.values()}
    for name in launched:  # each names a module with a main
        module = getattr(_enc_tf_launch, name).module
        assert callable(importlib.import_module(module).main), module


@pytest.fixture(scope="module")
def wheel(tmp_path_factory):
    out = tmp_path_factory.mktemp("wheel")
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
        + ["--no-index", "--quiet", "--wheel-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert build.returncode == 0, build.stderr[-3000:]
    (path,) = out.glob("enc_tf-*.whl")
    return path


def test_the_wheel_holds_the_library_its_recipes_and_license_and_no_tests(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    recipes = {n for n in names if n.startswith("enc_tf/configs/") and n.endswith(".yaml")}
    shipped = {f"enc_tf/configs/{p.name}" for p in (ROOT / "enc_tf" / "configs").glob("*.yaml")}
    assert recipes == shipped and "enc_tf/configs/context_shapes.yaml" in recipes
    assert "enc_tf/py.typed" in names and "enc_tf/layers/encoding.py" in names
    assert "_enc_tf_launch.py" in names  # where the commands start
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.startswith(("tests/", "benchmarks/")) for n in names)
    metadata = next(n for n in names if n.endswith(".dist-info/METADATA"))
    text = zipfile.ZipFile(wheel).read(metadata).decode()
    assert f"Version: {enc_tf.__version__}" in text and "License-Expression: Apache-2.0" in text
    assert "Provides-Extra: demo" in text and "Requires-Python: >=3.10" in text


@pytest.mark.slow
def test_the_wheel_installs_into_a_fresh_venv_and_its_commands_run(wheel, tmp_path):
    venv = tmp_path / "fresh"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    # The dependencies, not enc_tf: this environment's editable enc_tf is activated by a
    # .pth file, which a directory named in a .pth line does not run.
    Path(site, "borrowed_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps"]
        + ["--no-index", "--quiet", str(wheel)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert install.returncode == 0, install.stderr[-3000:]
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("PYTHONPATH", None)

    def run(*command):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert done.returncode == 0, (command, done.stderr[-3000:])
        return done.stdout

    where = run(python, "-c", "import enc_tf; print(enc_tf.__file__)")
    assert where.startswith(site), where  # the wheel's copy, not the checkout
    assert "usage: enc-train" in run(venv / "bin" / "enc-train", "--help")
    assert "usage: enc-predict" in run(venv / "bin" / "enc-predict", "--help")
    failed = subprocess.run(  # TensorFlow's start-up lines hidden: one line, the error
        [venv / "bin" / "enc-data", "check", "--dataset", "folder", "--root", "/nonexistent"],
        env={**env, "TF_CPP_MIN_LOG_LEVEL": ""},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert failed.returncode == 2 and len(failed.stderr.strip().splitlines()) == 1, failed.stderr
    assert run(venv / "bin" / "enc-eval", "--version").strip() == (
        f"enc-eval (enc_tf) {enc_tf.__version__}"
    )
    recipe = run(
        python,
        "-c",
        "from enc_tf.config import load_config; "
        "print(load_config('ade20k_encnet_resnet50s').model.backbone)",
    )
    assert recipe.strip() == "resnet50s"  # a shipped recipe, by name, outside the checkout
