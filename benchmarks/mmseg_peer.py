"""MMSegmentation's EncNet R-50-D8 (ADE20K config, 150 classes) as the peer of
benchmarks/vs_mmseg.py; runs under an interpreter that has mmsegmentation 1.2,
mmengine, mmcv-lite 2.1 and torch (CPU). Prints one JSON line.

mmcv-lite has no compiled ops (`mmcv._ext`); EncNet calls none of them, so a
stand-in module that fails if anything is called lets `mmseg` import.

  python benchmarks/mmseg_peer.py forward BATCH SIZE REPEATS
  python benchmarks/mmseg_peer.py train BATCH SIZE STEPS
  python benchmarks/mmseg_peer.py profile forward|train BATCH SIZE
  python benchmarks/mmseg_peer.py agreement BATCH SIZE
  python benchmarks/mmseg_peer.py predict|tta FOLDER
  python benchmarks/mmseg_peer.py pipeline FOLDER BATCHES WORKERS

`agreement` loads MMSegmentation's parity weights (tests/fixtures/oracle_mmseg, made
with NumPy by tests/support/oracle.py) and compares bfloat16 (`torch.autocast`) with
float32 on one random input: argmax agreement and error relative to the largest logit.

The user paths run on FOLDER's `images/*.jpg` and `masks/*.png` (an ADE20K layout:
reduce_zero_label) with the parity weights: `predict` is `mmseg.apis.inference_model`
per image file (the config's test pipeline, whole-image inference), `tta` the
config's `tta_pipeline` with `SegTTAModel` (ratios 0.5-1.75 of the image, flips), both
seconds per image (median after the first); `pipeline` is the config's training pipeline
through a DataLoader with WORKERS processes and the model's data preprocessor (normalise,
pad, stack), images per second over BATCHES batches of 8 after the first.
"""

import json
import os
import resource
import sys
import types

from common import median_seconds, per_image_seconds  # benchmarks/common.py: standard library only

CONFIG = "encnet_r50-d8_4xb4-80k_ade20k-512x512.py"
THREADS = 2


class _NoCompiledOps(types.ModuleType):
    def __getattr__(self, name):
        if name.startswith("__"):
            raise AttributeError(name)

        def missing(*args, **kwargs):
            raise RuntimeError(f"mmcv._ext.{name}: mmcv-lite has no compiled ops")

        return missing


def config():
    sys.modules.setdefault("mmcv._ext", _NoCompiledOps("mmcv._ext"))
    import mmseg
    import torch
    from mmengine.config import Config
    from mmseg.utils import register_all_modules

    torch.set_num_threads(THREADS)
    register_all_modules()
    path = os.path.join(os.path.dirname(mmseg.__file__), ".mim", "configs", "encnet", CONFIG)
    return Config.fromfile(path)


def build(preprocess=False):
    """The config's model on one device; `preprocess`: with its data preprocessor (the user
    paths read image files), else inputs arrive normalised, as ours."""
    from mmseg.registry import MODELS

    cfg = config()
    cfg.model.pretrained = None
    if not preprocess:
        cfg.model.data_preprocessor = None

    def one_device(node):  # SyncBN -> BN: the same maths on one device
        if isinstance(node, dict):
            if isinstance(node.get("norm_cfg"), dict) and node["norm_cfg"].get("type") == "SyncBN":
                node["norm_cfg"]["type"] = "BN"
            for value in node.values():
                one_device(value)

    one_device(cfg.model)
    model = MODELS.build(cfg.model)
    model.cfg = cfg  # as mmseg.apis.init_model leaves it: inference_model reads its pipeline
    return model


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


def load_parity_weights(model):
    import numpy as np
    import torch

    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), os.pardir))
    from tests.support import oracle  # NumPy only

    state = oracle.state_dict("mmseg_ade_r50", oracle.MMSEG_DIR)
    model.load_state_dict({k: torch.from_numpy(np.asarray(v)) for k, v in state.items()})


def _files(folder):
    import glob

    images = sorted(glob.glob(os.path.join(folder, "images", "*.jpg")))
    masks = [os.path.join(folder, "masks", os.path.basename(p)[:-4] + ".png") for p in images]
    return images, masks


def predict_seconds(model, folder):
    """`inference_model` per image file: the test pipeline, whole-image inference."""
    from mmseg.apis import inference_model

    images, _ = _files(folder)
    model.eval()
    return per_image_seconds(lambda i: inference_model(model, images[i]).pred_sem_seg, len(images))


def tta_seconds(model, folder):
    """The config's `tta_pipeline` and `SegTTAModel` per image, as `tools/test.py --tta`."""
    import torch
    from mmcv.transforms import Compose
    from mmengine.dataset import pseudo_collate
    from mmseg.models import SegTTAModel

    images, masks = _files(folder)
    model.eval()
    tta = SegTTAModel(module=model)
    pipeline = Compose(model.cfg.tta_pipeline)

    def step(i):
        sample = dict(img_path=images[i], seg_map_path=masks[i], reduce_zero_label=True)
        data = pipeline({**sample, "seg_fields": []})
        with torch.no_grad():
            return tta.test_step(pseudo_collate([data]))

    return per_image_seconds(step, len(images))


def pipeline_rate(model, folder, batches, workers):
    """Images per second of the training pipeline: ADE20KDataset with the config's
    `train_pipeline`, a DataLoader of `workers` processes (batches of 8, as ours in
    benchmarks/vs_mmseg_paths.py), the data preprocessor."""
    import time

    import torch
    from mmengine.dataset import pseudo_collate
    from mmseg.datasets import ADE20KDataset

    dataset = ADE20KDataset(
        data_root=folder,
        data_prefix=dict(img_path="images", seg_map_path="masks"),
        pipeline=model.cfg.train_pipeline,
    )
    sampler = torch.utils.data.RandomSampler(dataset, replacement=True, num_samples=10**6)
    loader = torch.utils.data.DataLoader(
        dataset,
        batch_size=8,
        sampler=sampler,
        num_workers=workers,
        collate_fn=pseudo_collate,
        persistent_workers=workers > 0,
    )
    batches_iter = iter(loader)
    model.data_preprocessor(next(batches_iter), True)  # workers started, first batch
    start = time.perf_counter()
    for _ in range(batches):
        model.data_preprocessor(next(batches_iter), True)
    return batches * 8 / (time.perf_counter() - start)


def bfloat16_agreement(model, batch, size):
    """MMSegmentation's own bfloat16 (CPU autocast) against its float32, on the parity
    weights: `{"argmax_agreement", "relative_error"}`."""
    import torch

    load_parity_weights(model)
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
    paths = case in ("predict", "tta", "pipeline")
    model = build(preprocess=paths)
    if paths:
        load_parity_weights(model)
    if case in ("predict", "tta"):
        timed = predict_seconds if case == "predict" else tta_seconds
        result = {"seconds": timed(model, argv[1])}
    elif case == "pipeline":
        result = {"images_per_second": pipeline_rate(model, argv[1], int(argv[2]), int(argv[3]))}
    elif case == "agreement":
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
