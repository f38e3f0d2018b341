"""Time to 99.0% on the MNIST-10k eval split, training a CNN on the 8,000 pool images with their labels.

    python benchmarks/time_to_99.py --manual_dir=/path/to/mnist-10k
    python benchmarks/time_to_99.py --manual_dir=/path/to/mnist-10k --models=cnn_classifier_bn --epochs=20
    python benchmarks/time_to_99.py --manual_dir=/path/to/mnist-10k --validation --epochs=10 \
        --models=cnn_classifier_flat --filters=32,64,128     # a candidate trunk, on the validation slice

Each model trains as `recipes.distill` trains its students and its ceiling (the same routine, with
the true labels): augmentation (translation, rotation, zoom), Adam at 2e-3 with cosine decay over
--epochs, batch 128, in the precision `auto` picks. After every epoch the eval split is scored (a
monitor: nothing is chosen from it; BatchNorm statistics are recalibrated first, as at the end of
training); the figures are the first epoch at or above 99.0% and the training seconds up to its end
(scoring excluded), the accuracy at the last epoch, and the training images/s, per seed. The models
run in turns, seed by seed, so that both see the machine alike. --epochs (25) was chosen on a
validation slice of the pool (train on images 0-5,999, score on 6,000-7,999), never on the eval split.
"""

import time

import keras
from absl import app, flags

from protocol import quiet_logging
from recipes import distill, flow
from recipes.data import load_data
from recipes.downstream import Downstream, recalibrate_batchnorm

flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("models", ["cnn_classifier", "cnn_classifier_flat"], "Registered cnn_classifier models to time.")
flags.DEFINE_integer("epochs", 25, "Epochs of each run (the cosine schedule's length).")
flags.DEFINE_list("seeds", ["0", "1", "2"], "Seeds.")
flags.DEFINE_float("target", 0.99, "Eval accuracy to reach.")
flags.DEFINE_bool(
    "validation",
    False,
    "Choose, don't report: train on pool images 0-5,999 and score 6,000-7,999 (never the eval split).",
)
flags.DEFINE_list("filters", [], "Filters per block for every model (a candidate trunk); empty: each model's own.")
FLAGS = flags.FLAGS


class EvalEveryEpoch(keras.callbacks.Callback):
    """Eval accuracy after each epoch, and the training seconds up to then (scoring excluded)."""

    def __init__(self, downstream, images):
        super().__init__()
        self.downstream, self.images, self.rows, self.trained = downstream, images, [], 0.0

    def on_epoch_begin(self, epoch, logs=None):
        self.start = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        self.trained += time.perf_counter() - self.start
        recalibrate_batchnorm(self.model, self.images)
        self.rows.append((epoch + 1, self.trained, self.downstream.evaluate(self.model)))


def main(argv):
    quiet_logging()
    dataset = dict(dataset="mnist_idx", manual_dir=FLAGS.manual_dir) if FLAGS.manual_dir else dict(dataset="mnist")
    splits = ("test[:6000]", "test[6000:8000]") if FLAGS.validation else ("test[:8000]", "test[8000:]")
    config = distill.Config(
        teacher_dir="none", train_split=splits[0], eval_split=splits[1], student_epochs=FLAGS.epochs, **dataset
    )
    data = load_data(config)
    pool, labels = data.train_arrays()
    precision = flow.resolve_precision("auto")
    scored = "the validation slice" if FLAGS.validation else "MNIST-10k eval"
    print(f"time to {FLAGS.target:.1%} on {scored}, {FLAGS.epochs} epochs, {precision}")
    print(
        "| model | seed | epoch reaching it | training seconds | eval accuracy then "
        "| at the last epoch (seconds) | images/s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    with flow.precision(precision):
        runs = {}
        for name in FLAGS.models:
            run_config = config.replace(student=name)
            run = flow.Run(run_config, data, data, flow.make_strategy("default"), precision)
            run.model_config = distill.student_config(run_config, data)
            if FLAGS.filters:
                run.model_config["filters"] = tuple(map(int, FLAGS.filters))
            runs[name] = run, Downstream(run_config, data, run.strategy)
        for seed in map(int, FLAGS.seeds):
            for name, (run, downstream) in runs.items():
                keras.utils.set_random_seed(seed)
                model = distill.build_student(run)
                monitor = EvalEveryEpoch(downstream, pool)
                images_per_second = distill.train_student(
                    run,
                    model,
                    pool,
                    distill.hard_logits(labels, data.num_classes),
                    distill.student_steps(run.config, len(pool), 0),
                    seed,
                    1.0,
                    callbacks=[monitor],
                )
                reached = next((row for row in monitor.rows if row[2] >= FLAGS.target), None)
                cells = [f"{reached[0]}", f"{reached[1]:.1f}", f"{reached[2]:.2%}"] if reached else ["-", "-", "-"]
                last = f"{monitor.rows[-1][2]:.2%} ({monitor.rows[-1][1]:.0f} s)"
                print(
                    f"| {name} | {seed} | " + " | ".join(cells) + f" | {last} | {images_per_second:,.0f} |", flush=True
                )


if __name__ == "__main__":
    app.run(main)
