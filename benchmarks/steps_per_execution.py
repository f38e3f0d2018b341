"""Does `steps_per_execution` speed up the transfer table's small classifiers?

    python benchmarks/steps_per_execution.py --manual_dir=/path/to/mnist-10k [--values=1,8,32]

The transfer table trains many small classifiers for a few hundred steps of batch 32, where Python
overhead per step could matter. For each value, in turns and two rounds: a linear head on a frozen
(random) `conv_autoencoder` encoder, 300 steps, and the reference CNN (`cnn_classifier_bn`) from
scratch, 600 steps, each compiled anew (the table compiles one twin per column: transfer_cells.py),
on N = 100 draws of the pool, seeds 0-2; median seconds per classifier. The precision is `auto`'s.
"""

import time

import keras
import numpy as np
from absl import app, flags

import zoo
from protocol import quiet_logging
from recipes import autoencoder, flow
from recipes.data import load_data
from recipes.downstream import Downstream

flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("values", ["1", "8", "32"], "steps_per_execution values to compare.")
FLAGS = flags.FLAGS


class TimedDownstream(Downstream):
    """`Downstream` compiling its classifiers with a given steps_per_execution."""

    steps_per_execution = 1

    def _compile(self, model, learning_rate, steps):
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
        model.compile(
            optimizer=keras.optimizers.Adam(schedule),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            steps_per_execution=self.steps_per_execution,
        )


def main(argv):
    quiet_logging()
    dataset = dict(dataset="mnist_idx", manual_dir=FLAGS.manual_dir) if FLAGS.manual_dir else dict(dataset="mnist")
    config = autoencoder.Config(
        train_split="test[:8000]", eval_split="test[8000:]", label_budgets=(100,), transfer_repeats=3, **dataset
    )
    data = load_data(config)
    draws = flow.labelled_draws(config, data)
    shape = dict(image_shape=data.image_shape)

    def frozen_head(downstream, images, labels, seed):
        encoder = zoo.build_model("conv_autoencoder", **shape).get_layer("encoder")
        encoder.trainable = False
        steps = config.transfer_steps
        train(downstream, downstream._classifier(encoder), config.probe_learning_rate, steps, images, labels, seed)

    def reference(downstream, images, labels, seed):
        encoder = zoo.build_model("cnn_classifier_bn", **shape, num_classes=10).get_layer("encoder")
        steps = 2 * config.transfer_steps
        train(downstream, downstream._classifier(encoder), config.transfer_learning_rate, steps, images, labels, seed)

    def train(downstream, model, learning_rate, steps, images, labels, seed):
        """One classifier compiled and trained (the table trains each role in a twin compiled once)."""
        downstream._compile(model, learning_rate, steps)
        downstream._train(model, images, labels, steps, seed)

    precision = flow.resolve_precision("auto")
    print(f"seconds per classifier, N = 100, seeds 0-2, {precision}")
    print("| round | steps_per_execution | frozen head, 300 steps | reference CNN from scratch, 600 steps |")
    print("| ---: | ---: | ---: | ---: |")
    with flow.precision(precision):
        downstream = TimedDownstream(config, data, flow.make_strategy("default"))
        for round_ in (1, 2):
            for value in map(int, FLAGS.values):
                downstream.steps_per_execution = value
                cells = []
                for train in (frozen_head, reference):
                    seconds = []
                    for seed in range(3):
                        keras.utils.set_random_seed(seed)
                        start = time.perf_counter()
                        train(downstream, *draws[(100, seed)], seed)
                        seconds.append(time.perf_counter() - start)
                    cells.append(f"{np.median(seconds):.1f} ({' / '.join(f'{t:.1f}' for t in seconds)})")
                print(f"| {round_} | {value} | " + " | ".join(cells) + " |", flush=True)


if __name__ == "__main__":
    app.run(main)
