"""Working NumPy arrays that keep their memory from one use to the next.

The test-time protocols make an image's outputs band by band: windows' class
probabilities add into bands of rows, and output rows are resized and summed, arrays of
tens to hundreds of MB each (a band of the paper's multi-scale protocol on a 683 x 512
image with 150 classes: up to 262 MB). Arrays that large go back to the operating system
when freed, so fresh arrays pay for new memory every time: a page fault and the zeroing
of each page, and far more on virtual machines whose host takes freed memory back (on a
2-core cloud VM, more than half of that protocol's time outside the network). A `Scratch`
keeps the memory instead, as TensorFlow's CPU allocator keeps its own.
"""

import contextlib
import weakref

import numpy as np


def _owner(array):
    """The array that owns `array`'s memory (itself when it is not a view)."""
    while isinstance(array.base, np.ndarray):
        array = array.base
    return array


class Scratch:
    """Working arrays whose memory is reused: named arrays, and bands handed out and given
    back.

    - `array(name, shape)`: an uninitialised array on the name's buffer, valid until the
      next `array` call with the same name (use one name per array that must live at the
      same time).
    - `band(shape)`: an uninitialised array on a buffer no one else holds: one given back
      (the smallest large enough) or a new one. `give_back(band)`, with the band or a view
      of it, when nothing reads it any more; arrays `band` did not make are ignored, and a
      band never given back is simply freed with its last view.

    Buffers grow (are reallocated) only when a larger shape is asked for; a band request
    that no free buffer fits also frees the free buffers too small for it, so the memory
    kept is about the largest that was in use at once. Not thread-safe: one `Scratch` per
    image being made.

    Example:
        >>> scratch = Scratch()
        >>> a = scratch.band((2, 3))
        >>> scratch.give_back(a[1:])
        >>> np.shares_memory(a, scratch.band((3, 2)))
        True
    """

    def __init__(self):
        self._named = {}
        self._free = []  # given-back band buffers
        self._made = weakref.WeakValueDictionary()  # id -> band buffer, while it lives

    @staticmethod
    def _size(shape):
        shape = tuple(int(n) for n in shape)
        if any(n < 0 for n in shape):
            raise ValueError(f"A scratch array needs a shape of sizes >= 0, got {shape}.")
        return shape, int(np.prod(shape, dtype=np.int64))

    def array(self, name, shape, dtype=np.float32):
        shape, size = self._size(shape)
        dtype = np.dtype(dtype)
        buffer = self._named.get((name, dtype))
        if buffer is None or buffer.size < size:
            buffer = np.empty(size, dtype)
            self._named[(name, dtype)] = buffer
        return buffer[:size].reshape(shape)

    def band(self, shape, dtype=np.float32):
        shape, size = self._size(shape)
        dtype = np.dtype(dtype)
        fits = [b for b in self._free if b.dtype == dtype and b.size >= size]
        if fits:
            buffer = min(fits, key=lambda b: b.size)
            self._free = [b for b in self._free if b is not buffer]
        else:
            self._free = [b for b in self._free if b.dtype != dtype]
            buffer = np.empty(size, dtype)
            self._made[id(buffer)] = buffer
        return buffer[:size].reshape(shape)

    def give_back(self, band):
        buffer = _owner(band)
        if self._made.get(id(buffer)) is buffer and not any(b is buffer for b in self._free):
            self._free.append(buffer)


class ScratchPool:
    """`Scratch`es kept from one call to the next, one per call in progress, so that calls
    from several threads never share one.

    Example:
        >>> pool = ScratchPool()
        >>> with pool.scratch() as scratch:
        ...     band = scratch.band((4, 5))
    """

    def __init__(self):
        self._idle = []

    @contextlib.contextmanager
    def scratch(self):
        try:
            scratch = self._idle.pop()
        except IndexError:  # none yet, or all in use by other threads
            scratch = Scratch()
        try:
            yield scratch
        finally:
            self._idle.append(scratch)
