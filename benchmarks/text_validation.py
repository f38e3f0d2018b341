"""How word2vec's settings were chosen: the frozen and finetune columns of a word2vec run on a
validation slice of the IMDB subset's train split (the test reviews are never read), for each
pooling of the word vectors and each downstream setting, beside TF-IDF + logistic regression.

    python benchmarks/text_imdb.py --manual_dir=.../aclImdb_subset.tar.gz --families=word2vec
    python benchmarks/text_validation.py --manual_dir=.../aclImdb_subset.tar.gz \
        --run_dir=/tmp/zoo-benchmarks/word2vec-imdb

The train split is stored negative reviews first, then positive: the slices below are class-balanced
(4,000 reviews to draw labels from, 1,000 to validate on). N = 100 and 1,000, seeds 0-2. "mean"
pooling is the run's encoder with every word weight set to 1 (the same word vectors, averaged alike).
With --sequence_lengths, also the default setting reading more (or fewer) tokens per text than the
run was pretrained with (the same word vectors: the average has no positions); for a run with word
pairs (--pairs), also its average of words alone. Precision: --precision (default auto).
"""

import sys
import time

import keras
import numpy as np
from absl import app, flags

import zoo
from protocol import quiet_logging
from recipes import flow, word2vec
from recipes.data import load_data
from recipes.downstream import Downstream

flags.DEFINE_string("manual_dir", "", "The IMDB subset: aclImdb_subset.tar.gz or the aclImdb folder.")
flags.DEFINE_string("data_dir", "/tmp/zoo-benchmarks/tfds", "TFDS data directory for the prepared subset.")
flags.DEFINE_string("run_dir", "/tmp/zoo-benchmarks/word2vec-imdb", "A word2vec run on the subset.")
flags.DEFINE_integer("repeats", 3, "Seeds per label budget.")
flags.DEFINE_string("precision", "auto", "Compute precision.")
flags.DEFINE_boolean("grid", True, "Every pooling and rate in VARIANTS; --nogrid: the default setting alone.")
flags.DEFINE_list(
    "sequence_lengths", [], "Also score the default setting with the run's word vectors read this many tokens per text."
)
flags.DEFINE_list("factors", [], "Also score the default pooling and head rate with these fine-tuning factors.")
FLAGS = flags.FLAGS
POOL, VALIDATION = "train[:40%]+train[50%:90%]", "train[40%:50%]+train[90%:]"
# (pooling, --probe_learning_rate, --finetune_lr_factor): the image recipes' defaults first, the
# word2vec recipe's last.
VARIANTS = [("mean", 3e-3, 0.1), ("sif", 3e-3, 0.1), ("mean", 3e-3, 0.3), ("sif", 3e-3, 0.3), ("sif", 1e-2, 0.3)]


def encoder_with(pooling, sequence_length=None):
    encoder = zoo.load_encoder(FLAGS.run_dir, trainable=False)
    if sequence_length:  # the same vocabulary, word vectors and weights, more (or fewer) tokens read
        manifest = zoo.read_manifest(FLAGS.run_dir)
        config = {**manifest["model_config"], "sequence_length": sequence_length}
        longer = flow.fresh_encoder(manifest["model"], config, flow.tokenisation(encoder))
        longer.get_layer("word_vectors").embeddings.assign(encoder.get_layer("word_vectors").embeddings)
        longer.trainable = False
        encoder = longer
    weights = encoder.get_layer("mean").word_weights
    if pooling == "mean":
        weights.assign(np.ones(weights.shape, np.float32))
    if pooling == "sif, words alone":  # a run with word pairs, its pairs left out of the average
        pairs = zoo.text.word_pairs(encoder)
        weights.assign(
            np.where(np.arange(weights.shape[0]) < pairs.vocab_size, np.asarray(weights), 0).astype("float32")
        )
    return encoder


def main(argv):
    quiet_logging()
    if not FLAGS.manual_dir:
        sys.exit("error: --manual_dir: give the IMDB subset (aclImdb_subset.tar.gz or its aclImdb folder)")
    base = word2vec.Config(
        dataset="imdb_local",
        manual_dir=FLAGS.manual_dir,
        data_dir=FLAGS.data_dir,
        train_split=POOL,
        eval_split=VALIDATION,
        transfer_repeats=FLAGS.repeats,
    )
    data = load_data(base)
    assert np.bincount(data.eval_labels).tolist() == [500, 500], "the validation slice is not class-balanced"
    draws = flow.labelled_draws(base, data)
    strategy = flow.make_strategy("default")
    policy = flow.resolve_precision(FLAGS.precision)
    print(f"validation: {len(data.eval_labels)} reviews of {VALIDATION}; labels drawn from {POOL}; {policy}")
    rows = []
    with flow.precision(policy):
        downstream = Downstream(base, data, strategy)
        reference = {key: downstream.tfidf_reference(x, y, key[1]) for key, (x, y) in draws.items()}
        pooling, probe, factor = VARIANTS[-1]  # the defaults
        variants = [(*v, None) for v in (VARIANTS if FLAGS.grid else VARIANTS[-1:])]
        variants += [(pooling, probe, factor, int(n)) for n in FLAGS.sequence_lengths]
        variants += [(pooling, probe, float(f), None) for f in FLAGS.factors]
        if zoo.text.word_pairs(zoo.load_encoder(FLAGS.run_dir)) is not None:
            variants.append(("sif, words alone", probe, factor, None))  # what the word pairs add
        for pooling, probe, factor, length in variants:
            start = time.time()
            config = base.replace(probe_learning_rate=probe, finetune_lr_factor=factor)
            downstream = Downstream(config, data, strategy)
            scores = {}
            for (n, seed), (x, y) in draws.items():
                keras.utils.set_random_seed(seed)
                scores[(n, seed)], _ = downstream.pretrained(
                    x, y, seed, lambda p=pooling, n=length: encoder_with(p, n), knn=False
                )
            frozen = {k: v["frozen"] for k, v in scores.items()}
            finetune = {k: v["finetune"] for k, v in scores.items()}
            name = pooling + (f", {length} tokens" if length else "")
            rows.append((name, probe, factor, frozen, finetune))
            print(f"  {name} {probe:g} {factor:g}: {time.time() - start:.0f} s", flush=True)

    def cell(values, n):
        found = [100 * v for (m, _), v in values.items() if m == n]
        return f"{np.mean(found):.1f} ± {np.std(found):.1f}"

    print(f"\nTF-IDF + logistic regression: N=100 {cell(reference, 100)}, N=1000 {cell(reference, 1000)}")
    print("\n| pooling | probe lr | finetune factor | N=100 frozen | finetune | N=1000 frozen | finetune |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: |")
    for pooling, probe, factor, frozen, finetune in rows:
        print(
            f"| {pooling} | {probe} | {factor} | {cell(frozen, 100)} | {cell(finetune, 100)} "
            f"| {cell(frozen, 1000)} | {cell(finetune, 1000)} |"
        )


if __name__ == "__main__":
    app.run(main)
