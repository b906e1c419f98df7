"""A resumed training stream (`start`) continues exactly where an uninterrupted one would be."""

import numpy as np
import pytest

from enc_tf.data import PipelineConfig, build_dataset, folder_source, write_tfrecords
from enc_tf.data.tfrecord import read_tfrecord_source
from tests.support import layouts


@pytest.fixture(params=["folder", "tfrecord"])
def source(request, tmp_path):
    layouts.write_folder(str(tmp_path / "data"), np.random.default_rng(0), n=5, with_split=False)
    source = folder_source(str(tmp_path / "data"))
    if request.param == "tfrecord":
        write_tfrecords(source, str(tmp_path / "records"), 2)
        source = read_tfrecord_source(str(tmp_path / "records"))
    return source


def _stream(source, start, batches, shard=None):
    config = PipelineConfig(batch_size=2, base_size=14, crop_size=8, seed=7)
    data = build_dataset(source, "train", config, repeat=True, shard=shard, start=start)
    return [(x.numpy(), t["seg"].numpy()) for x, t in data.take(batches)]


@pytest.mark.parametrize("shard", [None, (2, 1)])
def test_start_continues_the_uninterrupted_stream(source, shard):
    whole = _stream(
        source, 0, 9, shard
    )  # almost four passes over 5 images: reshuffled, re-augmented
    for done in (1, 4, 7):
        resumed = _stream(source, done * 2, 9 - done, shard)
        for (xa, ya), (xb, yb) in zip(whole[done:], resumed):
            np.testing.assert_array_equal(xa, xb)
            np.testing.assert_array_equal(ya, yb)
    assert not np.array_equal(whole[0][0], whole[1][0])


def test_start_needs_a_repeated_stream(source):
    with pytest.raises(ValueError, match="start"):
        build_dataset(
            source, "train", PipelineConfig(batch_size=2, base_size=14, crop_size=8), start=4
        )
