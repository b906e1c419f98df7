"""The compute precisions a trained model runs in. `auto` picks bfloat16 on a GPU or on a CPU
with native bf16 arithmetic (`enc_tf.machine.BF16_CPU_FLAGS`; elsewhere bfloat16 is emulated,
slower than float32): `enc_tf.machine.kernel_choices().auto_precision`."""

PRECISIONS = ("auto", "float32", "bfloat16")
