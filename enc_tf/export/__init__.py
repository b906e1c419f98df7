"""Exporting trained models: SavedModel for TensorFlow Serving."""

from enc_tf.export.saved_model import ServingModule, export_saved_model

__all__ = ["ServingModule", "export_saved_model"]
