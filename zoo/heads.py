"""Classifier heads on top of any zoo encoder: the encoder/head seam."""

import keras
from keras import layers

from zoo.blocks import float32_output


def classifier_on(encoder, num_classes, *, hidden_units=(), dropout=0.0, normalize=True, name="classifier"):
    """A classifier: uint8 images -> encoder -> head -> logits.

    The encoder is used as given: freeze it first with `encoder.trainable = False`
    to train only the head. (In Keras 3 `trainable=False` also keeps its
    BatchNormalization layers in inference mode inside `fit`; a `training=False`
    passed here would be overridden by `fit`.)

    Args:
      encoder: a Keras model from uint8 images to feature vectors.
      num_classes: number of output logits.
      hidden_units: widths of hidden ReLU layers in the head; `()` is linear.
      dropout: dropout rate on the features before each head layer.
      normalize: standardise the features with a BatchNormalization without
        scale or offset first. Pretrained features come at arbitrary scales; a
        head trained by SGD on few labels learns far better on standardised
        ones (MAE's linear probe does the same).
      name: the model's name.

    Returns:
      A functional `keras.Model` with layers "encoder" and the head's layers.
    """
    inputs = keras.Input(shape=encoder.input_shape[1:], dtype="uint8", name="image")
    x = encoder(inputs)
    if normalize:
        x = layers.BatchNormalization(center=False, scale=False, name="head_norm")(x)
    for i, units in enumerate(hidden_units):
        if dropout:
            x = layers.Dropout(dropout, name=f"head_dropout{i}")(x)
        x = layers.Dense(units, activation="relu", name=f"head_dense{i}")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = float32_output(layers.Dense(num_classes, name="head_logits")(x), name="logits")
    return keras.Model(inputs, logits, name=name)
