"""Recipe configuration: one dataclass is the config, the absl flags and flags.txt.

A recipe's work is a function of a plain config, so notebooks and other Python
code call it directly; `define_flags` turns the same dataclass into absl flags
for the command line, and `to_flagfile` writes the run back as a flagfile that
replays it.

A model hyperparameter field (`hyperparameter(...)`) defaults to None, which
means "not given": the registered model's own value applies, so
`--model=conv_autoencoder_tiny` builds tiny and `--filters=32,64` builds 32-64
filters whatever the model's defaults are (as timm's `create_model` drops
keyword arguments that are None).
"""

import dataclasses
import typing

from zoo.errors import ZooError

STRATEGIES = ("default", "mirrored", "multi_worker")
PRECISIONS = ("auto", "float32", "mixed_bfloat16", "mixed_float16")
ADAPTS = ("auto", "none")
ALL = "all"  # a label budget: every labelled example of the train split


def option(
    default, help, *, choices=None, minimum=None, below=None, maximum=None, positive=False, nonempty=False, words=()
):
    """A config field: its default, its flag help text, and what values are valid.

    Args:
      choices: the allowed values.
      words: strings a tuple of integers may also hold (the label budgets' `all`); the rules below
        apply to its integers.
      minimum: the smallest allowed value (of each element, for a tuple).
      below: values must be smaller than this.
      maximum: the largest allowed value.
      positive: values must be greater than 0.
      nonempty: a string or tuple must not be empty.
    """
    checks = dict(
        choices=choices,
        minimum=minimum,
        below=below,
        maximum=maximum,
        positive=positive,
        nonempty=nonempty,
        words=words,
    )
    return dataclasses.field(default=default, metadata={"help": help, **checks})


def hyperparameter(help, **rules):
    """A config field for a builder hyperparameter: None (not given) means the model's own value."""
    field = option(None, help, **rules)
    field.metadata = {**field.metadata, "hyperparameter": True}
    return field


@dataclasses.dataclass
class TransferConfig:
    """What the transfer table needs: data, downstream classifiers, output (`--helpfull` lists them)."""

    dataset: str = option(
        "uci_digits",
        "TFDS image dataset with 'image' and 'label' features; "
        "the default ships with scikit-learn and needs no network. cifar10_local reads CIFAR-10 from "
        "--manual_dir (cifar10-jpeg.tar.gz). image_folder reads your own images: "
        "--manual_dir/<split>/<class>/<image> or --manual_dir/<class>/<image> (PNG, JPEG, BMP, GIF, WebP).",
        nonempty=True,
    )
    data_dir: str = option("", "TFDS data directory (default: TFDS's own, ~/tensorflow_datasets).")
    manual_dir: str = option(
        "",
        "Directory of locally placed source files, for datasets that read "
        "them (mnist_idx: MNIST-format IDX files; cifar10_local: cifar10-jpeg.tar.gz or its folder; "
        "image_folder: a folder of train/ and test/ or val/, each "
        "with one sub-folder per class, or of class folders alone, split by --holdout_fraction).",
    )
    image_size: tuple = option(
        (),
        "image_folder: height,width every image is resized to, once, when the folder is prepared (empty: "
        "the encoder's for recipes.transfer, else the first train image's).",
        minimum=1,
    )
    holdout_fraction: float = option(
        0.2,
        "image_folder of class folders without split folders: the share of each class held out (with a "
        "fixed seed: the same images in every run) as --eval_split; the rest is --train_split.",
        positive=True,
        below=1,
    )
    train_split: str = option(
        "train",
        "Split to pretrain on and draw labelled examples from (TFDS slicing syntax, e.g. 'test[:80%]').",
        nonempty=True,
    )
    eval_split: str = option("test", "Split to evaluate on (TFDS slicing syntax).", nonempty=True)
    model_dir: str = option("runs/default", "Where the artifact is written.", nonempty=True)
    overwrite: bool = option(False, "Replace an existing --model_dir (a finished artifact or an empty directory).")
    seed: int = option(0, "Random seed for initialisation, shuffling and the labelled draws.")
    label_budgets: tuple = option(
        (100, 1000),
        "Comma list of labelled-example counts for the transfer table; 'all' is every labelled example of "
        "--train_split, and a budget larger than the split is capped to it (said in one line).",
        minimum=1,
        nonempty=True,
        words=(ALL,),
    )
    transfer_repeats: int = option(
        1, "Seeds per label budget (seed, seed+1, ...); the table reports mean and std.", minimum=1
    )
    transfer_steps: int = option(
        300,
        "Optimizer steps for the frozen head and again for fine-tuning; the scratch classifier gets both together.",
        minimum=1,
    )
    transfer_batch_size: int = option(32, "Batch size of the downstream classifiers.", minimum=1)
    transfer_learning_rate: float = option(3e-3, "Adam learning rate of the downstream classifiers.", positive=True)
    probe_learning_rate: float = option(
        3e-3,
        "Adam learning rate of the frozen classifier's head: a linear "
        "model on fixed features, which may take a larger rate.",
        positive=True,
    )
    finetune_lr_factor: float = option(
        0.1, "Fine-tuning learning rate as a fraction of --transfer_learning_rate.", positive=True
    )
    head_units: tuple = option((), "Hidden widths of the downstream head (empty: a linear head).", minimum=1)
    head_dropout: float = option(0.0, "Dropout on the features in the downstream head.", minimum=0, below=1)
    head_norm: bool = option(True, "Standardise the features (BatchNorm without scale/offset) before the head.")
    augment: bool = option(False, "Random translation/rotation/zoom for every downstream classifier alike.")
    knn_k: int = option(20, "Neighbours of the k-NN column (temperature-weighted cosine votes).", minimum=1)
    reference: bool = option(
        True,
        "Also train the reference CNN from scratch on each draw (the column that says "
        "whether pretraining beats doing without it).",
    )
    reference_model: str = option(
        "cnn_classifier_bn",
        "The reference column's network, a cnn_classifier model: cnn_classifier_bn is the zoo's best "
        "CNN from scratch on a few hundred labels.",
        choices=(
            "cnn_classifier_bn",
            "cnn_classifier",
            "cnn_classifier_flat",
            "cnn_classifier_tiny",
            "small_resnet",
            "small_resnet_tiny",
        ),
    )
    adapt: str = option(
        "auto",
        "Target images of another shape than the encoder's: auto adapts them inside "
        "the classifier (resize; grey <-> colour), none refuses.",
        choices=ADAPTS,
    )
    strategy: str = option(
        "default",
        "tf.distribute strategy: default, mirrored (local devices) or multi_worker (reads TF_CONFIG).",
        choices=STRATEGIES,
    )
    precision: str = option(
        "auto",
        "Compute precision: auto (mixed_bfloat16 where the device computes "
        "bfloat16 natively: GPUs of compute capability 8.0+, CPUs with AMX or AVX512-BF16; "
        "float32 elsewhere), float32, mixed_bfloat16 or mixed_float16. Losses, BatchNorm "
        "statistics and the exported outputs stay float32.",
        choices=PRECISIONS,
    )
    jit_compile: bool = option(False, "Compile training steps with XLA.")

    def __post_init__(self):
        # Lists (from JSON, papermill or manifest.json's "flags") stand for the tuple fields.
        for f in dataclasses.fields(self):
            if f.type in (tuple, "tuple") and isinstance(getattr(self, f.name), list):
                setattr(self, f.name, tuple(getattr(self, f.name)))

    def validate(self):
        """Raise ZooError naming the first bad value; called before any work."""
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata
            if value is None and rule.get("hyperparameter"):
                continue  # not given: the model's own value
            values = value if isinstance(value, tuple) else (value,)
            values = tuple(v for v in values if v not in rule.get("words", ()))
            why = None
            if any(isinstance(v, str) for v in values) and not isinstance(value, str):
                why = "must be integers" + "".join(f" or {w}" for w in rule.get("words", ()))
            elif rule.get("nonempty") and not (value.strip() if isinstance(value, str) else value):
                why = "must not be empty"
            elif rule.get("choices") and value not in rule["choices"]:
                why = f"must be one of {', '.join(map(str, rule['choices']))}"
            elif rule.get("minimum") is not None and rule.get("below") is not None:
                if not all(rule["minimum"] <= v < rule["below"] for v in values):
                    why = f"must be in [{rule['minimum']}, {rule['below']})"
            elif rule.get("minimum") is not None and any(v < rule["minimum"] for v in values):
                why = f"must be {rule['minimum']} or more"
            elif rule.get("positive") and not all(v > 0 for v in values):
                why = "must be positive"
            elif rule.get("below") is not None and any(v >= rule["below"] for v in values):
                why = f"must be in (0, {rule['below']})" if rule.get("positive") else f"must be below {rule['below']}"
            elif rule.get("maximum") is not None and any(v > rule["maximum"] for v in values):
                why = f"must be at most {rule['maximum']}"
            if why:
                raise ZooError(f"--{f.name}={_format(value)}: {why}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


@dataclasses.dataclass
class RecipeConfig(TransferConfig):
    """The settings every pretraining recipe shares (`--helpfull` lists them with their help)."""

    epochs: int = option(10, "Pretraining epochs.", minimum=0)
    batch_size: int = option(128, "Pretraining batch size (global, across replicas and workers).", minimum=1)
    learning_rate: float = option(1e-3, "Adam learning rate for pretraining.", positive=True)
    target_dataset: str = option("", "TFDS dataset the transfer table uses (empty: --dataset).")
    target_manual_dir: str = option("", "--manual_dir of the target dataset (empty: --manual_dir).")
    target_data_dir: str = option("", "--data_dir of the target dataset (empty: --data_dir).")
    target_train_split: str = option("", "Split of the target dataset to draw labels from (empty: --train_split).")
    target_eval_split: str = option("", "Split of the target dataset to evaluate on (empty: --eval_split).")

    def target(self):
        """The config of the data the transfer table uses, or None when it is the pretraining data."""
        fields = ("dataset", "manual_dir", "data_dir", "train_split", "eval_split")
        given = {f: getattr(self, f"target_{f}") for f in fields if getattr(self, f"target_{f}")}
        return dataclasses.replace(self, **given) if given else None


@dataclasses.dataclass
class TextRecipeConfig(RecipeConfig):
    """The settings of the text recipes: a text dataset, and an unlabelled split pretraining also reads."""

    dataset: str = option(
        "imdb_local",
        "TFDS text classification dataset (one Text feature and a 'label' ClassLabel): imdb_local reads a "
        "local aclImdb/ copy (--manual_dir: the folder or aclImdb_v1.tar.gz), imdb_reviews downloads it, "
        "text_folder reads --manual_dir/<split>/<class>/*.txt.",
        nonempty=True,
    )
    manual_dir: str = option(
        "", "imdb_local: the aclImdb folder or .tar.gz; text_folder: the folder with train/ and test/ inside."
    )
    unlabelled_split: str = option(
        "auto",
        "Split of unlabelled texts pretraining reads beside --train_split, its labels never read (auto: the "
        "dataset's 'unsupervised' split when it has one, as imdb_reviews does; empty: none).",
    )
    vocab_size: int = hyperparameter(
        "Words in the vocabulary (the most frequent; padding and the unknown word included).",
        minimum=3,
        maximum=1_000_000,
    )
    sequence_length: int = hyperparameter("Tokens read per text; longer texts are cut.", minimum=2, maximum=4096)


def new_default(name, value):
    """The shared field `name` with another default for one recipe, keeping its help and rules."""
    base = {f.name: f for f in dataclasses.fields(RecipeConfig)}[name]  # TransferConfig's fields too
    return dataclasses.field(default=value, metadata=base.metadata)


def _format(value):
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _parse_int_list(name, values, words=()):
    """The integers of a comma list (and the `words` it may also hold, as they are)."""
    items = [str(v).strip() for v in values if str(v).strip()]
    try:
        return tuple(v.lower() if v.lower() in words else int(v) for v in items)
    except ValueError:
        example = "100,1000" + "".join(f" or {w}" for w in words)
        raise ZooError(
            f"--{name}={','.join(map(str, values))}: give a comma list of integers, e.g. {example}"
        ) from None


def define_flags(config_cls, flag_values=None):
    """Define one absl flag per field of `config_cls`, with its default and help."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS
    for f in dataclasses.fields(config_cls):
        if f.name in fv:
            continue  # already defined in this process (a second recipe import)
        help_text, choices = f.metadata.get("help", f.name), f.metadata.get("choices")
        if f.metadata.get("hyperparameter"):
            help_text += f" (default: the model's own{_model_default(config_cls, f.name)})"
        kind = typing.get_type_hints(config_cls)[f.name]
        default = f.default
        if choices:
            flags.DEFINE_enum(f.name, default, list(choices), help_text, flag_values=fv)
        elif kind is bool:
            flags.DEFINE_boolean(f.name, default, help_text, flag_values=fv)
        elif kind is int:
            flags.DEFINE_integer(f.name, default, help_text, flag_values=fv)
        elif kind is float:
            flags.DEFINE_float(f.name, default, help_text, flag_values=fv)
        elif kind is tuple:
            flags.DEFINE_list(f.name, None if default is None else [str(v) for v in default], help_text, flag_values=fv)
        else:
            flags.DEFINE_string(f.name, default, help_text, flag_values=fv)


def _model_default(config_cls, name):
    """', N for <default model>': the value the recipe's default model takes, for --help."""
    model = getattr(config_cls, "model", None)
    if not model:
        return ""
    import zoo

    value = zoo.get_entry(model).config().get(name)
    return "" if value is None else f"; {_format(value)} for {model}"


def from_flags(config_cls, flag_values=None):
    """Build a `config_cls` from parsed absl flags."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS
    hints = typing.get_type_hints(config_cls)
    values = {}
    for f in dataclasses.fields(config_cls):
        value = fv[f.name].value
        if hints[f.name] is tuple and value is not None:
            value = _parse_int_list(f.name, value, f.metadata.get("words", ()))
        values[f.name] = value
    return config_cls(**values)


def to_flagfile(config, module):
    """The config as an absl flagfile that replays the run."""
    lines = [
        f"# Replay this run: python -m {module} --flagfile=<this file> --model_dir=<a new dir>",
        "# (or add --overwrite to replace it in place).",
    ]
    for f in dataclasses.fields(config):
        value = getattr(config, f.name)
        if f.name == "overwrite" or value is None:
            continue  # a permission for one invocation, not a property of the run; or not given
        if isinstance(value, bool):
            lines.append(f"--{'' if value else 'no'}{f.name}")
        else:
            lines.append(f"--{f.name}={_format(value)}")
    return "\n".join(lines) + "\n"


def as_dict(config):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
