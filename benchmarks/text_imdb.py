"""Both text families on the IMDB subset: pretrain on its unlabelled and train reviews (labels never
read), then the transfer table at N = 100 and 1,000 labelled reviews, seeds 0-2, beside the same
network from scratch (same vocabulary) and TF-IDF + logistic regression (C chosen by cross-validation
on the labelled draw). Prints each family's table, its pretraining time and its tokens per second;
with --distill, also the distillation table of each family's run as the teacher (recipes.distill at
its defaults: the student, word2vec from random weights with the teacher's vocabulary, learns from
the teacher's labels of the 5,000 train and 10,000 unlabelled reviews).

    python benchmarks/text_imdb.py --manual_dir=../shared/data/imdb-subset/aclImdb_subset.tar.gz
    python benchmarks/text_imdb.py --manual_dir=... --families=word2vec      # one family
    python benchmarks/text_imdb.py --manual_dir=... --families=word2vec --distill

The subset (see its README): 5,000 train reviews, 10,000 unlabelled, 2,000 test reviews (movies
disjoint from train), the original aclImdb layout. Precision: --precision (default auto).
"""

import json
import sys
import time
from pathlib import Path

from absl import app, flags

from protocol import print_table, quiet_logging
from recipes import distill, masked_lm, word2vec

flags.DEFINE_string("manual_dir", "", "The IMDB subset: aclImdb_subset.tar.gz or the aclImdb folder.")
flags.DEFINE_string("data_dir", "/tmp/zoo-benchmarks/tfds", "TFDS data directory for the prepared subset.")
flags.DEFINE_list("families", ["word2vec", "masked_lm"], "Which text families to run.")
flags.DEFINE_integer("repeats", 3, "Seeds per label budget.")
flags.DEFINE_string("precision", "auto", "Compute precision.")
flags.DEFINE_boolean("distill", False, "Also distil each family's run into a student (recipes.distill).")
flags.DEFINE_boolean(
    "reuse",
    False,
    "Read each family's run from /tmp/zoo-benchmarks/<family>-imdb (an earlier call's) instead of pretraining.",
)
FLAGS = flags.FLAGS
MODULES = {"word2vec": word2vec, "masked_lm": masked_lm}


def main(argv):
    quiet_logging()
    if not FLAGS.manual_dir:
        sys.exit("error: --manual_dir: give the IMDB subset (aclImdb_subset.tar.gz or its aclImdb folder)")
    for family in FLAGS.families:
        module = MODULES[family]
        config = module.Config(
            dataset="imdb_local",
            manual_dir=FLAGS.manual_dir,
            data_dir=FLAGS.data_dir,
            model_dir=f"/tmp/zoo-benchmarks/{family}-imdb",
            overwrite=True,
            label_budgets=(100, 1000),
            transfer_repeats=FLAGS.repeats,
            precision=FLAGS.precision,
        )
        start = time.time()
        if FLAGS.reuse:
            metrics = json.loads((Path(config.model_dir) / "metrics.json").read_text())
        else:
            metrics = module.run(config)
        pretrain = metrics["pretrain"]
        took = f"{metrics['wall_seconds']:.0f} s in all" + (" (an earlier call's run)" if FLAGS.reuse else "")
        print(f"\n## {family} ({config.model}, {metrics['precision']}), {took}")
        print(
            f"pretraining: {config.epochs} epochs, {pretrain['texts_per_second']:.0f} texts/s, "
            f"{pretrain['tokens_per_second']:.0f} tokens/s ({pretrain['tokens_per_text']:.0f} tokens per text)"
        )
        print_table(metrics["transfer"])
        if FLAGS.distill:
            start, out = time.time(), f"/tmp/zoo-benchmarks/{family}-imdb-distill"
            data = {k: getattr(config, k) for k in ("dataset", "manual_dir", "data_dir", "label_budgets", "precision")}
            metrics = distill.run(
                distill.Config(
                    teacher_dir=config.model_dir,
                    model_dir=out,
                    overwrite=True,
                    transfer_repeats=FLAGS.repeats,
                    **data,
                )
            )
            student = json.loads((Path(out) / "manifest.json").read_text())["model"]
            print(f"\n### {family} teacher -> {student} student, {time.time() - start:.0f} s")
            print_table(metrics["distill"], distill.COLUMNS)
            for row in metrics["distill"]:
                print(distill.gap_closed(row))


if __name__ == "__main__":
    app.run(main)
