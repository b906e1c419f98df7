"""Regenerates the parity oracle's weights from its NumPy recipe (tests/fixtures/oracle/README).

The original PyTorch-Encoding model was run once on weights that are not stored:
key number `j` of the state_dict is drawn from `np.random.default_rng([seed, j])`
by the rule named in `state_dict_keys.tsv`; BatchNorm running statistics come
from `bn_stats.npz`. Each array is checked against the tsv's sha256 prefix.
"""

import csv
import functools
import hashlib
import json
from pathlib import Path

import numpy as np

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"
ORACLE_DIR = FIXTURES / "oracle"  # the original PyTorch-Encoding
MMSEG_DIR = FIXTURES / "oracle_mmseg"  # MMSegmentation 1.2.2, same recipe


def sha16(array):
    return hashlib.sha256(np.ascontiguousarray(array, dtype="<f4").tobytes()).hexdigest()[:16]


def make_param(rule, shape, seed, j):
    rng = np.random.default_rng([seed, j])
    if rule == "conv_weight":
        _, fan_in, kh, kw = shape
        value = rng.standard_normal(shape) * np.sqrt(2.0 / (fan_in * kh * kw))
    elif rule == "linear_weight":
        value = rng.standard_normal(shape) * np.sqrt(1.0 / shape[1])
    elif rule in ("bias", "bn_bias"):
        value = rng.standard_normal(shape) * 0.1
    elif rule == "bn_weight":
        value = rng.uniform(0.5, 1.5, shape)
    elif rule == "codewords":
        bound = 1.0 / np.sqrt(shape[0] * shape[1])
        value = rng.uniform(-bound, bound, shape)
    elif rule == "scale":
        value = rng.uniform(-1.0, 0.0, shape)
    else:
        raise ValueError(f"unknown rule {rule!r}")
    return value.astype(np.float32)


def meta(variant, root=ORACLE_DIR):
    return json.loads((root / variant / "meta.json").read_text())


@functools.lru_cache(maxsize=2)
def state_dict(variant, root=ORACLE_DIR):
    """The full state_dict `{key: float32 array}` of an oracle variant."""
    seed = meta(variant, root)["weight_seed"]
    with np.load(root / variant / "bn_stats.npz") as data:
        bn_stats = {key: data[key] for key in data.files}
    state = {}
    with open(root / variant / "state_dict_keys.tsv", newline="") as f:
        for row in csv.DictReader(f, delimiter="\t"):
            rule, key = row["rule"], row["key"]
            if rule == "bn_num_batches_tracked":
                continue
            if rule in ("bn_running_mean", "bn_running_var"):
                value = bn_stats[key]
            else:
                shape = tuple(int(s) for s in row["shape"].split(","))
                value = make_param(rule, shape, seed, int(row["j"]))
            if sha16(value) != row["sha256_16"]:
                raise AssertionError(f"regenerated {key} does not match its checksum")
            state[key] = value
    return state


def load_npz_file(path):
    with np.load(path) as data:
        return {key: data[key] for key in data.files}


def load_npz(variant, name, root=ORACLE_DIR):
    return load_npz_file(root / variant / f"{name}.npz")


def rel_to_absmax(ours, ref):
    ref = np.asarray(ref, dtype=np.float64)
    return float(np.max(np.abs(np.asarray(ours, dtype=np.float64) - ref)) / np.max(np.abs(ref)))


def to_torch_layout(array):
    """NHWC -> NCHW for rank-4 arrays; others unchanged."""
    array = np.asarray(array)
    return np.transpose(array, (0, 3, 1, 2)) if array.ndim == 4 else array


def to_keras_layout(array):
    array = np.asarray(array)
    return np.transpose(array, (0, 2, 3, 1)) if array.ndim == 4 else array


# What the parity tests of both oracles compare (the original's and MMSegmentation's
# outputs share their key names).
# The last block of each stage of ResNet50 (3, 4, 6, 3 blocks).
STAGE_END = {"c1": "layer1_2_out", "c2": "layer2_3_out", "c3": "layer3_5_out", "c4": "layer4_2_out"}
HEAD_KEYS = (
    "head_conv5",
    "head_feat",
    "enc_X",
    "enc_E",
    "enc_E_bn_relu",
    "enc_en",
    "enc_gamma",
    "encmodule_out",
    "seg_lowres",
    "se",
)


def crop(full, box):
    r0, r1, c0, c1 = box
    return full[:, :, r0:r1, c0:c1]


def stage_error(model, ref, x, stage, source):
    """`rel_to_absmax` of one backbone stage fed the stored input of that stage."""
    import keras

    backbone = model.get_layer("backbone")
    start = backbone.input if source is None else backbone.get_layer(STAGE_END[source]).output
    stage_model = keras.Model(start, backbone.get_layer(STAGE_END[stage]).output)
    feed = x if source is None else to_keras_layout(ref[source])
    ours = to_torch_layout(stage_model(feed, training=False))
    assert ours.shape == ref[stage].shape
    return rel_to_absmax(ours, ref[stage])


def head_errors(model, ref):
    """`{key: rel_to_absmax}` of the head's intermediates and the aux logits, fed the
    stored c2..c4."""
    feats = [to_keras_layout(ref[k]) for k in ("c2", "c3", "c4")]
    ours = model.get_layer("enc_head").compute_intermediates(feats, training=False)
    errors = {k: rel_to_absmax(to_torch_layout(ours[k]), ref[k]) for k in HEAD_KEYS}
    aux = model.get_layer("aux_head")(feats[1], training=False)
    errors["aux_lowres"] = rel_to_absmax(to_torch_layout(aux), ref["aux_lowres"])
    return errors


def end_to_end_errors(model, ref, x):
    """`{key: rel_to_absmax}` of every stored output, computed from the input alone."""
    outputs = model(x, training=False)
    feats = model.get_layer("backbone")(x, training=False)
    ours = {k: to_torch_layout(v) for k, v in feats.items()}
    head = model.get_layer("enc_head").compute_intermediates(
        [feats["c2"], feats["c3"], feats["c4"]], training=False
    )
    ours.update({k: to_torch_layout(v) for k, v in head.items()})
    ours["aux_lowres"] = to_torch_layout(model.get_layer("aux_head")(feats["c3"], training=False))
    ours["seg_crop"] = crop(to_torch_layout(outputs["seg"]), ref["crop_box"])
    ours["aux_crop"] = crop(to_torch_layout(outputs["aux"]), ref["crop_box"])
    np.testing.assert_array_equal(np.asarray(outputs["se"]), np.asarray(head["se"]))
    return {k: rel_to_absmax(ours[k], ref[k]) for k in ref if k != "crop_box"}
