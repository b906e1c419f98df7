"""How far another runtime's float32 logits (TFLite, ONNX Runtime) may be from Keras's, relative
to each output's largest |logit|.

The SE logits pass through the Encoding's BatchNorm over codewords, whose moving variance is
near 0 for unused codewords: it amplifies float32 summation-order noise ~300x, so kernels that
sum in another order (XNNPACK, MLAS, oneDNN; AVX2 vs AVX-512) differ there by 1e-4 and more. A
wrong conversion differs by 1e-1.
"""

EXPORT_TOLERANCE = {"seg": 1e-4, "se": 1e-3}
