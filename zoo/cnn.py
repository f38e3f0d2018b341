"""CNN classifiers: a convolutional trunk whose features transfer.

The encoder is the trunk plus its pooling (the last feature map flattened, or
globally averaged); the classifier is that encoder plus a dense head. Pooling
per block adapts to the image size, so 8x8, 28x28 and 32x32 inputs all work.

Three trunks (benchmarks/README.md, "Time to 99%" and "CNN classifier", has the
figures):

- `cnn_classifier`: three blocks of one 3x3 convolution (24, 48, 96 filters),
  each max-pooled, no BatchNorm, flattened: as fast per image as the classic
  Keras MNIST CNN and at least as accurate trained on thousands of labels.
- `cnn_classifier_bn`: two blocks of two 3x3 convolutions with BatchNorm
  (32, 64 filters), globally averaged: four times slower per image, but the
  best from scratch on a few hundred labels, so it is the transfer table's
  reference CNN (--reference_model).
- `cnn_classifier_flat`: the classic Keras MNIST CNN (Conv32-pool-Conv64-pool,
  flattened, Dense128).
- `small_resnet`: a ResNet for small colour photos (`zoo.blocks.apply_resnet_trunk`:
  a 3x3 stride-1 stem, three stages of two basic blocks, 32-64-128 filters, the
  last two stages at half the resolution of the one before), globally averaged,
  with a linear head: the trunk for 32x32x3 images such as CIFAR-10.

Example:

    model = zoo.build_model("cnn_classifier", image_shape=(28, 28, 1), num_classes=10)
    features = model.get_layer("encoder")
"""

import keras
from keras import layers

from zoo.blocks import apply_conv_trunk, apply_resnet_trunk, image_input
from zoo.errors import ZooError
from zoo.heads import classifier_on
from zoo.registry import register

FAMILY = "cnn_classifier"


@register("cnn_classifier", family=FAMILY)
@register("cnn_classifier_bn", family=FAMILY, filters=(32, 64), convs_per_block=2, batch_norm=True, pooling="avg")
@register("cnn_classifier_flat", family=FAMILY, filters=(32, 64))
@register("cnn_classifier_tiny", family=FAMILY, tiny=True, filters=(4, 8), dense_units=())
def cnn_classifier(
    image_shape=(28, 28, 1),
    num_classes=10,
    filters=(24, 48, 96),
    convs_per_block=1,
    batch_norm=False,
    dropout=0.25,
    dense_units=(128,),
    pooling="flatten",
):
    """A small VGG-style CNN: blocks of 3x3 convolutions, each followed by max pooling.

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      num_classes: number of output logits.
      filters: filters of each block's convolutions.
      convs_per_block: convolutions per block.
      batch_norm: batch normalisation after each convolution.
      dropout: dropout after each block and in the head.
      dense_units: hidden widths of the dense head (the penultimate layer is the last).
      pooling: how the trunk's last feature map becomes the encoder's features: "avg" (global
        average pooling: features of `filters[-1]` values for any image size) or "flatten" (every
        position: more features, which keep where each one is).

    Returns:
      The classifier (logits out), with the sub-model "encoder".
    """
    inputs, x = image_input(image_shape)
    x, _ = apply_conv_trunk(x, filters, convs_per_block=convs_per_block, batch_norm=batch_norm, dropout=dropout)
    if pooling not in ("avg", "flatten"):
        raise ZooError(f"pooling={pooling!r}: must be 'avg' or 'flatten'")
    features = layers.GlobalAveragePooling2D(name="pool")(x) if pooling == "avg" else layers.Flatten(name="pool")(x)
    encoder = keras.Model(inputs, features, name="encoder")
    return classifier_on(encoder, num_classes, hidden_units=tuple(dense_units), dropout=dropout, name="cnn_classifier")


@register("small_resnet", family=FAMILY)
@register("small_resnet_tiny", family=FAMILY, tiny=True, filters=(4, 8), blocks_per_stage=1)
def small_resnet(image_shape=(32, 32, 3), num_classes=10, filters=(32, 64, 128), blocks_per_stage=2):
    """A small ResNet classifier for colour photos (CIFAR stem: no downsampling before the first stage).

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      num_classes: number of output logits.
      filters: filters of each stage; every stage after the first halves the resolution.
      blocks_per_stage: basic blocks (two 3x3 convolutions and a shortcut) per stage.

    Returns:
      The classifier (logits out), with the sub-model "encoder" (globally averaged features of
      `filters[-1]` values).
    """
    inputs, x = image_input(image_shape)
    x = apply_resnet_trunk(x, filters, blocks_per_stage=blocks_per_stage)
    encoder = keras.Model(inputs, layers.GlobalAveragePooling2D(name="pool")(x), name="encoder")
    return classifier_on(encoder, num_classes, name="small_resnet")
