"""DCGAN on the MNIST-10k protocol (benchmarks/README.md).

    python benchmarks/dcgan_mnist10k.py                     # the recipe's defaults, 20 epochs
    python benchmarks/dcgan_mnist10k.py --manual_dir=/path/to/mnist-10k   # offline, local IDX files
    python benchmarks/dcgan_mnist10k.py --label_smoothing=0.1 --d_steps=2

Trains the GAN on images 0-7,999 of the real MNIST test set (labels unseen),
scores the generator in the features of the zoo's CNN classifier trained on
the same images (Fréchet distance to images 8,000-9,999, beside the
train-vs-eval distance for scale; classifier score; class histogram), then the
transfer table of the discriminator's features (N = 100 and 1,000; frozen /
finetune / scratch; seeds 0-2) beside the protocol's reference CNN. Last, the
images/s of the training step side by side with a plain-Keras DCGAN of the same
architecture written as the keras-io DCGAN example writes it (float images from
NumPy, one discriminator step on real and fake together, then one generator step), as written
(sub-models called without `training`, so BatchNorm runs in inference mode) and with `training=True`.
"""

import keras
import tensorflow as tf
from keras import ops

from protocol import benchmark_main, interleaved_rates, recipe_model, seeded_build
from recipes import dcgan, flow
from zoo.dcgan import _discriminator, _generator

SHOWN = ("latent_dim", "generator_widths", "discriminator_widths", "label_smoothing", "d_steps", "epochs")
EPOCHS = 20  # on MNIST-10k, when --epochs is not given


class KerasIoGAN(keras.Model):
    """keras-io's DCGAN model: compile(d_optimizer, g_optimizer, loss_fn), train_step with two tapes."""

    def __init__(self, discriminator, generator, latent_dim, training=None):
        super().__init__()
        self.discriminator, self.generator, self.latent_dim = discriminator, generator, latent_dim
        self.training = training  # None as keras-io writes it: BatchNorm then runs in inference mode
        self.seed_generator = keras.random.SeedGenerator(1337)

    def compile(self, d_optimizer, g_optimizer, loss_fn):
        super().compile()
        self.d_optimizer, self.g_optimizer, self.loss_fn = d_optimizer, g_optimizer, loss_fn
        self.d_loss_metric = keras.metrics.Mean(name="d_loss")
        self.g_loss_metric = keras.metrics.Mean(name="g_loss")

    @property
    def metrics(self):
        return [self.d_loss_metric, self.g_loss_metric]

    def train_step(self, real_images):
        batch_size = ops.shape(real_images)[0]
        random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        generated_images = self.generator(random_latent_vectors, training=self.training)
        combined_images = ops.concatenate([generated_images, real_images], axis=0)
        labels = ops.concatenate([ops.ones((batch_size, 1)), ops.zeros((batch_size, 1))], axis=0)
        labels += 0.05 * tf.random.uniform(tf.shape(labels))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(combined_images, training=self.training)
            d_loss = self.loss_fn(labels, predictions)
        grads = tape.gradient(d_loss, self.discriminator.trainable_weights)
        self.d_optimizer.apply_gradients(zip(grads, self.discriminator.trainable_weights))
        random_latent_vectors = keras.random.normal(shape=(batch_size, self.latent_dim), seed=self.seed_generator)
        misleading_labels = ops.zeros((batch_size, 1))
        with tf.GradientTape() as tape:
            predictions = self.discriminator(
                self.generator(random_latent_vectors, training=self.training), training=self.training
            )
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def keras_io_gan(config, model_config, image_shape, training=None):
    latent_dim = model_config["latent_dim"]
    gan = KerasIoGAN(
        _discriminator(image_shape, model_config["discriminator_widths"], True),
        _generator(latent_dim, image_shape, model_config["generator_widths"], True),
        latent_dim,
        training,
    )
    gan.compile(
        d_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
        g_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
        loss_fn=keras.losses.BinaryCrossentropy(from_logits=True),
    )
    return gan


def throughput(config):
    """Images/s of the training step: the recipe (zoo DCGAN, tf.data pipeline) vs keras-io style (NumPy floats)."""
    recipe = dcgan.RECIPE
    run = flow.prepare(recipe, config)
    data, model_config = run.source, run.model_config
    images, _ = data.train_arrays()
    floats = images.astype("float32") / 127.5 - 1.0
    ours = recipe_model(recipe, run)
    plain = seeded_build(lambda: keras_io_gan(config, model_config, data.image_shape), config.seed)
    plain_bn = seeded_build(lambda: keras_io_gan(config, model_config, data.image_shape, training=True), config.seed)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(run), config.batch_size, config.seed)
    return interleaved_rates(
        {
            "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
            "keras_io": lambda: plain.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
            "keras_io_training": lambda: plain_bn.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
        },
        len(images),
        repeats=6,
    )


def speed(config):
    rate = throughput(config)
    return (
        f"training step, images/s (median of 5 epochs, interleaved): recipe {rate['recipe']:.0f}, "
        f"keras-io style {rate['keras_io']:.0f} (ratio {rate['recipe'] / rate['keras_io']:.2f}); the same "
        f"with training=True, BatchNorm in training mode, {rate['keras_io_training']:.0f} "
        f"(ratio {rate['recipe'] / rate['keras_io_training']:.2f})"
    )


def extra(metrics):
    pre = metrics["pretrain"]
    print(
        f"Fréchet distance (scorer features, {pre['score_samples']} generated vs eval images) "
        f"{pre['frechet_distance']:.2f}; train vs eval images {pre['frechet_distance_train_vs_eval']:.2f}"
    )
    print(
        f"classifier score {pre['classifier_score']:.2f} (eval images {pre['classifier_score_eval']:.2f}); "
        f"scorer eval accuracy {pre.get('scorer_accuracy', float('nan')):.1%}; "
        f"generated classes {pre['class_histogram']}"
    )


if __name__ == "__main__":
    benchmark_main(
        dcgan,
        "dcgan",
        SHOWN,
        speed,
        extra,
        epochs=EPOCHS,
        reference=False,
        speed_help="Also compare training-step throughput with a keras-io style DCGAN.",
    )
