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

import keras
import numpy as np
from absl import app, flags, logging

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import zoo  # noqa: E402
from recipes import autoencoder, flow  # noqa: E402
from recipes.config import define_flags, from_flags  # noqa: E402
from recipes.data import load_data  # noqa: E402
from recipes.transfer import Downstream  # noqa: E402

MNIST_10K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist-10k")
PROTOCOL = dict(
    dataset="mnist_idx", manual_dir=MNIST_10K, train_split="test[:8000]", eval_split="test[8000:]",
    label_budgets=(100, 1000), transfer_repeats=3, seed=0, overwrite=True,
)


def reference_cnn(config):
    """The common reference: the zoo's small CNN from scratch on the same draws."""
    data = load_data(config)
    seeds = [config.seed + i for i in range(config.transfer_repeats)]
    subsets = data.labelled_subsets(config.label_budgets, seeds)
    downstream = Downstream(config, data, flow.make_strategy(config.strategy))
    build = lambda: zoo.build_model("cnn_classifier", image_shape=data.image_shape,  # noqa: E731
                                    num_classes=data.num_classes).get_layer("encoder")
    return {n: [downstream.scratch(*subsets[(n, s)], s, build) for s in seeds] for n in config.label_budgets}


def throughput(config, repeats=4):
    """Images/s of the pretraining step, side by side: the recipe's tf.data pipeline
    and plain Keras (`model.fit` on NumPy arrays) on the same model, epochs interleaved."""
    data = load_data(config)
    images, _ = data.train_arrays()
    targets = images.astype("float32") / 255.0
    recipe, seconds = autoencoder.RECIPE, {"recipe": [], "plain_keras": []}
    model_config = recipe.model_config(config, data.image_shape, data.num_classes)
    models = {}
    for name in seconds:
        keras.utils.set_random_seed(config.seed)
        models[name] = zoo.build_model(config.model, **model_config)
        recipe.compile(models[name], config)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(config), config.batch_size, config.seed)
    for _ in range(repeats):
        for name, model in models.items():
            start = time.perf_counter()
            if name == "recipe":
                model.fit(pipeline, epochs=1, verbose=0, shuffle=False)
            else:
                model.fit(images, targets, batch_size=config.batch_size, epochs=1, verbose=0)
            seconds[name].append(time.perf_counter() - start)
    rate = {k: len(images) / float(np.median(v[1:])) for k, v in seconds.items()}  # first epoch compiles
    return rate["recipe"], rate["plain_keras"]


def main(argv):
    if not flags.FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)
    config = from_flags(autoencoder.Config)
    for name, value in PROTOCOL.items():
        if not flags.FLAGS[name].present:
            config = config.replace(**{name: value})
    if not flags.FLAGS["model_dir"].present:
        config = config.replace(model_dir="/tmp/zoo-benchmarks/autoencoder")
    start = time.time()
    metrics = autoencoder.run(config)
    reference = reference_cnn(config) if FLAGS.reference else {}
    shown = ("latent_dim", "filters", "hidden_sizes", "dropout", "masking_noise", "epochs", "head_norm", "augment")
    print(f"\n{config.model} (" + ", ".join(f"{k}={getattr(config, k)}" for k in shown) + ")")
    print("| labels | frozen | finetune | scratch (same arch) | small CNN from scratch |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for row in metrics["transfer"]:
        std = row.get("std", {})
        cells = [f"{100 * row[k]:.1f} ± {100 * std.get(k, 0):.1f}" for k in ("frozen", "finetune", "scratch")]
        ref = np.array(reference.get(row["labels"], [np.nan]))
        cells.append(f"{100 * ref.mean():.1f} ± {100 * ref.std():.1f}" if reference else "not run")
        print(f"| {row['labels']} | " + " | ".join(cells) + " |")
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
