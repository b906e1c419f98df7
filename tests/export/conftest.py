import numpy as np
import pytest

SIZE = 64


@pytest.fixture(scope="session")
def trained_encnet():
    """EncNet-ResNet50s (output stride 16, 4 classes) trained for a few steps, and six
    test images of SIZE x SIZE.

    After the steps, every BatchNorm's moving statistics are set to the statistics of
    the training images (momentum 0 for one pass): a few steps leave them far from the
    activations' (logits of order 1e4, one class everywhere), which would make argmax
    agreement trivially perfect. With them, and the classes' mean logits centred, logits
    are of order 1 and every class is predicted somewhere, as in a trained model.
    """
    import keras

    from enc_tf import build_encnet
    from enc_tf.contracts.labels import presence_targets
    from enc_tf.losses import encnet_losses
    from enc_tf.optimizers import EncNetSGD

    keras.utils.set_random_seed(0)
    model = build_encnet(4, output_stride=16)
    losses, weights = encnet_losses()
    model.compile(optimizer=EncNetSGD(0.01), loss=losses, loss_weights=weights)
    rng = np.random.default_rng(0)
    images = rng.normal(size=(4, SIZE, SIZE, 3)).astype("float32")
    labels = (images[..., 0] > 0).astype("int32") + 2 * (images[..., 1] > 0)
    targets = {"seg": labels, "aux": labels, "se": np.asarray(presence_targets(labels, 4))}
    model.fit(images, targets, batch_size=2, epochs=2, verbose=0)
    norms = [
        layer
        for layer in model._flatten_layers()
        if isinstance(layer, keras.layers.BatchNormalization)
    ]
    for layer in norms:
        layer.momentum = 0.0
    model(images, training=True)
    for layer in norms:
        layer.momentum = 0.9
    # Centre each class's mean logit, so that no class wins everywhere by its bias.
    classifier = model.get_layer("enc_head").classifier
    mean_logits = np.asarray(model(images)["seg"]).mean(axis=(0, 1, 2))
    classifier.bias.assign(np.asarray(classifier.bias) - mean_logits)
    return model, rng.normal(size=(6, SIZE, SIZE, 3)).astype("float32")
