"""Recipe configuration: one dataclass is the config, the absl flags and flags.txt.

A recipe's work is a function of a plain config, so notebooks and other Python
code call it directly; `define_flags` turns the same dataclass into absl flags
for the command line, and `to_flagfile` writes the run back as a flagfile that
replays it.
"""

import dataclasses
import typing

from zoo.errors import ZooError

STRATEGIES = ("default", "mirrored", "multi_worker")


def option(default, help, *, choices=None, minimum=None, below=None, positive=False, nonempty=False):
    """A config field: its default, its flag help text, and what values are valid.

    Args:
      choices: the allowed values.
      minimum: the smallest allowed value (of each element, for a tuple).
      below: values must be smaller than this.
      positive: values must be greater than 0.
      nonempty: a string or tuple must not be empty.
    """
    checks = dict(choices=choices, minimum=minimum, below=below, positive=positive, nonempty=nonempty)
    return dataclasses.field(default=default, metadata={"help": help, **checks})


@dataclasses.dataclass
class RecipeConfig:
    """The settings every recipe shares (DESIGN.md's recipe flags)."""

    dataset: str = option("uci_digits", "TFDS image dataset with 'image' and 'label' features; "
                          "the default ships with scikit-learn and needs no network.", nonempty=True)
    data_dir: str = option("", "TFDS data directory (default: TFDS's own, ~/tensorflow_datasets).")
    manual_dir: str = option("", "Directory of locally placed source files, for datasets that read "
                             "them (mnist_idx: MNIST-format IDX files).")
    train_split: str = option("train", "Split to pretrain on and draw labelled examples from "
                              "(TFDS slicing syntax, e.g. 'test[:80%]').", nonempty=True)
    eval_split: str = option("test", "Split to evaluate on (TFDS slicing syntax).", nonempty=True)
    model_dir: str = option("runs/default", "Where the artifact is written.", nonempty=True)
    overwrite: bool = option(False, "Replace an existing --model_dir.")
    epochs: int = option(10, "Pretraining epochs.", minimum=0)
    batch_size: int = option(128, "Pretraining batch size (global, across replicas).", minimum=1)
    learning_rate: float = option(1e-3, "Adam learning rate for pretraining.", positive=True)
    seed: int = option(0, "Random seed for initialisation, shuffling and the labelled draws.")
    label_budgets: tuple = option((100, 1000), "Comma list of labelled-example counts for the transfer table.",
                                  minimum=1, nonempty=True)
    transfer_repeats: int = option(1, "Seeds per label budget (seed, seed+1, ...); the table reports mean and std.",
                                   minimum=1)
    transfer_steps: int = option(300, "Optimizer steps for the frozen head and again for fine-tuning; "
                                 "the scratch classifier gets both together.", minimum=1)
    transfer_batch_size: int = option(32, "Batch size of the downstream classifiers.", minimum=1)
    transfer_learning_rate: float = option(3e-3, "Adam learning rate of the downstream classifiers.",
                                           positive=True)
    probe_learning_rate: float = option(3e-3, "Adam learning rate of the frozen classifier's head: a linear "
                                        "model on fixed features, which may take a larger rate.", positive=True)
    finetune_lr_factor: float = option(0.1, "Fine-tuning learning rate as a fraction of --transfer_learning_rate.",
                                       positive=True)
    head_units: tuple = option((), "Hidden widths of the downstream head (empty: a linear head).", minimum=1)
    head_dropout: float = option(0.0, "Dropout on the features in the downstream head.", minimum=0, below=1)
    head_norm: bool = option(True, "Standardise the features (BatchNorm without scale/offset) before the head.")
    augment: bool = option(False, "Random translation/rotation/zoom for every downstream classifier alike.")
    strategy: str = option("default", "tf.distribute strategy: default, mirrored (local devices) or "
                           "multi_worker (reads TF_CONFIG).", choices=STRATEGIES)
    mixed_precision: bool = option(False, "Train in mixed_float16 (outputs stay float32).")
    jit_compile: bool = option(False, "Compile training steps with XLA.")

    def __post_init__(self):
        # Lists (from JSON, papermill or manifest.json's "flags") stand for the tuple fields.
        for f in dataclasses.fields(self):
            if isinstance(f.default, tuple) and isinstance(getattr(self, f.name), list):
                setattr(self, f.name, tuple(getattr(self, f.name)))

    def validate(self):
        """Raise ZooError naming the first bad value; called before any work."""
        for f in dataclasses.fields(self):
            value, rule = getattr(self, f.name), f.metadata
            values = value if isinstance(value, tuple) else (value,)
            why = None
            if rule.get("nonempty") and not (value.strip() if isinstance(value, str) else value):
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
            if why:
                raise ZooError(f"--{f.name}={_format(value)}: {why}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


def new_default(name, value):
    """The shared field `name` with another default for one recipe, keeping its help and rules."""
    base = {f.name: f for f in dataclasses.fields(RecipeConfig)}[name]
    return dataclasses.field(default=value, metadata=base.metadata)


def _format(value):
    if isinstance(value, (tuple, list)):
        return ",".join(map(str, value))
    return str(value)


def _parse_int_list(name, values):
    try:
        return tuple(int(str(v).strip()) for v in values if str(v).strip())
    except ValueError:
        raise ZooError(f"--{name}={','.join(map(str, values))}: give a comma list of integers, e.g. 100,1000") from None


def define_flags(config_cls, flag_values=None):
    """Define one absl flag per field of `config_cls`, with its default and help."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS
    for f in dataclasses.fields(config_cls):
        if f.name in fv:
            continue  # already defined in this process (a second recipe import)
        help_text, choices = f.metadata.get("help", f.name), f.metadata.get("choices")
        kind = typing.get_type_hints(config_cls)[f.name]
        if choices:
            flags.DEFINE_enum(f.name, f.default, list(choices), help_text, flag_values=fv)
        elif kind is bool:
            flags.DEFINE_boolean(f.name, f.default, help_text, flag_values=fv)
        elif kind is int:
            flags.DEFINE_integer(f.name, f.default, help_text, flag_values=fv)
        elif kind is float:
            flags.DEFINE_float(f.name, f.default, help_text, flag_values=fv)
        elif kind is tuple:
            flags.DEFINE_list(f.name, [str(v) for v in f.default], help_text, flag_values=fv)
        else:
            flags.DEFINE_string(f.name, f.default, help_text, flag_values=fv)


def from_flags(config_cls, flag_values=None):
    """Build a `config_cls` from parsed absl flags."""
    from absl import flags

    fv = flag_values if flag_values is not None else flags.FLAGS
    hints = typing.get_type_hints(config_cls)
    values = {}
    for f in dataclasses.fields(config_cls):
        value = fv[f.name].value
        values[f.name] = _parse_int_list(f.name, value) if hints[f.name] is tuple else value
    return config_cls(**values)


def to_flagfile(config, module):
    """The config as an absl flagfile that replays the run."""
    lines = [
        f"# Replay this run: python -m {module} --flagfile=<this file> --model_dir=<a new dir>",
        "# (or add --overwrite to replace it in place).",
    ]
    for f in dataclasses.fields(config):
        if f.name == "overwrite":
            continue  # a permission for one invocation, not a property of the run
        value = getattr(config, f.name)
        if isinstance(value, bool):
            lines.append(f"--{'' if value else 'no'}{f.name}")
        else:
            lines.append(f"--{f.name}={_format(value)}")
    return "\n".join(lines) + "\n"


def as_dict(config):
    return {k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(config).items()}
