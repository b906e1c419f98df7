"""3x3 stride-1 "same" convolutions by Winograd's minimal filtering, F(2x2, 3x3).

Lavin & Gray, "Fast Algorithms for Convolutional Neural Networks" (CVPR 2016): each 2x2
block of outputs is `A^T [(G g G^T) * (B^T d B)] A` for its 4x4 input tile `d`, so the
multiplications become 16 matrix products over channels with 2.25 times fewer
multiply-adds than the direct convolution. The transforms' coefficients are 0, +-1 and 1/2:
the result equals the direct convolution within float32 rounding (relative differences of a
few 1e-6).

Used by `TunedConv2D` where the machine's kernels run it faster (`KernelChoices.winograd`):
on CPUs TensorFlow's matrix products run near the machine's peak, its 3x3 convolutions do
not always (docs/benchmarks.md). The gradient is written out (`tf.custom_gradient`): two
matrix products of the same 2.25-times-smaller size and the transforms' transposes;
TensorFlow's automatic one goes through full-size strided-slice gradients.
"""

import tensorflow as tf

# G of F(2x2, 3x3): the kernel's transform.
_KERNEL_TRANSFORM = ((1.0, 0.0, 0.0), (0.5, 0.5, 0.5), (0.5, -0.5, 0.5), (0.0, 0.0, 1.0))


def _dims(x):
    """`x`'s shape: the static sizes where known, scalar tensors elsewhere."""
    dynamic = tf.shape(x)
    return [size if size is not None else dynamic[i] for i, size in enumerate(x.shape)]


def _axis_slice(x, axis, start, stop):
    index = [slice(None)] * x.shape.rank
    index[axis] = slice(start, stop)
    return x[tuple(index)]


def _input_transform(x, axis):
    """B^T along `axis` of `x` (length 2T+2 there): 4 tensors of length T, tile t's rows
    `2t .. 2t+3` as `(d0 - d2, d1 + d2, d2 - d1, d1 - d3)`."""
    shape = _dims(x)
    paired = tf.reshape(x, shape[:axis] + [shape[axis] // 2, 2] + shape[axis + 1 :])
    even, odd = tf.unstack(paired, 2, axis=axis + 1)
    e0, e1 = _axis_slice(even, axis, None, -1), _axis_slice(even, axis, 1, None)
    o0, o1 = _axis_slice(odd, axis, None, -1), _axis_slice(odd, axis, 1, None)
    return [e0 - e1, o0 + e1, e1 - o0, o0 - o1]


def _input_transform_transpose(parts, axis):
    """The transpose of `_input_transform`: 4 tensors of length T -> one of length 2T+2."""
    g0, g1, g2, g3 = parts
    after = [[0, 0]] * g0.shape.rank
    before = list(after)
    after[axis], before[axis] = [0, 1], [1, 0]
    even = tf.pad(g0, after) + tf.pad(g1 + g2 - g0, before)
    odd = tf.pad(g1 - g2 + g3, after) - tf.pad(g3, before)
    shape = _dims(even)
    shape[axis] = 2 * shape[axis]
    return tf.reshape(tf.stack([even, odd], axis=axis + 1), shape)


def _output_transform(parts):
    """A^T over 4 tensors (a tile's rows or columns): `(m0 + m1 + m2, m1 - m2 - m3)`."""
    m0, m1, m2, m3 = parts
    return [m0 + m1 + m2, m1 - m2 - m3]


def _output_transform_transpose(parts):
    """The transpose of `_output_transform`: 2 tensors -> 4."""
    y0, y1 = parts
    return [y0, y0 + y1, y0 - y1, -y1]


def _kernel_transform_matrix(dtype):
    """G (x) G, `(16, 9)`: row `4a + b` holds the coefficients `G[a, i] G[b, j]` of the
    kernel's taps `3i + j`."""
    g = tf.constant(_KERNEL_TRANSFORM, dtype)
    return tf.reshape(g[:, None, :, None] * g[None, :, None, :], [16, 9])


def _kernel_transform(kernel):
    """G g G^T for each (input, output) channel pair: `(3, 3, C, K)` -> `(16, C, K)`, as one
    matrix product over the taps (2-2.5 times faster than the einsum over both axes)."""
    channels, filters = kernel.shape[2:]
    u = tf.matmul(_kernel_transform_matrix(kernel.dtype), tf.reshape(kernel, [9, -1]))
    return tf.reshape(u, [16, channels, filters])


def _kernel_transform_transpose(u_grad):
    """The transpose of `_kernel_transform`: `(16, C, K)` -> `(3, 3, C, K)`."""
    channels, filters = u_grad.shape[1:]
    matrix = _kernel_transform_matrix(u_grad.dtype)
    grad = tf.matmul(matrix, tf.reshape(u_grad, [16, -1]), transpose_a=True)
    return tf.reshape(grad, [3, 3, channels, filters])


def _tiles(x):
    """The transformed 4x4 input tiles of `x` `(B, H, W, C)` padded by one pixel ("same"):
    `(16, B * ceil(H/2) * ceil(W/2), C)`."""
    _, height, width, channels = _dims(x)
    rows, cols = (height + 1) // 2, (width + 1) // 2
    padded = tf.pad(x, [[0, 0], [1, 2 * rows + 1 - height], [1, 2 * cols + 1 - width], [0, 0]])
    tiles = [t for part in _input_transform(padded, 1) for t in _input_transform(part, 2)]
    return tf.reshape(tf.stack(tiles), [16, -1, channels])


def winograd_conv3x3(inputs, kernel, group_channels=None):
    """`tf.nn.conv2d(inputs, kernel, 1, "SAME")` for a 3x3 kernel, by F(2x2, 3x3).

    Args:
        inputs: `(B, H, W, C)` float tensor (C static; B, H, W may be dynamic).
        kernel: `(3, 3, C, K)` tensor of the same dtype.
        group_channels: if set, the input channels are transformed in groups of at most
            this many, one after the other, and their products summed: the transformed
            tiles (four times the input's size) then exist for one group at a time.

    Returns:
        `(B, H, W, K)`.
    """
    inputs, kernel = tf.convert_to_tensor(inputs), tf.convert_to_tensor(kernel)
    if (
        inputs.shape.rank != 4
        or tuple(kernel.shape[:2]) != (3, 3)
        or inputs.shape[-1] != kernel.shape[2]
    ):
        raise ValueError(
            f"winograd_conv3x3 takes a (3, 3, C, K) kernel over (B, H, W, C) inputs; got "
            f"kernel {tuple(kernel.shape)} for inputs {tuple(inputs.shape)}"
        )
    channels, filters = kernel.shape[2:]
    width = group_channels or channels
    bounds = [(start, min(start + width, channels)) for start in range(0, channels, width)]

    def group(x, w, start, stop, after):
        """The transformed tiles and kernel of channels `[start, stop)`, computed after
        `after`: one group at a time, not at the step's start (all kernels at once), and
        in the gradient not merged by TensorFlow's graph optimiser with the forward
        pass's (which would keep them alive until then)."""
        with tf.control_dependencies([after]):
            if (start, stop) != (0, channels):
                x, w = x[..., start:stop], w[:, :, start:stop]
            return _tiles(x), _kernel_transform(w)

    @tf.custom_gradient
    def convolve(x, w):
        batch, height, width, _ = _dims(x)
        rows, cols = (height + 1) // 2, (width + 1) // 2
        m = x
        for start, stop in bounds:
            product = tf.matmul(*group(x, w, start, stop, after=m))
            m = product if m is x else m + product
        m = tf.unstack(tf.reshape(m, [4, 4, -1, filters]))
        by_row = _output_transform(m)  # A^T along the tiles' rows: 2 x (4, tiles, K)
        quads = [y for row in by_row for y in _output_transform(tf.unstack(row))]
        y = tf.reshape(tf.concat(quads, -1), [batch, rows, cols, 4 * filters])
        y = tf.nn.depth_to_space(y, 2)[:, :height, :width]

        def gradient(upstream):
            # The transformed tiles and kernel are recomputed, not kept: a training step
            # then holds what a direct convolution's would (its input and kernel), not the
            # tiles' four and the kernel's 16/9 times as much.
            upstream = tf.pad(
                upstream, [[0, 0], [0, 2 * rows - height], [0, 2 * cols - width], [0, 0]]
            )
            quads = tf.split(
                tf.reshape(tf.nn.space_to_depth(upstream, 2), [-1, 4 * filters]), 4, axis=-1
            )
            by_row = [
                tf.stack(_output_transform_transpose(quads[2 * r : 2 * r + 2])) for r in range(2)
            ]
            m_grad = tf.reshape(tf.stack(_output_transform_transpose(by_row)), [16, -1, filters])
            x_grads, w_grads, after = [], [], m_grad
            for start, stop in bounds:
                tiles, u = group(x, w, start, stop, after)
                u_grad = tf.matmul(tiles, m_grad, transpose_a=True)
                v_grad = tf.reshape(
                    tf.matmul(m_grad, u, transpose_b=True), [4, 4, batch, rows, cols, -1]
                )
                by_row = [_input_transform_transpose(tf.unstack(v_grad[a]), 2) for a in range(4)]
                padded_grad = _input_transform_transpose(by_row, 1)
                x_grads.append(padded_grad[:, 1 : 1 + height, 1 : 1 + width])
                w_grads.append(_kernel_transform_transpose(u_grad))
                after = x_grads[-1]
            if len(bounds) == 1:
                return x_grads[0], w_grads[0]
            return tf.concat(x_grads, -1), tf.concat(w_grads, 2)

        return y, gradient

    return convolve(inputs, kernel)
