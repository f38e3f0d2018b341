"""DCGAN on the MNIST-10k protocol (../shared/PROTOCOL.md).

    python benchmarks/dcgan_mnist10k.py                     # the recipe's defaults, 20 epochs
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

import os
import sys
import time

import keras
import tensorflow as tf
from absl import app, flags, logging
from keras import ops

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from protocol import (interleaved_rates, print_table, protocol_config, recipe_model, reference_cnn,  # noqa: E402
                      seeded_build)
from recipes import dcgan  # noqa: E402
from recipes.config import define_flags  # noqa: E402
from recipes.data import load_data  # noqa: E402
from zoo.dcgan import _discriminator, _generator  # noqa: E402

FLAGS = flags.FLAGS


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
            predictions = self.discriminator(self.generator(random_latent_vectors, training=self.training),
                                             training=self.training)
            g_loss = self.loss_fn(misleading_labels, predictions)
        grads = tape.gradient(g_loss, self.generator.trainable_weights)
        self.g_optimizer.apply_gradients(zip(grads, self.generator.trainable_weights))
        self.d_loss_metric.update_state(d_loss)
        self.g_loss_metric.update_state(g_loss)
        return {"d_loss": self.d_loss_metric.result(), "g_loss": self.g_loss_metric.result()}


def keras_io_gan(config, image_shape, training=None):
    gan = KerasIoGAN(_discriminator(image_shape, config.discriminator_widths, True),
                     _generator(config.latent_dim, image_shape, config.generator_widths, True), config.latent_dim,
                     training)
    gan.compile(d_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
                g_optimizer=keras.optimizers.Adam(config.learning_rate, beta_1=0.5),
                loss_fn=keras.losses.BinaryCrossentropy(from_logits=True))
    return gan


def throughput(config):
    """Images/s of the training step: the recipe (zoo DCGAN, tf.data pipeline) vs keras-io style (NumPy floats)."""
    data = load_data(config)
    images, _ = data.train_arrays()
    floats = images.astype("float32") / 127.5 - 1.0
    recipe = dcgan.RECIPE
    ours = recipe_model(recipe, config, data)
    plain = seeded_build(lambda: keras_io_gan(config, data.image_shape), config.seed)
    plain_bn = seeded_build(lambda: keras_io_gan(config, data.image_shape, training=True), config.seed)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(config), config.batch_size, config.seed)
    return interleaved_rates({
        "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
        "keras_io": lambda: plain.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
        "keras_io_training": lambda: plain_bn.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
    }, len(images), repeats=6)


def print_speed(config):
    rate = throughput(config)
    print(f"training step, images/s (median of 5 epochs, interleaved): recipe {rate['recipe']:.0f}, "
          f"keras-io style {rate['keras_io']:.0f} (ratio {rate['recipe'] / rate['keras_io']:.2f}); the same "
          f"with training=True, BatchNorm in training mode, {rate['keras_io_training']:.0f} "
          f"(ratio {rate['recipe'] / rate['keras_io_training']:.2f})")


def main(argv):
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    config = protocol_config(dcgan.Config, "dcgan")
    if not flags.FLAGS["epochs"].present:
        config = config.replace(epochs=FLAGS.mnist_epochs)
    if FLAGS.speed_only:
        print_speed(config)
        return
    start = time.time()
    metrics = dcgan.run(config)
    reference = reference_cnn(config) if FLAGS.reference else {}
    shown = ("latent_dim", "generator_widths", "discriminator_widths", "label_smoothing", "d_steps", "epochs")
    print(f"\n{config.model} (" + ", ".join(f"{k}={getattr(config, k)}" for k in shown) + ")")
    print_table(metrics, reference)
    pre = metrics["pretrain"]
    print(f"Fréchet distance (scorer features, {pre['score_samples']} generated vs eval images) "
          f"{pre['frechet_distance']:.2f}; train vs eval images {pre['frechet_distance_train_vs_eval']:.2f}")
    print(f"classifier score {pre['classifier_score']:.2f} (eval images {pre['classifier_score_eval']:.2f}); "
          f"scorer eval accuracy {pre.get('scorer_accuracy', float('nan')):.1%}; "
          f"generated classes {pre['class_histogram']}")
    if FLAGS.speed:
        print_speed(config)
    print(f"recipe wall time {metrics['wall_seconds']:.0f} s; with the reference {time.time() - start:.0f} s")


if __name__ == "__main__":
    define_flags(dcgan.Config)
    flags.DEFINE_integer("mnist_epochs", 20, "Epochs when --epochs is not given.")
    flags.DEFINE_boolean("reference", False, "Also train the protocol's reference CNN (README: 93.1 / 97.6).")
    flags.DEFINE_boolean("speed", True, "Also compare training-step throughput with a keras-io style DCGAN.")
    flags.DEFINE_boolean("speed_only", False, "Only the throughput comparison.")
    app.run(main)
