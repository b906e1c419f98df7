"""timm's ResNets with random weights, saved as its users download them.

PyPI's torchvision wheels are built against CUDA torch; next to the CPU torch of the
dev extra their compiled ops (`_C.so`) do not load, and torchvision then fails at
import while registering fake kernels for two of those ops (`nms`, `qnms`). Declaring
the two schemas first lets it import; timm's ResNets use none of its compiled ops.
"""

import numpy as np

_TORCHVISION_SCHEMAS = []


def import_timm():
    import torch

    try:
        import torchvision  # noqa: F401
    except RuntimeError:
        lib = torch.library.Library("torchvision", "DEF")
        for op in ("nms", "qnms"):
            lib.define(f"{op}(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
        _TORCHVISION_SCHEMAS.append(lib)  # the schemas live as long as the library object
    import timm

    return timm


def random_resnet(name, seed=0):
    """timm's `name` (`resnet50s`, `resnet50c`, ...) with random weights and BatchNorm
    statistics, in eval mode."""
    import torch

    timm = import_timm()
    torch.manual_seed(seed)
    model = timm.create_model(name, pretrained=False).eval()
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                n = m.num_features
                m.running_mean.copy_(torch.randn(n, generator=g) * 0.1)
                m.running_var.copy_(torch.rand(n, generator=g) + 0.5)
                m.weight.copy_(torch.rand(n, generator=g) + 0.5)
                m.bias.copy_(torch.randn(n, generator=g) * 0.1)
    return model


def stage_outputs(model, images):
    """timm's features after layer1..layer4 at output stride 8 (its dilation rule), for
    NHWC float32 `images`, as NHWC arrays."""
    import torch

    timm = import_timm()
    features = timm.create_model(
        model.default_cfg["architecture"],
        pretrained=False,
        features_only=True,
        output_stride=8,
        out_indices=(1, 2, 3, 4),
    ).eval()
    features.load_state_dict(
        {k: v for k, v in model.state_dict().items() if not k.startswith("fc.")}
    )
    with torch.no_grad():
        outs = features(torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))))
    return [o.numpy().transpose(0, 2, 3, 1) for o in outs]
