"""Every published weight file enc_tf can start from, by name: the only home of these facts.

Each URL and digest below is copied from the publisher's own file, never guessed:

- timm ImageNet ResNet-s / -c (GluonCV's ResNet-v1s / -v1c): `default_cfgs` in
  huggingface/pytorch-image-models `timm/models/resnet.py` (`resnet50s.gluon_in1k`
  ... `url=`); the architectures in the same file's `resnet50s` / `resnet50c`
  (`stem_width=64` / `32`, `stem_type='deep'`).
- mmcv ResNetV1c ImageNet (`open-mmlab://resnet50_v1c`): open-mmlab/mmcv
  `mmcv/model_zoo/open_mmlab.json` (also open-mmlab/mmengine `mmengine/hub/openmmlab.json`).
- keras.applications ImageNet `notop` files: keras-team/keras
  `keras/src/applications/resnet.py` and `mobilenet_v3.py` (`BASE_WEIGHTS_PATH`,
  `WEIGHTS_HASHES`, whose 32-digit values are MD5 digests).
- MMSegmentation's EncNet checkpoints: open-mmlab/mmsegmentation
  `configs/encnet/metafile.yaml` (names, datasets, `Weights`, mIoU) and the configs
  it names (`align_corners=True` and slide testing for the 769x769 ones only).

Where the publisher gives no full digest (the timm and OpenMMLab `.pth` files), the
integrity check is the filename's 8 hex digits, which by torch.hub's convention
(and OpenMMLab's `publish_model.py`) are the start of the file's SHA-256.
"""

import dataclasses
import difflib
from typing import Optional

from enc_tf.presets.download import Digest

BACKBONE, MODEL = "backbone", "model"
KINDS = (BACKBONE, MODEL)
# File layouts: a torch state_dict (timm / mmcv ImageNet ResNets), a keras.applications
# HDF5 weight file, an MMSegmentation EncNet checkpoint.
FORMATS = ("torch_state", "keras_h5", "mmseg")


@dataclasses.dataclass(frozen=True)
class Preset:
    """One published weight file and what it holds.

    Attributes:
        name: the name users pass (the publisher's own where it has one).
        kind: `backbone` (ImageNet weights for `backbone`) or `model` (a trained EncNet).
        urls: the publisher's URL, then fallbacks holding the same bytes.
        digest: `sha256:<hex>` (a prefix when the publisher gives only that) or `md5:<hex>`.
        file_format: one of `FORMATS`.
        backbone: our backbone the weights load into.
        source: the publisher's file that lists the URL and digest.
        dataset: what it was trained on (`imagenet`, `ade20k`, `cityscapes`).
        num_classes: classes it predicts.
        eval_preset: the `enc-eval --mmseg-preset` that reproduces the published mIoU.
        align_corners: the model's resize rule (MMSegmentation sets it per config).
        crop_size: the training crop side, the window `Segmenter.from_preset` predicts with.
        miou, miou_ms: the published single-scale and multi-scale + flip mIoU.
        params: parameters of the model (or backbone) in enc_tf, in millions.
        aliases: other names that find it.
    """

    name: str
    kind: str
    urls: tuple
    digest: str
    file_format: str
    backbone: str
    source: str
    dataset: str = "imagenet"
    num_classes: int = 1000
    eval_preset: Optional[str] = None
    align_corners: bool = False
    crop_size: Optional[int] = None
    miou: Optional[float] = None
    miou_ms: Optional[float] = None
    params: float = 0.0
    aliases: tuple = ()

    def __post_init__(self):
        if self.kind not in KINDS or self.file_format not in FORMATS or not self.urls:
            raise ValueError(f"Preset {self.name!r}: bad kind, format or URLs.")
        Digest.parse(self.digest)  # a malformed digest is an error at definition

    @property
    def parsed_digest(self) -> Digest:
        return Digest.parse(self.digest)

    @property
    def filename(self) -> str:
        return self.urls[0].rsplit("/", 1)[-1]


_TIMM = "huggingface/pytorch-image-models timm/models/resnet.py (default_cfgs)"
_GLUON = "https://github.com/rwightman/pytorch-pretrained-gluonresnet/releases/download/v0.1/"
_MMCV = "open-mmlab/mmcv mmcv/model_zoo/open_mmlab.json"
_KERAS_RESNET = "keras-team/keras keras/src/applications/resnet.py (WEIGHTS_HASHES)"
_KERAS_MOBILENET = "keras-team/keras keras/src/applications/mobilenet_v3.py (WEIGHTS_HASHES)"
_KERAS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
_MMSEG = "open-mmlab/mmsegmentation configs/encnet/metafile.yaml"
_MMSEG_BASE = "https://download.openmmlab.com/mmsegmentation/v0.5/encnet/"


def _timm(name, file, digest, backbone, params, aliases):
    return Preset(
        name, BACKBONE, (_GLUON + file,), "sha256:" + digest, "torch_state", backbone, _TIMM,
        params=params, aliases=aliases,
    )  # fmt: skip


def _keras(name, path, md5, backbone, source, params):
    return Preset(
        name, BACKBONE, (_KERAS_BASE + path,), "md5:" + md5, "keras_h5", backbone, source,
        params=params,
    )  # fmt: skip


def _encnet(name, old_name, run, digest, depth, dataset, miou, miou_ms, aliases=()):
    """An MMSegmentation EncNet R-`depth`-D8 checkpoint; `run` is the file's date-time."""
    crop, align, evaluation, classes = {
        "ade20k": (512, False, "ade20k", 150),
        "cityscapes": (512, False, "cityscapes", 19),
        "cityscapes-769": (769, True, "cityscapes-769", 19),
    }[dataset]
    params = {(50, 150): 36.1, (101, 150): 55.2, (50, 19): 35.9, (101, 19): 55.0}[depth, classes]
    return Preset(
        name, MODEL, (f"{_MMSEG_BASE}{old_name}/{old_name}_{run}-{digest}.pth",),
        "sha256:" + digest, "mmseg", f"resnet{depth}v1c", _MMSEG,
        dataset=dataset.split("-")[0], num_classes=classes, eval_preset=evaluation,
        align_corners=align, crop_size=crop, miou=miou, miou_ms=miou_ms, params=params,
        aliases=(old_name, *aliases),
    )  # fmt: skip


_ALL = (
    # The paper's backbones (PyTorch-Encoding's resnet50s / resnet101s are GluonCV's v1s).
    _timm("resnet50s.gluon_in1k", "gluon_resnet50_v1s-1762acc0.pth", "1762acc0", "resnet50s",
          23.7, ("gluon_resnet50_v1s",)),
    _timm("resnet101s.gluon_in1k", "gluon_resnet101_v1s-60fe0cc1.pth", "60fe0cc1", "resnet101s",
          42.7, ("gluon_resnet101_v1s",)),
    _timm("resnet50c.gluon_in1k", "gluon_resnet50_v1c-48092f55.pth", "48092f55", "resnet50v1c",
          23.6, ("gluon_resnet50_v1c",)),
    _timm("resnet101c.gluon_in1k", "gluon_resnet101_v1c-1f26822a.pth", "1f26822a",
          "resnet101v1c", 42.6, ("gluon_resnet101_v1c",)),
    # MMSegmentation's backbones (`pretrained='open-mmlab://resnet50_v1c'`).
    Preset("resnet50_v1c", BACKBONE,
           ("https://download.openmmlab.com/pretrain/third_party/resnet50_v1c-2cccc1ad.pth",),
           "sha256:2cccc1ad", "torch_state", "resnet50v1c", _MMCV, params=23.6,
           aliases=("open-mmlab://resnet50_v1c",)),
    Preset("resnet101_v1c", BACKBONE,
           ("https://download.openmmlab.com/pretrain/third_party/resnet101_v1c-e67eebb6.pth",),
           "sha256:e67eebb6", "torch_state", "resnet101v1c", _MMCV, params=42.6,
           aliases=("open-mmlab://resnet101_v1c",)),
    _keras("resnet50_imagenet", "resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "4d473c1dd8becc155b73f8504c6f6626", "resnet50", _KERAS_RESNET, 23.6),
    _keras("resnet101_imagenet", "resnet/resnet101_weights_tf_dim_ordering_tf_kernels_notop.h5",
           "88cf7a10940856eca736dc7b7e228a21", "resnet101", _KERAS_RESNET, 42.7),
    _keras("mobilenetv3_large_imagenet",
           "mobilenet_v3/weights_mobilenet_v3_large_224_1.0_float_no_top_v2.h5",
           "07fb09a5933dd0c8eaafa16978110389", "mobilenetv3_large", _KERAS_MOBILENET, 3.0),
    _keras("mobilenetv3_small_imagenet",
           "mobilenet_v3/weights_mobilenet_v3_small_224_1.0_float_no_top_v2.h5",
           "d3e8ec802a04aa4fc771ee12a9a9b836", "mobilenetv3_small", _KERAS_MOBILENET, 0.9),
    _keras("mobilenetv3_large_minimalistic_imagenet",
           "mobilenet_v3/weights_mobilenet_v3_large_minimalistic_224_1.0_float_no_top_v2.h5",
           "ec5221f64a2f6d1ef965a614bdae7973", "mobilenetv3_large_minimalistic",
           _KERAS_MOBILENET, 1.4),
    _keras("mobilenetv3_small_minimalistic_imagenet",
           "mobilenet_v3/weights_mobilenet_v3_small_minimalistic_224_1.0_float_no_top_v2.h5",
           "cde8136e733e811080d9fcd8a252f7e4", "mobilenetv3_small_minimalistic",
           _KERAS_MOBILENET, 0.4),
    # MMSegmentation's trained EncNets (R-50/101-D8: resnet*v1c at output stride 8).
    _encnet("encnet_r50-d8_4xb2-40k_cityscapes-512x1024", "encnet_r50-d8_512x1024_40k_cityscapes",
            "20200621_220958", "68638a47", 50, "cityscapes", 75.67, 77.08),
    _encnet("encnet_r101-d8_4xb2-40k_cityscapes-512x1024",
            "encnet_r101-d8_512x1024_40k_cityscapes", "20200621_220933", "35e0a3e8", 101,
            "cityscapes", 75.81, 77.21),
    _encnet("encnet_r50-d8_4xb2-40k_cityscapes-769x769", "encnet_r50-d8_769x769_40k_cityscapes",
            "20200621_220958", "3bcd2884", 50, "cityscapes-769", 76.24, 77.85),
    _encnet("encnet_r101-d8_4xb2-40k_cityscapes-769x769", "encnet_r101-d8_769x769_40k_cityscapes",
            "20200621_220933", "2fafed55", 101, "cityscapes-769", 74.25, 76.25),
    _encnet("encnet_r50-d8_4xb2-80k_cityscapes-512x1024", "encnet_r50-d8_512x1024_80k_cityscapes",
            "20200622_003554", "fc5c5624", 50, "cityscapes", 77.94, 79.13,
            ("encnet_r50_cityscapes",)),
    _encnet("encnet_r101-d8_4xb2-80k_cityscapes-512x1024",
            "encnet_r101-d8_512x1024_80k_cityscapes", "20200622_003555", "1de64bec", 101,
            "cityscapes", 78.55, 79.47, ("encnet_r101_cityscapes",)),
    _encnet("encnet_r50-d8_4xb2-80k_cityscapes-769x769", "encnet_r50-d8_769x769_80k_cityscapes",
            "20200622_003554", "55096dcb", 50, "cityscapes-769", 77.44, 78.72,
            ("encnet_r50_cityscapes_769",)),
    _encnet("encnet_r101-d8_4xb2-80k_cityscapes-769x769", "encnet_r101-d8_769x769_80k_cityscapes",
            "20200622_003555", "470ef79d", 101, "cityscapes-769", 76.1, 76.97,
            ("encnet_r101_cityscapes_769",)),
    _encnet("encnet_r50-d8_4xb4-80k_ade20k-512x512", "encnet_r50-d8_512x512_80k_ade20k",
            "20200622_042412", "44b46b04", 50, "ade20k", 39.53, 41.17),
    _encnet("encnet_r101-d8_4xb4-80k_ade20k-512x512", "encnet_r101-d8_512x512_80k_ade20k",
            "20200622_101128", "dd35e237", 101, "ade20k", 42.11, 43.61),
    _encnet("encnet_r50-d8_4xb4-160k_ade20k-512x512", "encnet_r50-d8_512x512_160k_ade20k",
            "20200622_101059", "b2db95e0", 50, "ade20k", 40.1, 41.71, ("encnet_r50_ade20k",)),
    _encnet("encnet_r101-d8_4xb4-160k_ade20k-512x512", "encnet_r101-d8_512x512_160k_ade20k",
            "20200622_073348", "7989641f", 101, "ade20k", 42.61, 44.01, ("encnet_r101_ade20k",)),
)  # fmt: skip
PRESETS = {preset.name: preset for preset in _ALL}
# The ImageNet weights `model.backbone_weights: imagenet` means, per backbone.
IMAGENET = {
    "resnet50s": "resnet50s.gluon_in1k",
    "resnet101s": "resnet101s.gluon_in1k",
    "resnet50v1c": "resnet50_v1c",
    "resnet101v1c": "resnet101_v1c",
    "resnet50": "resnet50_imagenet",
    "resnet101": "resnet101_imagenet",
    "mobilenetv3_large": "mobilenetv3_large_imagenet",
    "mobilenetv3_small": "mobilenetv3_small_imagenet",
    "mobilenetv3_large_minimalistic": "mobilenetv3_large_minimalistic_imagenet",
    "mobilenetv3_small_minimalistic": "mobilenetv3_small_minimalistic_imagenet",
}


def _names(presets):
    names = {}
    for preset in presets.values():
        for name in (preset.name, *preset.aliases):
            names[name] = preset
    return names


def list_presets(kind: Optional[str] = None) -> list:
    """The presets (`Preset`s), optionally only of `kind` (`backbone` or `model`)."""
    return [p for p in PRESETS.values() if kind is None or p.kind == kind]


def find(name: str, presets: Optional[dict] = None) -> Optional[Preset]:
    """The preset called `name` (or one of its aliases) in `presets` (default `PRESETS`),
    or None."""
    return _names(PRESETS if presets is None else presets).get(name)


def suggestions(name: str, presets: Optional[dict] = None) -> list:
    """Preset names close to `name`, for 'did you mean' messages."""
    return difflib.get_close_matches(name, list(_names(PRESETS if presets is None else presets)))


def table(presets: Optional[dict] = None) -> str:
    """The presets as a Markdown table: name, kind, backbone, dataset, classes, published
    mIoU (single scale / multi-scale + flip), parameters, float32 size (4 bytes a
    parameter: the converted model's size), and the publisher."""
    rows = [
        "| name | kind | backbone | dataset | classes | mIoU (ss / ms+flip) | params (M) "
        "| float32 size (MB) | source |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in (PRESETS if presets is None else presets).values():
        miou = f"{p.miou:.2f} / {p.miou_ms:.2f}" if p.miou is not None else "-"
        source = p.source.split(" ")[0]
        rows.append(
            f"| {p.name} | {p.kind} | {p.backbone} | {p.dataset} | {p.num_classes} | {miou} | "
            f"{p.params:.1f} | {4 * p.params:.0f} | {source} |"
        )
    return "\n".join(rows)
