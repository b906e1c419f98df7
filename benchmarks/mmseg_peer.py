"""MMSegmentation's EncNet R-50-D8 (ADE20K config, 150 classes) as the peer of
benchmarks/vs_mmseg.py; runs under an interpreter that has mmsegmentation 1.2,
mmengine, mmcv-lite 2.1 and torch (CPU). Prints one JSON line.

mmcv-lite has no compiled ops (`mmcv._ext`); EncNet calls none of them, so a
stand-in module that fails if anything is called lets `mmseg` import.

  python benchmarks/mmseg_peer.py forward BATCH SIZE REPEATS
  python benchmarks/mmseg_peer.py train BATCH SIZE STEPS
  python benchmarks/mmseg_peer.py profile forward|train BATCH SIZE
  python benchmarks/mmseg_peer.py agreement BATCH SIZE

`agreement` loads MMSegmentation's parity weights (tests/fixtures/oracle_mmseg, made
with NumPy by tests/support/oracle.py) and compares bfloat16 (`torch.autocast`) with
float32 on one random input: argmax agreement and error relative to the largest logit.
"""

import json
import os
import resource
import sys
import types

from common import median_seconds  # benchmarks/common.py: standard library only

CONFIG = "encnet_r50-d8_4xb4-80k_ade20k-512x512.py"
THREADS = 2


class _NoCompiledOps(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name}: mmcv-lite has no compiled ops")

        return missing


def build():
    sys.modules.setdefault("mmcv._ext", _NoCompiledOps("mmcv._ext"))
    import mmseg
    import torch
    from mmengine.config import Config
    from mmseg.registry import MODELS
    from mmseg.utils import register_all_modules

    torch.set_num_threads(THREADS)
    register_all_modules()
    path = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "encnet", CONFIG)
    cfg = Config.fromfile(path)
    cfg.model.pretrained = None
    cfg.model.data_preprocessor = None  # inputs arrive normalised, as ours

    def one_device(node):  # SyncBN -> BN: the same maths on one device
        if isinstance(node, dict):
            if isinstance(node.get("norm_cfg"), dict) and node["norm_cfg"].get("type") == "SyncBN":
                node["norm_cfg"]["type"] = "BN"
            for value in node.values():
                one_device(value)

    one_device(cfg.model)
    return MODELS.build(cfg.model)


def _metas(batch, size):
    shape = (size, size)
    return [dict(img_shape=shape, ori_shape=shape, pad_shape=shape) for _ in range(batch)]


def forward_fn(model, batch, size):
    import torch

    model.eval()
    x = torch.randn(batch, 3, size, size, generator=torch.Generator().manual_seed(0))
    metas = _metas(batch, size)

    def step():
        with torch.no_grad():
            return model.encode_decode(x, metas)

    return step


def train_fn(model, batch, size):
    """One training step with MMSegmentation's own losses (CE, SE 0.2, aux 0.4) and SGD
    (lr 0.01, momentum 0.9, weight decay 5e-4, as its schedule)."""
    import torch
    from mmengine.structures import PixelData
    from mmseg.structures import SegDataSample

    model.train()
    g = torch.Generator().manual_seed(0)
    x = torch.randn(batch, 3, size, size, generator=g)
    samples = []
    for meta in _metas(batch, size):
        sample = SegDataSample(metainfo=meta)
        label = torch.randint(0, 150, (1, size, size), generator=g)
        sample.gt_sem_seg = PixelData(data=label)
        samples.append(sample)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)

    def step():
        losses = model.loss(x, samples)
        loss = sum(v for k, v in losses.items() if "loss" in k)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return loss

    return step


def bfloat16_agreement(model, batch, size):
    """MMSegmentation's own bfloat16 (CPU autocast) against its float32, on the parity
    weights: `{"argmax_agreement", "relative_error"}`."""
    import numpy as np
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from tests.support import oracle  # NumPy only

    state = oracle.state_dict("mmseg_ade_r50", oracle.MMSEG_DIR)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})
    step = forward_fn(model, batch, size)
    full = step()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = step().float()
    return {
        "argmax_agreement": (full.argmax(1) == half.argmax(1)).float().mean().item(),
        "relative_error": ((full - half).abs().max() / full.abs().max()).item(),
    }


def profile(step):
    """`{op type: seconds}` of one step under torch.profiler (self CPU time per op)."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        step()
    totals = {}
    for event in prof.key_averages():
        if event.key.startswith("aten::"):
            totals[event.key[len("aten::") :]] = event.self_cpu_time_total * 1e-6
    return totals


def main(argv):
    case = argv[0]
    model = build()
    if case == "agreement":
        result = bfloat16_agreement(model, int(argv[1]), int(argv[2]))
    elif case == "profile":
        what, batch, size = argv[1], int(argv[2]), int(argv[3])
        step = (forward_fn if what == "forward" else train_fn)(model, batch, size)
        for _ in range(2):
            step()
        result = {"ops": profile(step)}
    else:
        batch, size, repeats = int(argv[1]), int(argv[2]), int(argv[3])
        step = (forward_fn if case == "forward" else train_fn)(model, batch, size)
        for _ in range(2):
            step()
        result = {"seconds": median_seconds(step, repeats)}
    result["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
