"""Training-step throughput of every family in float32 and mixed bfloat16, side by side.

    python benchmarks/precision.py --manual_dir=/path/to/mnist-10k      # offline, local IDX files
    python benchmarks/precision.py --families=simclr --precisions=float32,mixed_bfloat16,mixed_float16
    python benchmarks/precision.py --families=cnn_classifier --model=small_resnet --dataset=cifar10_local \
        --manual_dir=/path/to/cifar10-jpeg --train_split='train[:10000]'    # a colour trunk on CIFAR-10

For each family, the recipe's own pretraining model (its defaults, built and compiled as the recipe
does, under each precision) trains on the MNIST-10k pool through the recipe's own tf.data
pipeline; one epoch per precision in turns, `--repeats` times; the median images/s after the first
(compiling) epoch. The first lines are the machine's matmul peaks (4096x4096, best of 5) in each
precision, and whether `--precision=auto` would pick bfloat16 here.

The first column is each family's plain-Keras float32 reference: the same model and weights, built
and compiled the same way in float32, its BatchNorm layers computed by Keras's own code (not the
zoo's fused kernel, `zoo.blocks.fuse_batchnorm`), `fit` on NumPy arrays of the same examples (one
pass of the recipe's example function; Keras feeds them through its own autotuned tf.data
pipeline), at the recipe's batch size; it runs in the same turns. The last column is the
recipe's last precision against it.

Each cell also gives the share of the matmul peak in its precision (float32's for the float32 and
float16 columns) that the step reaches: images/s x the step's FLOPs per image, counted from the
conv and dense layers (`protocol.forward_flops`) and the family's training step: forward and
backward (3x forward) of the model; SimCLR does it for two views of each image; a DCGAN step
runs the generator forward and the discriminator forward and backward on the real and the fake
batch (G + 6D), then the generator step (3G + 2D: no weight gradients for the discriminator).
"""

import time

import keras
import numpy as np
import tensorflow as tf
from absl import app, flags

from protocol import (
    SPLITS,
    forward_flops,
    interleaved_rates,
    plain_keras_model,
    protocol_dataset,
    quiet_logging,
    recipe_model,
)
from recipes import autoencoder, cnn_classifier, dcgan, flow, simclr, vae

FAMILIES = {"autoencoder": autoencoder, "cnn_classifier": cnn_classifier, "vae": vae, "dcgan": dcgan, "simclr": simclr}

flags.DEFINE_string("manual_dir", "", "Folder with MNIST's test-set IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_string("dataset", "", "Another TFDS image dataset (e.g. cifar10_local, reading --manual_dir).")
flags.DEFINE_string("data_dir", "", "TFDS data directory (default: TFDS's own).")
flags.DEFINE_string("train_split", SPLITS["train_split"], "The split whose images train (the protocol's pool).")
flags.DEFINE_string("model", "", "Another registered model of the family (default: the recipe's own).")
flags.DEFINE_list("families", list(FAMILIES), "Families to measure.")
flags.DEFINE_list("precisions", ["float32", "mixed_bfloat16"], "Precisions to compare, side by side.")
flags.DEFINE_bool("plain_keras", True, "Also time the plain-Keras float32 reference (fit on NumPy arrays).")
flags.DEFINE_integer("repeats", 4, "Epochs per precision, in turns; the first (compiling) one is not counted.")
FLAGS = flags.FLAGS
PLAIN = "plain Keras float32"


def matmul_gflops(dtype, n=4096, tries=5):
    a = tf.random.normal((n, n), dtype=tf.float32)
    a = tf.cast(a, dtype)
    matmul = tf.function(lambda x: tf.reduce_sum(tf.cast(tf.matmul(x, x), tf.float32)))
    matmul(a)
    best = min(_timed(lambda: matmul(a).numpy()) for _ in range(tries))
    return 2 * n**3 / best / 1e9


def _timed(fn):
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def training_flops(family, model):
    """FLOPs of one training step per image (see the module docstring)."""
    if family == "dcgan":
        return 4 * forward_flops(model.generator) + 8 * forward_flops(model.discriminator)
    return (2 if family == "simclr" else 1) * 3 * forward_flops(model)


def family_rates(module):
    recipe = module.RECIPE
    base = module.Config(
        dataset=protocol_dataset(FLAGS.dataset, FLAGS.manual_dir),
        manual_dir=FLAGS.manual_dir,
        data_dir=FLAGS.data_dir,
        **{**SPLITS, "train_split": FLAGS.train_split},
        model_dir="/tmp/unused",
    )
    if FLAGS.model:
        base = base.replace(model=FLAGS.model)
    fits, images = {}, 0
    if FLAGS.plain_keras:
        run = flow.prepare(recipe, base.replace(precision="float32"))
        with flow.precision("float32"):
            model = plain_keras_model(recipe, run)
            source = run.source
            examples = source.pretrain_dataset(recipe.pretrain_example(run), source.num_pretrain, base.seed)
            arrays = next(iter(examples))
        arrays = tuple(np.asarray(a) for a in (arrays if isinstance(arrays, tuple) else (arrays,)))
        fits[PLAIN] = lambda model=model, arrays=arrays: model.fit(
            *arrays, batch_size=base.batch_size, epochs=1, verbose=0
        )
    for precision in FLAGS.precisions:
        run = flow.prepare(recipe, base.replace(precision=precision))
        with flow.precision(run.precision):
            model = recipe_model(recipe, run)
            pipeline = run.source.pretrain_dataset(recipe.pretrain_example(run), base.batch_size, base.seed)
        fits[precision] = lambda model=model, pipeline=pipeline: model.fit(pipeline, epochs=1, verbose=0)
        images = run.source.num_train
    return interleaved_rates(fits, images, FLAGS.repeats), base.batch_size, model


def main(argv):
    quiet_logging()
    keras.utils.set_random_seed(0)
    peaks = {"float32": matmul_gflops(tf.float32), "bfloat16": matmul_gflops(tf.bfloat16)}
    print(
        f"matmul peak: float32 {peaks['float32']:.0f} GFLOP/s, bfloat16 {peaks['bfloat16']:.0f} GFLOP/s "
        f"(x{peaks['bfloat16'] / peaks['float32']:.2f}); --precision=auto picks {flow.resolve_precision('auto')}"
    )
    columns = ([PLAIN] if FLAGS.plain_keras else []) + FLAGS.precisions
    last, first = FLAGS.precisions[-1], FLAGS.precisions[0]
    versus = f" | {last} / plain" if FLAGS.plain_keras else ""
    print(f"\n| family (model) | batch | MFLOP/image | {' | '.join(columns)} | {last} / {first}{versus} |")
    print("| --- | ---: | ---: |" + " ---: |" * len(columns) + " ---: |" * (2 if FLAGS.plain_keras else 1))
    for family in FLAGS.families:
        rates, batch, model = family_rates(FAMILIES[family])
        flops = training_flops(family, model)
        peak = {p: peaks["bfloat16" if "bfloat16" in p else "float32"] * 1e9 for p in columns}
        cells = " | ".join(f"{rates[p]:.0f} img/s ({rates[p] * flops / peak[p]:.1%})" for p in columns)
        ratios = f"x{rates[last] / rates[first]:.2f}" + (
            f" | x{rates[last] / rates[PLAIN]:.2f}" if FLAGS.plain_keras else ""
        )
        name = FLAGS.model or FAMILIES[family].Config().model
        print(f"| {family} ({name}) | {batch} | {flops / 1e6:.0f} | {cells} | {ratios} |", flush=True)
    print(
        f"\nmedian of {FLAGS.repeats - 1} epochs per column, epochs interleaved; in brackets, the share of "
        "the matmul peak in the column's precision"
    )


if __name__ == "__main__":
    app.run(main)
