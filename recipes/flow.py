"""The one flow every recipe follows (docs/artifact.md):

    data -> build (in the strategy's scope) -> pretrain with fit -> export
         -> reload the encoder, frozen -> transfer table -> metrics.json + figures

A family subclasses `Recipe` and overrides what is its own (how to compile,
what a training example is, which figures and endpoints it adds); everything
else lives here once. Every hook receives the same `Run`: the config, the
source and target data, the model config, the strategy, the precision and the
stage the artifact is written to. Recipe objects hold no state of a run.
"""

import contextlib
import csv
import dataclasses
import functools
import hashlib
import os
import platform
import sys
import time
from typing import Any

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import figures
from recipes.artifact import (
    Backup,
    Stage,
    check_model_dir,
    check_writable_dir,
    export_saved_model,
    read_json,
    write_json,
)
from recipes.config import ALL, RecipeConfig, as_dict, define_flags, from_flags, to_flagfile
from recipes.data import Data, load_data
from recipes.downstream import Downstream, recalibrate_batchnorm, summarise, verdict
from recipes.downstream import features as downstream_features
from zoo.errors import ZooError
from zoo.heads import adaptation

HISTORY = "logs/history.csv"
RECALIBRATION_IMAGES = 2048


def _unchanged(image, label):
    return image, label


def say(message):
    print(message, flush=True)


@dataclasses.dataclass
class Run:
    """One run of a recipe: what every hook of `Recipe` receives.

    Attributes:
      config: the recipe's config, validated.
      source: the data pretraining reads.
      target: the data the transfer table draws its labels from and evaluates on.
      strategy: the tf.distribute strategy models are built under.
      precision: the dtype policy in force ("float32", "mixed_bfloat16" or "mixed_float16").
      model_config: the builder's full keyword arguments.
      stage: where the artifact is written (`run.stage / "figures"`); None outside `flow.run`.
      state: what a family carries from one hook to the next within this run (the DCGAN's scorer).
    """

    config: RecipeConfig
    source: Data
    target: Data
    strategy: Any
    precision: str = "float32"
    model_config: dict = dataclasses.field(default_factory=dict)
    stage: Stage | None = None
    state: dict = dataclasses.field(default_factory=dict)

    @property
    def fig_dir(self):
        return self.stage / "figures"


class Recipe:
    """What a family adds to the shared flow.

    A subclass sets `family`, `module`, `Config` and `features`, and overrides `compile`;
    this is checked when the class is defined. `smoke` holds the family's own settings
    for a run that only has to finish (tests and notebooks), beside `smoke_config`'s shared ones.
    """

    family: str = ""
    module: str = ""  # for `python -m <module>` in flags.txt
    Config: type = RecipeConfig
    features: str = ""  # what the exported encoder's output is, for manifest.json
    smoke: dict = {}

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if cls.__dict__.get("shared"):  # a base for several families (TextRecipe), not a recipe itself
            return
        missing = [name for name in ("family", "module", "features") if not getattr(cls, name)]
        if cls.Config is RecipeConfig or not issubclass(cls.Config, RecipeConfig):
            missing.append("Config (a RecipeConfig subclass)")
        elif "model" not in {f.name for f in dataclasses.fields(cls.Config)}:
            missing.append("Config.model")
        if cls.compile is Recipe.compile:
            missing.append("compile")
        if missing:
            raise TypeError(f"recipe class {cls.__name__} must define {', '.join(missing)}")

    def smoke_config(self, **changes):
        """The smallest config that runs every step: the family's tiny model, one epoch, two steps."""
        tiny = [m for m in zoo.list_models(family=self.family, include_tiny=True) if zoo.get_entry(m).tiny]
        settings = dict(
            model=tiny[0],
            epochs=1,
            batch_size=64,
            label_budgets=(10, 20),
            transfer_steps=2,
            transfer_batch_size=8,
            precision="float32",
            reference_model="cnn_classifier_tiny",
            **self.smoke,
        )
        return self.Config(**{**settings, **changes})

    def model_config(self, run):
        """The builder's full keyword arguments: the registered model's, then every hyperparameter
        the config gives (not None), so `--model=*_tiny` builds tiny unless a size is given."""
        entry = zoo.get_entry(run.config.model)
        params = entry.config()
        given = {
            k: getattr(run.config, k) for k in params if k != "image_shape" and getattr(run.config, k, None) is not None
        }
        if "num_classes" in params:
            given["num_classes"] = run.source.num_classes
        if "image_shape" in params:
            given["image_shape"] = tuple(run.source.image_shape)
        return entry.config(**given)

    def datasets(self, run):
        """(source, target): what to pretrain on and what to transfer to; by default as loaded."""
        return run.source, run.target

    def compile(self, run, model):
        raise NotImplementedError

    def pretrain_example(self, run):
        """(image uint8, label) -> (x, y) for fit; by default supervised."""
        return _unchanged

    def encoder(self, model):
        return model.get_layer("encoder")

    def adapt(self, run, model):
        """Fit what the model learns from the data before training: a text model's vocabulary, from
        the texts pretraining reads (their labels never read)."""
        if hasattr(model, "adapt"):
            model.adapt(run.source.pretrain_inputs())

    def throughput(self, run, model, per_second):
        """The pretraining step's speed for metrics.json: {"images_per_second": ...} or texts."""
        return {f"{run.source.kind}_per_second": per_second}

    def artifacts(self, run, model):
        """Files of the family's own, written into `run.stage` beside the standard artifact."""

    def recalibrate(self, run, model, images):
        """Re-estimate BatchNorm statistics after pretraining (see `recalibrate_batchnorm`)."""
        recalibrate_batchnorm(model, images)

    def evaluate(self, run, model):
        """The family's own figures on the eval split; by default `model.evaluate`."""
        ds = run.source.eval_dataset(self.pretrain_example(run), run.config.batch_size)
        return {f"eval_{k}": float(v) for k, v in model.evaluate(ds, verbose=0, return_dict=True).items()}

    def endpoints(self, run, model):
        """SavedModel endpoints of `model/`: {name: (fn, input_signature)}."""
        return {"serve": (lambda inputs: model(inputs, training=False), [run.source.input_spec()])}

    def figures(self, run, model):
        """Family figures beyond the training and transfer curves, into `run.fig_dir`."""

    def callbacks(self, run, model):
        """Extra Keras callbacks for pretraining (per-epoch figures, scores, probes); `run.stage / "logs"`
        is the TensorBoard directory."""
        return []


def _text_only(text, label):
    return text


class TextRecipe(Recipe):
    """What the text families share: pretraining reads texts only (labels never read), their model
    fits its vocabulary first (`adapt`), and the speed is also given in tokens per second."""

    shared = True
    smoke = dict(dataset="text_folder")  # the tests give --manual_dir: texts they write

    def compile(self, run, model):
        # The loss is the model's own (see its train_step).
        model.compile(optimizer=keras.optimizers.Adam(run.config.learning_rate), jit_compile=run.config.jit_compile)

    def pretrain_example(self, run):
        return _text_only

    def throughput(self, run, model, per_second):
        """Texts per second, and tokens (words the model reads, padding left out) per second."""
        ids = np.asarray(zoo.text.token_ids(self.encoder(model), run.source.eval_inputs[:1000]))
        tokens = float(np.mean(np.sum(ids != zoo.text.PAD, axis=1))) if len(ids) else 0.0
        return {
            "texts_per_second": per_second,
            "tokens_per_text": round(tokens, 1),
            "tokens_per_second": round(per_second * tokens, 1) if per_second else None,
        }

    def figures(self, run, model):
        data = run.source
        features = downstream_features(self.encoder(model), data.eval_inputs)
        figures.feature_scatter(
            features,
            data.eval_labels,
            run.fig_dir + "/features.png",
            f"encoder features of {len(features)} eval texts, by class ({', '.join(data.class_names)})",
            seed=run.config.seed,
        )


@functools.cache
def make_strategy(name):
    """The tf.distribute strategy a --strategy value names, made once per process: two mirrored
    strategies in one process would share collective-op keys and mix up each other's all-reduces."""
    if name == "mirrored":
        gpus = tf.config.list_logical_devices("GPU")
        devices = [d.name for d in (gpus or tf.config.list_logical_devices("CPU"))]
        return tf.distribute.MirroredStrategy(devices=devices)
    if name == "multi_worker":
        from recipes.multi_worker import patch_keras

        patch_keras()
        return tf.distribute.MultiWorkerMirroredStrategy()
    return tf.distribute.get_strategy()


def worker_name(strategy):
    """None for the chief of a run (a run of one process is its own chief), else the task's name
    ("worker-1"): the chief is the task of type "chief", or worker 0 of a cluster without one."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return None
    chief = resolver.task_type == "chief" or (
        resolver.task_type == "worker" and resolver.task_id == 0 and "chief" not in resolver.cluster_spec().jobs
    )
    return None if chief else f"{resolver.task_type}-{resolver.task_id}"


def weights_digest(model):
    """sha256 of every weight's bytes, in order: equal on every worker of a synchronous run."""
    digest = hashlib.sha256()
    for weight in model.weights:
        digest.update(np.ascontiguousarray(keras.ops.convert_to_numpy(weight.value)).tobytes())
    return digest.hexdigest()


def _cpu_flags():
    """The CPU's feature flags (Linux /proc/cpuinfo; empty elsewhere)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return line.split(":", 1)[1].split()
    except OSError:
        pass
    return []


def native_bfloat16():
    """Whether this machine computes bfloat16 natively: every GPU of compute capability 8.0 or
    later, or, without a GPU, a CPU with AMX-BF16 or AVX512-BF16. Emulated bfloat16 is many times
    slower than float32."""
    gpus = tf.config.list_physical_devices("GPU")
    if gpus:
        capabilities = [tf.config.experimental.get_device_details(g).get("compute_capability") or (0, 0) for g in gpus]
        return all(tuple(c) >= (8, 0) for c in capabilities)
    return bool({"amx_bf16", "avx512_bf16"} & set(_cpu_flags()))


def resolve_precision(name):
    """The dtype policy a --precision value names; `auto` decides by `native_bfloat16()`."""
    if name != "auto":
        return name
    return "mixed_bfloat16" if native_bfloat16() else "float32"


@contextlib.contextmanager
def precision(policy):
    """Build and train under the dtype policy `policy`; restore the global policy after."""
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy(policy)
    try:
        yield
    finally:
        keras.config.set_dtype_policy(previous)


class Throughput(keras.callbacks.Callback):
    """Examples (images, texts) per second of the training step: first to last batch of each epoch
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
        "zoo": zoo.__version__,
        "tensorflow": tf.__version__,
        "keras": keras.__version__,
        "tensorflow_datasets": tfds.__version__,
        "numpy": np.__version__,
        "python": platform.python_version(),
    }


def prepare(recipe, config):
    """Validate `config`, load and split its data, resolve strategy, precision and model config:
    the `Run` every hook receives, without a stage (benchmarks and notebooks use it as it is)."""
    config.validate()
    strategy = make_strategy(config.strategy)  # before any TensorFlow op: multi_worker configures the runtime
    reads, reader = zoo.get_entry(config.model).inputs, f"{recipe.family} (--model={config.model})"
    data = load_data(config, reads=reads, reader=reader)
    target = load_data(config.target(), prefix="target_", reads=reads, reader=reader) if config.target() else data
    run = Run(config, data, target, strategy, resolve_precision(config.precision))
    run.source, run.target = recipe.datasets(run)
    run.model_config = recipe.model_config(run)
    return run


def run(recipe, config):
    """Pretrain, export, reload, transfer and report; returns the metrics dict."""
    start = time.time()
    config.validate()
    check_destinations(config)
    say(f"[{recipe.family}] dataset {config.dataset} ({config.train_split} / {config.eval_split})")
    ctx = prepare(recipe, config)
    subsets = labelled_draws(config, ctx.target, recipe.family)
    adapted = check_adaptation(config, ctx.target, ctx.source.image_shape or (), recipe.family)
    chosen = " (auto)" if config.precision == "auto" else ""
    say(
        f"[{recipe.family}] precision {ctx.precision}{chosen}, strategy {config.strategy} "
        f"({ctx.strategy.num_replicas_in_sync} replica{'s' if ctx.strategy.num_replicas_in_sync > 1 else ''})"
    )

    ctx.stage = open_stage(ctx, recipe.module, "logs")
    keras.utils.set_random_seed(config.seed)
    with precision(ctx.precision):
        model, pretrain_metrics = pretrain(recipe, ctx)
        if config.strategy == "multi_worker":
            say(f"[{recipe.family}] {worker_name(ctx.strategy) or 'chief'}: weights sha256 {weights_digest(model)}")
        export(recipe, ctx, model, adapted)
        tokens = tokenisation(recipe.encoder(model))  # a text encoder's: the scratch column tokenises with it
        started = time.time()
        table, _ = transfer_table(
            ctx,
            subsets,
            title=f"{config.model} -> {ctx.target.name}",
            load_pretrained=lambda: zoo.load_encoder(ctx.stage.path, trainable=False),
            build_scratch=lambda: fresh_encoder(config.model, ctx.model_config, tokens),
        )

    metrics = {"pretrain": pretrain_metrics, "transfer": table, "transfer_seconds": round(time.time() - started, 1)}
    return finish(ctx, recipe.family, metrics, start)


def open_stage(run, module, *subdirs):
    """The run's `Stage` (the chief's locked staging directory, another worker's private one), with
    figures/ and `subdirs` made in it."""
    config = run.config
    stage = Stage(config.model_dir, config.overwrite, to_flagfile(config, module), worker_name(run.strategy), say)
    for sub in ("figures", *subdirs):
        os.makedirs(stage / sub, exist_ok=True)
    return stage


def check_destinations(config):
    """Before any work: --model_dir may be written here, --data_dir can be created."""
    check_model_dir(config.model_dir, config.overwrite)
    check_writable_dir("data_dir", config.data_dir)


def label_budgets(config, data):
    """The label budgets of `config` on `data`'s train split, in increasing order: `all` is the whole
    split, and a budget larger than the split is capped to it; returns (budgets, notes), a note
    saying each budget that changed."""
    budgets, notes = [], []
    for n in config.label_budgets:
        if n == ALL:
            used = data.num_train
        elif n > data.num_train:
            used = data.num_train
            notes.append(
                f"--label_budgets: {n} is more than the {data.num_train} labelled {data.kind} of "
                f"--train_split={data.train_split}; using all {used}"
            )
        else:
            used = n
        if used not in budgets:
            budgets.append(used)
    return sorted(budgets), notes


def labelled_draws(config, data, name=""):
    """{(n, seed): (inputs, labels)} of every budget and seed (`label_budgets`: capped to the train
    split, `all` the whole of it; each cap said in one line), drawn from `data`'s train split before
    any training."""
    if config.augment and data.kind == "texts":
        raise ZooError(
            f"--augment: random translation, rotation and zoom are for images; --dataset={data.name} holds texts"
        )
    budgets, notes = label_budgets(config, data)
    for note in notes:
        say(f"[{name}] {note}" if name else note)
    seeds = [config.seed + i for i in range(config.transfer_repeats)]
    return data.labelled_subsets(budgets, seeds)


def finish(run, name, metrics, start, table="transfer", line=verdict):
    """Add precision and wall time to `metrics`, write metrics.json, publish the staged artifact and
    print `line(row)` for each row of `metrics[table]`; returns the metrics."""
    metrics = {**metrics, "precision": run.precision, "wall_seconds": round(time.time() - start, 1)}
    write_json(run.stage / "metrics.json", metrics)
    run.stage.publish()
    for row in metrics[table]:
        say(f"[{name}] {line(row)}")
    if run.stage.is_chief:
        say(f"[{name}] wrote {run.config.model_dir} in {metrics['wall_seconds']:.0f} s")
    else:
        say(f"[{name}] {worker_name(run.strategy)} done in {metrics['wall_seconds']:.0f} s; the chief publishes")
    return metrics


class Diverged(ZooError):
    """Pretraining's loss became NaN or infinite: the run stops and publishes nothing."""


class StopOnDivergence(keras.callbacks.Callback):
    """Raises `Diverged` at the first logged loss (a value named `*loss`: `loss`, `val_loss`, the DCGAN's
    `d_loss`...) that is NaN or infinite, after any batch or epoch. Keras's `TerminateOnNaN` only ends
    training, and the run would go on to export and transfer a broken encoder."""

    epoch = 0

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        self._check(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._check(logs)

    def _check(self, logs):
        for name, value in (logs or {}).items():
            if name.endswith("loss") and np.size(value) == 1 and not np.isfinite(np.asarray(value, np.float64)):
                raise Diverged(f"in epoch {self.epoch + 1} of {self.params.get('epochs')} ({name} is {float(value)})")


def pretrain(recipe, run):
    """Build in the strategy's scope and fit, resumable; returns the model and its eval metrics.
    A loss that is not finite ends the run with one line, its stage discarded: nothing is published,
    and a rerun with other settings (a lower learning rate) starts afresh."""
    config, data, stage = run.config, run.source, run.stage
    started = time.time()
    with run.strategy.scope():
        model = zoo.build_model(config.model, **run.model_config)
        recipe.compile(run, model)
    recipe.adapt(run, model)
    say(
        f"[{recipe.family}] pretraining {config.model} ({model.count_params():,} parameters) "
        f"for {config.epochs} epochs on {data.num_pretrain} {data.kind}"
    )
    example = recipe.pretrain_example(run)
    throughput = Throughput(data.num_pretrain)
    try:
        model.fit(
            data.pretrain_dataset(
                example, config.batch_size, config.seed, drop_remainder=run.strategy.num_replicas_in_sync > 1
            ),
            validation_data=data.eval_dataset(example, config.batch_size),
            epochs=config.epochs,
            callbacks=[
                StopOnDivergence(),  # first: no other callback sees a diverged epoch
                Backup(stage.backup_dir),  # kept until publishing: an interrupted export resumes after training
                keras.callbacks.TensorBoard(stage / "logs"),
                keras.callbacks.CSVLogger(stage / HISTORY, append=True),
                throughput,
                *recipe.callbacks(run, model),
            ],
            shuffle=False,  # the pipeline shuffles
            verbose=1 if sys.stdout.isatty() or "ipykernel" in sys.modules else 2,  # bars only where they draw
        )
    except Diverged as e:
        stage.discard()
        lower = f"lower --learning_rate (it is {config.learning_rate:g})"
        if run.precision != "float32":
            lower += " or use --precision=float32"
        raise Diverged(
            f"pretraining diverged {e}; {lower} and run again; --model_dir={config.model_dir} was left as it was"
        ) from None
    # A rerun that resumed after the last epoch trained none: the speed is the one measured before.
    measured = os.path.join(stage.backup_dir, "throughput.json")
    per_second = throughput.images_per_second()
    if per_second is None:
        per_second = read_json(measured).get("images_per_second")
    elif os.path.isdir(stage.backup_dir):
        write_json(measured, {"images_per_second": per_second})
    # With few steps per epoch, BatchNorm's moving averages lag far behind the weights
    # (uci_digits: 90 steps left a classifier at chance); set them from clean train images.
    images, _ = next(iter(data.pretrain_dataset(_unchanged, RECALIBRATION_IMAGES, config.seed)))
    with run.strategy.scope():
        recipe.recalibrate(run, model, images)
    metrics = recipe.evaluate(run, model)
    metrics.update(recipe.throughput(run, model, per_second))
    history = _history(stage / HISTORY)
    if history:
        figures.training_curves(history, stage / "figures/curves.png", f"{config.model} on {config.dataset}")
    recipe.figures(run, model)
    metrics["seconds"] = round(time.time() - started, 1)
    return model, metrics


def tokenisation(encoder):
    """What a text encoder's pretraining fitted on unlabelled texts (its vocabulary, and its word
    weights where it has them: `zoo.text.tokenisation`); None for an image encoder."""
    return zoo.text.tokenisation(encoder) if zoo.text.is_text_model(encoder) else None


def fresh_encoder(model, model_config, tokens=None):
    """The encoder of a new build of `model` (random weights): the scratch column. A text encoder
    tokenises with the pretrained encoder's `tokens` (`tokenisation`: its vocabulary and word
    weights), so scratch differs from it by the trained weights alone."""
    encoder = zoo.build_model(model, **model_config).get_layer("encoder")
    if tokens is not None:
        zoo.text.set_tokenisation(encoder, tokens)
    return encoder


def check_adaptation(config, target, encoder_shape, name):
    """How the target's images become the encoder's (said and returned), or None (texts: None);
    --adapt=none refuses an adaptation. That the encoder reads the target's kind of input is
    checked when the data is loaded (`load_data(reads=...)`).

    Args:
      target: the target `Data`.
      encoder_shape: the encoder's input shape: (height, width, channels), or () for texts.
    """
    if target.kind == "texts":
        return None
    target_shape, encoder_shape = target.image_shape, tuple(encoder_shape)
    how = adaptation(target_shape, encoder_shape)
    if how and config.adapt == "none":
        raise ZooError(
            f"--adapt=none: the target's images are {tuple(target_shape)} but the encoder takes "
            f"{tuple(encoder_shape)}; use --adapt=auto to resize and convert them, or another dataset"
        )
    if how:
        say(
            f"[{name}] target images {tuple(target_shape)} are adapted to the encoder's {tuple(encoder_shape)} "
            f"inside the classifier: {how}"
        )
    return how


def export(recipe, run, model, adapted=None):
    """encoder/, encoder.keras, model/, model.keras, manifest.json and flags.txt."""
    config, data, stage = run.config, run.source, run.stage
    say(f"[{recipe.family}] exporting to {config.model_dir}")
    encoder = recipe.encoder(model)
    export_models(stage, model, encoder, data.input_spec(), recipe.endpoints(run, model))
    recipe.artifacts(run, model)
    write_manifest(
        run,
        recipe.family,
        recipe.module,
        data,
        model=config.model,
        model_config=run.model_config,
        target=run.target.describe(),
        adapted=adapted,
        encoder={"output_dim": int(encoder.output_shape[-1]), "endpoint": "serve", "features": recipe.features},
    )


def write_manifest(run, family, module, data, **fields):
    """manifest.json (what every artifact records, around the family's own `fields`) and flags.txt."""
    write_json(
        run.stage / "manifest.json",
        {
            "family": family,
            "format": zoo.loading.ARTIFACT_FORMAT,
            "dataset": data.describe(),
            "input": data.input_manifest(),
            **fields,
            "precision": run.precision,
            "flags": as_dict(run.config),
            "seed": run.config.seed,
            "versions": versions(),
        },
    )
    with open(run.stage / "flags.txt", "w") as f:
        f.write(to_flagfile(run.config, module))


def export_models(stage, model, encoder, input_spec, endpoints):
    """encoder/ (endpoint serve: inputs of `input_spec` in, features out: uint8 images, or for a text
    encoder strings, its vocabulary inside), encoder.keras, model/ (`endpoints`) and model.keras into `stage`."""
    export_saved_model(
        stage / "encoder",
        encoder,
        {"serve": (lambda inputs: encoder(inputs, training=False), [input_spec])},
    )
    encoder.save(stage / "encoder.keras")
    export_saved_model(stage / "model", model, endpoints)
    model.save(stage / "model.keras")


def transfer_table(run, subsets, load_pretrained, build_scratch, title):
    """The transfer table on `run.target` and the fine-tuned classifier of the largest budget's first
    seed; writes `figures/transfer.png`."""
    config = run.config
    budgets, seeds = sorted({n for n, _ in subsets}), sorted({seed for _, seed in subsets})
    kinds = "frozen, finetune, knn, scratch" + (", reference" if config.reference else "")
    say(f"  transfer: {len(budgets)} budgets x {len(seeds)} seeds x ({kinds})")
    downstream = Downstream(config, run.target, run.strategy)
    table, kept = [], None
    for n in budgets:
        runs = []
        for seed in seeds:
            images, labels = subsets[(n, seed)]
            started = time.time()
            cell, finetuned = downstream.cell(images, labels, seed, load_pretrained, build_scratch)
            if n == max(budgets) and kept is None:
                kept = (finetuned, {"labels": n, "seed": seed, "eval_accuracy": cell["finetune"]})
            scores = ", ".join(f"{k} {v:.1%}" for k, v in cell.items())
            say(f"  N={n} seed={seed}: {scores} ({time.time() - started:.0f} s)")
            runs.append({"seed": seed, **cell})
        row = summarise(n, runs)
        if "reference" in row:
            row["reference_model"] = downstream.reference_model
        table.append(row)
    figures.transfer_plot(table, run.stage / "figures/transfer.png", title)
    return table, kept


def cli(job, Config):
    """`python -m recipes.<name>`: flags -> `Config` -> `job(config)`; bad input ends in one line."""
    from absl import app, flags, logging

    define_flags(Config)
    for f in dataclasses.fields(Config):  # so --help lists them as this program's own flags
        flags.FLAGS.register_key_flag_for_module(sys.argv[0], flags.FLAGS[f.name])
    if "mixed_precision" not in flags.FLAGS:  # flags.txt of older runs says --nomixed_precision
        flags.DEFINE_boolean("mixed_precision", None, "Replaced by --precision=mixed_float16.")

    def main(argv):
        if not flags.FLAGS["verbosity"].present:
            logging.set_verbosity(logging.WARNING)  # TFDS logs every file it opens at INFO
        if len(argv) > 1:
            sys.exit(f"error: unexpected arguments {' '.join(argv[1:])}; flags look like --name=value")
        try:
            config = from_flags(Config)
            if flags.FLAGS.mixed_precision:
                if flags.FLAGS["precision"].present and config.precision != "mixed_float16":
                    raise ZooError(
                        f"--mixed_precision contradicts --precision={config.precision}; give only --precision"
                    )
                say("--mixed_precision is now --precision=mixed_float16; using that")
                config = config.replace(precision="mixed_float16")
            job(config)
        except ZooError as e:
            sys.exit(f"error: {e}")
        except (tf.errors.UnavailableError, tf.errors.AbortedError) as e:
            if flags.FLAGS.strategy != "multi_worker":
                raise
            sys.exit(
                f"error: another worker of this multi-worker run stopped (its collective ops failed: "
                f"{type(e).__name__}); "
                "start every worker again with the same command to resume from the last finished epoch"
            )
        except (OSError, tf.errors.OpError) as e:  # a full or unwritable --model_dir during the run
            from recipes.artifact import os_error_line

            line = os_error_line(e, flags.FLAGS.model_dir)
            if line is None:
                raise
            sys.exit(f"error: {line}")
        except KeyboardInterrupt:
            sys.exit("interrupted: rerun the same command to resume from the last finished epoch")

    app.run(main)
