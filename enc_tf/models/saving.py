"""Saving models without ever leaving a half-written file."""

import os
import tempfile


def save_model_atomic(model, path):
    """Saves a `.keras` file through a temporary file in the same directory and a rename."""
    if not str(path).endswith(".keras"):
        raise ValueError(f"Output path must end in .keras, got {path!r}.")
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(suffix=".keras", dir=directory)
    os.close(fd)
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
