"""CNN classifier on the MNIST-10k protocol (benchmarks/README.md), side by side with plain Keras.

    python benchmarks/cnn_mnist10k.py                                   # TFDS mnist
    python benchmarks/cnn_mnist10k.py --manual_dir=/path/to/mnist-10k   # offline, local IDX files

1. Time to accuracy: train on the pool (images 0-7,999, all 10 classes), evaluate
   on images 8,000-9,999 after every epoch; training seconds (evaluation excluded)
   until eval accuracy first reaches 99.0%, for the zoo's CNN through the recipe's
   pipeline and for the seed-style plain-Keras CNN (Conv32-pool-Conv64-pool-
   Dense128-Dense10, Adam, `fit` on NumPy arrays, batch 64).
2. Throughput: images/s of the training step (median epoch), as a ratio, and as
   a fraction of this machine's measured fp32 matmul rate (training FLOPs ~ 3x
   the forward FLOPs of the convolutions and dense layers).
3. Transfer: digits 0-4 -> 5-9, N = 100 and 1,000, frozen / finetune / scratch / reference, 3 seeds.
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

import zoo
from protocol import SPLITS, forward_flops, protocol_dataset, quiet_logging
from recipes import cnn_classifier, flow
from recipes.data import load_data

FLAGS = flags.FLAGS
flags.DEFINE_integer("epochs", 15, "Epochs for the time-to-accuracy runs.")
flags.DEFINE_float("target", 0.99, "Eval accuracy to reach.")
flags.DEFINE_string(
    "dataset", "", "TFDS dataset holding the protocol's images (default: mnist_idx with --manual_dir, else mnist)."
)
flags.DEFINE_string("data_dir", "", "TFDS data dir.")
flags.DEFINE_string(
    "manual_dir",
    "",
    "Directory of the MNIST test set's IDX files (t10k-images-idx3-ubyte.gz, "
    "t10k-labels-idx1-ubyte.gz): read offline with --dataset=mnist_idx.",
)
flags.DEFINE_boolean("transfer", True, "Also run the 0-4 -> 5-9 transfer table.")


class TimeToAccuracy(keras.callbacks.Callback):
    """Eval accuracy after each epoch, and training seconds until it first reaches the target."""

    def __init__(self, images, labels, target, scale):
        super().__init__()
        self.images, self.labels, self.target, self.scale = images, labels, target, scale
        self.train_seconds, self.epoch_seconds, self.accuracies, self.reached = 0.0, [], [], None

    def on_epoch_begin(self, epoch, logs=None):
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self._start)
        self.train_seconds += self.epoch_seconds[-1]
        x = self.images.astype("float32") / 255.0 if self.scale else self.images
        accuracy = float(np.mean(np.argmax(self.model.predict(x, batch_size=1000, verbose=0), -1) == self.labels))
        self.accuracies.append(accuracy)
        if self.reached is None and accuracy >= self.target:
            self.reached = (epoch + 1, self.train_seconds)


def seed_style_cnn():
    return keras.Sequential(
        [
            keras.Input((28, 28, 1)),
            keras.layers.Conv2D(32, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Conv2D(64, 3, activation="relu"),
            keras.layers.MaxPooling2D(),
            keras.layers.Flatten(),
            keras.layers.Dense(128, activation="relu"),
            keras.layers.Dense(10),
        ]
    )


def matmul_peak(n=2048, repeats=20):
    """This machine's measured fp32 matmul rate, FLOP/s."""
    a = tf.random.normal((n, n))
    step = tf.function(lambda a: tf.linalg.matmul(a, a))
    step(a).numpy()
    start = time.perf_counter()
    for _ in range(repeats):
        out = step(a)
    out.numpy()
    return 2 * n**3 * repeats / (time.perf_counter() - start)


def main(argv):
    quiet_logging()
    config = cnn_classifier.Config(
        dataset=protocol_dataset(FLAGS.dataset, FLAGS.manual_dir),
        manual_dir=FLAGS.manual_dir,
        **SPLITS,
        data_dir=FLAGS.data_dir,
        label_budgets=(100, 1000),
        transfer_repeats=3,
        overwrite=True,
        model_dir="/tmp/zoo-benchmarks/cnn_classifier",
        source_classes="",
        target_classes="",
    )
    data = load_data(config)
    images, labels = data.train_arrays()
    results = {}

    keras.utils.set_random_seed(0)
    plain = seed_style_cnn()
    plain.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    tta = TimeToAccuracy(data.eval_inputs, data.eval_labels, FLAGS.target, scale=True)
    plain.fit(images.astype("float32") / 255.0, labels, batch_size=64, epochs=FLAGS.epochs, verbose=0, callbacks=[tta])
    results["plain Keras seed-style CNN, float32"] = (tta, forward_flops(plain), len(images))

    keras.utils.set_random_seed(0)
    recipe = cnn_classifier.RECIPE
    run = flow.prepare(recipe, config.replace(source_classes="0-4", target_classes="5-9"))  # its model config
    with flow.precision(run.precision):
        ours = zoo.build_model(config.model, **{**run.model_config, "num_classes": data.num_classes})
        recipe.compile(run, ours)
        tta = TimeToAccuracy(data.eval_inputs, data.eval_labels, FLAGS.target, scale=False)
        ours.fit(
            data.pretrain_dataset(lambda x, y: (x, y), config.batch_size, 0),
            epochs=FLAGS.epochs,
            verbose=0,
            shuffle=False,
            callbacks=[tta],
        )
    results[f"zoo {config.model}, recipe pipeline, {run.precision}"] = (tta, forward_flops(ours), len(images))

    peak = matmul_peak()
    print(f"\nfp32 matmul peak measured here: {peak / 1e9:.1f} GFLOP/s")
    print(
        f"| model | eval acc after {FLAGS.epochs} epochs | best | epochs, train s to {FLAGS.target:.1%} | "
        "images/s (median epoch) | share of fp32 peak |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    rates = {}
    for name, (tta, flops, n) in results.items():
        rates[name] = n / float(np.median(tta.epoch_seconds[1:]))
        reached = f"{tta.reached[0]}, {tta.reached[1]:.0f} s" if tta.reached else "never"
        print(
            f"| {name} | {tta.accuracies[-1]:.2%} | {max(tta.accuracies):.2%} | {reached} | "
            f"{rates[name]:.0f} | {3 * flops * rates[name] / peak:.1%} |"
        )
    a, b = rates.values()
    print(f"throughput ratio, zoo / plain Keras: {b / a:.2f}")

    if FLAGS.transfer:
        metrics = cnn_classifier.run(config.replace(source_classes="0-4", target_classes="5-9"))
        columns = [k for k in ("frozen", "finetune", "scratch", "reference") if k in metrics["transfer"][0]]
        print(f"\n| labels (digits 5-9) | {' | '.join(columns)} |")
        print("| ---: |" + " ---: |" * len(columns))
        for row in metrics["transfer"]:
            print(
                f"| {row['labels']} | "
                + " | ".join(f"{100 * row[k]:.1f} ± {100 * row['std'][k]:.1f}" for k in columns)
                + " |"
            )
        print(f"recipe wall time {metrics['wall_seconds']:.0f} s")


if __name__ == "__main__":
    app.run(main)
