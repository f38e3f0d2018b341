"""What the family benchmarks share: the MNIST-10k protocol (benchmarks/README.md),
the reference CNN, side-by-side timing, FLOP counting, the Markdown transfer table and
the one `main` that four of the five benchmarks run.

The protocol: the 10,000 images of MNIST's test set, the first 8,000 to pretrain on
and draw labelled examples from, the last 2,000 to evaluate on. Where they come from:
TFDS `mnist` by default (downloaded once), or `mnist_idx` with `--manual_dir=DIR`,
a local folder holding t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz
(no network). An explicit `--dataset` is always respected.
"""

import dataclasses
import json
import sys
import time
from pathlib import Path

import keras
import numpy as np
from absl import app, flags, logging

import zoo
from recipes.config import define_flags, from_flags
from recipes.downstream import walk_layers

FLAGS = flags.FLAGS
SPLITS = dict(train_split="test[:8000]", eval_split="test[8000:]")
PROTOCOL = dict(**SPLITS, label_budgets=(100, 1000), transfer_repeats=3, seed=0, overwrite=True)


def protocol_dataset(dataset, manual_dir):
    """The TFDS dataset holding the protocol's images: `dataset` when given, else `mnist_idx`
    reading the IDX files in `manual_dir` when that is given (offline), else `mnist`."""
    if dataset:
        return dataset
    return "mnist_idx" if manual_dir else "mnist"


def quiet_logging():
    """Warnings only, unless --verbosity is given: TFDS logs every file it opens at INFO."""
    if not FLAGS["verbosity"].present:
        logging.set_verbosity(logging.WARNING)


def protocol_config(Config, family):
    """The recipe's config from the flags, the protocol filling every flag not given."""
    config = from_flags(Config)
    for name, value in PROTOCOL.items():
        if not FLAGS[name].present:
            config = config.replace(**{name: value})
    if not FLAGS["dataset"].present:
        config = config.replace(dataset=protocol_dataset("", config.manual_dir))
    if not FLAGS["model_dir"].present:
        config = config.replace(model_dir=f"/tmp/zoo-benchmarks/{family}")
    return config


TRANSFER_COLUMNS = ("frozen", "finetune", "knn", "scratch", "reference")
NAMES = {"scratch": "scratch (same arch)", "reference": "small CNN from scratch"}


def print_table(rows, kinds=TRANSFER_COLUMNS):
    """A table of `metrics.json` (its "transfer" rows, or a family's own) as Markdown, mean ± std over
    seeds, in %; the columns of `kinds` the run scored; then each gain with its 95% interval."""
    kinds = [k for k in kinds if k in rows[0]]
    names = (
        {**NAMES, "reference": "TF-IDF + logistic regression"}
        if rows[0].get("reference_model") == "tfidf_logreg"
        else NAMES
    )
    print("| labels | " + " | ".join(names.get(k, k) for k in kinds) + " |")
    print("| ---: |" + " ---: |" * len(kinds))
    for row in rows:
        std = row.get("std", {})
        cells = [f"{100 * row[k]:.1f} ± {100 * std.get(k, 0):.1f}" for k in kinds]
        print(f"| {row['labels']} | " + " | ".join(cells) + " |")
    print_gains(rows)


def print_gains(rows):
    """Each row's gains with their paired 95% intervals (metrics.json's "gains"), in points."""
    for row in rows:
        for pair, entry in row.get("gains", {}).items():
            low, high = entry["ci95"]
            print(
                f"N={row['labels']}: {pair.replace('_over_', ' - ')} {entry['points']:+.1f} [{low:+.1f}, {high:+.1f}]"
            )


def interleaved_rates(fits, images_per_epoch, repeats=4):
    """Images/s of each `fits[name]()` (one epoch each), run in turns; the median after the first (compiling) epoch."""
    seconds = {name: [] for name in fits}
    for _ in range(repeats):
        for name, fit in fits.items():
            start = time.perf_counter()
            fit()
            seconds[name].append(time.perf_counter() - start)
    return {name: images_per_epoch / float(np.median(s[1:])) for name, s in seconds.items()}


def seeded_build(build, seed):
    keras.utils.set_random_seed(seed)
    return build()


def recipe_model(recipe, run):
    """The recipe's pretraining model for `run` (from `flow.prepare`), built under the seed and
    compiled as the recipe compiles it."""

    def build():
        model = zoo.build_model(run.config.model, **run.model_config)
        recipe.compile(run, model)
        return model

    return seeded_build(build, run.config.seed)


def forward_flops(model):
    """FLOPs (2 x multiply-adds) of the conv and dense layers for one image's forward pass, nested
    models included, each layer once. A transposed convolution counts by its input: each input
    pixel meets the kernel once, whatever the stride."""
    total, seen = 0, set()
    for layer in walk_layers(model):
        if id(layer) in seen:
            continue
        seen.add(id(layer))
        if isinstance(layer, keras.layers.Conv2DTranspose):
            h, w, c_in = layer.input.shape[1:]
            total += 2 * h * w * c_in * int(np.prod(layer.kernel_size)) * layer.filters
        elif isinstance(layer, keras.layers.Conv2D):
            h, w, c_out = layer.output.shape[1:]
            total += 2 * h * w * c_out * int(np.prod(layer.kernel_size)) * layer.input.shape[-1]
        elif isinstance(layer, keras.layers.Dense):
            total += 2 * layer.input.shape[-1] * layer.units
    return total


def plain_keras_model(recipe, run):
    """`recipe_model` with its BatchNorm layers computed by Keras's own code (not
    `zoo.blocks.fuse_batchnorm`'s): the plain-Keras reference of the same architecture and weights."""
    return zoo.blocks.fuse_batchnorm(recipe_model(recipe, run), fused=False)


def shown_values(config, fields):
    """`name=value` for each field; a field not given shows the model's own value, from the manifest."""
    manifest = json.loads((Path(config.model_dir) / "manifest.json").read_text())
    model_config = manifest.get("model_config", {})
    values = {k: getattr(config, k) if getattr(config, k) is not None else model_config.get(k) for k in fields}
    return ", ".join(f"{k}={v}" for k, v in values.items())


def benchmark_main(
    recipe_module,
    family,
    shown_fields,
    throughput=None,
    extra=None,
    *,
    reference=True,
    speed_help="Also compare training-step throughput with plain Keras.",
    epochs=None,
):
    """Define the recipe's flags and the benchmark's own, then run the protocol and print its figures.

    Args:
      recipe_module: the recipe (`recipes.autoencoder`, ...): its `Config` and `run`.
      family: names the default --model_dir, /tmp/zoo-benchmarks/<family>.
      shown_fields: config fields printed beside the model's name above the table.
      throughput: config -> the line(s) of the speed comparison; None: no --speed flag.
      extra: metrics -> None, prints the family's own figures after the table.
      reference: the default of --reference.
      epochs: the default of --epochs, when the protocol's differs from the recipe's.
    """
    define_flags(recipe_module.Config)
    FLAGS.set_default("dataset", "mnist")
    FLAGS["dataset"].help = (
        "TFDS dataset holding the protocol's images; when not given, mnist_idx if "
        "--manual_dir is given (offline, local IDX files), else mnist."
    )
    if epochs is not None:
        FLAGS.set_default("epochs", epochs)
    FLAGS.set_default("reference", reference)
    if throughput is not None:
        flags.DEFINE_boolean("speed", True, speed_help)
        flags.DEFINE_boolean("speed_only", False, "Only the throughput comparison.")
    own = [f.name for f in dataclasses.fields(recipe_module.Config)] + ["reference", "speed", "speed_only"]
    for name in own:  # so --help lists them as this program's own flags
        if name in FLAGS:
            FLAGS.register_key_flag_for_module(sys.argv[0], FLAGS[name])

    def main(argv):
        quiet_logging()
        config = protocol_config(recipe_module.Config, family)
        if throughput is not None and FLAGS.speed_only:
            print(throughput(config))
            return
        start = time.time()
        metrics = recipe_module.run(config)
        print(f"\n{config.model} ({shown_values(config, shown_fields)}; precision {metrics['precision']})")
        print_table(metrics["transfer"])
        if extra is not None:
            extra(metrics)
        if throughput is not None and FLAGS.speed:
            print(throughput(config))
        print(
            f"recipe wall time {metrics['wall_seconds']:.0f} s; with the speed comparison {time.time() - start:.0f} s"
        )

    app.run(main)
