"""One call that checks the contract every enc_tf layer keeps.

In the spirit of keras-hub's `TestCase.run_layer_test`, smaller and written for
this project (TensorFlow backend, layers taking one tensor or a list of them):

- shapes: the eager call, `compute_output_shape`, a `keras.Input` call with
  static shapes and one with unknown batch/spatial axes, and the graph that
  `call` really builds for those unknown axes, all agree;
- weights: `build` creates the expected numbers of trainable and non-trainable
  weights, and calling the layer creates none;
- serialization: `get_config` holds every constructor argument with the value
  given, `from_config` rebuilds the same config and the same outputs,
  `serialize_keras_object` survives JSON, and a `.keras` file of a small
  functional model around the layer reloads to identical outputs;
- training: one SGD step of that model gives a finite loss, moves every
  trainable weight and every non-trainable one (BatchNorm statistics), and
  gradients reach the input;
- mixed precision: under each policy, set globally (as training does) or passed
  as `dtype`, the variables stay float32 and the outputs (eager and symbolic)
  have the compute dtype, are finite and close to the float32 outputs. The
  global policy is restored even when a check fails.

Every check raises `AssertionError` with the layer's name and what to fix.
"""

import inspect
import json
import warnings

import keras
import numpy as np
import tensorflow as tf

from enc_tf.machine import kernel_choices

# Of the largest float32 output. enc_tf's layers stay within a quarter of these
# (1.2e-3 and 7e-3 at worst over repeated runs).
MIXED_PRECISION_TOLERANCE = {"mixed_float16": 5e-3, "mixed_bfloat16": 3e-2}


def run_layer_test(
    make_layer,
    init_kwargs,
    input_shape,
    expected_output_shape,
    expected_num_trainable_weights,
    expected_num_non_trainable_weights,
    tmp_path,
    dynamic_input_shape=None,
    mixed_precision_policies=("mixed_float16", "mixed_bfloat16"),
):
    """Runs every check of the module docstring on one layer configuration.

    Args:
        make_layer: the layer class, or a function returning a layer (`batch_norm`).
        init_kwargs: dict, the arguments the layer is made with.
        input_shape: the concrete input shape `(B, ...)`, or a list of them for a
            layer called on a list.
        expected_output_shape: the output shape, or a tuple of them for a layer
            returning several outputs.
        expected_num_trainable_weights, expected_num_non_trainable_weights: ints.
        tmp_path: a directory for the `.keras` file.
        dynamic_input_shape: `input_shape` with the axes that may be unknown set to
            `None`; by default every axis but the last (batch and spatial axes).
        mixed_precision_policies: the dtype policies to run under.
    """
    multi_input = not _is_shape(input_shape)
    input_shapes = [tuple(s) for s in input_shape] if multi_input else [tuple(input_shape)]
    expected = _shape_list(expected_output_shape)
    if dynamic_input_shape is None:
        dynamic_shapes = [(None,) * (len(s) - 1) + s[-1:] for s in input_shapes]
    else:
        dynamic_shapes = (
            [tuple(s) for s in dynamic_input_shape] if multi_input else [tuple(dynamic_input_shape)]
        )

    def structure(items):
        return list(items) if multi_input else items[0]

    case = _Case(make_layer, init_kwargs, structure, input_shapes, dynamic_shapes, expected)
    layer = case.check_build(expected_num_trainable_weights, expected_num_non_trainable_weights)
    _perturb(layer.weights, case.rng)
    outputs = case.check_shapes(layer)
    case.check_config(layer, outputs)
    model = case.check_saved_model(tmp_path)
    case.check_training_step(model)
    for policy in mixed_precision_policies:
        if "bfloat16" in policy and kernel_choices().bfloat16 == "unavailable":
            continue  # under a oneDNN cap TensorFlow's bfloat16 MatMul ends the process
        case.check_mixed_precision(layer, outputs, policy)


class _Case:
    """One layer configuration and its input data."""

    def __init__(self, make_layer, init_kwargs, structure, input_shapes, dynamic_shapes, expected):
        self.make_layer = make_layer
        self.init_kwargs = dict(init_kwargs)
        self.structure = structure
        self.input_shapes = input_shapes
        self.dynamic_shapes = dynamic_shapes
        self.expected = expected
        self.rng = np.random.default_rng(0)
        self.data = [self.rng.normal(size=s).astype("float32") for s in input_shapes]
        self.name = getattr(make_layer, "__name__", repr(make_layer))

    def fail(self, check, message):
        raise AssertionError(f"{self.name}({self.init_kwargs}) {check}: {message}")

    def call(self, layer, inputs, **kwargs):
        return keras.tree.flatten(layer(self.structure(inputs), **kwargs))

    def check_build(self, num_trainable, num_non_trainable):
        layer = self.make_layer(**self.init_kwargs)
        layer.build(self.structure(self.input_shapes))
        counts = (len(layer.trainable_weights), len(layer.non_trainable_weights))
        if not layer.built or counts != (num_trainable, num_non_trainable):
            self.fail(
                "build",
                f"built={layer.built} with {counts[0]} trainable and {counts[1]} non-trainable "
                f"weights, expected {num_trainable} and {num_non_trainable}; build every "
                "sublayer in build()",
            )
        paths = [w.path for w in layer.weights]
        self.call(layer, self.data, training=False)
        if [w.path for w in layer.weights] != paths:
            added = sorted(set(w.path for w in layer.weights) - set(paths))
            self.fail(
                "build", f"calling the built layer created weights {added}; create them in build()"
            )
        return layer

    def check_shapes(self, layer):
        outputs = self.call(layer, self.data, training=False)
        self.expect_shapes("eager call", [tuple(o.shape) for o in outputs])
        if type(layer).compute_output_shape is not keras.layers.Layer.compute_output_shape:
            computed = _shape_list(layer.compute_output_shape(self.structure(self.input_shapes)))
            self.expect_shapes("compute_output_shape", computed)
        static = [keras.Input(batch_shape=s) for s in self.input_shapes]
        self.expect_shapes("keras.Input call", [tuple(o.shape) for o in self.call(layer, static)])

        # With unknown axes only the graph knows the truth; it must agree with Keras' view,
        # which must still know the channel axis (the next layer needs it to build).
        dynamic = [
            tuple(o.shape)
            for o in self.call(layer, [keras.Input(batch_shape=s) for s in self.dynamic_shapes])
        ]
        if any(s[-1] is None for s in dynamic):
            self.fail(
                "keras.Input call with unknown axes", f"shapes {dynamic} lose the channel axis"
            )
        specs = [tf.TensorSpec(s, tf.float32) for s in self.dynamic_shapes]
        graph = tf.function(
            lambda *xs: layer(self.structure(xs), training=False)
        ).get_concrete_function(*specs)
        traced = [tuple(t.shape.as_list()) for t in tf.nest.flatten(graph.structured_outputs)]
        if traced != dynamic:
            self.fail(
                "shapes with unknown axes",
                f"keras.Input / compute_output_shape give {dynamic}, "
                f"the graph of call() gives {traced}",
            )
        return outputs

    def expect_shapes(self, check, shapes):
        if shapes != self.expected:
            self.fail(check, f"output shapes {shapes}, expected {self.expected}")

    def check_config(self, layer, outputs):
        cls = type(layer)
        config = layer.get_config()
        missing = sorted(_constructor_arguments(cls) - set(config))
        if missing:
            self.fail("get_config", f"lacks constructor argument(s) {missing}")
        for key, value in self.init_kwargs.items():
            if key != "dtype" and key in config and config[key] != value:
                self.fail(
                    "get_config",
                    f"{key}={config[key]!r} but the layer was made with {key}={value!r}",
                )
        clone = cls.from_config(config)
        if clone.get_config() != config:
            self.fail("from_config", f"rebuilt config {clone.get_config()} differs from {config}")
        clone.build(self.structure(self.input_shapes))
        clone.set_weights(layer.get_weights())
        for ours, theirs in zip(outputs, self.call(clone, self.data, training=False)):
            if not np.array_equal(ours, theirs, equal_nan=True):
                self.fail(
                    "from_config",
                    "the rebuilt layer, given the same weights, computes other outputs",
                )
        serialized = json.loads(json.dumps(keras.saving.serialize_keras_object(layer)))
        try:
            revived = keras.saving.deserialize_keras_object(serialized)
        except (TypeError, ValueError) as error:
            self.fail(
                "deserialize_keras_object",
                f"{error}; is the class registered with keras.saving.register_keras_serializable?",
            )
        if type(revived) is not cls or revived.get_config() != config:
            self.fail(
                "deserialize_keras_object",
                f"gave {type(revived).__name__} with {revived.get_config()}",
            )

    def check_saved_model(self, tmp_path):
        """Saves a functional model with unknown batch/spatial axes; returns it for training."""
        inputs = [keras.Input(batch_shape=s) for s in self.dynamic_shapes]
        layer = self.make_layer(**self.init_kwargs)
        model = keras.Model(self.structure(inputs), self.call(layer, inputs))
        _perturb(model.weights, self.rng)
        path = str(tmp_path / f"{self.name}_{layer.name}.keras")
        model.save(path)
        restored = keras.saving.load_model(path)
        ours = self.call(model, self.data, training=False)
        for a, b in zip(ours, self.call(restored, self.data, training=False)):
            if not np.array_equal(a, b, equal_nan=True):
                self.fail(".keras round trip", "the reloaded model computes other outputs")
        return model

    def check_training_step(self, model):
        targets = [self.rng.normal(size=s).astype("float32") for s in self.expected]
        model.compile(
            optimizer=keras.optimizers.SGD(0.1), loss=["mse"] * len(targets), jit_compile=False
        )
        before = {id(w): np.array(w) for w in model.weights}
        with warnings.catch_warnings():  # expected of a weightless layer
            warnings.filterwarnings("ignore", "The model does not have any trainable weights")
            logs = model.train_on_batch(self.structure(self.data), targets, return_dict=True)
        if not all(np.isfinite(v) for v in logs.values()):
            self.fail("training step", f"non-finite loss {logs}")
        for kind, weights in (
            ("trainable", model.trainable_weights),
            ("non-trainable", model.non_trainable_weights),
        ):
            still = [w.path for w in weights if np.array_equal(w, before[id(w)])]
            if still:
                self.fail("training step", f"one SGD step left {kind} weights {still} unchanged")
        xs = [tf.constant(x) for x in self.data]
        with tf.GradientTape() as tape:
            tape.watch(xs)
            outputs = self.call(model, xs, training=False)
            objective = sum(
                tf.reduce_sum(tf.cast(o, tf.float32) * t) for o, t in zip(outputs, targets)
            )
        grads = [g for g in tape.gradient(objective, xs) if g is not None]
        if (
            not grads
            or not all(np.all(np.isfinite(g)) for g in grads)
            or not any(np.any(g != 0) for g in grads)
        ):
            self.fail("training step", "no finite, non-zero gradient reaches the input(s)")

    def check_mixed_precision(self, reference, reference_outputs, policy):
        """`reference` is the built float32 layer; its weights are copied over."""
        compute_dtype = keras.DTypePolicy(policy).compute_dtype
        tolerance = MIXED_PRECISION_TOLERANCE[policy]
        for how in ("global policy", "dtype argument"):
            check = f"{policy} ({how})"
            previous = keras.config.dtype_policy()
            try:
                if how == "global policy":
                    keras.config.set_dtype_policy(policy)
                    layer = self.make_layer(**self.init_kwargs)
                else:
                    layer = self.make_layer(**self.init_kwargs, dtype=policy)
                layer.build(self.structure(self.input_shapes))
                layer.set_weights(reference.get_weights())
                outputs = self.call(layer, self.data, training=False)
                symbolic = self.call(
                    layer, [keras.Input(batch_shape=s) for s in self.dynamic_shapes]
                )
            finally:
                keras.config.set_dtype_policy(previous)
            not_float32 = [w.path for w in layer.weights if w.dtype != "float32"]
            if not_float32:
                self.fail(check, f"variables {not_float32} are not float32")
            dtypes = [keras.backend.standardize_dtype(o.dtype) for o in outputs + symbolic]
            if any(d != compute_dtype for d in dtypes):
                self.fail(
                    check, f"eager + symbolic output dtypes {dtypes}, expected {compute_dtype}"
                )
            for ours, ref in zip(outputs, reference_outputs):
                ours = np.asarray(keras.ops.cast(ours, "float32"), np.float64)
                if not np.all(np.isfinite(ours)):
                    self.fail(check, "non-finite outputs")
                ref = np.asarray(ref, np.float64)
                error = np.max(np.abs(ours - ref)) / max(np.max(np.abs(ref)), 1e-12)
                if error > tolerance:
                    self.fail(
                        check,
                        f"outputs differ from float32 by {error:.2e} of their range "
                        f"(> {tolerance})",
                    )


def _is_shape(value):
    return isinstance(value, (tuple, list)) and all(d is None or isinstance(d, int) for d in value)


def _shape_list(shapes):
    return [tuple(shapes)] if _is_shape(shapes) else [tuple(s) for s in shapes]


def _constructor_arguments(cls):
    """Named arguments of `cls.__init__` beyond those of `keras.layers.Layer`."""

    def named(fn):
        return {
            p.name
            for p in inspect.signature(fn).parameters.values()
            if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name != "self"
        }

    return named(cls.__init__) - named(keras.layers.Layer.__init__)


def _perturb(weights, rng):
    """Moves every weight off its initial value, so that a weight left behind shows."""
    for w in weights:
        value = np.asarray(w)
        w.assign(
            (value * rng.uniform(0.8, 1.2, value.shape) + rng.normal(0, 0.05, value.shape)).astype(
                value.dtype
            )
        )
