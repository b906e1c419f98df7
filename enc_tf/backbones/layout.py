"""What every backbone shares: its name in a model, its four stage outputs, and the
output-stride schedule that turns a classification network into a dilated one."""

BACKBONE_NAME = "backbone"  # the backbone sub-model's name in every enc_tf model
STAGE_OUTPUTS = ("c1", "c2", "c3", "c4")  # strides 4, 8, 16, 32 before dilation


def stage_strides_and_dilations(output_stride):
    """`(stride, dilation)` of stages 2, 3 and 4 (the ones that end at `c2..c4`).

    Output stride 8 dilates stage 3 by 2 and stage 4 by 4; 16 dilates only
    stage 4 by 2; 32 is the undilated classification network.
    """
    table = {
        8: ((2, 1), (1, 2), (1, 4)),
        16: ((2, 1), (2, 1), (1, 2)),
        32: ((2, 1), (2, 1), (2, 1)),
    }
    if output_stride not in table:
        raise ValueError(f"output_stride must be 8, 16 or 32, got {output_stride!r}.")
    return table[output_stride]


def first_block_dilation(dilation):
    """A dilated stage's first block keeps the previous rate: half the stage's (4 -> 2,
    2 -> 1), as the original ResNets and DeepLab's MobileNets do."""
    return max(dilation // 2, 1)
