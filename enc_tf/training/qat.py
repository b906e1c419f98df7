"""Quantization-aware fine-tuning: a trained model learns to live with int8 rounding.

Post-training int8 adds the rounding noise of every quantized layer at once; where that
costs accuracy, a few epochs of training under the same noise recover it. Keras 3 has no
quantization-aware training for convolutions (tfmot needs Keras 2; `Model.quantize`
covers Dense, EinsumDense and Embedding), so this module simulates TFLite's int8 scheme
itself, on a copy of the model:

- Every BatchNorm runs on its moving statistics (frozen), and each convolution followed
  by one rounds the kernel TFLite will hold, the folded `kernel * gamma / sqrt(var + eps)`,
  then divides the scale back out: the BatchNorm after it restores exactly TFLite's folded
  computation, while training keeps the unfolded parametrisation (folding first and
  training the folded kernels without normalisation diverged on EncNet-ResNet50s).
- Kernels are rounded per output channel, symmetric, to 255 levels (TFLite's int8
  weights), with a straight-through gradient.
- Activations are rounded per tensor to 256 levels over a range observed on training
  images and then tracked as a moving average (TFLite's calibrated int8 activations).
  Quantized: the outputs of the backbone's and heads' layers that TFLite quantizes
  (convolutions, activations, additions, products, poolings). Not quantized: the
  Encoding path that the int8 export keeps in float (`FLOAT_KEPT_SUBLAYERS`).

The fine-tuned model is the same float model with adapted weights (a normal model: it
trains, evaluates and exports as any); `enc-export --format tflite --mode int8` then converts it
(folding its BatchNorms and calibrating its ranges on training images).

    python -m enc_tf.training.qat RUN_DIR --out RUN_DIR_qat [--epochs 3] [--lr 0.001]
"""

import dataclasses
import logging
import os
import shutil
import sys

import keras
from keras import ops

from enc_tf.artifacts import RUN_CONFIG, RUN_MODEL, load_keras_model
from enc_tf.config import LossConfig, OptimizerConfig
from enc_tf.console import command_parser, run_cli
from enc_tf.data import build_dataset, sources_from_config
from enc_tf.errors import ConfigError
from enc_tf.export.tflite import FLOAT_KEPT_SUBLAYERS
from enc_tf.files import atomic_write
from enc_tf.layers import BatchNorm, ConvBNReLU, EncModule, HardSwish
from enc_tf.losses import encnet_losses
from enc_tf.models import save_model_atomic
from enc_tf.models.transforms import conv_batch_norm_pairs, copy_model
from enc_tf.optimizers import HEAD_PREFIXES, EncNetSGD
from enc_tf.training.trainer import training_pipeline

logger = logging.getLogger(__name__)

WEIGHT_LEVELS = 127  # int8 weights: symmetric, [-127, 127]
ACTIVATION_BITS = 8
_QUANTIZED_OUTPUTS = (
    BatchNorm,
    ConvBNReLU,
    HardSwish,
    keras.layers.ReLU,
    keras.layers.Activation,
    keras.layers.Add,
    keras.layers.Multiply,
    keras.layers.GlobalAveragePooling2D,
)


def fake_quantize_weights(kernel, channel_axes):
    """`kernel` rounded to `2 * WEIGHT_LEVELS + 1` symmetric levels per output channel
    (`channel_axes`: the kernel's output-channel axes), straight-through gradient."""
    reduce = tuple(a for a in range(len(kernel.shape)) if a not in channel_axes)
    scale = ops.maximum(ops.max(ops.abs(kernel), axis=reduce, keepdims=True), 1e-12)
    scale = scale / WEIGHT_LEVELS
    rounded = ops.clip(ops.round(kernel / scale), -WEIGHT_LEVELS, WEIGHT_LEVELS) * scale
    return kernel + ops.stop_gradient(rounded - kernel)


@dataclasses.dataclass
class _Range:
    low: keras.Variable
    high: keras.Variable


class QuantizationSimulator:
    """Makes a model compute with TFLite's int8 rounding, in place, until `remove()`. The
    model's weights are unchanged: only how its layers compute.

    Args:
        model: a trained model; its BatchNorms must run on their moving statistics
            (`trainable = False`, as `finetune` sets), which the rounding of the folded
            kernels reads.
        momentum: the moving average of the activation ranges.

    `observe(images)` records activation ranges (min and max over the batches seen)
    without rounding; after it, calls round weights and activations and update the
    ranges as a moving average.
    """

    def __init__(self, model, momentum=0.99):
        self.model = model
        self.momentum = float(momentum)
        self.observing = True
        self.ranges = {}
        # Not simulated: the Encoding path (kept float by the int8 export) and the model's
        # output layers (the SE logits' identity, the resizes: float outputs in TFLite).
        float_kept = _float_kept_layers(model) | {
            id(layer) for layer in model.layers if layer.name in model.output_names
        }
        paired = {id(conv): bn for conv, bn in conv_batch_norm_pairs(model)}
        self._patched = []
        for layer in model._flatten_layers(include_self=False, recursive=True):
            if id(layer) in float_kept:
                continue
            if isinstance(layer, keras.layers.DepthwiseConv2D):
                self._patch(layer, "call", self._depthwise_call(layer, paired.get(id(layer))))
            elif isinstance(layer, keras.layers.Conv2D):
                self._patch(
                    layer, "convolution_op", self._convolution_op(layer, paired.get(id(layer)))
                )
            quantize_output = isinstance(layer, _QUANTIZED_OUTPUTS) or (
                isinstance(layer, keras.layers.Conv2D) and id(layer) not in paired
            )
            if quantize_output:
                self.ranges[id(layer)] = _Range(
                    keras.Variable(0.0, trainable=False), keras.Variable(0.0, trainable=False)
                )
                self._patch(layer, "call", self._output_call(layer, getattr(layer, "call")))

    def _patch(self, layer, attribute, function):
        self._patched.append((layer, attribute))
        object.__setattr__(layer, attribute, function)

    def remove(self):
        """Restores every layer's own computation."""
        for layer, attribute in reversed(self._patched):
            if attribute in layer.__dict__:
                object.__delattr__(layer, attribute)
        self._patched = []

    def observe(self, batches):
        """Records the activation ranges over `batches` of images (eager, no rounding)."""
        self.observing = True
        for images in batches:
            self.model(images, training=False)
        self.observing = False

    def _rounded_kernel(self, kernel, norm, channel_axes):
        """The kernel as TFLite will hold it, rounded: folded with the BatchNorm `norm`
        that follows (if any), rounded, and unfolded again for that BatchNorm."""
        if norm is None:
            return fake_quantize_weights(kernel, channel_axes)
        scale = norm.gamma / ops.sqrt(norm.moving_variance + norm.epsilon)
        scale = ops.where(ops.abs(scale) < 1e-12, 1e-12, scale)
        scale = ops.reshape(scale, [kernel.shape[a] for a in channel_axes])
        return fake_quantize_weights(kernel * scale, channel_axes) / scale

    def _convolution_op(self, layer, norm):
        original = layer.convolution_op

        def convolution_op(inputs, kernel):
            if not self.observing:
                kernel = self._rounded_kernel(kernel, norm, (len(kernel.shape) - 1,))
            return original(inputs, kernel)

        return convolution_op

    def _depthwise_call(self, layer, norm):
        def call(inputs):
            kernel = layer.kernel
            if not self.observing:  # output channels: (input channel, multiplier)
                kernel = self._rounded_kernel(kernel, norm, (2, 3))
            outputs = ops.depthwise_conv(
                inputs,
                kernel,
                strides=layer.strides,
                padding=layer.padding,
                dilation_rate=layer.dilation_rate,
                data_format=layer.data_format,
            )
            if layer.use_bias:
                outputs = outputs + layer.bias
            return outputs if layer.activation is None else layer.activation(outputs)

        return call

    def _output_call(self, layer, inner):
        bounds = self.ranges[id(layer)]

        def call(*args, **kwargs):
            outputs = inner(*args, **kwargs)
            low = ops.minimum(ops.min(outputs), 0.0)
            high = ops.maximum(ops.max(outputs), 0.0)
            if self.observing:
                bounds.low.assign(ops.minimum(bounds.low, low))
                bounds.high.assign(ops.maximum(bounds.high, high))
                return outputs
            m = self.momentum
            bounds.low.assign(m * bounds.low + (1.0 - m) * low)
            bounds.high.assign(m * bounds.high + (1.0 - m) * high)
            return keras.quantizers.fake_quant_with_min_max_vars(
                outputs, bounds.low, bounds.high, num_bits=ACTIVATION_BITS
            )

        return call


def _float_kept_layers(model):
    """ids of the layers the int8 export keeps in float (the Encoding path), nested too."""
    kept = set()
    for layer in model._flatten_layers(include_self=False, recursive=True):
        if isinstance(layer, EncModule):
            for name in FLOAT_KEPT_SUBLAYERS:
                sub = getattr(layer, name, None)
                if sub is not None:
                    kept.update(id(s) for s in sub._flatten_layers(include_self=True))
    return kept


@dataclasses.dataclass
class QATConfig:
    epochs: int = 3
    steps_per_epoch: int = 50
    base_lr: float = 0.001  # constant; the heads at the run's multiplier
    observe_batches: int = 8  # training batches that set the initial activation ranges


def finetune(
    model, train_data, config, optimizer=OptimizerConfig(), loss=LossConfig(), simulate=True
):
    """A copy of `model` fine-tuned under int8 rounding; `model` is untouched.

    Args:
        model: a trained EncNet / FCN (BatchNorm not folded).
        train_data: a repeating `tf.data.Dataset` of `(images, targets)` training batches,
            as the trainer builds it.
        config: a `QATConfig`.
        optimizer, loss: the run's `OptimizerConfig` and `LossConfig` (momentum, weight
            decay, head learning-rate multiplier, loss weights); the learning rate is
            `config.base_lr`, constant.
        simulate: False fine-tunes the same way without the int8
            rounding (the control that separates "more training" from "trained for int8").

    Returns:
        The fine-tuned model: the same architecture with adapted weights, BatchNorm
        statistics unchanged, no simulation left.
    """
    if config.epochs < 1 or config.steps_per_epoch < 1 or config.observe_batches < 1:
        raise ConfigError(
            f"Fine-tuning needs epochs, steps_per_epoch and observe_batches >= 1, got {config}."
        )
    tuned = copy_model(model)
    norms = [
        layer
        for layer in tuned._flatten_layers(include_self=False, recursive=True)
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for norm in norms:
        norm.trainable = False  # moving statistics: the ones the export folds
    simulator = QuantizationSimulator(tuned) if simulate else None
    if simulator is not None:
        simulator.observe(images for images, _ in train_data.take(config.observe_batches))
    losses, weights = encnet_losses(aux_weight=loss.aux_weight, se_weight=loss.se_weight)
    outputs = set(tuned.output_names)
    coupled = optimizer.weight_decay_mode == "coupled"
    tuned.compile(
        optimizer=EncNetSGD(
            config.base_lr,
            optimizer.momentum,
            l2=optimizer.weight_decay if coupled else 0.0,
            decoupled_weight_decay=None if coupled else optimizer.weight_decay,
            lr_multipliers={p: optimizer.head_lr_multiplier for p in HEAD_PREFIXES},
        ),
        loss={k: v for k, v in losses.items() if k in outputs},
        loss_weights={k: v for k, v in weights.items() if k in outputs},
    )
    try:
        tuned.fit(
            train_data,
            epochs=config.epochs,
            steps_per_epoch=config.steps_per_epoch,
            verbose=2,
        )
    finally:
        if simulator is not None:
            simulator.remove()
        for norm in norms:
            norm.trainable = True
    return tuned


def finetune_run(loaded, epochs, steps_per_epoch=None, lr=QATConfig.base_lr, simulate=True):
    """`(QATConfig, fine-tuned model)` for a loaded training run (`LoadedModel` with its
    `run_config`): its training data, augmentation, optimizer and loss settings;
    `steps_per_epoch` None takes the run's (or one pass over its training split)."""
    run_config = loaded.run_config
    train_source, _ = sources_from_config(run_config.data)
    train_config = run_config.train
    steps = (
        steps_per_epoch
        or train_config.steps_per_epoch
        or max(1, train_source.num_examples // train_config.batch_size)
    )
    outputs = loaded.keras_model.output_names
    data = build_dataset(
        train_source,
        "train",
        training_pipeline(run_config),
        "aux" in outputs,
        "se" in outputs,
        True,
    )
    config = QATConfig(epochs, steps, lr)
    tuned = finetune(
        loaded.keras_model, data, config, run_config.optimizer, run_config.loss, simulate
    )
    return config, tuned


def run(args):
    bad = [
        f"{flag} must be {rule}, got {value}"
        for flag, value, ok, rule in (
            ("--epochs", args.epochs, args.epochs >= 1, ">= 1"),
            ("--lr", args.lr, args.lr > 0, "> 0"),
            ("--steps-per-epoch", args.steps_per_epoch, (args.steps_per_epoch or 1) >= 1, ">= 1"),
        )
        if not ok
    ]
    if bad:
        raise ConfigError("; ".join(bad) + ".")
    if os.path.abspath(args.out) == os.path.abspath(args.run):
        raise ConfigError("--out must be a new run directory, not the trained run itself.")
    if os.path.exists(os.path.join(args.out, RUN_MODEL)):
        raise ConfigError(f"{args.out} already holds a model; choose another --out.")
    loaded = load_keras_model(args.run, fold=False)
    if loaded.run_config is None:
        raise ConfigError(f"{args.run}: quantization-aware fine-tuning needs a training run.")
    config, tuned = finetune_run(loaded, args.epochs, args.steps_per_epoch, args.lr)
    os.makedirs(args.out, exist_ok=True)
    source = os.path.join(args.run, RUN_CONFIG)
    atomic_write(os.path.join(args.out, RUN_CONFIG), lambda tmp: shutil.copyfile(source, tmp))
    save_model_atomic(tuned, os.path.join(args.out, RUN_MODEL))
    print(
        f"{os.path.join(args.out, RUN_MODEL)}: fine-tuned under int8 rounding for "
        f"{config.epochs} x {config.steps_per_epoch} steps. Export it with "
        f"enc-export {args.out} --format tflite --mode int8 --out model_int8.tflite"
    )


def main(argv=None):
    parser = command_parser("enc-qat", __doc__)
    parser.add_argument("run", help="a training run directory")
    parser.add_argument("--out", required=True, help="the new run directory")
    parser.add_argument(
        "--epochs", type=int, default=QATConfig.epochs, help="quantization-aware epochs"
    )
    parser.add_argument(
        "--steps-per-epoch",
        type=int,
        help="steps per epoch; when omitted, the run's (or one pass over its data)",
    )
    parser.add_argument(
        "--lr", type=float, default=QATConfig.base_lr, help="learning rate (constant; heads x10)"
    )
    return run_cli(parser, run, argv)


if __name__ == "__main__":
    sys.exit(main())
