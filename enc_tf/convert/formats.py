"""The EncNet checkpoint layouts the converters read: the original PyTorch-Encoding's and
MMSegmentation's, told apart by their key prefixes."""

# The first key prefix of each checkpoint layout we know, and its converter sub-command.
FORMATS = {
    "pytorch-encoding": ("pretrained.", "head.", "auxlayer."),
    "mmseg": ("backbone.", "decode_head.", "auxiliary_head."),
}


def checkpoint_format(state):
    """`pytorch-encoding`, `mmseg` or None: the layout most of `state`'s keys follow."""
    counts = {
        name: sum(key.startswith(prefixes) for key in state) for name, prefixes in FORMATS.items()
    }
    best = max(counts, key=counts.get)
    return best if counts[best] > len(state) // 2 else None


def check_format(state, expected, source):
    """Raises ValueError when `state` is laid out for another converter than `expected`."""
    found = checkpoint_format(state)
    if found == expected:
        return
    if found is None:
        raise ValueError(
            f"{source} is neither a PyTorch-Encoding nor an MMSegmentation EncNet state_dict "
            f"(its first keys: {sorted(state)[:3]})."
        )
    raise ValueError(
        f"{source} looks like a {found} checkpoint (keys {FORMATS[found][0]}..., "
        f"{FORMATS[found][1]}...), not {expected}: convert it with "
        f"`python -m enc_tf.convert {found}`."
    )
