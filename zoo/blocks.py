"""Building blocks shared by the families: every layer gets a name."""

import functools
import math

import keras
import tensorflow as tf
from keras import layers, ops

from zoo.errors import ZooError


def image_input(image_shape, name="image"):
    """A uint8 image input and its float view in [0, 1].

    Models take images exactly as TFDS yields them (uint8, H x W x C) and scale
    them inside, so no caller can get the preprocessing wrong.
    """
    inputs = keras.Input(shape=tuple(image_shape), dtype="uint8", name=name)
    scaled = layers.Rescaling(1.0 / 255, name=f"{name}_scale")(inputs)
    return inputs, scaled


def _fusable(layer, inputs, mask):
    rank = len(inputs.shape)
    return (
        mask is None
        and not layer.synchronized
        and not layer.renorm
        and rank in (2, 4)
        and layer.axis in (-1, rank - 1)
        and inputs.dtype in (tf.float32, tf.bfloat16, tf.float16)
    )


def _fused_batchnorm_call(layer, inputs, training=None, mask=None):
    """`keras.layers.BatchNormalization.call`, computed by TensorFlow's fused kernel."""
    if not _fusable(layer, inputs, mask):
        return type(layer).call(layer, inputs, training=training, mask=mask)
    channels = inputs.shape[-1]
    x = tf.reshape(inputs, (-1, 1, 1, channels)) if len(inputs.shape) == 2 else inputs
    scale = ops.cast(layer.gamma, "float32") if layer.scale else tf.ones((channels,), "float32")
    offset = ops.cast(layer.beta, "float32") if layer.center else tf.zeros((channels,), "float32")
    if training and layer.trainable:
        y, mean, variance = tf.compat.v1.nn.fused_batch_norm(x, scale, offset, epsilon=layer.epsilon, is_training=True)
        # the kernel returns the unbiased batch variance; Keras's moving variance follows the biased one
        n = tf.cast(tf.size(x) // channels, "float32")
        variance = tf.where(n > 1.0, variance * (n - 1.0) / tf.maximum(n, 1.0), tf.zeros_like(variance))
        for moving, batch in ((layer.moving_mean, mean), (layer.moving_variance, variance)):
            moving.assign(ops.cast(moving, "float32") * layer.momentum + batch * (1.0 - layer.momentum))
    else:
        y, _, _ = tf.compat.v1.nn.fused_batch_norm(
            x,
            scale,
            offset,
            mean=ops.cast(layer.moving_mean, "float32"),
            variance=ops.cast(layer.moving_variance, "float32"),
            epsilon=layer.epsilon,
            is_training=False,
        )
    if len(inputs.shape) == 2:
        y = tf.reshape(y, tf.shape(inputs))
    return ops.cast(y, layer.compute_dtype)


def fuse_batchnorm(model, fused=True):
    """Compute every `keras.layers.BatchNormalization` of `model` with TensorFlow's fused kernel
    (`fused=False`: with Keras's own code again). Returns `model`.

    Keras 3 computes batch normalisation from separate ops (moments, then normalise, each with its
    own gradient) and casts bfloat16 inputs to float32 around them; the fused kernel is one op
    forward and one backward, and reads bfloat16 directly (statistics in float32). Same weights,
    same arithmetic (the moving variance follows the biased batch variance, as Keras's does): only
    the layers' `call` changes, so saved `.keras` files hold plain Keras layers. Where the kernel
    does not apply (a mask, `synchronized`, `renorm`, an axis other than the last, a rank other
    than 2 or 4, float64), Keras's own code runs. `zoo.build_model` applies it to every model.
    """
    stack = [model]
    while stack:
        layer = stack.pop()
        stack.extend(getattr(layer, "layers", ()))
        if isinstance(layer, layers.BatchNormalization):
            if fused:
                layer.call = functools.partial(_fused_batchnorm_call, layer)
            else:
                layer.__dict__.pop("call", None)
    return model


def apply_conv_block(x, filters, *, strides=1, batch_norm=True, name):
    """Conv 3x3 -> (BatchNorm) -> ReLU, all layers named after `name`."""
    x = layers.Conv2D(filters, 3, strides=strides, padding="same", use_bias=not batch_norm, name=f"{name}_conv")(x)
    if batch_norm:
        x = layers.BatchNormalization(name=f"{name}_bn")(x)
    return layers.ReLU(name=f"{name}_relu")(x)


def apply_conv_trunk(x, filters, *, convs_per_block=2, batch_norm=True, dropout=0.0, min_size=2):
    """VGG-style blocks: `convs_per_block` conv blocks, then 2x2 max pooling.

    A block pools only while the feature map stays at least `min_size` on each
    side, which is what lets one builder serve 8x8, 28x28 and 32x32 images.

    Returns:
      The trunk's output and, per block, whether it pooled.
    """
    pooled = []
    for b, f in enumerate(filters):
        for c in range(convs_per_block):
            x = apply_conv_block(x, int(f), batch_norm=batch_norm, name=f"block{b}_{c}")
        pool = x.shape[1] // 2 >= min_size and x.shape[2] // 2 >= min_size
        if pool:
            x = layers.MaxPooling2D(2, name=f"block{b}_pool")(x)
        pooled.append(pool)
        if dropout:
            x = layers.SpatialDropout2D(dropout, name=f"block{b}_dropout")(x)
    return x, pooled


def apply_resnet_trunk(x, filters, *, blocks_per_stage=2):
    """A ResNet for small images, as He et al. (2016, section 4.2) built it for CIFAR-10: a 3x3
    stride-1 stem convolution and no max pooling (an ImageNet stem, 7x7 stride 2 then pooling, would
    leave a 32x32 photo 8x8 before the first block), then one stage per entry of `filters`, each of
    `blocks_per_stage` basic blocks (3x3 conv, BatchNorm, ReLU, 3x3 conv, BatchNorm, plus the
    shortcut, ReLU). Every stage after the first halves the resolution in its first block, whose
    shortcut is then a 1x1 stride-2 convolution with BatchNorm; a stage never strides below 2x2.

    Returns:
      The last stage's feature map.
    """
    x = apply_conv_block(x, int(filters[0]), name="stem")
    for s, f in enumerate(int(f) for f in filters):
        for b in range(blocks_per_stage):
            name = f"stage{s}_block{b}"
            strides = 2 if s > 0 and b == 0 and x.shape[1] // 2 >= 2 and x.shape[2] // 2 >= 2 else 1
            y = apply_conv_block(x, f, strides=strides, name=f"{name}_0")
            y = layers.Conv2D(f, 3, padding="same", use_bias=False, name=f"{name}_1_conv")(y)
            y = layers.BatchNormalization(name=f"{name}_1_bn")(y)
            shortcut = x
            if strides != 1 or x.shape[-1] != f:
                shortcut = layers.Conv2D(f, 1, strides=strides, use_bias=False, name=f"{name}_shortcut_conv")(x)
                shortcut = layers.BatchNormalization(name=f"{name}_shortcut_bn")(shortcut)
            x = layers.ReLU(name=f"{name}_relu")(layers.Add(name=f"{name}_add")([y, shortcut]))
    return x


def float32_output(x, name):
    """Cast to float32 so outputs stay float32 under a mixed-precision policy."""
    return layers.Activation("linear", dtype="float32", name=name)(x)


def apply_dense_trunk(x, hidden_sizes):
    """Flatten, then a ReLU dense layer per width: the dense families' encoder body."""
    x = layers.Flatten(name="flatten")(x)
    for i, units in enumerate(hidden_sizes):
        x = layers.Dense(int(units), activation="relu", name=f"enc_dense{i}")(x)
    return x


def dense_decoder(latent_dim, hidden_sizes, image_shape, activation="sigmoid"):
    """latent vector -> image: dense layers (`hidden_sizes` in reverse), then the pixels.

    `activation` applies to the pixels: "sigmoid" for values in [0, 1], None for logits.
    """
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = latent
    for i, units in enumerate(reversed(tuple(hidden_sizes))):
        x = layers.Dense(int(units), activation="relu", name=f"dec_dense{i}")(x)
    x = layers.Dense(math.prod(image_shape), activation=activation, name="pixels")(x)
    x = layers.Reshape(tuple(image_shape), name="unflatten")(x)
    return keras.Model(latent, float32_output(x, name="reconstruction"), name="decoder")


def conv_decoder(
    latent_dim, trunk_shape, filters, pooled, image_shape, batch_norm=True, activation="sigmoid", widths=None
):
    """latent vector -> image, mirroring `apply_conv_trunk`.

    The code maps back to the trunk's last feature map (`trunk_shape`, height x
    width), then transposed convolutions upsample wherever the trunk pooled, each
    back to the size the trunk pooled from: where that size was odd (pooling
    dropped its last row or column, 7 -> 3), a row or column of zeros is added at
    the bottom or right. `activation` applies to the pixels.

    `widths` are the decoder's filters per block, from the code out (None: the
    trunk's `filters` reversed, a mirror image; narrower widths make a lighter
    decoder that costs pretraining less and leaves the encoder as it is).
    """
    widths = tuple(int(f) for f in widths) if widths else tuple(reversed(filters))
    if len(widths) != len(filters):
        raise ZooError(
            f"decoder_filters={','.join(map(str, widths))}: give one width per encoder block "
            f"({len(filters)}, as filters={','.join(map(str, filters))})"
        )
    h, w = trunk_shape
    sizes = [tuple(image_shape[:2])]  # each block's input size in the trunk
    for up in pooled[:-1]:
        sizes.append((sizes[-1][0] // 2, sizes[-1][1] // 2) if up else sizes[-1])
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(h * w * widths[0], activation="relu", name="dec_dense")(latent)
    x = layers.Reshape((h, w, widths[0]), name="dec_reshape")(x)
    for i, (f, up, size) in enumerate(zip(widths, reversed(pooled), reversed(sizes))):
        x = layers.Conv2DTranspose(
            f, 3, strides=2 if up else 1, padding="same", use_bias=not batch_norm, name=f"dec_block{i}_deconv"
        )(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"dec_block{i}_bn")(x)
        x = layers.ReLU(name=f"dec_block{i}_relu")(x)
        odd = (size[0] - x.shape[1], size[1] - x.shape[2])
        if any(odd):
            x = layers.ZeroPadding2D(((0, odd[0]), (0, odd[1])), name=f"dec_block{i}_pad")(x)
    out_h, out_w = x.shape[1], x.shape[2]  # the image's: the crop is empty, kept for saved models' layer names
    x = layers.Cropping2D(((0, out_h - image_shape[0]), (0, out_w - image_shape[1])), name="crop")(x)
    x = layers.Conv2D(image_shape[2], 3, padding="same", activation=activation, name="pixels")(x)
    return keras.Model(latent, float32_output(x, name="reconstruction"), name="decoder")
