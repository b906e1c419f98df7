"""Saving models without ever leaving a half-written file."""

from enc_tf.files import atomic_write


def save_model_atomic(model, path):
    """Saves a `.keras` file through a temporary file in the same directory and a rename."""
    if not str(path).endswith(".keras"):
        raise ValueError(f"Output path must end in .keras, got {path!r}.")
    atomic_write(str(path), model.save)
