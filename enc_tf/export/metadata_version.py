"""The minimum metadata parser version of a TFLite metadata buffer, for MediaPipe's writer.

MediaPipe's metadata populator stamps each metadata buffer with the oldest parser that can
read it, computed by a compiled helper (`_pywrap_metadata_version`, a wrapper of
`mediapipe/tasks/cc/metadata/metadata_version.cc`). The mediapipe 1.2.3 wheel (built on
MediaPipe's C API) ships the Python writer without that helper, so the writer fails on import.
This module is the same rule in Python, given to the writer only where the wheel lacks
it (`enc_tf.export.metadata`): each schema member added after 1.0.0 raises the minimum to
the schema version that added it.
"""

# The schema members newer than 1.0.0 and the version that added each
# (metadata_version.cc's GetMemberVersion).
VOCABULARY_FILE = (1, 0, 1)
PROCESS_UNITS_OF_SUBGRAPH = (1, 1, 0)
BERT_OR_SENTENCEPIECE_TOKENIZER = (1, 1, 0)
TENSOR_GROUPS = (1, 2, 0)
REGEX_TOKENIZER = (1, 2, 1)
AUDIO_PROPERTIES = (1, 3, 0)
SCANN_INDEX_FILE = (1, 4, 0)
ASSOCIATED_FILE_VERSION = (1, 4, 1)
CUSTOM_METADATA = (1, 5, 0)
BASE = (1, 0, 0)


def minimum_parser_version(metadata_buffer):
    """`"major.minor.patch"`: the oldest metadata parser that reads `metadata_buffer` (the
    bytes of a `ModelMetadata` flatbuffer)."""
    from mediapipe.tasks.metadata import metadata_schema_py_generated as fb

    root = fb.ModelMetadata.GetRootAsModelMetadata(bytearray(metadata_buffer), 0)
    model = fb.ModelMetadataT.InitFromObj(root)
    found = [BASE]

    def files(items):
        for item in items or ():
            if item.type == fb.AssociatedFileType.VOCABULARY:
                found.append(VOCABULARY_FILE)
            if item.type == fb.AssociatedFileType.SCANN_INDEX_FILE:
                found.append(SCANN_INDEX_FILE)
            if item.version is not None:
                found.append(ASSOCIATED_FILE_VERSION)

    def units(items):
        for item in items or ():
            if item.optionsType in (
                fb.ProcessUnitOptions.BertTokenizerOptions,
                fb.ProcessUnitOptions.SentencePieceTokenizerOptions,
            ):
                found.append(BERT_OR_SENTENCEPIECE_TOKENIZER)
            if item.optionsType == fb.ProcessUnitOptions.RegexTokenizerOptions:
                found.append(REGEX_TOKENIZER)

    def tensors(items):
        for item in items or ():
            files(item.associatedFiles)
            units(item.processUnits)
            content = item.content
            if content is not None and (
                content.contentPropertiesType == fb.ContentProperties.AudioProperties
            ):
                found.append(AUDIO_PROPERTIES)

    for subgraph in model.subgraphMetadata or ():
        tensors(subgraph.inputTensorMetadata)
        tensors(subgraph.outputTensorMetadata)
        files(subgraph.associatedFiles)
        for process_units in (subgraph.inputProcessUnits, subgraph.outputProcessUnits):
            if process_units is not None:
                found.append(PROCESS_UNITS_OF_SUBGRAPH)
                units(process_units)
        if subgraph.inputTensorGroups is not None or subgraph.outputTensorGroups is not None:
            found.append(TENSOR_GROUPS)
        if subgraph.customMetadata is not None:
            found.append(CUSTOM_METADATA)
    files(model.associatedFiles)
    return ".".join(str(part) for part in max(found))
