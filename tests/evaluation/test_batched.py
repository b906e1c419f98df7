import keras
import numpy as np
import tensorflow as tf

from enc_tf.evaluation import evaluate, format_scores
from enc_tf.metrics import confusion_matrix, segmentation_scores


def test_evaluate_streams_the_whole_dataset():
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, {"seg": keras.layers.Conv2D(3, 1, name="c")(inputs)})
    rng = np.random.default_rng(0)
    images = rng.normal(size=(5, 6, 7, 3)).astype("float32")
    labels = rng.integers(0, 3, (5, 6, 7)).astype("int32")
    labels[0, 0, 0] = 255
    dataset = tf.data.Dataset.from_tensor_slices((images, {"seg": labels})).batch(2)
    scores, matrix = evaluate(model, dataset, 3, class_names=["a", "b", "c"])
    expected = confusion_matrix(labels, model(images)["seg"], 3).numpy()
    np.testing.assert_array_equal(matrix, expected)
    assert matrix.sum() == 5 * 6 * 7 - 1
    assert scores == segmentation_scores(expected, ["a", "b", "c"])
    text = format_scores(scores)
    assert "pixAcc" in text and "original: mean over all classes" in text and "\na " in text
