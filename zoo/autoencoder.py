"""Autoencoders: dense and convolutional, with an encoder that transfers.

The model maps uint8 images to reconstructions in [0, 1]. Its layer "encoder"
(uint8 images -> latent vector) is what downstream classifiers reuse, and its
layer "decoder" maps a latent vector back to an image.

Example:

    model = zoo.build_model("dense_autoencoder", image_shape=(28, 28, 1),
                            hidden_sizes=(128, 64, 32, 16), latent_dim=8)
"""

import keras
from keras import layers

from zoo.blocks import apply_conv_trunk, apply_dense_trunk, conv_decoder, dense_decoder, float32_output, image_input
from zoo.registry import register

FAMILY = "autoencoder"


def _assemble(encoder, decoder, image_shape, name):
    inputs = keras.Input(shape=tuple(image_shape), dtype="uint8", name="image")
    return keras.Model(inputs, decoder(encoder(inputs)), name=name)


@register("dense_autoencoder", family=FAMILY)
@register("dense_autoencoder_tiny", family=FAMILY, tiny=True, hidden_sizes=(16,), latent_dim=4)
def dense_autoencoder(image_shape=(28, 28, 1), hidden_sizes=(256,), latent_dim=32):
    """A fully connected autoencoder, mirrored decoder.

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      hidden_sizes: widths of the hidden layers between the pixels and the
        latent code; `()` gives the classic 784->32, `(128, 64, 32, 16)` with
        `latent_dim=8` the deep 784->...->8.
      latent_dim: size of the code, the encoder's output.

    Returns:
      The autoencoder, with sub-models "encoder" and "decoder".
    """
    image_shape = tuple(image_shape)
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    inputs, x = image_input(image_shape)
    x = apply_dense_trunk(x, hidden_sizes)
    code = float32_output(layers.Dense(latent_dim, name="latent")(x), name="code")
    encoder = keras.Model(inputs, code, name="encoder")

    decoder = dense_decoder(latent_dim, hidden_sizes, image_shape)
    return _assemble(encoder, decoder, image_shape, "dense_autoencoder")


@register("conv_autoencoder", family=FAMILY)
@register("conv_autoencoder_tiny", family=FAMILY, tiny=True, filters=(4, 8), convs_per_block=1, latent_dim=4)
def conv_autoencoder(
    image_shape=(28, 28, 1),
    filters=(32, 64),
    convs_per_block=2,
    latent_dim=64,
    batch_norm=True,
    dropout=0.0,
    decoder_filters=None,
):
    """A convolutional autoencoder whose encoder is the zoo's CNN trunk.

    The encoder is the same VGG-style trunk as `cnn_classifier_bn` (so pretrained
    weights compare directly with that classifier trained from scratch),
    globally pooled and projected to the code. The decoder maps the code back
    to the trunk's last feature map and upsamples with transposed convolutions
    back to the input size (`zoo.blocks.conv_decoder`).

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      filters: filters of each trunk block.
      convs_per_block: convolutions per trunk block.
      latent_dim: size of the code, the encoder's output.
      batch_norm: batch normalisation after each convolution.
      dropout: spatial dropout after each trunk block (as in `cnn_classifier_bn`).
      decoder_filters: filters of each decoder block, from the code out (None:
        `filters` reversed); the encoder does not depend on them.

    Returns:
      The autoencoder, with sub-models "encoder" and "decoder".
    """
    image_shape = tuple(image_shape)
    filters = tuple(int(f) for f in filters)
    inputs, x = image_input(image_shape)
    x, pooled = apply_conv_trunk(x, filters, convs_per_block=convs_per_block, batch_norm=batch_norm, dropout=dropout)
    h, w = x.shape[1], x.shape[2]
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    code = float32_output(layers.Dense(latent_dim, name="latent")(x), name="code")
    encoder = keras.Model(inputs, code, name="encoder")

    decoder = conv_decoder(
        latent_dim, (h, w), filters, pooled, image_shape, batch_norm=batch_norm, widths=decoder_filters
    )
    return _assemble(encoder, decoder, image_shape, "conv_autoencoder")
