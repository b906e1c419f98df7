"""TFLite model metadata for deployment files, written and read with MediaPipe's writer.

The metadata is the flatbuffer schema that MediaPipe Tasks and the LiteRT support library
read: the model's name, description, version, author and licence; the input's
normalisation; each output described as a segmentation mask with the class names attached
as a label file (an associated file packed into the `.tflite`). It is written with
`mediapipe.tasks.python.metadata` (the `mobile` extra), the writer MediaPipe maintains for
its own task files, rather than by hand: the schema has many optional fields whose
defaults the task graphs rely on. (TFLite Support's writer is the older twin of the same
code, unmaintained since 2023.)
"""

import importlib
import json
import sys
import types

from enc_tf.errors import ModelFileError, import_optional
from enc_tf.export.metadata_version import minimum_parser_version

_INSTALL = "pip install 'enc_tf[mobile]'"
DEFAULT_AUTHOR = "enc_tf"
DEFAULT_LICENSE = "Apache-2.0"
LABEL_FILE = "labels.txt"  # the label file of the last output, which MediaPipe reads
# A deployment file normalises inside its graph: the metadata tells clients to feed pixel
# values as they are (MediaPipe maps [0, 255] through (x - mean) / std with these).
PIXEL_MEAN, PIXEL_STD = 0.0, 1.0
OUTPUT_DESCRIPTIONS = {
    "category_mask": "The class index of each pixel (argmax), uint8, at the input's size.",
    "confidences": "Class probabilities (softmax) of each pixel at the input's size.",
}


# MediaPipe's compiled helper that the writer imports, absent from the mediapipe 1.2.3 wheel.
_VERSION_HELPER = "mediapipe.tasks.cc.metadata.python._pywrap_metadata_version"


def _metadata_modules():
    """MediaPipe's metadata writer modules; where the installed wheel lacks the writer's
    compiled version helper, `enc_tf.export.metadata_version` stands in for it."""
    import_optional("mediapipe", "Writing TFLite metadata", _INSTALL)
    try:
        importlib.import_module(_VERSION_HELPER)
    except ImportError:
        # The writer imports it as `from <package> import <helper>`: both are registered
        # (the package, absent from the wheel, holds nothing else).
        package_name, _, name = _VERSION_HELPER.rpartition(".")
        helper = types.ModuleType(_VERSION_HELPER)
        helper.GetMinimumMetadataParserVersion = minimum_parser_version
        package = sys.modules.setdefault(package_name, types.ModuleType(package_name))
        setattr(package, name, helper)
        sys.modules[_VERSION_HELPER] = helper
    from mediapipe.tasks.python.metadata.metadata_writers import (
        image_segmenter,
        metadata_info,
        metadata_writer,
    )

    return metadata_writer, metadata_info, image_segmenter


def add_metadata(flatbuffer, class_names, info):
    """`flatbuffer` (a deployment file, `enc_tf.export.deploy`) with metadata.

    Args:
        class_names: the model's class names, attached to every output as its labels.
        info: `{"name", "description", "version", "author", "license"}` strings.
    """
    from enc_tf.export.deploy import DeploymentRunner

    # The outputs as the file orders them (the converter's order, not the signature's).
    output_names = DeploymentRunner(model_content=flatbuffer).output_order()
    writer_module, metadata_info, segmenter = _metadata_modules()
    writer = _writer_class(writer_module)(bytearray(flatbuffer))
    writer.add_model_info(
        metadata_info.GeneralMd(
            name=info["name"],
            version=info["version"],
            description=info["description"],
            author=info["author"],
            licenses=info["license"],
        )
    )
    writer.add_image_input(
        [PIXEL_MEAN],
        [PIXEL_STD],
        name="image",
        description="An RGB image of the input's size; pixel values (0-255) as they are.",
    )
    for index, name in enumerate(output_names):
        last = index == len(output_names) - 1
        labels = writer_module.Labels().add(
            list(class_names), exported_filename=LABEL_FILE if last else f"{name}_{LABEL_FILE}"
        )
        writer.add_segmentation_output(
            labels=labels, name=name, description=OUTPUT_DESCRIPTIONS[name]
        )
    # The outputs are probabilities (or a mask): the client applies no activation.
    writer.add_custom_metadata(segmenter.ImageSegmenterOptionsMd(segmenter.Activation.NONE))
    try:
        model, _ = writer.populate()
    finally:
        writer.close()
    return bytes(model)


def _writer_class(writer_module):
    """MediaPipe's `MetadataWriter` with the schema's version, author and licence (its
    `add_general_info` takes a name and description only), and an explicit `close`: its own
    `__del__` removes its temporary folder with `os`, which is gone when an interpreter that
    still holds the writer exits (an "Exception ignored" message after a finished export)."""

    class Writer(writer_module.MetadataWriter):
        def add_model_info(self, general_md):
            self._general_md = general_md
            return self

        def close(self):
            self._temp_folder.cleanup()

        def __del__(self):
            pass

    return Writer


def read_metadata(flatbuffer, name="<model>"):
    """The metadata of a `.tflite` flatbuffer as a dict: `name`, `description`, `version`,
    `author`, `license`, `min_parser_version`, `input_mean`, `input_std`, `outputs` (names)
    and `labels` (the last output's label file); `ModelFileError` naming `name` when it has
    none."""
    _metadata_modules()
    from mediapipe.tasks.python.metadata import metadata

    try:
        displayer = metadata.MetadataDisplayer.with_model_buffer(bytearray(flatbuffer))
    except ValueError as err:
        raise ModelFileError(f"{name} has no TFLite metadata: {err}") from err
    content = json.loads(displayer.get_metadata_json())
    subgraph = content["subgraph_metadata"][0]
    normalization = subgraph["input_tensor_metadata"][0]["process_units"][0]["options"]
    outputs = subgraph["output_tensor_metadata"]
    label_file = outputs[-1]["associated_files"][0]["name"]
    labels = displayer.get_associated_file_buffer(label_file).decode("utf-8").split("\n")
    return {
        "name": content.get("name"),
        "description": content.get("description"),
        "version": content.get("version"),
        "author": content.get("author"),
        "license": content.get("license"),
        "min_parser_version": content.get("min_parser_version"),
        "input_mean": normalization["mean"],
        "input_std": normalization["std"],
        "outputs": [output["name"] for output in outputs],
        "labels": labels,
    }
