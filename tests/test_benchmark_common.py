"""`benchmarks/common.py`: the FLOP count (the model's own arithmetic on every machine) and
how a failed case reports itself."""

import dataclasses

import keras
import pytest

from benchmarks.common import graph_gflop, run_case
from enc_tf import machine
from enc_tf.layers import conv


def test_graph_gflop_counts_direct_convolutions_where_winograd_would_run(monkeypatch):
    # As on a CPU (whatever this machine is): 3x3 "same" convolutions of 128 channels or
    # more by Winograd's algorithm, except under portable_kernels().
    def cpu_choices():
        real = machine.kernel_choices()
        return dataclasses.replace(real, winograd=not machine._PORTABLE.get())

    monkeypatch.setattr(conv, "kernel_choices", cpu_choices)
    layer = conv.TunedConv2D(128, 3, padding="same", use_bias=False)
    layer.build((1, 16, 16, 128))
    assert layer._algorithm(keras.ops.zeros((1, 16, 16, 128)), layer.kernel) == "winograd"
    direct = 2 * 16 * 16 * 9 * 128 * 128 / 1e9  # 2.25 times Winograd's multiply-adds
    assert abs(graph_gflop(layer, (1, 16, 16, 128)) - direct) < 1e-6
    dense = keras.layers.Dense(10, use_bias=False)
    assert abs(graph_gflop(dense, (1, 128)) - 2 * 128 * 10 / 1e9) < 1e-9


@pytest.mark.parametrize(
    "ending, message",
    [("os.abort()", "killed by SIGABRT"), ("sys.exit(3)", "exit status 3")],
)
def test_a_failed_case_says_how_its_process_ended(tmp_path, ending, message):
    script = tmp_path / "case.py"
    script.write_text(f"import os, sys\nprint('the case ran', file=sys.stderr)\n{ending}\n")
    with pytest.raises(
        RuntimeError, match=f"case \\('x',\\) failed \\({message}\\):\nthe case ran"
    ):
        run_case(str(script), "x")
