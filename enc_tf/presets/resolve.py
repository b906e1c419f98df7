"""A preset name, a URL or a path, wherever a model or weights are taken.

- `model_path(spec)`: a local model for `load_model` (a `.keras` file, run directory or
  SavedModel). A preset or URL of a checkpoint is downloaded, verified, converted
  once into `$ENC_TF_HOME/models/` and reused from there.
- `backbone_weights_path(spec, backbone)`: a local ImageNet weight file for a backbone.
"""

import hashlib
import logging
import os
import urllib.parse

from enc_tf.convert import mmseg, pytorch_encoding
from enc_tf.convert.cli import DATASET_CLASSES
from enc_tf.convert.formats import checkpoint_format
from enc_tf.errors import ConfigError, ModelFileError
from enc_tf.files import file_lock, remove_stale_temporaries
from enc_tf.models.saving import save_model_atomic
from enc_tf.presets import download
from enc_tf.presets.registry import BACKBONE, IMAGENET, MODEL, find, suggestions
from enc_tf.state_dicts import read_checkpoint

logger = logging.getLogger(__name__)

MODELS_DIR = "models"  # converted `.keras` files in the cache
URL_SCHEMES = ("http://", "https://")
MODEL_SUFFIXES = (".keras", ".pth", ".pt", ".npz")
# The help of every command-line argument that takes a model.
MODEL_HELP = (
    ".keras file, run directory, preset name (enc-presets list) or http(s) URL of a .keras "
    "or EncNet checkpoint (downloaded, verified and converted once, then cached)"
)


def is_url(spec: str) -> bool:
    return isinstance(spec, str) and spec.startswith(URL_SCHEMES)


def _unknown(spec, kind, what):
    close = suggestions(spec)
    hint = f" (did you mean {', '.join(close)}?)" if close else ""
    return ConfigError(
        f"{what} {spec!r} is not a file, a directory, an http(s) URL or a {kind} preset"
        f"{hint}; `enc-presets list` shows the presets."
    )


def _preset_of_kind(spec, kind, what):
    preset = find(spec)
    if preset is None:
        return None
    if preset.kind != kind:
        raise ConfigError(
            f"{what} {spec!r} names {preset.kind} weights ({preset.backbone} on "
            f"{preset.dataset}), not a {kind}."
        )
    return preset


def fetch_preset(preset, progress=None) -> str:
    """The local, verified copy of a preset's file (downloaded on first use)."""
    return download.fetch(
        preset.urls, preset.parsed_digest, preset.filename, subdir="downloads", progress=progress
    )


def _url_key(url):
    """A name of its own for each URL (two URLs may share a file name)."""
    return "url-" + hashlib.sha256(url.encode()).hexdigest()[:16]


def _fetch_url(spec, progress):
    """A user's URL, cached in a directory of its own."""
    url = spec.split("#", 1)[0]
    subdir = os.path.join("downloads", _url_key(url))
    return download.fetch([url], download.digest_from_url(spec), subdir=subdir, progress=progress)


def _convert(checkpoint, out, preset=None):
    """Converts a torch checkpoint into the `.keras` model `out` (atomically)."""
    state, meta = read_checkpoint(checkpoint)
    layout = checkpoint_format(state)
    try:
        if layout == "mmseg":
            given = {}
            if preset is not None:
                classes = DATASET_CLASSES.get(preset.dataset)
                given = dict(align_corners=preset.align_corners)
                if classes is not None and classes.num_classes == preset.num_classes:
                    given.update(
                        class_names=list(classes.names),
                        palette=[list(c) for c in classes.palette],
                    )
            model, _ = mmseg.build_from_state(state, meta, source=checkpoint, **given)
        elif layout == "pytorch-encoding":
            model, _ = pytorch_encoding.build_from_state(state, source=checkpoint)
        else:
            raise ValueError(
                "neither an MMSegmentation nor a PyTorch-Encoding EncNet/FCN checkpoint "
                f"(first keys {sorted(state)[:3]})"
            )
    except (ValueError, KeyError, TypeError) as err:
        hint = (
            f"; convert it by hand (python -m enc_tf.convert mmseg {checkpoint} --align-corners "
            "true|false --out MODEL.keras) and pass the .keras file"
            if "align_corners" in str(err)
            else ""
        )
        raise ModelFileError(
            f"{checkpoint} cannot be converted into a model: {' '.join(str(err).split())}{hint}"
        ) from err
    if preset is not None and int(model.output["seg"].shape[-1]) != preset.num_classes:
        raise ModelFileError(
            f"{checkpoint} predicts {model.output['seg'].shape[-1]} classes, but the preset "
            f"{preset.name} says {preset.num_classes}: it is not the preset's file."
        )
    if preset is not None and model.get_config().get("backbone") != preset.backbone:
        raise ModelFileError(
            f"{checkpoint} has a {model.get_config().get('backbone')} backbone, but the preset "
            f"{preset.name} says {preset.backbone}: it is not the preset's file."
        )
    save_model_atomic(model, out)
    logger.info("Converted %s into %s", checkpoint, out)
    return out


def _converted_path(name):
    return os.path.join(download.cache_home(), MODELS_DIR, name + ".keras")


def _converted(fetch_checkpoint, name, preset=None):
    """The cached `.keras` conversion of the checkpoint `fetch_checkpoint()` gives, made
    on first use; once made, the checkpoint is neither read nor needed again."""
    out = _converted_path(name)
    if os.path.isfile(out):
        return out
    checkpoint = fetch_checkpoint()
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with file_lock(out + ".lock"):
        if not os.path.isfile(out):
            remove_stale_temporaries(os.path.dirname(out))
            _convert(checkpoint, out, preset)
    return out


def model_path(spec: str, progress=None) -> str:
    """A local model for `spec`: a path (returned as it is), a `model` preset name, or an
    http(s) URL of a `.keras` file or of an EncNet checkpoint (`.pth`, `.npz`).

    A preset's checkpoint is verified against its published digest; a URL's against the
    digest it states (`#sha256=<hex>`, or torch.hub's `-<hex>` filename suffix).
    """
    if os.path.exists(spec):
        return spec
    preset = _preset_of_kind(spec, MODEL, "The model")
    if preset is not None:
        name = f"{preset.name}-{preset.parsed_digest.value[:8]}"
        return _converted(lambda: fetch_preset(preset, progress), name, preset)
    if is_url(spec):
        path = urllib.parse.urlsplit(spec).path
        if not path.endswith(MODEL_SUFFIXES):
            raise ConfigError(f"The model URL {spec} must name a {', '.join(MODEL_SUFFIXES)} file.")
        if path.endswith(".keras"):
            return _fetch_url(spec, progress)
        stem = os.path.splitext(os.path.basename(path))[0]
        name = f"{_url_key(spec.split('#', 1)[0])}-{stem}"
        return _converted(lambda: _fetch_url(spec, progress), name)
    if spec.endswith(MODEL_SUFFIXES) or os.sep in spec:
        raise ModelFileError(f"Model not found: {spec}")
    raise _unknown(spec, MODEL, "The model")


def backbone_weights_path(spec: str, backbone: str, progress=None):
    """The local ImageNet weight file for `backbone` that `spec` names: `none` (None), a
    path, `imagenet` (the backbone's usual ImageNet preset), a `backbone` preset name, or
    an http(s) URL."""
    if spec is None:
        return None
    if os.path.exists(spec):
        return spec
    if spec == "imagenet":
        spec = IMAGENET[backbone]
    preset = _preset_of_kind(spec, BACKBONE, "model.backbone_weights")
    if preset is not None:
        if preset.backbone != backbone:
            raise ConfigError(
                f"model.backbone_weights {spec!r} holds {preset.backbone} weights, but "
                f"model.backbone is {backbone}; for {backbone} use {IMAGENET[backbone]!r}."
            )
        return fetch_preset(preset, progress)
    if is_url(spec):
        return _fetch_url(spec, progress)
    if os.sep in spec or "." in os.path.basename(spec):
        raise ConfigError(f"model.backbone_weights: file not found: {spec}")
    raise _unknown(spec, BACKBONE, "model.backbone_weights")
