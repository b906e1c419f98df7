"""Reduced-precision inference: the same trained model computing in bfloat16.

`auto` picks bfloat16 where the hardware runs it fast (a GPU, or a CPU with
AVX-512 BF16 or AMX instructions) and float32 elsewhere: on a CPU without them
bfloat16 is emulated and slower than float32.
"""

import logging

from enc_tf.contracts.precision import PRECISIONS
from enc_tf.errors import ConfigError
from enc_tf.machine import kernel_choices
from enc_tf.models.transforms import copy_model

logger = logging.getLogger(__name__)

_POLICY = {"bfloat16": "mixed_bfloat16"}


def resolve_precision(precision):
    """`float32` or `bfloat16` for `precision` in `PRECISIONS` (`auto`: by the hardware)."""
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}.")
    if precision == "float32":
        return precision
    if precision == "bfloat16":
        require_bfloat16("precision bfloat16")
        return precision
    return kernel_choices().auto_precision


def require_bfloat16(what):
    """Raises `ConfigError` naming `what` (e.g. `precision bfloat16`) where bfloat16 cannot
    run: under a `ONEDNN_MAX_CPU_ISA` cap below bf16 on a CPU with bf16 instructions,
    TensorFlow 2.21 still sends bfloat16 ops to oneDNN, and its bfloat16 MatMul ends the
    process (a segmentation fault)."""
    choices = kernel_choices()
    if choices.bfloat16 == "unavailable":
        raise ConfigError(
            f"{what} cannot run with ONEDNN_MAX_CPU_ISA={choices.onednn_isa_cap} on this CPU "
            "(TensorFlow's oneDNN kernels have no bfloat16 below AVX512_CORE_BF16): "
            "unset it or use float32."
        )


def with_precision(model, precision):
    """`model`, or a copy of it computing in `precision` with the same float32 weights.

    Args:
        model: an `EncNet` / `FCN`, or a functional model of built-in or registered
            layers.
        precision: one of `PRECISIONS`.

    Returns:
        `model` itself for float32; otherwise a new model built under the mixed
        policy (`mixed_bfloat16`: bfloat16 compute, float32 variables and
        BatchNorm statistics; the Encoding layer keeps float32, see its
        docstring) holding `model`'s weights. Outputs are cast back to float32 by
        `model_logits`.
    """
    precision = resolve_precision(precision)
    if precision == "float32":
        return model
    copy = copy_model(model, _POLICY[precision])
    logger.info("Running %s in %s.", model.name, precision)
    return copy
