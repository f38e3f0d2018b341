"""Label distillation on the MNIST-10k protocol (benchmarks/README.md#distillation).

    python benchmarks/distill_mnist10k.py --manual_dir=/path/to/mnist-10k \\
        --teacher_dir=/tmp/zoo-benchmarks/simclr --compare        # choose: variants on a validation slice
    python benchmarks/distill_mnist10k.py --manual_dir=/path/to/mnist-10k \\
        --teacher_dir=/tmp/zoo-benchmarks/simclr --teacher_views=4 --rounds=2   # report: the protocol, once

The teacher is a run of simclr_mnist10k.py (any recipe's run works), pretrained on images 0-7,999.
It is fine-tuned with that run's own transfer settings (steps, learning rates, head) unless given
here, so the teacher column is the finetune column of the teacher's own table.

Settings are chosen with --compare, never on the eval images: the first 7,000 pool images are the
train split and images 7,000-7,999 the validation split; each seed's teacher is fine-tuned once on
its 100 labels, then every variant's students learn from it. The protocol's run (N = 100 and 1,000,
seeds 0-2, evaluated on images 8,000-9,999) is then made once with the chosen flags.
"""

import dataclasses
import json
import time
from pathlib import Path

import numpy as np
from absl import app, flags

import zoo
from protocol import FLAGS, print_table, protocol_config, quiet_logging
from recipes import distill, flow
from recipes.config import define_flags
from recipes.data import load_data
from recipes.downstream import Downstream

VALIDATION = dict(train_split="test[:7000]", eval_split="test[7000:8000]")
TEACHER_SETTINGS = (
    "transfer_steps",
    "transfer_batch_size",
    "transfer_learning_rate",
    "probe_learning_rate",
    "finetune_lr_factor",
    "head_units",
    "head_dropout",
    "head_norm",
    "augment",
)
VARIANTS = {
    "soft": dict(),
    "views4": dict(teacher_views=4),
    "hard": dict(pseudo_labels="hard"),
    "confidence": dict(confidence=0.9),
    "temperature2": dict(distill_temperature=2.0),
    "rounds2": dict(rounds=2),
    "rounds3_confidence": dict(rounds=3, confidence=0.9),
}


def with_teacher_settings(config):
    """The teacher run's transfer settings for every one not given on the command line."""
    manifest = zoo.read_manifest(config.teacher_dir)
    given = {k: v for k, v in manifest.get("flags", {}).items() if k in TEACHER_SETTINGS and not FLAGS[k].present}
    return config.replace(**given)


def row(name, cells):
    """A Markdown row: the variant, mean ± std of each column over seeds, the student's median img/s."""

    def shown(kind):
        if kind not in cells[0]:
            return "-"
        values = [100 * c[kind] for c in cells]
        return f"{np.mean(values):.1f} ± {np.std(values):.1f}"

    settings = ", ".join(f"{k}={v}" for k, v in VARIANTS[name].items()) or "defaults"
    speed = np.median([c["student_images_per_second"] for c in cells])
    first = "student_1" if "student_1" in cells[0] else "student"  # the first round's student
    columns = [shown(k) for k in ("teacher", "pseudo_labels", first, "student_2", "student_3")]
    return f"| {name} ({settings}) | " + " | ".join(columns) + f" | {speed:,.0f} |"


def compare(config, names):
    """Every variant's students from the same fine-tuned teachers, N = 100, on the validation slice."""
    config = config.replace(**VALIDATION, label_budgets=(100,), reference=False, ceiling=False)
    print(f"validation slice: train {VALIDATION['train_split']}, eval {VALIDATION['eval_split']}")
    data = load_data(config)
    ctx = flow.Run(
        config,
        data,
        data,
        flow.make_strategy(config.strategy),
        flow.resolve_precision(config.precision),
        distill.student_config(config, data),
    )
    pool, subsets = data.train_inputs(), flow.labelled_draws(config, data)
    downstream = Downstream(config, data, ctx.strategy)
    results = {name: [] for name in names}
    with flow.precision(ctx.precision):
        for _, seed in sorted(subsets):
            images, labels = subsets[(100, seed)]
            teacher, accuracy = distill.fine_tuned_teacher(ctx, downstream, images, labels, seed)
            for name in names:
                variant = dataclasses.replace(ctx, config=config.replace(**VARIANTS[name]))
                cell, _ = distill.students(variant, downstream, teacher, pool, images, labels, seed)
                results[name].append({"teacher": accuracy, **cell})
    student = distill.student_name(config, data)
    print(f"\nteacher {config.teacher_dir}, student {student}, precision {ctx.precision}, N = 100, validation")
    print("| variant | teacher | pseudo-labels (pool) | student | round 2 | round 3 | student img/s |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for name, cells in results.items():
        print(row(name, cells))


def main(argv):
    quiet_logging()
    config = with_teacher_settings(protocol_config(distill.Config, "distill"))
    start = time.time()
    if FLAGS.compare:
        unknown = set(FLAGS.variants) - set(VARIANTS)
        if unknown:
            raise app.UsageError(f"--variants: unknown {', '.join(sorted(unknown))}; known: {', '.join(VARIANTS)}")
        compare(config, FLAGS.variants)
    else:
        metrics = distill.run(config)
        student = json.loads((Path(config.model_dir) / "manifest.json").read_text())["model"]
        print(f"\nteacher {config.teacher_dir}, student {student}, precision {metrics['precision']}")
        print_table(metrics["distill"], distill.COLUMNS)
        for r in metrics["distill"]:
            print(distill.gap_closed(r))
        speeds = [x["student_images_per_second"] for r in metrics["distill"] for x in r["runs"]]
        print(f"student training {np.median(speeds):,.0f} img/s (median); recipe {metrics['wall_seconds']:.0f} s")
    print(f"benchmark wall time {time.time() - start:.0f} s")


if __name__ == "__main__":
    define_flags(distill.Config)
    FLAGS.set_default("dataset", "mnist")
    flags.DEFINE_boolean("compare", False, "Compare the variants on a validation slice of the pool (N = 100).")
    flags.DEFINE_list("variants", list(VARIANTS), "Variants --compare runs: " + ", ".join(VARIANTS))
    app.run(main)
