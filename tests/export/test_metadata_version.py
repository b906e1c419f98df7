"""The minimum metadata parser version (MediaPipe's metadata_version.cc rule, in Python)."""

import flatbuffers
from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

from enc_tf.export.metadata_version import minimum_parser_version


def _buffer(model):
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), b"M001")
    return bytes(builder.Output())


def _model(tensor=None, **subgraph_fields):
    tensor = tensor or fb.TensorMetadataT()
    subgraph = fb.SubGraphMetadataT()
    subgraph.inputTensorMetadata = [tensor]
    for name, value in subgraph_fields.items():
        setattr(subgraph, name, value)
    model = fb.ModelMetadataT()
    model.subgraphMetadata = [subgraph]
    return model


def _file(kind=None, version=None):
    item = fb.AssociatedFileT()
    item.name = "labels.txt"
    item.type = fb.AssociatedFileType.TENSOR_AXIS_LABELS if kind is None else kind
    item.version = version
    return item


def _tensor(files=(), units=(), content_type=None):
    tensor = fb.TensorMetadataT()
    tensor.associatedFiles = list(files) or None
    tensor.processUnits = list(units) or None
    if content_type is not None:
        tensor.content = fb.ContentT()
        tensor.content.contentPropertiesType = content_type
    return tensor


def _unit(options_type):
    unit = fb.ProcessUnitT()
    unit.optionsType = options_type
    return unit


def test_each_newer_schema_member_raises_the_minimum_to_its_version():
    assert minimum_parser_version(_buffer(_model())) == "1.0.0"
    labels = _tensor(files=[_file()], units=[_unit(fb.ProcessUnitOptions.NormalizationOptions)])
    assert minimum_parser_version(_buffer(_model(labels))) == "1.0.0"  # all 1.0.0 members
    cases = {
        "1.0.1": _model(_tensor(files=[_file(fb.AssociatedFileType.VOCABULARY)])),
        "1.1.0": _model(inputProcessUnits=[]),
        "1.2.0": _model(outputTensorGroups=[]),
        "1.2.1": _model(_tensor(units=[_unit(fb.ProcessUnitOptions.RegexTokenizerOptions)])),
        "1.3.0": _model(_tensor(content_type=fb.ContentProperties.AudioProperties)),
        "1.4.0": _model(_tensor(files=[_file(fb.AssociatedFileType.SCANN_INDEX_FILE)])),
        "1.4.1": _model(_tensor(files=[_file(version="2")])),
        "1.5.0": _model(customMetadata=[]),
    }
    for expected, model in cases.items():
        assert minimum_parser_version(_buffer(model)) == expected, expected
    # The highest member wins, wherever it is (here a file of the model itself).
    model = _model(customMetadata=[])
    model.associatedFiles = [_file(version="1")]
    assert minimum_parser_version(_buffer(model)) == "1.5.0"


def test_deployment_metadata_is_stamped_with_its_minimum_version():
    """A deployment file's metadata (custom segmenter options, labels, normalisation) reads
    back with the version MediaPipe's populator stamped: 1.5.0, for its custom metadata."""
    from enc_tf.export.deploy import convert_deployment
    from enc_tf.export.metadata import add_metadata, read_metadata
    from tests.support.tiny_models import tiny_segmenter

    info = dict.fromkeys(("name", "description", "version", "author", "license"), "x")
    flatbuffer = add_metadata(convert_deployment(tiny_segmenter(3), "float32", 8), "abc", info)
    assert read_metadata(flatbuffer)["min_parser_version"] == "1.5.0"
