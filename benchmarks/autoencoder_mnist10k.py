"""Autoencoder transfer on the MNIST-10k protocol (../shared/PROTOCOL.md).

    python benchmarks/autoencoder_mnist10k.py                       # the recipe's defaults
    python benchmarks/autoencoder_mnist10k.py --model=dense_autoencoder --hidden_sizes= --latent_dim=32

Pretrains on images 0-7,999 of the real MNIST test set (labels unseen), then
for N = 100 and 1,000 labels and seeds 0, 1, 2 trains frozen / finetune /
scratch classifiers and evaluates them on images 8,000-9,999. Beside them, the
protocol's common reference: the zoo's small CNN trained from scratch on the
same draws with the same head, steps and augmentation. Any recipe flag can be
given to try a variant; the table is printed as Markdown.
"""

import os
import sys
import time

from absl import app, flags, logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

from protocol import interleaved_rates, print_table, protocol_config, recipe_model, reference_cnn  # noqa: E402
from recipes import autoencoder  # noqa: E402
from recipes.config import define_flags  # noqa: E402
from recipes.data import load_data  # noqa: E402


def throughput(config):
    """Images/s of the pretraining step, side by side: the recipe's tf.data pipeline
    and plain Keras (`model.fit` on NumPy arrays) on the same model, epochs interleaved."""
    data = load_data(config)
    images, _ = data.train_arrays()
    targets = images.astype("float32") / 255.0
    recipe = autoencoder.RECIPE
    ours, plain = recipe_model(recipe, config, data), recipe_model(recipe, config, data)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(config), config.batch_size, config.seed)
    rate = interleaved_rates({
        "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
        "plain_keras": lambda: plain.fit(images, targets, batch_size=config.batch_size, epochs=1, verbose=0),
    }, len(images))
    return rate["recipe"], rate["plain_keras"]


def main(argv):
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    config = protocol_config(autoencoder.Config, "autoencoder")
    start = time.time()
    metrics = autoencoder.run(config)
    reference = reference_cnn(config) if FLAGS.reference else {}
    shown = ("latent_dim", "filters", "hidden_sizes", "dropout", "masking_noise", "epochs", "head_norm", "augment")
    print(f"\n{config.model} (" + ", ".join(f"{k}={getattr(config, k)}" for k in shown) + ")")
    print_table(metrics, reference)
    print(f"pretraining: {metrics['pretrain']}")
    if FLAGS.speed:
        ours, plain = throughput(config)
        print(f"pretraining step, images/s (median of 3 epochs, interleaved): recipe pipeline {ours:.0f}, "
              f"plain Keras fit on NumPy {plain:.0f}, ratio {ours / plain:.2f}")
    print(f"recipe wall time {metrics['wall_seconds']:.0f} s; with the reference {time.time() - start:.0f} s")


FLAGS = flags.FLAGS

if __name__ == "__main__":
    define_flags(autoencoder.Config)
    flags.DEFINE_boolean("reference", True, "Also train the protocol's reference CNN from scratch.")
    flags.DEFINE_boolean("speed", True, "Also compare pretraining throughput with plain Keras.")
    app.run(main)
