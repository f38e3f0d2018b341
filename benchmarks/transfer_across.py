"""Transfer across datasets (benchmarks/README.md#across-datasets): pretrain on one dataset, transfer to another.

    python benchmarks/transfer_across.py --manual_dir=/path/to/mnist-10k        # offline, local IDX files
    python benchmarks/transfer_across.py --families=simclr,autoencoder --directions=uci_to_mnist

Two directions, each through the recipes' own target flags (`--target_dataset`...), so the
transfer table is the one every recipe prints (frozen, finetune, knn, scratch, reference):

- mnist_to_uci: every family pretrained on the MNIST-10k pool (images 0-7,999 of MNIST's test set,
  the family benchmark's epochs), transferred to `uci_digits` (8x8 digits, adapted inside the
  classifier to the encoder's 28x28) at N = 100 and 500;
- uci_to_mnist: SimCLR and the autoencoder pretrained on `uci_digits` (the recipe's defaults),
  transferred to MNIST-10k (28x28 images resized to the encoder's 8x8) at N = 100 and 1,000,
  evaluated on images 8,000-9,999.

Three seeds per budget; mean +- std in %. `scratch` and `reference` train on the target alone, so
they say what the other dataset's pretraining is worth. The precision is `--precision` (auto:
mixed bfloat16 where the CPU or GPU computes it natively), printed with each table.
"""

import time

from absl import app, flags

from protocol import SPLITS, print_table, protocol_dataset, quiet_logging
from recipes import autoencoder, cnn_classifier, dcgan, simclr, vae

FAMILIES = {"autoencoder": autoencoder, "cnn_classifier": cnn_classifier, "vae": vae, "dcgan": dcgan, "simclr": simclr}
MNIST_EPOCHS = {"simclr": 60, "dcgan": 20}  # as the family benchmarks run them on MNIST-10k
UCI = dict(dataset="uci_digits", train_split="train", eval_split="test")

flags.DEFINE_string("manual_dir", "", "Folder with MNIST's test-set IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("families", list(FAMILIES), "Families to pretrain for mnist_to_uci.")
flags.DEFINE_list("uci_families", ["simclr", "autoencoder"], "Families to pretrain for uci_to_mnist.")
flags.DEFINE_list("directions", ["mnist_to_uci", "uci_to_mnist"], "Which directions to run.")
flags.DEFINE_integer("transfer_repeats", 3, "Seeds per label budget.")
flags.DEFINE_string("precision", "auto", "Compute precision of every run (auto|float32|mixed_bfloat16).")
flags.DEFINE_string("model_dir", "/tmp/zoo-benchmarks/across", "Where the runs' artifacts go.")
FLAGS = flags.FLAGS


def mnist():
    return dict(dataset=protocol_dataset("", FLAGS.manual_dir), manual_dir=FLAGS.manual_dir, **SPLITS)


def config(module, name, source, target, budgets, epochs=None):
    changes = dict(
        **source,
        **{f"target_{k}": v for k, v in target.items()},
        label_budgets=budgets,
        transfer_repeats=FLAGS.transfer_repeats,
        precision=FLAGS.precision,
        model_dir=f"{FLAGS.model_dir}/{name}",
        overwrite=True,
        seed=0,
    )
    if epochs:
        changes["epochs"] = epochs
    if module is cnn_classifier:  # all ten classes: the other dataset is the new task
        changes.update(source_classes="", target_classes="")
    return module.Config(**changes)


def report(title, metrics, seconds):
    print(f"\n### {title} ({metrics['precision']}, {seconds:.0f} s)\n")
    print_table(metrics["transfer"])


def main(argv):
    quiet_logging()
    if "mnist_to_uci" in FLAGS.directions:
        for family in FLAGS.families:
            module = FAMILIES[family]
            start = time.time()
            metrics = module.run(
                config(module, f"{family}-mnist-to-uci", mnist(), UCI, (100, 500), MNIST_EPOCHS.get(family))
            )
            report(f"{family}: MNIST-10k -> uci_digits", metrics, time.time() - start)
    if "uci_to_mnist" in FLAGS.directions:
        for family in FLAGS.uci_families:
            module = FAMILIES[family]
            start = time.time()
            metrics = module.run(config(module, f"{family}-uci-to-mnist", UCI, mnist(), (100, 1000)))
            report(f"{family}: uci_digits -> MNIST-10k", metrics, time.time() - start)


if __name__ == "__main__":
    app.run(main)
