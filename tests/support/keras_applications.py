"""keras.applications models as references, and their weights in the official file layout."""

import h5py


def write_legacy_h5(model, path):
    """Writes `model`'s weights as the official keras.applications `*_notop.h5` files
    are laid out (legacy Keras HDF5: `layer_names`, one group per layer)."""
    with h5py.File(path, "w") as f:
        layers = [layer for layer in model.layers if layer.weights]
        f.attrs["layer_names"] = [layer.name.encode() for layer in layers]
        for layer in layers:
            group = f.create_group(layer.name)
            names = [f"{layer.name}/{w.name}:0" for w in layer.weights]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, w in zip(names, layer.weights):
                group.create_dataset(name, data=w.numpy())
