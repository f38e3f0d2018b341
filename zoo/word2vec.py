"""Word embeddings: skip-gram with negative sampling (word2vec, Mikolov et al. 2013).

Each word of a text learns to predict the words within `window` positions of it: the dot product
of its word vector with a context word's vector should be high, and low with `negatives` words
drawn from the unigram distribution raised to the 3/4 (the paper's choice). Frequent words are
randomly left out of the pairs (the paper's subsampling, threshold `subsample`). The model is a
`Word2Vec`: a registered `keras.Model` that trains with plain `fit` on batches of raw texts (no
labels) and makes its pairs inside `train_step`, from the token ids of the encoder's own
vocabulary. With `pairs`, the most frequent pairs of adjacent words ("not bad") are tokens too,
each with a vector of its own that predicts the words around the pair (`text.WordPairs`). Its
sub-model "encoder" maps texts to the mean of their words' (and word pairs') vectors, each
weighted by its smooth inverse frequency in the pretraining texts (`pooling="sif"`, the default:
a / (a + p(w)), Arora et al. 2017) or all alike (`pooling="mean"`); the context vectors are used
only in training. Call `adapt(texts)` before `fit`: it fits the vocabulary, picks the word pairs and
counts both (the sampling distributions and the word weights).

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
        rows, dim = encoder.get_layer("word_vectors").embeddings.shape  # the words, then any word pairs
        pairs = text.word_pairs(encoder)
        self.words = pairs.vocab_size if pairs is not None else rows
        self.context_vectors = self.add_weight(
            shape=(self.words, dim),
            # Random, as the word vectors: from zeros (the word2vec code's start) no gradient
            # reaches the word vectors in the first step.
            initializer=keras.initializers.RandomUniform(-0.5 / dim, 0.5 / dim),
            name="context_vectors",
            trainable=True,
        )
        # How often each id (word, then word pair) occurs in the pretraining texts (set by `adapt`): the
        # sampling distributions.
        self.counts = self.add_weight(shape=(rows,), initializer="ones", name="counts", trainable=False)
        self.built = True

    def call(self, texts, training=False):
        return self.encoder(texts, training=training)

    def adapt(self, texts):
        """Fit the vocabulary on `texts` (a dataset of string batches, or an array), then count each id;
        with word pairs, keep the most frequent pairs (seen at least twice) and count them too."""
        text.adapt_vocabulary(self.encoder, texts)
        if not isinstance(texts, tf.data.Dataset):
            texts = text.texts_dataset(texts)
        pairs = text.word_pairs(self.encoder)
        counts = np.zeros(self.counts.shape[0], np.float64)
        found = []  # (pair keys, their counts) per batch
        for batch in texts:
            ids = np.asarray(text.token_ids(self.encoder, batch))
            counts[: self.words] += np.bincount(ids.ravel(), minlength=self.words)[: self.words]
            if pairs is not None:
                found.append(np.unique(text.pair_keys(ids, pairs.vocab_size), return_counts=True))
        counts[[text.PAD, text.OOV]] = 0  # never a negative, never counted in the frequencies
        if pairs is not None:
            keys, inverse = np.unique(
                np.concatenate([k for k, _ in found] or [[]]).astype(np.int64), return_inverse=True
            )
            seen = np.bincount(inverse, weights=np.concatenate([n for _, n in found] or [[]]), minlength=len(keys))
            top = np.argsort(-seen, kind="stable")[: pairs.pairs]
            chosen = keys[top[seen[top] >= 2]]
            pairs.set_pairs(np.stack([chosen // pairs.vocab_size, chosen % pairs.vocab_size], 1))
            kept = np.asarray(pairs.keys)
            places = np.nonzero(kept >= 0)[0]
            counts[self.words + places] = seen[np.searchsorted(keys, kept[places])]
        self.counts.assign(counts.astype("float32"))
        pooling = self.encoder.get_layer("mean")
        if isinstance(pooling, text.WeightedMean):
            pooling.set_counts(counts, total=counts[: self.words].sum())

    def objective(self, texts, training=False):
        """(the mean loss over every (word, context word) pair of `texts` within the window, the share
        of (pair, negative word) comparisons the context word scored higher): skip-gram with negative
        sampling. With word pairs, each pair of adjacent words also predicts the words within the
        window before and after it (fastText's bigrams on the input side)."""
        ids = text.token_ids(self.encoder, texts)
        counts = ops.convert_to_tensor(self.counts)
        frequencies = counts / ops.maximum(ops.sum(counts[: self.words]), 1.0)
        embed = self.encoder.get_layer("word_vectors")

        def kept(token_ids):  # known tokens, frequent ones randomly left out (subsampling) in training
            valid = ops.greater(token_ids, text.OOV)
            if self.subsample and training:
                ratio = self.subsample / ops.maximum(ops.take(frequencies, token_ids), 1e-12)
                keep = ops.sqrt(ratio) + ratio  # as the word2vec code computes it
                valid = ops.logical_and(valid, tf.random.uniform(ops.shape(token_ids)) < keep)
            return ops.cast(valid, "float32")

        valid = kept(ids)
        vectors = ops.cast(embed(ids), "float32")  # (batch, length, dim)
        context_table = ops.cast(self.context_vectors, "float32")
        contexts = ops.take(context_table, ids, axis=0)
        # Negatives: `negatives` words per word, drawn from counts ** 0.75 (by inverting its cumulative
        # distribution), shared by the word's pairs (and by the word pair starting there).
        word_counts = counts[: self.words]
        weights = ops.where(word_counts > 0, ops.power(ops.maximum(word_counts, 1.0), 0.75), 0.0)
        cumulative = ops.cumsum(weights) / ops.sum(weights)
        shape = ops.shape(ids)
        uniform = tf.random.uniform((shape[0] * shape[1] * self.negatives,))
        drawn = ops.reshape(tf.searchsorted(cumulative, uniform, side="right"), (shape[0], shape[1], self.negatives))
        negative_vectors = ops.take(
            context_table, ops.minimum(drawn, self.words - 1), axis=0
        )  # (batch, length, k, dim)
        loss, wins, pairs = self._terms(vectors, valid, negative_vectors, contexts, valid, ahead=0)
        word_pairs = text.word_pairs(self.encoder)
        if word_pairs is not None:
            pair_ids = word_pairs(ids)[:, ids.shape[1] :]  # the pair of words i and i + 1 at place i
            more = self._terms(
                ops.cast(embed(pair_ids), "float32"), kept(pair_ids), negative_vectors[:, :-1], contexts, valid, ahead=1
            )
            loss, wins, pairs = loss + more[0], wins + more[1], pairs + more[2]
        pairs = ops.maximum(pairs, 1.0)
        return loss / pairs, wins / (pairs * self.negatives)

    def _terms(self, centres, centre_valid, negative_vectors, contexts, context_valid, ahead):
        """(summed loss, won comparisons, pairs) of skip-gram with negative sampling for the centre
        vectors (batch, m, dim) at places 0..m-1 of a text whose context vectors are `contexts`
        (batch, length, dim): centre i's context words are those at i - o and i + ahead + o, for o in
        1..window (ahead 0 for a word, 1 for a word pair). Each centre is compared with its
        `negative_vectors` (batch, m, k, dim)."""
        m, length = centres.shape[1], contexts.shape[1]
        negative_logits = ops.einsum("bmd,bmkd->bmk", centres, negative_vectors)
        count = ops.zeros_like(centre_valid)  # count[b, i]: the pairs centre i is in
        loss, wins = 0.0, 0.0  # wins: (pair, negative) comparisons the pair's context word won
        for offset in range(1, self.window + 1):
            for first, at, n in ((0, ahead + offset, min(m, length - ahead - offset)), (offset, 0, m - offset)):
                if n <= 0:
                    continue  # a window wider than the text
                both = centre_valid[:, first : first + n] * context_valid[:, at : at + n]
                logits = ops.sum(centres[:, first : first + n] * contexts[:, at : at + n], axis=-1)
                loss += ops.sum(both * ops.softplus(-logits))
                beaten = ops.cast(logits[..., None] > negative_logits[:, first : first + n], "float32")
                wins += ops.sum(both[..., None] * beaten)
                count += ops.pad(both, [[0, 0], [first, m - first - n]])
        loss += ops.sum(count * ops.sum(ops.softplus(negative_logits), axis=-1))
        return loss, wins, ops.sum(count)

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
    its vector (what gensim's `KeyedVectors.load_word2vec_format` reads; word pairs as
    "first_second", as word2vec's phrases). Padding and the out-of-vocabulary token are left out."""
    rows = [(w, v) for w, v in zip(vocabulary, vectors) if w and w != "[UNK]" and " " not in w]
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{len(rows)} {vectors.shape[1]}\n")
        for word, vector in rows:
            f.write(word + " " + " ".join(f"{x:.6g}" for x in vector) + "\n")


@register("word2vec", family=FAMILY)
@register(
    "word2vec_tiny", family=FAMILY, tiny=True, vocab_size=200, sequence_length=16, embedding_dim=8, window=2, pairs=50
)
def word2vec(
    vocab_size=20000,
    sequence_length=512,
    embedding_dim=128,
    window=4,
    negatives=5,
    subsample=1e-4,
    pooling="sif",
    sif_smoothing=1e-3,
    pairs=100000,
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
      pairs: word pairs in the vocabulary (0: words alone): the `pairs` most frequent pairs of
        adjacent words in the texts `adapt` reads, each with its own vector, pretrained to predict
        the words around it and averaged with the words (see `text.WordPairs`).

    Returns:
      A `Word2Vec` model with the sub-model "encoder" (texts -> features).
    """
    if int(pairs) < 0:
        raise ZooError(f"pairs={pairs}: must be 0 (words alone) or more (word pairs in the vocabulary)")
    inputs, ids = text.text_input(vocab_size, sequence_length)
    rows = int(vocab_size) + int(pairs)
    tokens = text.WordPairs(int(vocab_size), int(pairs), name="pairs")(ids) if int(pairs) else ids
    vectors = layers.Embedding(
        rows,
        int(embedding_dim),
        embeddings_initializer=keras.initializers.RandomUniform(-0.5 / embedding_dim, 0.5 / embedding_dim),
        name="word_vectors",
    )(tokens)
    if pooling == "sif":
        if not 0 < float(sif_smoothing) < 1:
            raise ZooError(f"sif_smoothing={sif_smoothing}: must be in (0, 1), e.g. 1e-3")
        pooled = text.WeightedMean(rows, float(sif_smoothing), name="mean")(vectors, tokens)
    elif pooling == "mean":
        pooled = text.MaskedMean(name="mean")(vectors, tokens)
    else:
        raise ZooError(f"pooling={pooling!r}: must be 'sif' (smooth inverse frequency weights) or 'mean'")
    features = float32_output(pooled, name="features")
    encoder = keras.Model(inputs, features, name="encoder")
    return Word2Vec(encoder, window=window, negatives=negatives, subsample=subsample, name="word2vec")
