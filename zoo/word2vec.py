"""Word embeddings: skip-gram with negative sampling (word2vec, Mikolov et al. 2013).

Each word of a text learns to predict the words within `window` positions of it: the dot product
of its word vector with a context word's vector should be high, and low with `negatives` words
drawn from the unigram distribution raised to the 3/4 (the paper's choice). Frequent words are
randomly left out of the pairs (the paper's subsampling, threshold `subsample`). The model is a
`Word2Vec`: a registered `keras.Model` that trains with plain `fit` on batches of raw texts (no
labels) and makes its pairs inside `train_step`, from the token ids of the encoder's own
vocabulary. Its sub-model "encoder" maps texts to the mean of their words' vectors, each word
weighted by its smooth inverse frequency in the pretraining texts (`pooling="sif"`, the default:
a / (a + p(w)), Arora et al. 2017) or all alike (`pooling="mean"`); the context vectors are used
only in training. Call `adapt(texts)` before `fit`: it fits the vocabulary and counts the words
(the sampling distributions and the word weights).

Example:

    model = zoo.build_model("word2vec", vocab_size=20000)
    model.adapt(unlabelled_texts)
    model.compile(optimizer="adam")
    model.fit(unlabelled_texts, batch_size=128, epochs=5)
    features = model.get_layer("encoder")(["a fine film", "dull"])
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from zoo import text
from zoo.blocks import float32_output
from zoo.errors import ZooError
from zoo.registry import register
from zoo.training import OwnObjective

FAMILY = "word2vec"


@keras.saving.register_keras_serializable(package="zoo")
class Word2Vec(OwnObjective):
    """Skip-gram with negative sampling on the token ids of `encoder`'s vocabulary.

    Args:
      encoder: texts -> features, with layers "vectorize" and "word_vectors" (an Embedding).
      window: context words on each side of a word.
      negatives: negative words drawn per word (from the unigram distribution ** 0.75), shared by its
        context pairs.
      subsample: the frequent-word subsampling threshold t (a word of frequency f is kept with
        probability sqrt(t / f) + t / f, as the word2vec code computes it); 0 keeps every word.
    """

    accuracy_name = "pair_accuracy"  # a context word scored above a negative word

    def __init__(self, encoder, window=4, negatives=5, subsample=1e-4, **kwargs):
        super().__init__(**kwargs)
        self.encoder = encoder
        self.window, self.negatives, self.subsample = int(window), int(negatives), float(subsample)
        vocab_size, dim = encoder.get_layer("word_vectors").embeddings.shape
        self.context_vectors = self.add_weight(
            shape=(vocab_size, dim),
            # Random, as the word vectors: from zeros (the word2vec code's start) no gradient
            # reaches the word vectors in the first step.
            initializer=keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim),
            name="context_vectors",
            trainable=True,
        )
        # How often each id occurs in the pretraining texts (set by `adapt`): the sampling distributions.
        self.counts = self.add_weight(shape=(vocab_size,), initializer="ones", name="counts", trainable=False)
        self.built = True

    def call(self, texts, training=False):
        return self.encoder(texts, training=training)

    def adapt(self, texts):
        """Fit the vocabulary on `texts` (a dataset of string batches, or an array), then count each id."""
        text.adapt_vocabulary(self.encoder, texts)
        if not isinstance(texts, tf.data.Dataset):
            texts = text.texts_dataset(texts)
        counts = np.zeros(self.counts.shape[0], np.float64)
        for batch in texts:
            ids = np.asarray(text.token_ids(self.encoder, batch)).ravel()
            counts += np.bincount(ids, minlength=len(counts))[: len(counts)]
        counts[[text.PAD, text.OOV]] = 0  # never a negative, never counted in the frequencies
        self.counts.assign(counts.astype("float32"))
        pooling = self.encoder.get_layer("mean")
        if isinstance(pooling, text.WeightedMean):
            pooling.set_counts(counts)

    def objective(self, texts, training=False):
        """(the mean loss over every (word, context word) pair of `texts` within the window, the share
        of (pair, negative word) comparisons the context word scored higher): skip-gram with negative
        sampling."""
        ids = text.token_ids(self.encoder, texts)
        counts = ops.convert_to_tensor(self.counts)
        valid = ops.greater(ids, text.OOV)
        if self.subsample and training:
            frequency = ops.take(counts / ops.maximum(ops.sum(counts), 1.0), ids)
            ratio = self.subsample / ops.maximum(frequency, 1e-12)
            keep = ops.sqrt(ratio) + ratio  # as the word2vec code computes it
            valid = ops.logical_and(valid, tf.random.uniform(ops.shape(ids)) < keep)
        vectors = ops.cast(self.encoder.get_layer("word_vectors")(ids), "float32")  # (batch, length, dim)
        contexts = ops.take(ops.cast(self.context_vectors, "float32"), ids, axis=0)
        # Negatives: `negatives` words per word, drawn from counts ** 0.75 (by inverting its cumulative
        # distribution), shared by the word's pairs.
        weights = ops.where(counts > 0, ops.power(ops.maximum(counts, 1.0), 0.75), 0.0)
        cumulative = ops.cumsum(weights) / ops.sum(weights)
        shape = ops.shape(ids)
        uniform = tf.random.uniform((shape[0] * shape[1] * self.negatives,))
        drawn = ops.reshape(tf.searchsorted(cumulative, uniform, side="right"), (shape[0], shape[1], self.negatives))
        drawn = ops.minimum(drawn, ops.shape(counts)[0] - 1)
        negative_vectors = ops.take(ops.cast(self.context_vectors, "float32"), drawn, axis=0)  # (batch, length, k, dim)
        negative_logits = ops.einsum("bld,blkd->blk", vectors, negative_vectors)
        # Every pair (i, i + offset) counts both ways; pair_count[b, i]: the pairs word i is in.
        valid_f = ops.cast(valid, "float32")
        pair_count = ops.zeros_like(valid_f)
        positive_loss, wins = 0.0, 0.0  # wins: (pair, negative) comparisons the pair's context word won
        for offset in range(1, self.window + 1):
            both = valid_f[:, :-offset] * valid_f[:, offset:]
            forward = ops.sum(vectors[:, :-offset] * contexts[:, offset:], axis=-1)  # word i, context i + offset
            backward = ops.sum(vectors[:, offset:] * contexts[:, :-offset], axis=-1)  # word i + offset, context i
            positive_loss += ops.sum(both * (ops.softplus(-forward) + ops.softplus(-backward)))
            beaten = ops.cast(forward[..., None] > negative_logits[:, :-offset], "float32") + ops.cast(
                backward[..., None] > negative_logits[:, offset:], "float32"
            )
            wins += ops.sum(both[..., None] * beaten)
            pad = ops.zeros_like(both[:, :offset])
            pair_count += ops.concatenate([both, pad], axis=1) + ops.concatenate([pad, both], axis=1)
        pairs = ops.maximum(ops.sum(pair_count), 1.0)
        negative_loss = ops.sum(pair_count * ops.sum(ops.softplus(negative_logits), axis=-1))
        return (positive_loss + negative_loss) / pairs, wins / (pairs * self.negatives)

    def word_vectors(self):
        """The (vocab_size, dim) word vectors, as NumPy."""
        return np.asarray(self.encoder.get_layer("word_vectors").embeddings, np.float32)

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "window": self.window,
            "negatives": self.negatives,
            "subsample": self.subsample,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["encoder"] = keras.saving.deserialize_keras_object(config["encoder"])
        return cls(**config)


def write_vectors(path, vocabulary, vectors):
    """The word2vec text format: a header line "<words> <dim>", then one line per word: the word and
    its vector (what gensim's `KeyedVectors.load_word2vec_format` reads). Padding and the
    out-of-vocabulary token are left out."""
    rows = [(w, v) for w, v in zip(vocabulary, vectors) if w and w != "[UNK]" and " " not in w]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(rows)} {vectors.shape[1]}\n")
        for word, vector in rows:
            f.write(word + " " + " ".join(f"{x:.6g}" for x in vector) + "\n")


@register("word2vec", family=FAMILY)
@register("word2vec_tiny", family=FAMILY, tiny=True, vocab_size=200, sequence_length=16, embedding_dim=8, window=2)
def word2vec(
    vocab_size=20000,
    sequence_length=256,
    embedding_dim=128,
    window=4,
    negatives=5,
    subsample=1e-4,
    pooling="sif",
    sif_smoothing=1e-3,
):
    """A skip-gram word2vec model whose encoder averages a text's word vectors.

    Args:
      vocab_size: words in the vocabulary (padding and the unknown word included).
      sequence_length: tokens read per text (longer texts are cut).
      embedding_dim: size of the word vectors, the encoder's features.
      window: context words on each side of a word.
      negatives: negative words per word.
      subsample: frequent-word subsampling threshold (0: off).
      pooling: "sif" weighs each word by a / (a + p(w)), p(w) its frequency in the texts `adapt`
        reads (frequent words count less); "mean" weighs all alike.
      sif_smoothing: the a of "sif" pooling.

    Returns:
      A `Word2Vec` model with the sub-model "encoder" (texts -> features).
    """
    inputs, ids = text.text_input(vocab_size, sequence_length)
    vectors = layers.Embedding(
        int(vocab_size),
        int(embedding_dim),
        embeddings_initializer=keras.initializers.RandomUniform(-0.5 / embedding_dim, 0.5 / embedding_dim),
        name="word_vectors",
    )(ids)
    if pooling == "sif":
        if not 0 < float(sif_smoothing) < 1:
            raise ZooError(f"sif_smoothing={sif_smoothing}: must be in (0, 1), e.g. 1e-3")
        pooled = text.WeightedMean(int(vocab_size), float(sif_smoothing), name="mean")(vectors, ids)
    elif pooling == "mean":
        pooled = text.MaskedMean(name="mean")(vectors, ids)
    else:
        raise ZooError(f"pooling={pooling!r}: must be 'sif' (smooth inverse frequency weights) or 'mean'")
    features = float32_output(pooled, name="features")
    encoder = keras.Model(inputs, features, name="encoder")
    return Word2Vec(encoder, window=window, negatives=negatives, subsample=subsample, name="word2vec")
