"""Exporting trained models: SavedModel for TensorFlow Serving (`saved_model`), TFLite
(`tflite`), ONNX (`onnx`), and scoring the exports against Keras (`compare`)."""

from enc_tf.export.saved_model import ServingModule, export_saved_model

__all__ = ["ServingModule", "export_saved_model"]
