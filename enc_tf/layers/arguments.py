"""Checks of layer constructor arguments: a bad value is refused with what was received, as
Keras's own layers do (`ValueError: ... Received: filters=0`), instead of being coerced."""

import numbers

import numpy as np


def _refuse(layer, name, value, expected):
    raise ValueError(f"{layer}: argument `{name}` must be {expected}. Received: {name}={value!r}")


def positive_int(layer, name, value):
    """`value` as an int when it is a whole number >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        _refuse(layer, name, value, "a positive integer")
    return int(value)


def odd_positive_int(layer, name, value):
    """`value` as an int when it is an odd whole number >= 1 (a kernel size that "same"
    padding pads symmetrically)."""
    if positive_int(layer, name, value) % 2 == 0:
        _refuse(layer, name, value, "an odd positive integer")
    return int(value)


def rate(layer, name, value):
    """`value` as a float when it is a number in [0, 1) (a dropout rate)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 <= value < 1:
        _refuse(layer, name, value, "a number in [0, 1)")
    return float(value)


def flag(layer, name, value):
    """`value` as a bool when it is one (a string such as "false" would read as true)."""
    if not isinstance(value, (bool, np.bool_)):
        _refuse(layer, name, value, "True or False")
    return bool(value)
