"""The original's optimizer: SGD with momentum, coupled L2 weight decay and a
10x learning rate on the heads, driven by a per-iteration poly schedule."""

import keras
from keras import ops

from enc_tf.models.encnet import HEAD_LAYERS

HEAD_PREFIXES = tuple(f"{name}/" for name in HEAD_LAYERS)  # variable paths of the heads


@keras.saving.register_keras_serializable(package="enc_tf")
class PolyDecay(keras.optimizers.schedules.LearningRateSchedule):
    """`lr(t) = base * (1 - t / total_steps) ** power`, per iteration, with an
    optional linear warm-up that scales it by `(t + 1) / warmup_steps`."""

    def __init__(self, base_learning_rate, total_steps, power=0.9, warmup_steps=0):
        if total_steps < 1 or warmup_steps < 0 or base_learning_rate <= 0:
            raise ValueError(
                f"PolyDecay needs base_learning_rate > 0, total_steps >= 1, warmup_steps >= 0; got "
                f"{base_learning_rate}, {total_steps}, {warmup_steps}."
            )
        self.base_learning_rate = float(base_learning_rate)
        self.total_steps = int(total_steps)
        self.power = float(power)
        self.warmup_steps = int(warmup_steps)

    def __call__(self, step):
        t = ops.minimum(ops.cast(step, "float32"), float(self.total_steps))
        lr = self.base_learning_rate * ops.power(1.0 - t / self.total_steps, self.power)
        if self.warmup_steps:
            lr = lr * ops.minimum((t + 1.0) / self.warmup_steps, 1.0)
        return lr

    def get_config(self):
        return {
            "base_learning_rate": self.base_learning_rate,
            "total_steps": self.total_steps,
            "power": self.power,
            "warmup_steps": self.warmup_steps,
        }


@keras.saving.register_keras_serializable(package="enc_tf")
class EncNetSGD(keras.optimizers.Optimizer):
    """SGD as PyTorch does it, with per-layer learning-rate multipliers.

    Per variable: `g = grad + l2 * w` (coupled L2, through momentum),
    `buf = momentum * buf + g`, `w -= lr * multiplier * buf`. With
    `decoupled_weight_decay` set instead, Keras's decoupled decay
    (`w -= lr * wd * w`) is used and `l2` must be 0.

    Args:
        learning_rate: float or schedule (e.g. `PolyDecay`).
        momentum: float.
        l2: coupled L2 coefficient (the original: 1e-4).
        lr_multipliers: `{variable path prefix: factor}`; default 10x for the
            EncNet/FCN heads and the aux head, 1x for the backbone.
        decoupled_weight_decay: optional decoupled decay coefficient.
    """

    def __init__(
        self,
        learning_rate=0.01,
        momentum=0.9,
        l2=1e-4,
        lr_multipliers=None,
        decoupled_weight_decay=None,
        name="encnet_sgd",
        **kwargs,
    ):
        if decoupled_weight_decay and l2:
            raise ValueError("Use either coupled l2 or decoupled_weight_decay, not both.")
        super().__init__(
            learning_rate=learning_rate, weight_decay=decoupled_weight_decay, name=name, **kwargs
        )
        self.momentum = float(momentum)
        self.l2 = float(l2)
        self.lr_multipliers = dict(
            lr_multipliers if lr_multipliers is not None else {p: 10.0 for p in HEAD_PREFIXES}
        )

    def build(self, variables):
        if self.built:
            return
        super().build(variables)
        self.momenta = [self.add_variable_from_reference(v, "momentum") for v in variables]
        # Resolved here: update_step receives backend variables, which have no Keras path.
        self._variable_multipliers = [self.multiplier(v) for v in variables]

    def multiplier(self, variable):
        """The learning-rate factor of a (Keras) variable, by its path."""
        for prefix, factor in self.lr_multipliers.items():
            if variable.path.startswith(prefix):
                return factor
        return 1.0

    def update_step(self, gradient, variable, learning_rate):
        index = self._get_variable_index(variable)
        lr = ops.cast(learning_rate, variable.dtype) * self._variable_multipliers[index]
        gradient = ops.cast(gradient, variable.dtype)
        if self.l2:
            gradient = gradient + self.l2 * variable
        buf = self.momenta[index]
        self.assign(buf, self.momentum * buf + gradient)
        self.assign_sub(variable, lr * buf)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "momentum": self.momentum,
                "l2": self.l2,
                "lr_multipliers": self.lr_multipliers,
                "decoupled_weight_decay": config.pop("weight_decay", None),
            }
        )
        return config
