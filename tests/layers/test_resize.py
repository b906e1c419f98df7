import numpy as np
import pytest
import tensorflow as tf

from enc_tf.layers import BilinearResize
from tests.support.layer_test import run_layer_test


def interpolation_matrix(n_in, n_out):
    """Align-corners bilinear weights (n_out, n_in): output j samples input j (n_in-1)/(n_out-1)."""
    m = np.zeros((n_out, n_in))
    for j in range(n_out):
        pos = j * (n_in - 1) / (n_out - 1) if n_out > 1 else 0.0
        lo = min(int(np.floor(pos)), n_in - 1)
        hi = min(lo + 1, n_in - 1)
        m[j, lo] += 1 - (pos - lo)
        m[j, hi] += pos - lo
    return m


@pytest.mark.parametrize(
    "src,dst", [((4, 5), (32, 40)), ((13, 17), (97, 131)), ((3, 3), (3, 3)), ((6, 2), (1, 7))]
)
def test_align_corners_matches_numpy(src, dst):
    x = np.random.default_rng(0).normal(size=(2, *src, 3))
    ref = np.zeros((2, *dst, 3), "float32")
    out = BilinearResize(align_corners=True)([x.astype("float32"), ref])
    expected = np.einsum(
        "ih,bhwc,jw->bijc",
        interpolation_matrix(src[0], dst[0]),
        x,
        interpolation_matrix(src[1], dst[1]),
    )
    np.testing.assert_allclose(out, expected, rtol=1e-5, atol=1e-5)


def test_half_pixel_is_tf_image_resize():
    x = np.random.default_rng(1).normal(size=(1, 5, 7, 2)).astype("float32")
    ref = np.zeros((1, 20, 21, 1), "float32")
    out = BilinearResize(align_corners=False)([x, ref])
    np.testing.assert_allclose(
        out, tf.image.resize(x, (20, 21), antialias=False), rtol=1e-6, atol=1e-6
    )
    assert not np.allclose(out, BilinearResize(align_corners=True)([x, ref]), atol=1e-3)


@pytest.mark.parametrize("align_corners", [True, False])
def test_layer_contract(align_corners, tmp_path):
    run_layer_test(
        BilinearResize,
        {"align_corners": align_corners},
        [(2, 2, 3, 4), (2, 9, 11, 3)],
        (2, 9, 11, 4),
        0,
        0,
        tmp_path,
    )


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize(
    "src,dst", [((13, 17), (97, 131)), ((97, 131), (13, 17)), ((5, 6), (5, 9))]
)
def test_rows_in_bands_are_the_whole_resize(align_corners, src, dst):
    """Output rows made band by band from the input rows `source_rows` names are TF's kernel's
    values exactly, for both conventions, up and down."""
    from enc_tf.layers.resize import resize_bilinear, resize_rows_bilinear, source_rows

    x = np.random.default_rng(2).normal(size=(*src, 3)).astype("float32")
    whole = resize_bilinear(x[None], dst, align_corners)[0].numpy()
    for first, stop in [(0, 1), (0, 7), (3, 11), (dst[0] - 2, dst[0])]:
        stop = min(stop, dst[0])
        y0, y1 = source_rows(first, stop, src[0], dst[0], align_corners)
        band = resize_rows_bilinear(x[y0:y1], y0, first, stop, src[0], dst, align_corners)
        np.testing.assert_array_equal(band, whole[first:stop])
