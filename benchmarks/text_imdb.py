"""Both text families on the IMDB subset: pretrain on its unlabelled and train reviews (labels never
read), then the transfer table at N = 100 and 1,000 labelled reviews, seeds 0-2, beside the same
network from scratch (same vocabulary) and TF-IDF + logistic regression (C chosen by cross-validation
on the labelled draw). Prints each family's table, its pretraining time and its tokens per second.

    python benchmarks/text_imdb.py --manual_dir=../shared/data/imdb-subset/aclImdb_subset.tar.gz
    python benchmarks/text_imdb.py --manual_dir=... --families=word2vec      # one family

The subset (see its README): 5,000 train reviews, 10,000 unlabelled, 2,000 test reviews (movies
disjoint from train), the original aclImdb layout. Precision: --precision (default auto).
"""

import sys
import time

from absl import app, flags

from protocol import print_table, quiet_logging
from recipes import masked_lm, word2vec

flags.DEFINE_string("manual_dir", "", "The IMDB subset: aclImdb_subset.tar.gz or the aclImdb folder.")
flags.DEFINE_string("data_dir", "/tmp/zoo-benchmarks/tfds", "TFDS data directory for the prepared subset.")
flags.DEFINE_list("families", ["word2vec", "masked_lm"], "Which text families to run.")
flags.DEFINE_integer("repeats", 3, "Seeds per label budget.")
flags.DEFINE_string("precision", "auto", "Compute precision.")
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
        metrics = module.run(config)
        pretrain = metrics["pretrain"]
        print(f"\n## {family} ({config.model}, {metrics['precision']}), {time.time() - start:.0f} s in all")
        print(
            f"pretraining: {config.epochs} epochs, {pretrain['texts_per_second']:.0f} texts/s, "
            f"{pretrain['tokens_per_second']:.0f} tokens/s ({pretrain['tokens_per_text']:.0f} tokens per text)"
        )
        print_table(metrics["transfer"])


if __name__ == "__main__":
    app.run(main)
