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
class RetargetedPolyDecay(PolyDecay):
    """A `PolyDecay` whose end can be moved during training (the time budget's re-plan after
    the first epoch, `enc_tf.training.budget`).

    `retarget(step, total_steps)` keeps the schedule up to `step` and from there decays the
    learning rate reached at `step` to zero at the new `total_steps`:
    `lr(t) = base * (1 - step / T0) ** power * (1 - (t - step) / (total_steps - step)) ** power`
    for `t >= step` (`T0` the schedule's first end), the warm-up unchanged. Retargeted to its
    own end, it is the plain schedule. The step and end are variables, so a traced training
    step follows a retarget without being traced again; build the schedule where the
    optimizer's variables are built (inside the distribution strategy's scope).
    """

    def __init__(
        self,
        base_learning_rate,
        total_steps,
        power=0.9,
        warmup_steps=0,
        retarget_step=None,
        retarget_total_steps=None,
    ):
        super().__init__(base_learning_rate, total_steps, power, warmup_steps)
        self._step = keras.Variable(
            float(total_steps), trainable=False, dtype="float32", name="retarget_step"
        )
        self._total = keras.Variable(
            float(total_steps), trainable=False, dtype="float32", name="retarget_total_steps"
        )
        if retarget_step is not None:
            self.retarget(retarget_step, retarget_total_steps)

    @property
    def retarget_step(self):
        return int(keras.ops.convert_to_numpy(self._step))

    @property
    def retarget_total_steps(self):
        return int(keras.ops.convert_to_numpy(self._total))

    def retarget(self, step, total_steps):
        """From `step` on, decay to zero at `total_steps` (`0 <= step < total_steps`, `step`
        within the first schedule)."""
        step, total_steps = int(step), int(total_steps)
        if total_steps == self.total_steps:  # its own end: the plain schedule, exactly
            step = total_steps
        elif not 0 <= step < total_steps or step > self.total_steps:
            raise ValueError(
                "RetargetedPolyDecay.retarget needs 0 <= step < total_steps and step <= "
                f"{self.total_steps} (the first end); got {step}, {total_steps}."
            )
        self._step.assign(float(step))
        self._total.assign(float(total_steps))

    def __call__(self, step):
        t = ops.cast(step, "float32")
        s = ops.minimum(t, self._step)
        lr = self.base_learning_rate * ops.power(1.0 - s / self.total_steps, self.power)
        span = ops.maximum(self._total - self._step, 1.0)
        rest = ops.clip((t - self._step) / span, 0.0, 1.0)
        lr = lr * ops.power(1.0 - rest, self.power)
        if self.warmup_steps:
            lr = lr * ops.minimum((t + 1.0) / self.warmup_steps, 1.0)
        return lr

    def get_config(self):
        return {
            **super().get_config(),
            "retarget_step": self.retarget_step,
            "retarget_total_steps": self.retarget_total_steps,
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
