"""The transfer table's reference column for candidate CNNs: each trained from scratch on N labelled
pool images exactly as `Downstream` trains the reference (same head, steps, batch and learning rate).

    python benchmarks/reference_cnn.py --manual_dir=/path/to/mnist-10k \\
        --models=cnn_classifier_bn,cnn_classifier,cnn_classifier_flat

A choosing tool: it trains on pool images 0-5,999 and scores 6,000-7,999 (the validation slice), never
the eval split. Seeds 0-2, mean ± std in %, the precision `auto` picks.
"""

import numpy as np
from absl import app, flags

import zoo
from protocol import quiet_logging
from recipes import autoencoder, flow
from recipes.data import load_data
from recipes.downstream import Downstream

flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("models", ["cnn_classifier_bn", "cnn_classifier"], "Registered cnn_classifier models.")
flags.DEFINE_list("filters", [], "Filters per block for every model (a candidate trunk); empty: each model's own.")
flags.DEFINE_list("budgets", ["100", "1000"], "Labelled examples per draw.")
FLAGS = flags.FLAGS


def main(argv):
    quiet_logging()
    dataset = dict(dataset="mnist_idx", manual_dir=FLAGS.manual_dir) if FLAGS.manual_dir else dict(dataset="mnist")
    config = autoencoder.Config(
        train_split="test[:6000]",
        eval_split="test[6000:8000]",
        label_budgets=tuple(map(int, FLAGS.budgets)),
        transfer_repeats=3,
        **dataset,
    )
    data = load_data(config)
    draws = flow.labelled_draws(config, data)
    precision = flow.resolve_precision("auto")
    overrides = {"filters": tuple(map(int, FLAGS.filters))} if FLAGS.filters else {}
    print(f"reference CNNs from scratch on the validation slice, {precision}")
    print("| model | labels | accuracy | per seed |")
    print("| --- | ---: | ---: | --- |")
    with flow.precision(precision):
        downstream = Downstream(config, data, flow.make_strategy("default"))
        for name in FLAGS.models:

            def build(name=name):
                shape = dict(image_shape=data.image_shape, num_classes=data.num_classes)
                return zoo.build_model(name, **shape, **overrides).get_layer("encoder")

            for n in config.label_budgets:
                accs = [downstream.scratch(*draws[(n, seed)], seed, build) for seed in range(config.transfer_repeats)]
                per_seed = " ".join(f"{100 * a:.1f}" for a in accs)
                print(
                    f"| {name} | {n} | {100 * np.mean(accs):.1f} ± {100 * np.std(accs):.1f} | {per_seed} |", flush=True
                )


if __name__ == "__main__":
    app.run(main)
