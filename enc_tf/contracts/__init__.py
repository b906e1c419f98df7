"""The contracts every part of enc_tf shares: what an input image is, what a label map is.

Leaf modules: they import nothing else from enc_tf.
"""
