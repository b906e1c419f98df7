"""Real damaged model files, made from a good `.keras` file: what a killed copy or a bad
disk leaves."""

import zipfile

import numpy as np

from tests.support.tiny_models import tiny_segmenter


def damaged_keras_files(model_path, directory):
    """`{kind: path}` of broken `.keras` files in `directory`: `empty`, `truncated` (the first
    half), `corrupt` (64 bytes flipped mid-file), `bad_weights` (a complete archive whose
    weights file is cut short) and `nan` (a complete model whose weights are NaN)."""
    data = open(model_path, "rb").read()
    contents = {"empty": b"", "truncated": data[: len(data) // 2]}
    corrupt = bytearray(data)
    for i in range(len(data) // 2, len(data) // 2 + 64):
        corrupt[i] ^= 0xFF
    contents["corrupt"] = bytes(corrupt)
    paths = {}
    for kind, content in contents.items():
        paths[kind] = directory / f"{kind}.keras"
        paths[kind].write_bytes(content)
    paths["bad_weights"] = directory / "bad_weights.keras"
    with (
        zipfile.ZipFile(model_path) as source,
        zipfile.ZipFile(paths["bad_weights"], "w") as target,
    ):
        for name in source.namelist():
            content = source.read(name)
            target.writestr(name, content[:200] if name.endswith(".h5") else content)
    nan = tiny_segmenter(3)
    nan.set_weights([np.full(w.shape, np.nan, np.float32) for w in nan.weights])
    paths["nan"] = directory / "nan.keras"
    nan.save(paths["nan"])
    return {kind: str(path) for kind, path in paths.items()}
