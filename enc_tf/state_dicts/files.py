"""Torch state_dict files: `.npz`, `.safetensors` and `.pth`, read without running code in
them and written atomically."""

import json
import os
import pickle
import zipfile

import numpy as np

from enc_tf.errors import EncTfError, ModelFileError, import_optional
from enc_tf.files import atomic_write

# An `.npz` state_dict may carry the checkpoint's `meta` as a JSON string under this key.
META_KEY = "__meta__"


def _read_npz(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            state = {key: data[key] for key in data.files}
    except (OSError, ValueError) as err:
        raise ValueError(f"{path!r} is not a readable .npz file: {err}") from err
    meta = None
    if META_KEY in state:
        try:
            meta = json.loads(str(state.pop(META_KEY)))
        except ValueError as err:
            raise ValueError(f"{path!r}: {META_KEY} is not a JSON string: {err}") from err
    return state, meta


def _read_torch(path):
    torch = import_optional(
        "torch",
        f"Reading {path!r}",
        "install it, or save the state_dict as .npz: "
        "np.savez(out, **{k: v.numpy() for k, v in sd.items()}).",
    )
    raw = torch.load(path, map_location="cpu", weights_only=True)
    meta = raw.get("meta") if isinstance(raw, dict) else None
    for nested in ("state_dict", "model"):
        if isinstance(raw, dict) and isinstance(raw.get(nested), dict):
            raw = raw[nested]
    if not isinstance(raw, dict):
        raise ModelFileError(f"{path} holds a {type(raw).__name__}, not a state_dict of tensors.")
    not_tensors = sorted(str(k) for k, v in raw.items() if not isinstance(v, torch.Tensor))
    if not_tensors:
        raise ModelFileError(
            f"{path} is not a state_dict: {len(not_tensors)} entries are not tensors "
            f"({not_tensors[:5]})."
        )
    state = {key: value.detach().cpu().numpy() for key, value in raw.items()}
    return state, meta if isinstance(meta, dict) else None


def _read_safetensors(path):
    safetensors = import_optional("safetensors", f"Reading {path!r}", "pip install safetensors.")
    from safetensors.numpy import load_file  # the package is there: import_optional found it

    SafetensorError = safetensors.SafetensorError
    try:
        return dict(load_file(path)), None
    except SafetensorError as err:
        raise ValueError(f"{path!r} is not a readable safetensors file: {err}") from err


def _read_checkpoint_file(path):
    """`(state_dict, meta)` of a `.npz` (arrays keyed by torch names, optional
    `__meta__` JSON), `.safetensors` (read without torch or pickle) or `.pth`/`.pt`
    file (needs torch; read with `weights_only=True`, so no code in it runs; the
    weights may sit under `state_dict` or `model`, next to a `meta` dict).
    `module.` prefixes of DataParallel are dropped. `meta` is None when the file has none.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint not found: {path!r}")
    if path.endswith(".npz"):
        state, meta = _read_npz(path)
    elif path.endswith(".safetensors"):
        state, meta = _read_safetensors(path)
    elif path.endswith((".pth", ".pt", ".pth.tar")):
        state, meta = _read_torch(path)
    else:
        raise ValueError(
            f"Unknown checkpoint format {path!r}: expected .npz, .safetensors, .pth or .pt."
        )
    if state and all(key.startswith("module.") for key in state):
        state = {key[len("module.") :]: value for key, value in state.items()}
    if not state:
        raise ValueError(f"{path!r} holds no arrays.")
    return state, meta


def read_state_dict(path):
    """The state_dict of a checkpoint file (see `read_checkpoint`)."""
    return read_checkpoint(path)[0]


def write_state_dict(state, path, meta=None):
    """Writes a state_dict atomically as `.npz` (meta as JSON under `__meta__`) or
    `.pth` (`{"state_dict": ..., "meta": ...}`, needs torch, which reads it back
    with `torch.load(path, weights_only=True)`)."""
    if path.endswith(".npz"):
        arrays = dict(state)
        if meta is not None:
            arrays[META_KEY] = np.asarray(json.dumps(meta))

        def write(tmp):
            with open(tmp, "wb") as f:
                np.savez(f, **arrays)

    elif path.endswith((".pth", ".pt")):
        torch = import_optional("torch", f"Writing {path!r}", "install it, or write a .npz.")
        payload = {"state_dict": {k: torch.from_numpy(np.asarray(v)) for k, v in state.items()}}
        if meta is not None:
            payload["meta"] = meta

        def write(tmp):
            torch.save(payload, tmp)

    else:
        raise ValueError(f"Unknown state_dict format {path!r}: expected .npz or .pth.")
    return atomic_write(path, write)


def read_checkpoint(path):
    """`(state_dict, meta)` of a checkpoint file (`.npz`, `.safetensors`, `.pth`; see
    `_read_checkpoint_file`), with every way the file can be unusable as a `ModelFileError`
    naming it."""
    if not os.path.isfile(path):
        raise ModelFileError(f"Checkpoint not found: {path}")
    if os.path.getsize(path) == 0:
        raise ModelFileError(f"Checkpoint {path} is empty (0 bytes): the file is truncated.")
    try:
        return _read_checkpoint_file(path)
    except EncTfError:
        raise
    except ImportError as err:
        raise EncTfError(str(err)) from err
    except pickle.UnpicklingError as err:
        if "Weights only load failed" not in str(err):
            raise ModelFileError(
                f"Cannot read the checkpoint {path}: the file is corrupt or truncated "
                f"({type(err).__name__}: {' '.join(str(err).split())[:200]})"
            ) from err
        raise ModelFileError(
            f"Refused to read {path}: it holds pickled Python objects besides tensors, which "
            "torch.load(weights_only=True) does not run (they could run code). Save only the "
            "state_dict's tensors (torch.save(model.state_dict(), path)) and convert that."
        ) from err
    # np.load of a damaged .npz raises BadZipFile or EOFError, torch.load of a damaged .pth
    # RuntimeError; none of them names the file.
    except (
        ValueError,
        OSError,
        EOFError,
        zipfile.BadZipFile,
        RuntimeError,
    ) as err:
        raise ModelFileError(
            f"Cannot read the checkpoint {path}: the file is corrupt or truncated "
            f"({type(err).__name__}: {' '.join(str(err).split())})"
        ) from err
