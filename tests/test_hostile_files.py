"""Files that would run code, or are not what they claim, are refused with one line that
says what was refused and why; nothing in them runs."""

import keras
import pytest

from enc_tf.artifacts import load_model
from enc_tf.errors import ModelFileError
from enc_tf.state_dicts import read_checkpoint

torch = pytest.importorskip("torch")


class _Payload:
    """Unpickling this would create a file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_pickled_payload_in_a_pth_is_refused_and_never_runs(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pth"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "extra": _Payload(str(marker))}, path)
    with pytest.raises(ModelFileError, match="Refused to read .*pickled Python objects") as err:
        read_checkpoint(str(path))
    assert "\n" not in str(err.value) and not marker.exists()


@pytest.mark.parametrize(
    "payload, message",
    [([torch.zeros(2)], "holds a list, not a state_dict"), ({"w": 3}, "1 entries are not tensors")],
)
def test_a_pth_that_is_no_state_dict_is_one_line(tmp_path, payload, message):
    path = tmp_path / "odd.pth"
    torch.save(payload, path)
    with pytest.raises(ModelFileError, match=message) as err:
        read_checkpoint(str(path))
    assert "corrupt" not in str(err.value)


def test_a_keras_file_with_python_code_is_refused(tmp_path):
    inputs = keras.Input((4,))
    outputs = keras.layers.Lambda(lambda x: x * 2)(inputs)  # stands for any code
    path = tmp_path / "lambda.keras"
    keras.Model(inputs, {"seg": outputs}).save(path)
    with pytest.raises(ModelFileError, match="Refused to load .*Python code .*Lambda") as err:
        load_model(str(path))
    assert "corrupt" not in str(err.value) and "\n" not in str(err.value)
