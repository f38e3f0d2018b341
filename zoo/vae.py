"""Variational autoencoders (Kingma & Welling 2014), dense and convolutional.

The model is a `VAE`: a registered `keras.Model` that trains with plain `fit`
and tracks the loss, the reconstruction term and the KL term as metrics. Its
sub-models:

- "posterior": uint8 images -> (mean, log-variance) of q(z|x);
- "encoder": uint8 images -> the posterior mean, the features that transfer
  (the same layers as "posterior", not a copy);
- "decoder": latent vector -> pixel logits (`VAE.generate` turns them into
  uint8 images).

Example:

    vae = zoo.build_model("conv_vae", image_shape=(28, 28, 1), latent_dim=16)
    vae.compile(optimizer="adam")
    vae.fit(uint8_images, epochs=10)
    features = vae.get_layer("encoder").predict(uint8_images)
"""

import math

import keras
import tensorflow as tf
from keras import layers, ops

from zoo.blocks import apply_conv_trunk, apply_dense_trunk, conv_decoder, dense_decoder, float32_output, image_input
from zoo.registry import register
from zoo.training import replica_share

FAMILY = "vae"
LIKELIHOODS = ("bernoulli", "gaussian")
_LOG_2PI = math.log(2 * math.pi)


@keras.saving.register_keras_serializable(package="zoo")
class Sampling(layers.Layer):
    """z = mean + exp(log_var / 2) * eps, with eps ~ N(0, I) drawn from the layer's own SeedGenerator.

    The generator's state is a variable of the model, so `keras.utils.set_random_seed`
    makes a run reproducible and a resumed run continues the same stream.
    """

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, mean, log_var):
        eps = keras.random.normal(ops.shape(mean), dtype=mean.dtype, seed=self.seed_generator)
        return mean + ops.exp(0.5 * log_var) * eps

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="zoo")
class VAE(keras.Model):
    """A VAE trained by maximising the ELBO, with a `beta` weight on the KL term.

    Args:
      posterior: a model from uint8 images to [mean, log_var] of the latent posterior.
      decoder: a model from latent vectors to pixel logits.
      beta: weight of the KL term in the training loss (1 is the ELBO).
      likelihood: "bernoulli" (pixels in [0, 1] as probabilities) or "gaussian"
        (mean sigmoid(logits), one learned scale shared by all pixels, as in
        the sigma-VAE of Rybkin et al. 2021).
    """

    def __init__(self, posterior, decoder, beta=1.0, likelihood="bernoulli", **kwargs):
        super().__init__(**kwargs)
        if likelihood not in LIKELIHOODS:
            raise ValueError(f"likelihood must be one of {LIKELIHOODS}, got {likelihood!r}")
        self.posterior = posterior
        self.decoder = decoder
        self.encoder = keras.Model(posterior.input, posterior.outputs[0], name="encoder")
        self.sampling = Sampling(name="sampling")
        self.beta = float(beta)
        self.likelihood = likelihood
        self.log_scale = self.add_weight(
            shape=(), initializer="zeros", name="log_scale", trainable=likelihood == "gaussian"
        )
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.reconstruction_tracker = keras.metrics.Mean(name="reconstruction")
        self.kl_tracker = keras.metrics.Mean(name="kl")
        self.built = True  # every weight exists: the sub-models are built, log_scale is made above

    @property
    def latent_dim(self):
        return int(self.decoder.input_shape[-1])

    @property
    def metrics(self):
        return [self.loss_tracker, self.reconstruction_tracker, self.kl_tracker]

    def call(self, images, training=False):
        """Reconstructions in [0, 1]: decoded from a posterior sample in training, from the mean otherwise."""
        mean, log_var = self.posterior(images, training=training)
        z = self.sampling(mean, log_var) if training else mean
        return ops.sigmoid(self.decoder(z, training=training))

    def negative_log_likelihood(self, images, logits):
        """-log p(x|z) per image, in nats, for pixels scaled to [0, 1]."""
        x = ops.cast(images, "float32") / 255.0
        if self.likelihood == "bernoulli":
            per_pixel = ops.binary_crossentropy(x, logits, from_logits=True)
        else:
            log_scale = ops.cast(self.log_scale, "float32")
            z = (x - ops.sigmoid(logits)) * ops.exp(-log_scale)
            per_pixel = 0.5 * ops.square(z) + log_scale + 0.5 * _LOG_2PI
        return ops.sum(ops.reshape(per_pixel, (ops.shape(per_pixel)[0], -1)), axis=-1)

    def terms(self, images, training=False):
        """(reconstruction, kl): the two ELBO terms per image, in nats, from one posterior sample."""
        mean, log_var = self.posterior(images, training=training)
        z = self.sampling(mean, log_var)
        reconstruction = self.negative_log_likelihood(images, self.decoder(z, training=training))
        kl = 0.5 * ops.sum(ops.exp(log_var) + ops.square(mean) - 1.0 - log_var, axis=-1)
        return reconstruction, kl

    def _track(self, reconstruction, kl):
        self.loss_tracker.update_state(reconstruction + self.beta * kl)
        self.reconstruction_tracker.update_state(reconstruction)
        self.kl_tracker.update_state(kl)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            reconstruction, kl = self.terms(images, training=True)
            loss = replica_share(ops.mean(reconstruction + self.beta * kl))
            scaled = self.optimizer.scale_loss(loss)  # loss scaling under mixed_float16
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(reconstruction, kl)

    def test_step(self, data):
        images, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(*self.terms(images, training=False))

    def importance_weighted_nll(self, images, samples=64, seed=0):
        """-log p(x) per image, in nats: the importance-weighted bound of Burda et al. (2016).

        log p(x) >= log mean_k p(x|z_k) p(z_k) / q(z_k|x), z_k ~ q(z|x); with
        `samples`=1 this is the ELBO, and it tightens as `samples` grows.
        """
        mean, log_var = (ops.cast(t, "float32") for t in self.posterior(images, training=False))
        n, d = ops.shape(mean)[0], self.latent_dim
        eps = keras.random.normal((samples, n, d), seed=seed)
        z = mean[None] + ops.exp(0.5 * log_var)[None] * eps
        logits = self.decoder(ops.reshape(z, (samples * n, d)), training=False)
        repeated = ops.tile(images, (samples,) + (1,) * (len(images.shape) - 1))
        log_px_z = -ops.reshape(self.negative_log_likelihood(repeated, logits), (samples, n))
        log_pz = -0.5 * ops.sum(ops.square(z) + _LOG_2PI, axis=-1)
        log_qz = -0.5 * ops.sum(ops.square(eps) + log_var[None] + _LOG_2PI, axis=-1)
        log_w = log_px_z + log_pz - log_qz
        return -(ops.logsumexp(log_w, axis=0) - math.log(samples))

    def generate(self, z):
        """Latent vectors -> uint8 images (the decoder's mean)."""
        pixels = ops.sigmoid(ops.cast(self.decoder(z, training=False), "float32"))
        return ops.cast(ops.round(pixels * 255.0), "uint8")

    def get_config(self):
        return {
            **super().get_config(),
            "posterior": keras.saving.serialize_keras_object(self.posterior),
            "decoder": keras.saving.serialize_keras_object(self.decoder),
            "beta": self.beta,
            "likelihood": self.likelihood,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("posterior", "decoder"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def _posterior(inputs, features, latent_dim):
    mean = float32_output(layers.Dense(latent_dim, name="z_mean")(features), name="mean")
    log_var = float32_output(layers.Dense(latent_dim, name="z_log_var")(features), name="log_var")
    return keras.Model(inputs, [mean, log_var], name="posterior")


@register("dense_vae", family=FAMILY)
@register("dense_vae_tiny", family=FAMILY, tiny=True, hidden_sizes=(16,), latent_dim=2)
def dense_vae(image_shape=(28, 28, 1), hidden_sizes=(512, 256), latent_dim=16, beta=1.0, likelihood="bernoulli"):
    """A fully connected VAE, mirrored decoder.

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      hidden_sizes: widths of the hidden layers between the pixels and the latent.
      latent_dim: size of the latent; the encoder's features are its posterior mean.
      beta: weight of the KL term in the training loss.
      likelihood: "bernoulli" or "gaussian" (see `VAE`).
    """
    image_shape = tuple(image_shape)
    hidden_sizes = tuple(int(h) for h in hidden_sizes)
    inputs, x = image_input(image_shape)
    x = apply_dense_trunk(x, hidden_sizes)
    decoder = dense_decoder(latent_dim, hidden_sizes, image_shape, activation=None)
    return VAE(_posterior(inputs, x, latent_dim), decoder, beta=beta, likelihood=likelihood, name="dense_vae")


@register("conv_vae", family=FAMILY)
@register("conv_vae_tiny", family=FAMILY, tiny=True, filters=(4, 8), convs_per_block=1, latent_dim=2)
def conv_vae(
    image_shape=(28, 28, 1),
    filters=(32, 64),
    convs_per_block=2,
    latent_dim=16,
    batch_norm=True,
    beta=1.0,
    likelihood="bernoulli",
    decoder_filters=None,
):
    """A convolutional VAE whose encoder is the zoo's CNN trunk (as in `conv_autoencoder`).

    Args:
      image_shape: (height, width, channels) of the uint8 input images.
      filters: filters of each trunk block.
      convs_per_block: convolutions per trunk block.
      latent_dim: size of the latent; the encoder's features are its posterior mean.
      batch_norm: batch normalisation after each convolution.
      beta: weight of the KL term in the training loss.
      likelihood: "bernoulli" or "gaussian" (see `VAE`).
      decoder_filters: filters of each decoder block, from the latent out (None:
        half of `filters`, reversed: on MNIST-10k's validation slice a decoder half
        the encoder's width gave better features than a mirrored one, 1.1x faster;
        benchmarks/README.md#vae); the encoder does not depend on them.
    """
    image_shape = tuple(image_shape)
    filters = tuple(int(f) for f in filters)
    if not decoder_filters:
        decoder_filters = tuple(max(1, f // 2) for f in reversed(filters))
    inputs, x = image_input(image_shape)
    x, pooled = apply_conv_trunk(x, filters, convs_per_block=convs_per_block, batch_norm=batch_norm)
    trunk_shape = (x.shape[1], x.shape[2])
    x = layers.GlobalAveragePooling2D(name="pool")(x)
    decoder = conv_decoder(
        latent_dim,
        trunk_shape,
        filters,
        pooled,
        image_shape,
        batch_norm=batch_norm,
        activation=None,
        widths=decoder_filters,
    )
    return VAE(_posterior(inputs, x, latent_dim), decoder, beta=beta, likelihood=likelihood, name="conv_vae")
