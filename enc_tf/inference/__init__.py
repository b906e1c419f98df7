"""Inference on users' images, and loading trained models for it."""

from enc_tf.artifacts import LoadedModel, load_model
from enc_tf.inference.segmenter import Prediction, Segmenter, to_rgb_array

__all__ = ["LoadedModel", "Prediction", "Segmenter", "load_model", "to_rgb_array"]
