"""The compute precisions a trained model runs in, and when `auto` picks bfloat16: on a GPU,
or on a CPU with one of `BF16_CPU_FLAGS` (elsewhere bfloat16 is emulated, slower than
float32)."""

PRECISIONS = ("auto", "float32", "bfloat16")
BF16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
