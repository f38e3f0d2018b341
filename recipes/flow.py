"""The one flow every recipe follows (DESIGN.md):

    data -> build (in the strategy's scope) -> pretrain with fit -> export
         -> reload the encoder, frozen -> transfer table -> metrics.json + figures

A family subclasses `Recipe` and overrides what is its own (how to compile,
what a training example is, which figures and endpoints it adds); everything
else lives here once.
"""

import contextlib
import csv
import dataclasses
import functools
import os
import platform
import sys
import time

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import figures
from recipes.artifact import Stage, check_model_dir, export_saved_model, image_spec, write_json
from recipes.config import RecipeConfig, as_dict, define_flags, from_flags, to_flagfile
from recipes.data import load_data
from recipes.transfer import Downstream, recalibrate_batchnorm, summarise, verdict
from zoo.errors import ZooError


HISTORY = "logs/history.csv"
RECALIBRATION_IMAGES = 2048


def _unchanged(image, label):
    return image, label


def say(message):
    print(message, flush=True)


class Recipe:
    """What a family adds to the shared flow. Subclasses set the class fields and `compile`."""

    family: str = ""
    module: str = ""  # for `python -m <module>` in flags.txt
    Config: type = RecipeConfig
    features: str = ""  # what the exported encoder's output is, for manifest.json

    def model_config(self, config, image_shape, num_classes):
        """The builder's full keyword arguments: registry defaults, then the config fields that
        name a hyperparameter and differ from the field's default (so `--model=*_tiny` builds
        tiny unless a size is given)."""
        entry = zoo.get_entry(config.model)
        defaults = {f.name: f.default for f in dataclasses.fields(config)}
        params = entry.config()
        overrides = {k: getattr(config, k) for k in params
                     if k in defaults and (getattr(config, k) != defaults[k] or k not in entry.defaults)}
        if "num_classes" in params:
            overrides["num_classes"] = num_classes
        return entry.config(image_shape=tuple(image_shape), **overrides)

    def datasets(self, config, data):
        """(source, target): what to pretrain on and what to transfer to; by default the same."""
        return data, data

    def compile(self, model, config):
        raise NotImplementedError(f"{type(self).__name__} must say how its model compiles")

    def pretrain_example(self, config):
        """(image uint8, label) -> (x, y) for fit; by default supervised."""
        return lambda image, label: (image, label)

    def encoder(self, model):
        return model.get_layer("encoder")

    def recalibrate(self, model, images):
        """Re-estimate BatchNorm statistics after pretraining (see `recalibrate_batchnorm`)."""
        recalibrate_batchnorm(model, images)

    def evaluate(self, model, data, config):
        """The family's own figures on the eval split; by default `model.evaluate`."""
        ds = data.eval_dataset(self.pretrain_example(config), config.batch_size)
        return {f"eval_{k}": float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}

    def endpoints(self, model, data):
        """SavedModel endpoints of `model/`: {name: (fn, input_signature)}."""
        return {"serve": (lambda images: model(images, training=False), [image_spec(data.image_shape)])}

    def figures(self, model, data, config, fig_dir):
        """Family figures beyond the training and transfer curves."""

    def callbacks(self, model, data, config, stage):
        """Extra Keras callbacks for pretraining (per-epoch figures, scores, probes); `stage / "logs"`
        is the TensorBoard directory."""
        return []


@functools.cache
def make_strategy(name):
    """The tf.distribute strategy a --strategy value names, made once per process: two mirrored
    strategies in one process would share collective-op keys and mix up each other's all-reduces."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def is_chief(strategy):
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    return resolver.task_type == "chief" or (resolver.task_type == "worker" and resolver.task_id == 0
                                             and "chief" not in resolver.cluster_spec().jobs)


@contextlib.contextmanager
def precision(mixed):
    """Build and train under mixed_float16 when asked; restore the global policy after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16" if mixed else "float32")
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Throughput(keras.callbacks.Callback):
    """Images per second of the training step: first to last batch of each epoch
    (validation excluded), median over the epochs after the first (which compiles)."""

    def __init__(self, images_per_epoch):
        super().__init__()
        self.images_per_epoch, self.seconds = images_per_epoch, []

    def on_epoch_begin(self, epoch, logs=None):
        self._first = self._last = None

    def on_train_batch_begin(self, batch, logs=None):
        if self._first is None:
            self._first = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self._last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        if self._first is not None:
            self.seconds.append(self._last - self._first)

    def images_per_second(self):
        timed = self.seconds[1:] or self.seconds
        return round(self.images_per_epoch / float(np.median(timed)), 1) if timed else None


def _history(path):
    """Per-epoch rows from the CSV log, the last row of an epoch winning (after a resume)."""
    if not os.path.exists(path):
        return []
    with open(path) as f:
        rows = {int(r["epoch"]): {k: float(v) for k, v in r.items()} for r in csv.DictReader(f)}
    return [rows[k] | {"epoch": k} for k in sorted(rows)]


def versions():
    import tensorflow_datasets as tfds

    return {
        "zoo": zoo.__version__, "tensorflow": tf.__version__, "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__, "numpy": np.__version__, "python": platform.python_version(),
    }


def run(recipe, config):
    """Pretrain, export, reload, transfer and report; returns the metrics dict."""
    start = time.time()
    config.validate()
    check_model_dir(config.model_dir, config.overwrite)
    strategy = make_strategy(config.strategy)
    say(f"[{recipe.family}] dataset {config.dataset} ({config.train_split} / {config.eval_split})")
    source, target = recipe.datasets(config, load_data(config))
    for n in config.label_budgets:
        if n > target.num_train:
            raise ZooError(f"--label_budgets: {n} is more than the {target.num_train} examples of the "
                           f"target task in --train_split={config.train_split}; use a smaller budget")
    seeds = [config.seed + i for i in range(config.transfer_repeats)]
    subsets = target.labelled_subsets(config.label_budgets, seeds)  # checks every draw before any training
    model_config = recipe.model_config(config, source.image_shape, source.num_classes)

    stage = Stage(config.model_dir, config.overwrite, to_flagfile(config, recipe.module), is_chief(strategy), say)
    for sub in ("figures", "logs"):
        os.makedirs(stage / sub, exist_ok=True)
    keras.utils.set_random_seed(config.seed)
    with precision(config.mixed_precision):
        model, pretrain_metrics = pretrain(recipe, config, source, model_config, strategy, stage)
        export(recipe, config, source, target, model, model_config, stage)
        table = transfer(recipe, config, target, subsets, model_config, strategy, stage)

    metrics = {"pretrain": pretrain_metrics, "transfer": table, "wall_seconds": round(time.time() - start, 1)}
    write_json(stage / "metrics.json", metrics)
    stage.publish()
    for row in table:
        say(f"[{recipe.family}] {verdict(row)}")
    say(f"[{recipe.family}] wrote {config.model_dir} in {metrics['wall_seconds']:.0f} s")
    return metrics


def pretrain(recipe, config, data, model_config, strategy, stage):
    """Build in the strategy's scope and fit, resumable; returns the model and its eval metrics."""
    with strategy.scope():
        model = zoo.build_model(config.model, **model_config)
        recipe.compile(model, config)
    say(f"[{recipe.family}] pretraining {config.model} ({model.count_params():,} parameters) "
        f"for {config.epochs} epochs on {data.num_train} images")
    example = recipe.pretrain_example(config)
    throughput = Throughput(data.num_train)
    model.fit(
        data.pretrain_dataset(example, config.batch_size, config.seed,
                              drop_remainder=strategy.num_replicas_in_sync > 1),
        validation_data=data.eval_dataset(example, config.batch_size),
        epochs=config.epochs,
        callbacks=[
            keras.callbacks.BackupAndRestore(stage.backup_dir),
            keras.callbacks.TensorBoard(stage / "logs"),
            keras.callbacks.CSVLogger(stage / HISTORY, append=True),
            throughput,
            *recipe.callbacks(model, data, config, stage),
        ],
        shuffle=False,  # the pipeline shuffles
        verbose=1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2,  # bars only where they draw
    )
    # With few steps per epoch, BatchNorm's moving averages lag far behind the weights
    # (uci_digits: 90 steps left a classifier at chance); set them from clean train images.
    images, _ = next(iter(data.pretrain_dataset(_unchanged, RECALIBRATION_IMAGES, config.seed)))
    with strategy.scope():
        recipe.recalibrate(model, images)
    metrics = recipe.evaluate(model, data, config)
    metrics["images_per_second"] = throughput.images_per_second()
    history = _history(stage / HISTORY)
    if history:
        figures.training_curves(history, stage / "figures/curves.png", f"{config.model} on {config.dataset}")
    recipe.figures(model, data, config, stage / "figures")
    return model, metrics


def export(recipe, config, data, target, model, model_config, stage):
    """encoder/, encoder.keras, model/, model.keras, manifest.json and flags.txt."""
    say(f"[{recipe.family}] exporting to {config.model_dir}")
    encoder = recipe.encoder(model)
    export_saved_model(stage / "encoder", encoder, {
        "serve": (lambda images: encoder(images, training=False), [image_spec(data.image_shape)])
    })
    encoder.save(stage / "encoder.keras")
    export_saved_model(stage / "model", model, recipe.endpoints(model, data))
    model.save(stage / "model.keras")
    write_json(stage / "manifest.json", {
        "family": recipe.family,
        "model": config.model,
        "model_config": model_config,
        "dataset": data.describe(),
        "target": target.describe(),
        "input": {"shape": list(data.image_shape), "dtype": "uint8", "range": [0, 255]},
        "encoder": {"output_dim": int(encoder.output_shape[-1]), "endpoint": "serve", "features": recipe.features},
        "flags": as_dict(config),
        "seed": config.seed,
        "versions": versions(),
    })
    with open(stage / "flags.txt", "w") as f:
        f.write(to_flagfile(config, recipe.module))


def transfer(recipe, config, data, subsets, model_config, strategy, stage):
    """The transfer table, from the encoder reloaded off the staged artifact."""
    budgets, seeds = config.label_budgets, sorted({seed for _, seed in subsets})
    say(f"[{recipe.family}] transfer: {len(budgets)} budgets x {len(seeds)} seeds x (frozen, finetune, scratch)")
    downstream = Downstream(config, data, strategy)
    table = []
    for n in budgets:
        runs = []
        for seed in seeds:
            images, labels = subsets[(n, seed)]
            cell = downstream.cell(
                images, labels, seed,
                load_pretrained=lambda: zoo.load_encoder(stage.path, trainable=False),
                build_scratch=lambda: recipe.encoder(zoo.build_model(config.model, **model_config)),
            )
            say(f"  N={n} seed={seed}: " + ", ".join(f"{k} {v:.1%}" for k, v in cell.items()))
            runs.append({"seed": seed, **cell})
        table.append(summarise(n, runs))
    figures.transfer_plot(table, stage / "figures/transfer.png", f"{config.model} -> {data.name}")
    return table


def cli(recipe):
    """`python -m recipes.<family>`: flags -> config -> run; bad input ends in one line."""
    from absl import app, flags, logging

    define_flags(recipe.Config)
    for f in dataclasses.fields(recipe.Config):  # so --help lists them as this program's own flags
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[f.name])

    def main(argv):
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens at INFO
        if len(argv) > 1:
            sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; flags look like --name=value")
        try:
            run(recipe, from_flags(recipe.Config))
        except ZooError as e:
            sys.exit(f"error: {e}")
        except KeyboardInterrupt:
            sys.exit("interrupted: rerun the same command to resume from the last finished epoch")

    app.run(main)
