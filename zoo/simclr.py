"""Contrastive pretraining in the style of SimCLR (Chen et al. 2020).

Two random augmentations of each image go through the same encoder and a small
projection head; the NT-Xent loss pulls each pair together and pushes it away
from every other view in the batch. The model is a `SimCLR`: a registered
`keras.Model` that trains with plain `fit` on uint8 images (no labels) and
augments inside its `train_step`, so the views come from Keras preprocessing
layers on the accelerator and the tf.data pipeline stays the shared one. Its
sub-models:

- "encoder": uint8 images -> features (the zoo's CNN trunk, globally pooled:
  by default each channel's average, as the CNN family's encoder), what
  transfers; the projection head is not part of it;
- "projector": features -> projections (Dense-BatchNorm-ReLU-Dense), where the loss lives;
- "augment": float images in [0, 1] -> a random view (`SimCLR.augment` applies
  it to uint8 images).

Under a `tf.distribute` strategy the negatives span the global batch: the
projections are all-gathered across replicas (a differentiable all-gather), so
the loss and gradients equal one device's on the same batch. BatchNorm, as in
every zoo model, normalises per replica.

Example:

    model = zoo.build_model("simclr", image_shape=(28, 28, 1), temperature=0.5)
    model.compile(optimizer="adam")
    model.fit(uint8_images, batch_size=64, epochs=30)
    features = model.get_layer("encoder").predict(uint8_images)
"""

import keras
import tensorflow as tf
from keras import layers, ops

from zoo.blocks import apply_conv_trunk, float32_output, image_input
from zoo.registry import register
from zoo.training import OwnObjective

FAMILY = "simclr"
POOLINGS = ("avg", "max", "avg_max")  # how the trunk's last feature map becomes the features
_MASKED = -1e9  # logit of a view against itself: excluded from the softmax


def nt_xent(z1, z2, temperature, negatives1=None, negatives2=None, offset=0):
    """The NT-Xent loss of SimCLR: per anchor view, -log softmax of its positive.

    The 2n views (z1 then z2, row i of each from image i) are L2-normalised;
    view i of z1 has view i of z2 as its positive, and every other view as a
    negative. With `negatives1`/`negatives2` (the gathered z1/z2 of the whole
    global batch, in which the local rows start at `offset`), the local anchors
    contrast against the global batch.

    Returns:
      (losses, correct): both of shape (2n,), float32: the loss of each anchor
      and whether its positive scored highest.
    """
    z1, z2 = (ops.normalize(ops.cast(z, "float32"), axis=-1) for z in (z1, z2))
    if negatives1 is None:
        negatives1, negatives2 = z1, z2
    else:
        negatives1, negatives2 = (ops.normalize(ops.cast(z, "float32"), axis=-1) for z in (negatives1, negatives2))
    n, total = ops.shape(z1)[0], ops.shape(negatives1)[0]
    anchors = ops.concatenate([z1, z2], axis=0)
    candidates = ops.concatenate([negatives1, negatives2], axis=0)
    logits = ops.matmul(anchors, ops.transpose(candidates)) / temperature
    rows = ops.arange(n) + offset
    selves = ops.concatenate([rows, rows + total], axis=0)
    positives = ops.concatenate([rows + total, rows], axis=0)
    logits = ops.where(ops.one_hot(selves, 2 * total) > 0, _MASKED, logits)
    losses = ops.sparse_categorical_crossentropy(positives, logits, from_logits=True)
    correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1), ops.cast(positives, "int32")), "float32")
    return losses, correct


def _gather_global(z1, z2):
    """(z1, z2 of the global batch, where this replica's rows start); local values on one device."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return z1, z2, 0
    g1, g2 = context.all_gather([z1, z2], axis=0)  # differentiable: gradients reach every replica's views
    sizes = context.all_gather(tf.shape(z1)[:1], axis=0)
    return g1, g2, ops.sum(sizes[: context.replica_id_in_sync_group])


@keras.saving.register_keras_serializable(package="zoo")
class SimCLR(OwnObjective):
    """A contrastive model trained with NT-Xent on two augmented views of each image.

    Args:
      encoder: a model from uint8 images to feature vectors.
      projector: a model from feature vectors to projections (the loss's space).
      augment: a model from float images in [0, 1] to random views (run with training=True).
      temperature: the softmax temperature of NT-Xent.

    `call` returns the projections of the images as given (no augmentation), so
    one training-mode call sets BatchNorm statistics from clean images.
    """

    accuracy_name = "contrastive_accuracy"  # the positive scored highest

    def __init__(self, encoder, projector, augment, temperature=0.5, **kwargs):
        super().__init__(**kwargs)
        if not temperature > 0:
            raise ValueError(f"temperature must be positive, got {temperature!r}")
        self.encoder = encoder
        self.projector = projector
        self.augmenter = augment
        self.temperature = float(temperature)
        self.built = True  # the sub-models are built

    def call(self, images, training=False):
        return self.projector(self.encoder(images, training=training), training=training)

    def augment(self, images):
        """uint8 images -> one random uint8 view of each (what the encoder sees in pretraining)."""
        x = ops.cast(images, "float32") / 255.0
        x = ops.cast(self.augmenter(x, training=True), "float32")
        return ops.cast(ops.round(ops.clip(x, 0.0, 1.0) * 255.0), "uint8")

    def objective(self, images, training=False):
        """(losses, correct) per anchor view (see `nt_xent`) for two fresh views of `images`."""
        z1 = self(self.augment(images), training=training)
        z2 = self(self.augment(images), training=training)
        return nt_xent(z1, z2, self.temperature, *_gather_global(z1, z2))

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "projector": keras.saving.serialize_keras_object(self.projector),
            "augment": keras.saving.serialize_keras_object(self.augmenter),
            "temperature": self.temperature,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "projector", "augment"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def augmenter(image_shape, crop=0.0, translate=0.0, rotate=0.0, noise=0.0, contrast=0.0, color_jitter=0.0):
    """A random view of float images in [0, 1]: each augmentation is on when its strength is > 0.

    Sizes are fractions of the image, so one setting serves 8x8 and 28x28 images.

    Args:
      crop: crop up to this fraction of each side (independently, so the aspect
        changes too) and resize back: a random resized crop.
      translate: shift by up to this fraction of each side.
      rotate: rotate by up to this fraction of a full turn.
      noise: standard deviation of Gaussian pixel noise.
      contrast: contrast factor range, 1 +- `contrast`.
      color_jitter: brightness, contrast, saturation and hue jitter; colour images only.
    """
    image_shape = tuple(image_shape)
    steps = [keras.Input(image_shape, name="view_input")]
    fill = dict(fill_mode="constant", fill_value=0.0)
    if crop:
        steps.append(layers.RandomZoom((-crop, 0.0), (-crop, 0.0), name="crop", **fill))
    if translate:
        steps.append(layers.RandomTranslation(translate, translate, name="translate", **fill))
    if rotate:
        steps.append(layers.RandomRotation(rotate, name="rotate", **fill))
    if contrast:
        steps.append(layers.RandomContrast(contrast, value_range=(0, 1), name="contrast"))
    if color_jitter and image_shape[-1] == 3:
        steps.append(
            layers.RandomColorJitter(
                value_range=(0, 1),
                brightness_factor=0.8 * color_jitter,
                contrast_factor=0.8 * color_jitter,
                saturation_factor=(0.5 - 0.4 * color_jitter, 0.5 + 0.4 * color_jitter),
                hue_factor=0.2 * color_jitter,
                name="color_jitter",
            )
        )
    if noise:
        steps.append(layers.GaussianNoise(noise, name="noise"))
    if len(steps) == 1:
        steps.append(layers.Identity(name="identity"))
    return keras.Sequential(steps, name="augment")


def global_pool(x, pooling):
    """The trunk's feature map -> a feature vector: per channel its average, its maximum, or both."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {', '.join(POOLINGS)}; got {pooling!r}")
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="pool")(x)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="pool")(x)
    return layers.Concatenate(name="pool")(
        [layers.GlobalAveragePooling2D(name="avg_pool")(x), layers.GlobalMaxPooling2D(name="max_pool")(x)]
    )


@register("simclr", family=FAMILY)
@register(
    "simclr_tiny", family=FAMILY, tiny=True, filters=(4, 8), convs_per_block=1, projection_units=8, projection_dim=4
)
def simclr(
    image_shape=(28, 28, 1),
    filters=(32, 64, 128),
    convs_per_block=1,
    batch_norm=True,
    pooling="avg",
    projection_units=256,
    projection_dim=64,
    temperature=0.5,
    crop=0.3,
    translate=0.1,
    rotate=0.05,
    noise=0.05,
    contrast=0.3,
    color_jitter=0.5,
):
    """A SimCLR model whose encoder is the zoo's CNN trunk, globally pooled.

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      filters: filters of each trunk block.
      convs_per_block: convolutions per trunk block.
      batch_norm: batch normalisation after each convolution.
      pooling: "avg", "max" or "avg_max" (both, concatenated: twice the last
        block's filters as features).
      projection_units: width of the projection head's hidden layer.
      projection_dim: size of the projections the loss compares.
      temperature: the NT-Xent softmax temperature.
      crop, translate, rotate, noise, contrast, color_jitter: the augmentations
        (see `augmenter`); 0 turns one off.

    Returns:
      A `SimCLR` model with the sub-models "encoder", "projector" and "augment".
    """
    image_shape = tuple(image_shape)
    filters = tuple(int(f) for f in filters)
    inputs, x = image_input(image_shape)
    x, _ = apply_conv_trunk(x, filters, convs_per_block=convs_per_block, batch_norm=batch_norm)
    encoder = keras.Model(inputs, global_pool(x, pooling), name="encoder")

    features = keras.Input(encoder.output.shape[1:], name="features")
    h = layers.Dense(projection_units, use_bias=not batch_norm, name="proj_dense0")(features)
    if batch_norm:
        h = layers.BatchNormalization(name="proj_bn0")(h)
    h = layers.ReLU(name="proj_relu0")(h)
    z = float32_output(layers.Dense(projection_dim, name="proj_dense1")(h), name="projection")
    projector = keras.Model(features, z, name="projector")

    augment = augmenter(
        image_shape,
        crop=crop,
        translate=translate,
        rotate=rotate,
        noise=noise,
        contrast=contrast,
        color_jitter=color_jitter,
    )
    return SimCLR(encoder, projector, augment, temperature=temperature, name="simclr")
