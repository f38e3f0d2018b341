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


def option(default, help, *, choices=None):
    """A config field with its flag help text (and allowed values)."""
    return dataclasses.field(default=default, metadata={"help": help, "choices": choices})


@dataclasses.dataclass
class RecipeConfig:
    """The settings every recipe shares (DESIGN.md's recipe flags)."""

    dataset: str = option("uci_digits", "TFDS image dataset with 'image' and 'label' features; "
                          "the default ships with scikit-learn and needs no network.")
    data_dir: str = option("", "TFDS data directory (default: TFDS's own, ~/tensorflow_datasets).")
    manual_dir: str = option("", "Directory of locally placed source files, for datasets that read "
                             "them (mnist_idx: MNIST-format IDX files).")
    train_split: str = option("train", "Split to pretrain on and draw labelled examples from "
                              "(TFDS slicing syntax, e.g. 'test[:80%]').")
    eval_split: str = option("test", "Split to evaluate on (TFDS slicing syntax).")
    model_dir: str = option("runs/default", "Where the artifact is written.")
    overwrite: bool = option(False, "Replace an existing --model_dir.")
    epochs: int = option(10, "Pretraining epochs.")
    batch_size: int = option(128, "Pretraining batch size (global, across replicas).")
    learning_rate: float = option(1e-3, "Adam learning rate for pretraining.")
    seed: int = option(0, "Random seed for initialisation, shuffling and the labelled draws.")
    label_budgets: tuple = option((100, 1000), "Comma list of labelled-example counts for the transfer table.")
    transfer_repeats: int = option(1, "Seeds per label budget (seed, seed+1, ...); the table reports mean and std.")
    transfer_steps: int = option(300, "Optimizer steps for the frozen head and again for fine-tuning; "
                                 "the scratch classifier gets both together.")
    transfer_batch_size: int = option(32, "Batch size of the downstream classifiers.")
    transfer_learning_rate: float = option(3e-3, "Adam learning rate of the downstream classifiers.")
    finetune_lr_factor: float = option(0.1, "Fine-tuning learning rate as a fraction of --transfer_learning_rate.")
    head_units: tuple = option((), "Hidden widths of the downstream head (empty: a linear head).")
    head_dropout: float = option(0.0, "Dropout on the features in the downstream head.")
    head_norm: bool = option(True, "Standardise the features (BatchNorm without scale/offset) before the head.")
    augment: bool = option(False, "Random translation/rotation/zoom for every downstream classifier alike.")
    strategy: str = option("default", "tf.distribute strategy: default, mirrored (local devices) or "
                           "multi_worker (reads TF_CONFIG).", choices=STRATEGIES)
    mixed_precision: bool = option(False, "Train in mixed_float16 (outputs stay float32).")
    jit_compile: bool = option(False, "Compile training steps with XLA.")

    def validate(self):
        """Raise ZooError naming the first bad value; called before any work."""

        def bad(name, why):
            raise ZooError(f"--{name}={_format(getattr(self, name))}: {why}")

        for name in ("dataset", "model_dir", "train_split", "eval_split"):
            if not str(getattr(self, name)).strip():
                bad(name, "must not be empty")
        for name in ("epochs",):
            if getattr(self, name) < 0:
                bad(name, "must be 0 or more")
        for name in ("batch_size", "transfer_repeats", "transfer_steps", "transfer_batch_size"):
            if getattr(self, name) < 1:
                bad(name, "must be 1 or more")
        for name in ("learning_rate", "transfer_learning_rate", "finetune_lr_factor"):
            if not getattr(self, name) > 0:
                bad(name, "must be positive")
        if not 0 <= self.head_dropout < 1:
            bad("head_dropout", "must be in [0, 1)")
        if not self.label_budgets or any(n < 1 for n in self.label_budgets):
            bad("label_budgets", "give one or more positive counts, e.g. 100,1000")
        if any(u < 1 for u in self.head_units):
            bad("head_units", "widths must be positive")
        for f in dataclasses.fields(self):
            choices = f.metadata.get("choices")
            if choices and getattr(self, f.name) not in choices:
                bad(f.name, f"must be one of {', '.join(map(str, choices))}")

    def replace(self, **changes):
        return dataclasses.replace(self, **changes)


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
