"""EncNet's training losses: CE(seg) + 0.2 CE(aux) + 0.2 BCE(se).

The losses are Keras losses keyed like the model's output dict, so that
`model.compile(loss=losses, loss_weights=weights)` with
`losses, weights = encnet_losses()` trains the paper's objective.
"""

import keras
from keras import ops

from enc_tf.contracts.labels import IGNORE_INDEX, presence_targets


def softmax_cross_entropy(labels, logits):
    """Per-pixel `-log softmax(logits)[label]` over the last axis (labels in range).

    The same values as TensorFlow's fused kernel (`sparse_softmax_cross_entropy_with_logits`),
    from its definition `logsumexp(z) - z[label]`, with the gradient `softmax(z) -
    onehot(label)` from the exponentials the forward pass made. Forward and gradient of one
    `2 x 256 x 256 x 150` output take 35-42 ms against the fused kernel's 70-77 on two CPU
    threads (51 against 122-142 ms on one); a training step of EncNet R-50-D8 at that size,
    2-4% less (docs/benchmarks.md).
    """
    import tensorflow as tf  # custom gradient: TensorFlow only, as the rest of enc_tf

    labels = tf.convert_to_tensor(labels)

    @tf.custom_gradient
    def cross_entropy(logits):
        peak = tf.reduce_max(logits, axis=-1, keepdims=True)
        exps = tf.exp(logits - peak)
        total = tf.reduce_sum(exps, axis=-1, keepdims=True)
        picked = tf.gather(logits, labels[..., None], batch_dims=labels.shape.rank)
        loss = tf.squeeze(tf.math.log(total) + peak - picked, axis=-1)

        def gradient(upstream):
            upstream = upstream[..., None]
            onehot = tf.one_hot(labels, tf.shape(logits)[-1], dtype=logits.dtype)
            return exps * (upstream / total) - onehot * upstream

        return loss, gradient

    return cross_entropy(tf.convert_to_tensor(logits))


@keras.saving.register_keras_serializable(package="enc_tf")
class SegmentationCrossEntropy(keras.losses.Loss):
    """Per-pixel softmax cross-entropy that skips the ignore value.

    The mean runs over the non-ignored pixels of the whole batch, as
    `torch.nn.CrossEntropyLoss(ignore_index=...)`; an all-ignored batch gives 0.

    Args:
        ignore_index: label value of pixels without a class.
        name: loss name.

    Call arguments:
        y_true: `(B, H, W)` or `(B, H, W, 1)` integer labels.
        y_pred: `(B, H, W, C)` logits.
    """

    def __init__(self, ignore_index=IGNORE_INDEX, name="segmentation_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, self.dtype)
        labels = ops.cast(y_true, "int32")
        if len(labels.shape) == len(logits.shape):
            labels = ops.squeeze(labels, axis=-1)
        valid = labels != self.ignore_index
        safe_labels = ops.where(valid, labels, 0)
        per_pixel = softmax_cross_entropy(safe_labels, logits)
        valid = ops.cast(valid, self.dtype)
        # Per-pixel values whose plain mean is the mean over valid pixels. Returning
        # values rather than a scalar lets Keras reduce them and scale the loss by
        # 1 / replicas under a distribution strategy (it leaves scalars unscaled).
        pixels = ops.cast(ops.size(valid), self.dtype)
        return per_pixel * valid * (pixels / ops.maximum(ops.sum(valid), 1.0))

    def get_config(self):
        config = super().get_config()
        config.update({"ignore_index": self.ignore_index})
        return config


@keras.saving.register_keras_serializable(package="enc_tf")
class PresenceBinaryCrossEntropy(keras.losses.Loss):
    """Binary cross-entropy of the SE logits against class-presence targets.

    Mean over batch and classes, as `BCELoss(sigmoid(se), presence)`, computed
    from logits in the numerically stable form.

    Call arguments:
        y_true: `(B, C)` presence targets in {0, 1} (see `presence_targets`).
        y_pred: `(B, C)` SE logits.
    """

    def __init__(self, name="presence_binary_cross_entropy", **kwargs):
        super().__init__(name=name, **kwargs)

    def call(self, y_true, y_pred):
        logits = ops.cast(y_pred, self.dtype)
        targets = ops.cast(y_true, self.dtype)
        # max(x, 0) - x z + log(1 + exp(-|x|)); Keras takes the mean (and scales it
        # for distribution strategies).
        return ops.relu(logits) - logits * targets + ops.log1p(ops.exp(-ops.abs(logits)))


def encnet_losses(
    aux=True,
    se_loss=True,
    aux_weight=0.2,
    se_weight=0.2,
    ignore_index=IGNORE_INDEX,
    dtype=None,
):
    """The losses and loss weights of EncNet for `model.compile`: cross-entropy, the
    auxiliary head's and the SE-loss (the paper's Section 3.1), weighted 0.2 as the
    original's training script does.

    Args:
        aux: bool, include the `aux` term.
        se_loss: bool, include the `se` term.
        aux_weight, se_weight: float, weights of the `aux` and `se` terms.
        ignore_index: label value to ignore in the cross-entropies.
        dtype: dtype the losses compute in (default float32, also under mixed
            precision; float64 for a float64 model).

    Returns:
        `(losses, loss_weights)`, two dicts keyed by output name. The `se`
        target is `presence_targets(labels, ...)`, which the data pipeline
        computes after augmentation.
    """
    losses = {"seg": SegmentationCrossEntropy(ignore_index, name="seg_ce", dtype=dtype)}
    weights = {"seg": 1.0}
    if aux:
        losses["aux"] = SegmentationCrossEntropy(ignore_index, name="aux_ce", dtype=dtype)
        weights["aux"] = float(aux_weight)
    if se_loss:
        losses["se"] = PresenceBinaryCrossEntropy(name="se_bce", dtype=dtype)
        weights["se"] = float(se_weight)
    return losses, weights


def encnet_loss_terms(
    outputs,
    labels,
    aux_weight=0.2,
    se_weight=0.2,
    ignore_index=IGNORE_INDEX,
):
    """Each term of the loss and their weighted total, from outputs and labels.

    For custom training loops and for checking: the same losses as
    `encnet_losses`, with the SE targets derived from `labels`.

    Args:
        outputs: the model's output dict (`seg`, optional `aux` and `se`).
        labels: `(B, H, W)` integer label maps.
        aux_weight, se_weight: term weights.
        ignore_index: label value to ignore.

    Returns:
        Dict with `ce_seg`, `ce_aux` (when `aux` is present), `bce_se` (when
        `se` is present) and `total`, all scalars.
    """
    losses, weights = encnet_losses(
        aux="aux" in outputs,
        se_loss="se" in outputs,
        aux_weight=aux_weight,
        se_weight=se_weight,
        ignore_index=ignore_index,
    )
    names = {"seg": "ce_seg", "aux": "ce_aux", "se": "bce_se"}
    terms = {}
    total = 0.0
    for key, loss in losses.items():
        if key == "se":
            num_classes = outputs["se"].shape[-1]
            target = presence_targets(labels, num_classes, ignore_index)
        else:
            target = labels
        terms[names[key]] = loss(target, outputs[key])
        total = total + weights[key] * terms[names[key]]
    terms["total"] = total
    return terms
