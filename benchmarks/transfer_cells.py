"""Seconds per cell of the transfer table: each role's classifier trained in a twin compiled once per
table (what `Downstream` does) against every classifier compiled, and its step traced, for itself.

    python benchmarks/transfer_cells.py --manual_dir=/path/to/mnist-10k
    python benchmarks/transfer_cells.py --text_dir=/path/to/aclImdb_subset.tar.gz --models=masked_lm

A cell is one labelled draw's frozen, finetune, k-NN, scratch and reference columns at the recipes'
defaults (300 steps for the frozen head and again for fine-tuning, 600 for scratch and the reference,
batch 32). The encoder is the registered model's, from random weights (a text model's vocabulary
fitted on the train split): the time of a cell does not depend on what pretraining taught. Both ways
run in turns on the same draws (N = --labels, seeds 0 to --seeds - 1), and their accuracies must
agree. Images: MNIST-10k (8,000 pool, 2,000 eval); texts: the IMDB subset (train, test). The
precision is `auto`'s.
"""

import os
import tempfile
import time

import keras
import numpy as np
from absl import app, flags

import zoo
from protocol import SPLITS, quiet_logging
from recipes import autoencoder, flow, masked_lm
from recipes.data import load_data
from recipes.downstream import Downstream

flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files, for the image models.")
flags.DEFINE_string("text_dir", "", "The IMDB subset (aclImdb_subset.tar.gz or its folder), for the text models.")
flags.DEFINE_string("data_dir", "/tmp/zoo-benchmarks/tfds", "TFDS data directory.")
flags.DEFINE_list("models", ["conv_autoencoder"], "Registered models whose encoders the cells train on.")
flags.DEFINE_integer("labels", 100, "Labelled examples per draw.")
flags.DEFINE_integer("seeds", 3, "Draws (seeds 0, 1, ...).")
FLAGS = flags.FLAGS


def setting(name):
    """(config, data, encoder builder) for the registered model `name`."""
    if zoo.get_entry(name).inputs == "texts":
        if not FLAGS.text_dir:
            raise app.UsageError(f"--models={name} reads texts: give --text_dir")
        config = masked_lm.Config(dataset="imdb_local", manual_dir=FLAGS.text_dir, data_dir=FLAGS.data_dir)
        data = load_data(config)
        model = zoo.build_model(name)
        model.adapt(data.pretrain_inputs())
        tokens, model_config = flow.tokenisation(model.get_layer("encoder")), {}
    else:
        if not FLAGS.manual_dir:
            raise app.UsageError(f"--models={name} reads images: give --manual_dir (MNIST-10k)")
        config = autoencoder.Config(dataset="mnist_idx", manual_dir=FLAGS.manual_dir, data_dir=FLAGS.data_dir, **SPLITS)
        data = load_data(config)
        tokens, model_config = None, dict(image_shape=data.image_shape)
    config = config.replace(model=name, label_budgets=(FLAGS.labels,), transfer_repeats=FLAGS.seeds)
    return config, data, lambda: flow.fresh_encoder(name, model_config, tokens)


def frozen(build):
    encoder = build()
    encoder.trainable = False
    return encoder


def main(argv):
    quiet_logging()
    precision = flow.resolve_precision("auto")
    print(f"seconds per cell of the transfer table, N = {FLAGS.labels}, seeds 0-{FLAGS.seeds - 1}, {precision}")
    print("| model | classifiers | first cell | later cells (median) | table | accuracies |")
    print("| --- | --- | ---: | ---: | ---: | --- |")
    with flow.precision(precision), tempfile.TemporaryDirectory() as tmp:
        for name in FLAGS.models:
            config, data, build = setting(name)
            config = config.replace(model_dir=os.path.join(tmp, name))
            draws, load = flow.labelled_draws(config, data), lambda build=build: frozen(build)
            kinds = {"twins": True, "each compiled": False}
            downstreams = {
                k: Downstream(config, data, flow.make_strategy("default"), twins) for k, twins in kinds.items()
            }
            seconds, scores = {k: [] for k in kinds}, {k: [] for k in kinds}
            for (_, seed), (inputs, labels) in sorted(draws.items()):
                for k, downstream in downstreams.items():
                    keras.utils.set_random_seed(seed)
                    start = time.perf_counter()
                    cell, _ = downstream.cell(inputs, labels, seed, load, build)
                    seconds[k].append(time.perf_counter() - start)
                    scores[k].append(cell)
                    print(f"  {name} seed {seed} {k}: {seconds[k][-1]:.1f} s, {cell}", flush=True)
            same = "equal" if scores["twins"] == scores["each compiled"] else "DIFFER"
            for k in kinds:
                first, later = seconds[k][0], np.median(seconds[k][1:]) if len(seconds[k]) > 1 else float("nan")
                ratio = "" if k == "each compiled" else f" (×{sum(seconds['each compiled']) / sum(seconds[k]):.2f})"
                print(f"| {name} | {k} | {first:.1f} | {later:.1f} | {sum(seconds[k]):.1f}{ratio} | {same} |")


if __name__ == "__main__":
    app.run(main)
