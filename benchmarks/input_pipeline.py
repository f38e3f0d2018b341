"""The recipes' input pipeline: the example function mapped per example (before) or per batch (now).

    python benchmarks/input_pipeline.py --manual_dir=/path/to/mnist-10k

`Data.pretrain_dataset` caches the split, shuffles examples, batches, then maps the recipe's example
function over each batch. Mapping it over each example before batching (the former order, kept
here as `per_example_pipeline`) costs one function call per image, on the same two cores that
train. For the CNN classifier and the autoencoder recipes: the training step's images/s through
each pipeline (recipe defaults, the precision `auto` picks, epochs in turns, median after the first),
and the pipeline alone.
"""

import time

import tensorflow as tf
import tensorflow_datasets as tfds
from absl import app, flags

from protocol import SPLITS, interleaved_rates, protocol_dataset, quiet_logging, recipe_model
from recipes import autoencoder, cnn_classifier, flow
from recipes.data import AUTOTUNE, Data, _input_and_label, finish_pipeline

flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("recipes", ["cnn_classifier", "autoencoder"], "Which recipes' pipelines to time.")
flags.DEFINE_integer("repeats", 5, "Epochs per pipeline, in turns; the first (compiling) one is not counted.")
FLAGS = flags.FLAGS


def per_example_pipeline(data, transform, batch_size, seed):
    """`Data.pretrain_dataset` as it was: the transform mapped over single examples, then batched."""
    ds = data.examples(
        data.pretrain_split,
        shuffle_files=not data.builder.info.disable_shuffling,
        read_config=tfds.ReadConfig(shuffle_seed=seed),
    )
    ds = data._relabel(ds.map(_input_and_label(data.feature), num_parallel_calls=AUTOTUNE)).cache()
    ds = ds.shuffle(min(data.num_pretrain, 20_000), seed=seed, reshuffle_each_iteration=True)
    ds = ds.map(transform, num_parallel_calls=AUTOTUNE)
    return finish_pipeline(ds.batch(batch_size).prefetch(AUTOTUNE))


def pipeline_rate(pipeline, images):
    for _ in pipeline:  # fills the cache
        pass
    start = time.perf_counter()
    for _ in pipeline:
        pass
    return images / (time.perf_counter() - start)


def main(argv):
    quiet_logging()
    dataset = dict(dataset=protocol_dataset("", FLAGS.manual_dir), manual_dir=FLAGS.manual_dir, **SPLITS)
    configs = {
        "cnn_classifier": cnn_classifier.Config(**dataset, model_dir="/tmp/unused"),
        "autoencoder": autoencoder.Config(**dataset, model_dir="/tmp/unused"),
    }
    modules = {"cnn_classifier": cnn_classifier, "autoencoder": autoencoder}
    pipelines = {"per example": per_example_pipeline, "per batch": Data.pretrain_dataset}
    print("| recipe (training images) | precision | map | training step, images/s | pipeline alone, images/s |")
    print("| --- | --- | --- | ---: | ---: |")
    for family in FLAGS.recipes:
        config = configs[family]
        recipe = modules[family].RECIPE
        run = flow.prepare(recipe, config)
        fits, alone = {}, {}
        with flow.precision(run.precision):
            for name, build in pipelines.items():
                model = recipe_model(recipe, run)
                pipeline = build(run.source, recipe.pretrain_example(run), config.batch_size, config.seed)
                alone[name] = pipeline_rate(pipeline, run.source.num_pretrain)
                fits[name] = lambda model=model, pipeline=pipeline: model.fit(pipeline, epochs=1, verbose=0)
            rates = interleaved_rates(fits, run.source.num_pretrain, FLAGS.repeats)
        for name in pipelines:
            print(
                f"| {family} ({run.source.num_pretrain:,}) | {run.precision} | {name} | {rates[name]:,.0f} "
                f"| {alone[name]:,.0f} |",
                flush=True,
            )


if __name__ == "__main__":
    tf.get_logger().setLevel("ERROR")
    app.run(main)
