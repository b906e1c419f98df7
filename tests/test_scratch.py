import threading

import numpy as np
import pytest

from enc_tf.scratch import Scratch, ScratchPool


def test_a_name_reuses_its_memory_and_grows_when_asked_for_more():
    scratch = Scratch()
    a = scratch.array("x", (4, 5))
    a[...] = 1
    b = scratch.array("x", (5, 4))
    assert b.shape == (5, 4) and np.shares_memory(a, b)
    assert not np.shares_memory(b, scratch.array("y", (5, 4)))  # one buffer per name
    bigger = scratch.array("x", (10, 10))
    assert bigger.shape == (10, 10) and not np.shares_memory(a, bigger)
    assert np.shares_memory(bigger, scratch.array("x", (3,)))  # the grown buffer is kept
    assert scratch.array("x", (2,), np.int32).dtype == np.int32  # one buffer per dtype
    with pytest.raises(ValueError, match=r"\(2, -1\)"):
        scratch.array("x", (2, -1))


def test_bands_given_back_are_reused_and_others_are_not():
    scratch = Scratch()
    a, b = scratch.band((10, 3)), scratch.band((10, 3))
    assert not np.shares_memory(a, b)
    scratch.give_back(a[2:5])  # a view gives back its band
    scratch.give_back(a)  # twice: kept once
    c, d = scratch.band((4, 3)), scratch.band((4, 3))
    assert np.shares_memory(c, a) and not np.shares_memory(d, a)
    scratch.give_back(np.zeros((100, 3), np.float32))  # not made here: ignored
    assert not any(np.shares_memory(scratch.band((100, 3)), x) for x in (a, b, c, d))


def test_a_band_no_free_buffer_fits_frees_the_smaller_ones():
    scratch = Scratch()
    small = scratch.band((10,))
    scratch.give_back(small)
    big = scratch.band((50,))
    assert not np.shares_memory(small, big)
    scratch.give_back(big)
    assert np.shares_memory(scratch.band((10,)), big)  # the small one was dropped


def test_a_pool_hands_one_scratch_to_each_call_in_progress():
    pool = ScratchPool()
    with pool.scratch() as first:
        with pool.scratch() as second:
            assert first is not second
    with pool.scratch() as again:
        assert again in (first, second)
    seen, lock, barrier = [], threading.Lock(), threading.Barrier(4)

    def call():
        with pool.scratch() as scratch:
            barrier.wait()  # all four hold one at once
            with lock:
                seen.append(scratch)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(s) for s in seen}) == 4
