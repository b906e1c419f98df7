"""Inference copies of a trained model: rebuilt in another dtype, or with BatchNorm folded.

Both return a new model holding the original's weights; the original is untouched
and keeps training.
"""

import keras
import numpy as np

from enc_tf.layers.normalization import BatchNorm
from enc_tf.models.encnet import SegmentationModel


def copy_model(model, dtype_policy=None):
    """A new model of the same architecture and weights.

    Args:
        model: an `EncNet` / `FCN` (rebuilt by its builder from `get_config`), or a
            functional model of built-in or registered layers (cloned layer by layer).
        dtype_policy: the copy's dtype policy (e.g. `mixed_bfloat16`); None keeps the
            model's.
    """
    if isinstance(model, SegmentationModel):
        previous = keras.config.dtype_policy()
        if dtype_policy is not None:
            keras.config.set_dtype_policy(dtype_policy)
        try:
            copy = model.__class__.from_config(model.get_config())
        finally:
            keras.config.set_dtype_policy(previous)
    else:

        def clone(layer):
            config = layer.get_config()
            if dtype_policy is not None:
                config["dtype"] = dtype_policy
            return layer.__class__.from_config(config)

        copy = keras.models.clone_model(model, clone_function=clone)
    copy.set_weights(model.get_weights())
    return copy


def _producer(layer):
    """The layer whose output `layer` takes (its first call's first input), or None."""
    if not layer._inbound_nodes:
        return None
    parents = layer._inbound_nodes[0].parent_nodes
    return parents[0].operation if len(parents) == 1 else None


_CONVOLUTIONS = (keras.layers.Conv2D, keras.layers.DepthwiseConv2D)


def conv_batch_norm_pairs(model):
    """`[(Conv2D or DepthwiseConv2D, BatchNorm), ...]`: every BatchNorm that directly
    follows a convolution whose output nothing else reads, in functional graphs (the
    backbones) and in layers that hold a `conv` and a `bn` (`ConvBNReLU`)."""
    pairs = []
    for layer in model._flatten_layers(include_self=True, recursive=True):
        conv, bn = getattr(layer, "conv", None), getattr(layer, "bn", None)
        if isinstance(conv, keras.layers.Conv2D) and isinstance(bn, BatchNorm):
            pairs.append((conv, bn))
        if isinstance(layer, keras.Model) and hasattr(layer, "_operations"):
            for op in layer.layers:
                producer = _producer(op) if isinstance(op, BatchNorm) else None
                if (
                    isinstance(producer, _CONVOLUTIONS)
                    and len(producer._outbound_nodes) == 1
                    and len(op._inbound_nodes) == 1
                ):
                    pairs.append((producer, op))
    return pairs


def fold_batch_norms(model, copy=True):
    """`model` for inference, each BatchNorm after a convolution folded into it.

    `bn(conv(x))` becomes `conv'(x) + b'` with the kernel scaled per output channel by
    `s = gamma / sqrt(moving_variance + epsilon)` and `b' = beta - moving_mean * s`
    (plus `s` times the conv's own bias): one pass less over every activation (two on
    Eigen's CPU kernels, which then fuse conv, bias and ReLU). Dropout is already the
    identity at inference. Other BatchNorms (the one over codewords) stay.

    Args:
        model: the trained model.
        copy: fold a copy (default); False folds `model` itself (no second copy of
            the weights in memory, for a model loaded only to run it).

    Returns:
        The folded model; it computes the same function within float32 rounding and
        refuses to train (`BatchNorm(folded=True)`).
    """
    folded = copy_model(model) if copy else model
    for conv, bn in conv_batch_norm_pairs(folded):
        gamma, beta, mean, variance = (
            np.asarray(v.numpy(), np.float64)
            for v in (bn.gamma, bn.beta, bn.moving_mean, bn.moving_variance)
        )
        scale = gamma / np.sqrt(variance + bn.epsilon)
        shift = beta - mean * scale
        kernel = np.asarray(conv.kernel.numpy(), np.float64)
        if isinstance(conv, keras.layers.DepthwiseConv2D):  # outputs: (in, multiplier) axes
            kernel = kernel * scale.reshape(kernel.shape[2:])
        else:
            kernel = kernel * scale
        conv.kernel.assign(kernel.astype("float32"))
        if conv.use_bias:
            shift = shift + np.asarray(conv.bias.numpy(), np.float64) * scale
            conv.bias.assign(np.zeros_like(conv.bias.numpy()))
        bn.fold(shift.astype("float32"))
    return folded
