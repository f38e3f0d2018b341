"""Autoencoder transfer on the MNIST-10k protocol (benchmarks/README.md).

    python benchmarks/autoencoder_mnist10k.py                       # the recipe's defaults, TFDS mnist
    python benchmarks/autoencoder_mnist10k.py --manual_dir=/path/to/mnist-10k   # offline, local IDX files
    python benchmarks/autoencoder_mnist10k.py --model=dense_autoencoder --hidden_sizes= --latent_dim=32

Pretrains on images 0-7,999 of the real MNIST test set (labels unseen), then
for N = 100 and 1,000 labels and seeds 0, 1, 2 trains frozen / finetune /
scratch classifiers and evaluates them on images 8,000-9,999. Beside them, the
protocol's common reference: the zoo's small CNN trained from scratch on the
same draws with the same head, steps and augmentation. Any recipe flag can be
given to try a variant; the table is printed as Markdown.
"""

from protocol import benchmark_main, interleaved_rates, plain_keras_model, recipe_model
from recipes import autoencoder, flow

SHOWN = (
    "latent_dim",
    "filters",
    "decoder_filters",
    "hidden_sizes",
    "dropout",
    "masking_noise",
    "epochs",
    "head_norm",
    "augment",
)


def throughput(config):
    """Images/s of the pretraining step, side by side: the recipe's tf.data pipeline
    and plain Keras (`model.fit` on NumPy arrays) on the same model, epochs interleaved."""
    recipe = autoencoder.RECIPE
    run = flow.prepare(recipe, config)
    data = run.source
    images, _ = data.train_arrays()
    targets = images.astype("float32") / 255.0
    ours, plain = recipe_model(recipe, run), plain_keras_model(recipe, run)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(run), config.batch_size, config.seed)
    rate = interleaved_rates(
        {
            "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
            "plain_keras": lambda: plain.fit(images, targets, batch_size=config.batch_size, epochs=1, verbose=0),
        },
        len(images),
    )
    return rate["recipe"], rate["plain_keras"]


def speed(config):
    ours, plain = throughput(config)
    return (
        f"pretraining step, images/s (median of 3 epochs, interleaved): recipe pipeline {ours:.0f}, "
        f"plain Keras fit on NumPy {plain:.0f}, ratio {ours / plain:.2f}"
    )


def extra(metrics):
    print(f"pretraining: {metrics['pretrain']}")


if __name__ == "__main__":
    benchmark_main(
        autoencoder,
        "autoencoder",
        SHOWN,
        speed,
        extra,
        speed_help="Also compare pretraining throughput with plain Keras.",
    )
