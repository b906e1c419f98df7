"""A missing optional package is one line that says how to install it, through every path that
needs one."""

import sys

import numpy as np
import pytest

from enc_tf.errors import EncTfError, MissingDependency, import_optional
from enc_tf.export.tflite import TFLiteRunner
from enc_tf.state_dicts import read_state_dict, write_state_dict


def test_a_missing_package_is_one_line_naming_it_and_the_fix():
    with pytest.raises(MissingDependency) as caught:
        import_optional("enc_tf_no_such_package.sub", "Doing X", "pip install x.")
    err = caught.value
    assert (
        str(err) == "Doing X needs 'enc_tf_no_such_package', which is not installed: pip install x."
    )
    assert isinstance(err, EncTfError) and isinstance(err, ImportError) and err.exit_code == 1
    assert import_optional("json", "Reading", "") is sys.modules["json"]


@pytest.mark.parametrize("hidden", ["torch", "safetensors", "ai_edge_litert"])
def test_each_optional_package_missing(hidden, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, hidden, None)  # an import of it raises ImportError
    monkeypatch.delitem(sys.modules, f"{hidden}.numpy", raising=False)
    monkeypatch.delitem(sys.modules, f"{hidden}.interpreter", raising=False)
    for name in ("weights.pth", "weights.safetensors"):
        (tmp_path / name).write_bytes(b"x" * 10)
    with pytest.raises(MissingDependency, match=f"needs '{hidden}'"):
        if hidden == "torch":
            read_state_dict(str(tmp_path / "weights.pth"))
        elif hidden == "safetensors":
            read_state_dict(str(tmp_path / "weights.safetensors"))
        else:
            TFLiteRunner(model_content=b"")
    if hidden == "torch":
        with pytest.raises(MissingDependency, match="Writing .*needs 'torch'"):
            write_state_dict({"w": np.zeros(2)}, str(tmp_path / "out.pt"))
