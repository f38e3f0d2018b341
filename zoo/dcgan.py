"""DCGAN (Radford, Metz & Chintala 2015): a GAN whose discriminator becomes the encoder.

The model is a `DCGAN`: a registered `keras.Model` that trains with plain `fit`
(`compile` takes the two learning rates) and tracks both losses. Its sub-models:

- "generator": latent vector -> image in [-1, 1] (`DCGAN.generate` gives uint8);
- "discriminator": image in [-1, 1] -> real/fake logit, built on "disc_trunk"
  (strided convolutions, BatchNorm after the first, LeakyReLU);
- "encoder": uint8 images -> the features of every trunk layer, max-pooled to
  a grid of at most 4x4, flattened and concatenated, as the DCGAN paper used
  its discriminator for CIFAR-10 (the same layers as "disc_trunk", not a copy).

Example:

    gan = zoo.build_model("dcgan", image_shape=(28, 28, 1))
    gan.compile(learning_rate=2e-4)
    gan.fit(uint8_images, epochs=20)
    images = gan.generate(gan.noise(16))
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops

from zoo.blocks import float32_output
from zoo.registry import register
from zoo.training import replica_share

FAMILY = "dcgan"
POOLED_GRID = 4  # each trunk layer's features are max-pooled to at most this many cells a side


def _bce(target, logits):
    return ops.mean(ops.binary_crossentropy(ops.full_like(logits, target), logits, from_logits=True))


@keras.saving.register_keras_serializable(package="zoo")
class DCGAN(keras.Model):
    """Generator and discriminator trained against each other.

    Args:
      generator: a model from latent vectors to images in [-1, 1].
      discriminator: a model from images in [-1, 1] to one logit, with a
        nested model "disc_trunk" (images -> the output of every conv layer).
      label_smoothing: the discriminator's target for real images is
        1 - label_smoothing (one-sided, Salimans et al. 2016).
      d_steps: discriminator updates per generator update.
    """

    def __init__(self, generator, discriminator, label_smoothing=0.0, d_steps=1, **kwargs):
        super().__init__(**kwargs)
        self.generator = generator
        self.discriminator = discriminator
        self.label_smoothing = float(label_smoothing)
        self.d_steps = int(d_steps)
        self.encoder = _pooled_features(discriminator.get_layer("disc_trunk"))
        self.seed_generator = keras.random.SeedGenerator()
        self.d_loss_tracker = keras.metrics.Mean(name="d_loss")
        self.g_loss_tracker = keras.metrics.Mean(name="g_loss")
        self.d_real_tracker = keras.metrics.Mean(name="d_real")  # mean D(x) on real images
        self.d_fake_tracker = keras.metrics.Mean(name="d_fake")  # mean D(G(z))
        self.built = True

    @property
    def latent_dim(self):
        return int(self.generator.input_shape[-1])

    @property
    def metrics(self):
        return [self.d_loss_tracker, self.g_loss_tracker, self.d_real_tracker, self.d_fake_tracker]

    def compile(self, learning_rate=2e-4, beta_1=0.5, jit_compile=False, **kwargs):
        """Two Adam optimizers (the paper's lr 2e-4, beta_1 0.5); `optimizer` is the generator's."""
        super().compile(
            optimizer=keras.optimizers.Adam(learning_rate, beta_1=beta_1), jit_compile=jit_compile, **kwargs
        )
        d_optimizer = keras.optimizers.Adam(learning_rate, beta_1=beta_1)
        if self.dtype_policy.name == "mixed_float16":  # what compile does for `optimizer`
            d_optimizer = keras.optimizers.LossScaleOptimizer(d_optimizer)
        d_optimizer.build(self.discriminator.trainable_variables)
        self.d_optimizer = d_optimizer
        self.optimizer.build(self.generator.trainable_variables)  # built now, so a checkpoint restores both
        self._compile_args = dict(learning_rate=learning_rate, beta_1=beta_1, jit_compile=jit_compile)

    def get_compile_config(self):
        return getattr(self, "_compile_args", None)

    def compile_from_config(self, config):
        self.compile(**config)

    def call(self, images, training=False):
        """Discriminator logits of uint8 images."""
        return self.discriminator(_to_pixels(images), training=training)

    def noise(self, n):
        return keras.random.normal((n, self.latent_dim), seed=self.seed_generator)

    def _step(self, optimizer, loss_fn, variables):
        with tf.GradientTape() as tape:
            loss, stats = loss_fn()
            scaled = optimizer.scale_loss(replica_share(loss))  # loss scaling under mixed_float16
        optimizer.apply(tape.gradient(scaled, variables), variables)
        return loss, stats

    def _d_loss(self, real, training):
        fake = self.generator(self.noise(ops.shape(real)[0]), training=training)
        real_logits = self.discriminator(real, training=training)
        fake_logits = self.discriminator(fake, training=training)
        loss = _bce(1.0 - self.label_smoothing, real_logits) + _bce(0.0, fake_logits)
        return loss, (ops.mean(ops.sigmoid(real_logits)), ops.mean(ops.sigmoid(fake_logits)))

    def _g_loss(self, n, training):
        fake = self.generator(self.noise(n), training=training)
        return _bce(1.0, self.discriminator(fake, training=training)), ()

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = _to_pixels(images)
        for _ in range(self.d_steps):
            d_loss, (d_real, d_fake) = self._step(
                self.d_optimizer, lambda: self._d_loss(real, True), self.discriminator.trainable_weights
            )
        g_loss, _ = self._step(
            self.optimizer, lambda: self._g_loss(ops.shape(real)[0], True), self.generator.trainable_weights
        )
        return self._track(d_loss, g_loss, d_real, d_fake)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        real = _to_pixels(images)
        d_loss, (d_real, d_fake) = self._d_loss(real, False)
        g_loss, _ = self._g_loss(ops.shape(real)[0], False)
        return self._track(d_loss, g_loss, d_real, d_fake)

    def _track(self, d_loss, g_loss, d_real, d_fake):
        for tracker, value in zip(self.metrics, (d_loss, g_loss, d_real, d_fake)):
            tracker.update_state(value)
        return {m.name: m.result() for m in self.metrics}

    def generate(self, z):
        """Latent vectors -> uint8 images."""
        pixels = ops.cast(self.generator(z, training=False), "float32")
        return ops.cast(ops.round((ops.clip(pixels, -1.0, 1.0) + 1.0) * 127.5), "uint8")

    def get_config(self):
        return {
            **super().get_config(),
            "generator": keras.saving.serialize_keras_object(self.generator),
            "discriminator": keras.saving.serialize_keras_object(self.discriminator),
            "label_smoothing": self.label_smoothing,
            "d_steps": self.d_steps,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("generator", "discriminator"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _to_pixels(images):
    """uint8 images -> floats in [-1, 1], the generator's range."""
    return ops.cast(images, "float32") / 127.5 - 1.0


def _pooled_features(trunk):
    """uint8 images -> every trunk output max-pooled to <= POOLED_GRID cells a side, concatenated."""
    shape = tuple(trunk.input_shape[1:])
    inputs = keras.Input(shape=shape, dtype="uint8", name="image")
    x = layers.Rescaling(1.0 / 127.5, offset=-1.0, name="image_scale")(inputs)
    pooled = []
    for i, features in enumerate(trunk(x)):
        size = math.ceil(features.shape[1] / POOLED_GRID)
        if size > 1:
            features = layers.MaxPooling2D(size, padding="same", name=f"feature{i}_pool")(features)
        pooled.append(layers.Flatten(name=f"feature{i}_flat")(features))
    x = layers.Concatenate(name="features")(pooled) if len(pooled) > 1 else pooled[0]
    return keras.Model(inputs, float32_output(x, name="code"), name="encoder")


def _generator(latent_dim, image_shape, widths, batch_norm):
    """Dense -> reshape -> one stride-2 transposed convolution per width -> tanh, cropped to the image."""
    h, w, channels = image_shape
    ups = len(widths)
    start = (math.ceil(h / 2**ups), math.ceil(w / 2**ups))
    latent = keras.Input(shape=(latent_dim,), name="latent")
    x = layers.Dense(start[0] * start[1] * widths[0], use_bias=not batch_norm, name="gen_dense")(latent)
    if batch_norm:
        x = layers.BatchNormalization(name="gen_dense_bn")(x)
    x = layers.ReLU(name="gen_dense_relu")(x)
    x = layers.Reshape((*start, widths[0]), name="gen_reshape")(x)
    for i, f in enumerate(widths[1:]):
        x = layers.Conv2DTranspose(f, 4, strides=2, padding="same", use_bias=not batch_norm, name=f"gen{i}_deconv")(x)
        if batch_norm:
            x = layers.BatchNormalization(name=f"gen{i}_bn")(x)
        x = layers.ReLU(name=f"gen{i}_relu")(x)
    x = layers.Conv2DTranspose(channels, 4, strides=2, padding="same", name="gen_pixels")(x)
    x = layers.Cropping2D(((0, x.shape[1] - h), (0, x.shape[2] - w)), name="gen_crop")(x)
    x = layers.Activation("tanh", name="gen_tanh")(x)
    return keras.Model(latent, float32_output(x, name="image"), name="generator")


def _discriminator(image_shape, widths, batch_norm):
    """Strided 4x4 convolutions with LeakyReLU (BatchNorm after all but the first) -> one logit."""
    pixels = keras.Input(shape=tuple(image_shape), name="pixels")
    x, outputs = pixels, []
    for i, f in enumerate(widths):
        x = layers.Conv2D(f, 4, strides=2, padding="same", use_bias=not (batch_norm and i), name=f"disc{i}_conv")(x)
        if batch_norm and i:
            x = layers.BatchNormalization(name=f"disc{i}_bn")(x)
        x = layers.LeakyReLU(0.2, name=f"disc{i}_lrelu")(x)
        outputs.append(x)
    trunk = keras.Model(pixels, outputs, name="disc_trunk")
    features = trunk(pixels)
    x = layers.Flatten(name="disc_flat")(features[-1])
    logit = float32_output(layers.Dense(1, name="disc_logit")(x), name="logit")
    return keras.Model(pixels, logit, name="discriminator")


@register("dcgan", family=FAMILY)
@register("dcgan_tiny", family=FAMILY, tiny=True, latent_dim=8, generator_widths=(8, 4), discriminator_widths=(4, 8))
def dcgan(
    image_shape=(28, 28, 1),
    latent_dim=100,
    generator_widths=(128, 64),
    discriminator_widths=(64, 128),
    batch_norm=True,
    label_smoothing=0.0,
    d_steps=1,
):
    """A DCGAN sized from the image shape.

    Args:
      image_shape: (height, width, channels) of the uint8 images.
      latent_dim: size of the generator's noise input.
      generator_widths: filters after the dense layer and of each upsampling
        stage but the last; one stride-2 stage per entry (28x28: 7 -> 14 -> 28).
      discriminator_widths: filters of each stride-2 convolution.
      batch_norm: batch normalisation in both networks (the paper's choice).
      label_smoothing: real-image target 1 - label_smoothing for the discriminator.
      d_steps: discriminator updates per generator update.
    """
    image_shape = tuple(image_shape)
    generator_widths = tuple(int(f) for f in generator_widths)
    discriminator_widths = tuple(int(f) for f in discriminator_widths)
    return DCGAN(
        _generator(latent_dim, image_shape, generator_widths, batch_norm),
        _discriminator(image_shape, discriminator_widths, batch_norm),
        label_smoothing=label_smoothing,
        d_steps=d_steps,
        name="dcgan",
    )
