"""Datasets, the paper's augmentation, and tf.data pipelines."""

from enc_tf.data.augment import AugmentConfig
from enc_tf.data.classes import (
    ADE20K,
    CITYSCAPES,
    PASCAL_CONTEXT,
    VOC,
    ClassInfo,
    load_class_file,
    make_class_info,
)
from enc_tf.data.context_shapes import ensure_context_shapes
from enc_tf.data.io import DataError, read_image, read_label
from enc_tf.data.pipeline import (
    NumpyIterator,
    PipelineConfig,
    build_dataset,
    decoded_examples,
    pipeline_data_error,
)
from enc_tf.data.resolve import DATASETS, resolve_source, sources_from_config
from enc_tf.data.sources import (
    SegmentationSource,
    ade20k_source,
    cityscapes_source,
    folder_source,
    get_source,
    label_lookup,
    pascal_context_source,
    voc_source,
)
from enc_tf.data.tfrecord import TFRecordSource, read_tfrecord_source, write_tfrecords
from enc_tf.data.validate import check_source

__all__ = [
    "ADE20K",
    "CITYSCAPES",
    "DATASETS",
    "PASCAL_CONTEXT",
    "VOC",
    "AugmentConfig",
    "ClassInfo",
    "DataError",
    "NumpyIterator",
    "PipelineConfig",
    "SegmentationSource",
    "TFRecordSource",
    "ade20k_source",
    "build_dataset",
    "check_source",
    "cityscapes_source",
    "decoded_examples",
    "ensure_context_shapes",
    "folder_source",
    "get_source",
    "label_lookup",
    "load_class_file",
    "make_class_info",
    "pascal_context_source",
    "pipeline_data_error",
    "read_image",
    "read_label",
    "read_tfrecord_source",
    "resolve_source",
    "sources_from_config",
    "voc_source",
    "write_tfrecords",
]
