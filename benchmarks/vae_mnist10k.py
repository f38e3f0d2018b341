"""VAE on the MNIST-10k protocol (benchmarks/README.md).

    python benchmarks/vae_mnist10k.py                    # the recipe's defaults (conv_vae, 20 epochs)
    python benchmarks/vae_mnist10k.py --manual_dir=/path/to/mnist-10k   # offline, local IDX files
    python benchmarks/vae_mnist10k.py --latent_dim=32 --beta=0.5

Pretrains on images 0-7,999 of the real MNIST test set (labels unseen), reports
the eval ELBO and the importance-weighted NLL estimate on images 8,000-9,999,
then the transfer table (N = 100 and 1,000; frozen / finetune / scratch; seeds
0-2) beside the protocol's reference CNN from scratch. Last, the images/s of
the training step side by side with a plain-Keras VAE of the same architecture
written as the keras-io VAE example writes it (float images from NumPy, the
losses in `train_step`, `fit`). Any recipe flag gives a variant.
"""

import keras
import tensorflow as tf
from keras import layers, ops

from protocol import benchmark_main, interleaved_rates, recipe_model, seeded_build
from recipes import flow, vae
from zoo.blocks import conv_decoder

SHOWN = ("latent_dim", "filters", "decoder_filters", "hidden_sizes", "beta", "likelihood", "epochs")


class Sampling(layers.Layer):
    """keras-io: z = mean + exp(log_var / 2) * eps."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seed_generator = keras.random.SeedGenerator(1337)

    def call(self, inputs):
        z_mean, z_log_var = inputs
        epsilon = keras.random.normal(shape=ops.shape(z_mean), seed=self.seed_generator)
        return z_mean + ops.exp(0.5 * z_log_var) * epsilon


class KerasIoVAE(keras.Model):
    """keras-io's VAE model: the losses in train_step, three Mean trackers."""

    def __init__(self, encoder, decoder, **kwargs):
        super().__init__(**kwargs)
        self.encoder, self.decoder = encoder, decoder
        self.total_loss_tracker = keras.metrics.Mean(name="total_loss")
        self.reconstruction_loss_tracker = keras.metrics.Mean(name="reconstruction_loss")
        self.kl_loss_tracker = keras.metrics.Mean(name="kl_loss")

    @property
    def metrics(self):
        return [self.total_loss_tracker, self.reconstruction_loss_tracker, self.kl_loss_tracker]

    def train_step(self, data):
        with tf.GradientTape() as tape:
            z_mean, z_log_var, z = self.encoder(data)
            reconstruction = self.decoder(z)
            reconstruction_loss = ops.mean(ops.sum(keras.losses.binary_crossentropy(data, reconstruction), axis=(1, 2)))
            kl_loss = -0.5 * (1 + z_log_var - ops.square(z_mean) - ops.exp(z_log_var))
            kl_loss = ops.mean(ops.sum(kl_loss, axis=1))
            total_loss = reconstruction_loss + kl_loss
        grads = tape.gradient(total_loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(grads, self.trainable_weights))
        self.total_loss_tracker.update_state(total_loss)
        self.reconstruction_loss_tracker.update_state(reconstruction_loss)
        self.kl_loss_tracker.update_state(kl_loss)
        return {m.name: m.result() for m in self.metrics}


def keras_io_vae(config, model_config, image_shape):
    """conv_vae's architecture (trunk, pooling, mean/log-var, mirrored decoder) in keras-io's style."""
    inputs = keras.Input(shape=image_shape)
    x, pooled = inputs, []
    latent_dim, filters = model_config["latent_dim"], model_config["filters"]
    for f in filters:
        for _ in range(model_config["convs_per_block"]):
            x = layers.Conv2D(f, 3, padding="same", use_bias=False)(x)
            x = layers.BatchNormalization()(x)
            x = layers.ReLU()(x)
        pooled.append(x.shape[1] // 2 >= 2 and x.shape[2] // 2 >= 2)
        if pooled[-1]:
            x = layers.MaxPooling2D(2)(x)
    trunk_shape = (x.shape[1], x.shape[2])
    x = layers.GlobalAveragePooling2D()(x)
    z_mean = layers.Dense(latent_dim, name="z_mean")(x)
    z_log_var = layers.Dense(latent_dim, name="z_log_var")(x)
    z = Sampling()([z_mean, z_log_var])
    encoder = keras.Model(inputs, [z_mean, z_log_var, z], name="encoder")
    widths = model_config.get("decoder_filters")
    decoder = conv_decoder(latent_dim, trunk_shape, filters, pooled, image_shape, widths=widths)  # sigmoid pixels
    model = KerasIoVAE(encoder, decoder)
    model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
    return model


def throughput(config):
    """Images/s of the training step: the recipe (zoo VAE, tf.data pipeline) vs keras-io style (NumPy floats)."""
    recipe = vae.RECIPE
    run = flow.prepare(recipe, config)
    data = run.source
    images, _ = data.train_arrays()
    floats = images.astype("float32") / 255.0
    ours = recipe_model(recipe, run)
    plain = seeded_build(lambda: keras_io_vae(config, run.model_config, data.image_shape), config.seed)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(run), config.batch_size, config.seed)
    rate = interleaved_rates(
        {
            "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
            "keras_io": lambda: plain.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
        },
        len(images),
        repeats=6,
    )
    return rate["recipe"], rate["keras_io"]


def speed(config):
    if not config.model.startswith("conv_vae"):
        return "speed comparison: only for conv_vae models"
    ours, plain = throughput(config)
    return (
        f"training step, images/s (median of 5 epochs, interleaved): recipe {ours:.0f}, "
        f"keras-io style {plain:.0f}, ratio {ours / plain:.2f}"
    )


def extra(metrics):
    pre = metrics["pretrain"]
    print(
        f"eval ELBO {pre['eval_elbo']:.1f} nats/image (reconstruction {pre['eval_reconstruction']:.1f}, "
        f"KL {pre['eval_kl']:.1f}); importance-weighted NLL estimate {pre['eval_nll']:.1f} nats/image "
        f"(k={pre['iw_samples']})"
    )


if __name__ == "__main__":
    benchmark_main(
        vae, "vae", SHOWN, speed, extra, speed_help="Also compare training-step throughput with a keras-io style VAE."
    )
