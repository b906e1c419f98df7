"""Starting a model from another one's weights: the first step of a fine-tune.

Weights are matched by where they sit (the top-level layer and the variable's path
inside it), so a model trained on one dataset starts a model for another with the
same architecture: every weight whose place and shape match is copied; the
class-dependent layers (segmentation and auxiliary classifiers, the SE layer) keep
their fresh initialisation when the class count differs; a head the source lacks
starts fresh. Another backbone, or a shape that differs anywhere outside the
class-dependent layers, is an error listing the weights.
"""

import dataclasses

import numpy as np

from enc_tf.models.encnet import AUX_HEAD, BACKBONE_NAME, ENC_HEAD, FCN_HEAD

# The layers whose weights have the class count in their shape.
CLASS_LAYERS = (
    f"{ENC_HEAD}/{ENC_HEAD}/classifier",
    f"{ENC_HEAD}/{ENC_HEAD}/enc_module/se_head",
    f"{AUX_HEAD}/{AUX_HEAD}/classifier",
    f"{FCN_HEAD}/{FCN_HEAD}/classifier",
)


@dataclasses.dataclass
class TransferReport:
    """What `transfer_weights` did, by layer (`top-level layer/sublayer path`).

    Attributes:
        copied: layers whose every weight was copied.
        reset: class-dependent layers left at their initialisation (another class count).
        new: layers the source does not have (left at their initialisation).
        unused: layers of the source that the target does not have.
    """

    copied: list
    reset: list
    new: list
    unused: list

    def summary(self) -> str:
        parts = [f"copied {len(self.copied)} layers"]
        if self.reset:
            parts.append(f"re-initialised {len(self.reset)} for the new class count: {self.reset}")
        if self.new:
            parts.append(f"initialised {len(self.new)} the source lacks: {self.new}")
        if self.unused:
            parts.append(f"left out {len(self.unused)} the model lacks: {self.unused}")
        return "; ".join(parts)


def weight_places(model):
    """`{place: variable}` of a model's weights; a place is `<top-level layer>/<path>`."""
    places = {}
    for layer in model.layers:
        for variable in layer.weights:
            places[f"{layer.name}/{variable.path}"] = variable
    return places


def _layer_of(place):
    return place.rsplit("/", 1)[0]


def transfer_weights(source, target, source_name="the source model"):
    """Copies `source`'s weights into `target` where place and shape match.

    Args:
        source: a Keras model (an `EncNet` / `FCN`, unfolded).
        target: the model to start; changed in place.
        source_name: how messages name the source (its path, a preset).

    Returns:
        A `TransferReport`.

    Raises:
        ValueError: listing every weight outside the class-dependent layers whose shape
            differs; nothing is copied in that case.
    """
    theirs, ours = weight_places(source), weight_places(target)
    backbone = BACKBONE_NAME + "/"
    ours_bb = {p for p in ours if p.startswith(backbone)}
    theirs_bb = {p for p in theirs if p.startswith(backbone)}
    if ours_bb != theirs_bb:
        raise ValueError(
            f"{source_name} has another backbone than the model: {len(ours_bb - theirs_bb)} of "
            f"the model's backbone weights are not in it (e.g. {sorted(ours_bb - theirs_bb)[:3]}) "
            f"and {len(theirs_bb - ours_bb)} of its are not in the model (e.g. "
            f"{sorted(theirs_bb - ours_bb)[:3]}); set model.backbone to the source's."
        )
    copies, reset, mismatched = [], set(), []
    for place, variable in ours.items():
        if place not in theirs:
            continue
        shape, wanted = tuple(theirs[place].shape), tuple(variable.shape)
        if shape == wanted:
            copies.append((variable, theirs[place]))
        elif _layer_of(place).startswith(CLASS_LAYERS):
            reset.add(_layer_of(place))
        else:
            mismatched.append(f"{place}: {shape} in the source, {wanted} in the model")
    if mismatched:
        raise ValueError(
            f"{source_name} does not fit the model: {len(mismatched)} weights differ in shape "
            f"outside the class-dependent layers (another backbone, head width or codeword "
            f"count?): {mismatched[:10]}{' ...' if len(mismatched) > 10 else ''}"
        )
    for variable, value in copies:
        variable.assign(np.asarray(value.numpy(), variable.dtype))
    shared = {_layer_of(p) for p in ours if p in theirs}
    return TransferReport(
        copied=sorted(shared - reset),
        reset=sorted(reset),
        new=sorted({_layer_of(p) for p in ours if p not in theirs} - shared),
        unused=sorted({_layer_of(p) for p in theirs if p not in ours} - shared),
    )
