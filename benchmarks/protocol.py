"""What the family benchmarks share: the MNIST-10k protocol (../shared/PROTOCOL.md),
the reference CNN, side-by-side timing and the Markdown transfer table."""

import os
import sys
import time

import keras
import numpy as np
from absl import flags

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import zoo  # noqa: E402
from recipes import flow  # noqa: E402
from recipes.config import from_flags  # noqa: E402
from recipes.data import load_data  # noqa: E402
from recipes.transfer import Downstream  # noqa: E402

MNIST_10K = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "mnist-10k")
PROTOCOL = dict(
    dataset="mnist_idx", manual_dir=MNIST_10K, train_split="test[:8000]", eval_split="test[8000:]",
    label_budgets=(100, 1000), transfer_repeats=3, seed=0, overwrite=True,
)


def protocol_config(Config, family):
    """The recipe's config from the flags, the protocol filling every flag not given."""
    config = from_flags(Config)
    for name, value in PROTOCOL.items():
        if not flags.FLAGS[name].present:
            config = config.replace(**{name: value})
    if not flags.FLAGS["model_dir"].present:
        config = config.replace(model_dir=f"/tmp/zoo-benchmarks/{family}")
    return config


def reference_cnn(config):
    """The common reference: the zoo's small CNN from scratch on the same draws, head and steps."""
    data = load_data(config)
    seeds = [config.seed + i for i in range(config.transfer_repeats)]
    subsets = data.labelled_subsets(config.label_budgets, seeds)
    downstream = Downstream(config, data, flow.make_strategy(config.strategy))
    build = lambda: zoo.build_model("cnn_classifier", image_shape=data.image_shape,  # noqa: E731
                                    num_classes=data.num_classes).get_layer("encoder")
    return {n: [downstream.scratch(*subsets[(n, s)], s, build) for s in seeds] for n in config.label_budgets}


def print_table(metrics, reference):
    """The transfer table as Markdown, mean ± std over seeds, in %."""
    print("| labels | frozen | finetune | scratch (same arch) | small CNN from scratch |")
    print("| ---: | ---: | ---: | ---: | ---: |")
    for row in metrics["transfer"]:
        std = row.get("std", {})
        cells = [f"{100 * row[k]:.1f} ± {100 * std.get(k, 0):.1f}" for k in ("frozen", "finetune", "scratch")]
        ref = np.array(reference.get(row["labels"], [np.nan]))
        cells.append(f"{100 * ref.mean():.1f} ± {100 * ref.std():.1f}" if reference else "not run")
        print(f"| {row['labels']} | " + " | ".join(cells) + " |")


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


def recipe_model(recipe, config, data):
    """The recipe's pretraining model for `config`, built under the seed and compiled as the recipe compiles it."""
    model_config = recipe.model_config(config, data.image_shape, data.num_classes)

    def build():
        model = zoo.build_model(config.model, **model_config)
        recipe.compile(model, config)
        return model

    return seeded_build(build, config.seed)
