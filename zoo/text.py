"""Building blocks of the text families: strings in, the vocabulary inside the model.

A text model's encoder takes a batch of raw `tf.string` texts. Its first layer, "vectorize", is a
`TextVectorization` (lower case, punctuation stripped, split on whitespace, the `vocab_size` most
frequent words, `sequence_length` tokens per text: longer texts are cut, shorter ones padded with 0;
1 is the out-of-vocabulary token). The vocabulary is fitted on the pretraining texts by the model's
`adapt`, before training, and saved with the model, so the exported encoder tokenises as it was
trained and no consumer can tokenise differently (as the image encoders hold their scaling).
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from zoo.errors import ZooError

PAD, OOV = 0, 1  # TextVectorization's reserved ids: padding and out-of-vocabulary words
MAX_VOCAB_SIZE = 1_000_000
MAX_SEQUENCE_LENGTH = 4096


def check_text_sizes(vocab_size, sequence_length):
    """One line for a vocabulary size or sequence length out of range."""
    if not 3 <= int(vocab_size) <= MAX_VOCAB_SIZE:
        raise ZooError(
            f"vocab_size={vocab_size}: must be in [3, {MAX_VOCAB_SIZE:,}] "
            "(padding, the unknown word, and at least one word)"
        )
    if not 2 <= int(sequence_length) <= MAX_SEQUENCE_LENGTH:
        raise ZooError(f"sequence_length={sequence_length}: must be in [2, {MAX_SEQUENCE_LENGTH}] tokens per text")


def text_input(vocab_size, sequence_length, name="texts"):
    """A batch-of-strings input and its token ids, (batch, sequence_length) int64."""
    check_text_sizes(vocab_size, sequence_length)
    inputs = keras.Input(shape=(), dtype="string", name=name)
    vectorize = layers.TextVectorization(
        max_tokens=int(vocab_size),
        output_sequence_length=int(sequence_length),
        standardize="lower_and_strip_punctuation",
        split="whitespace",
        name="vectorize",
    )
    return inputs, vectorize(inputs)


def vectorizer(encoder):
    """The "vectorize" layer of a text encoder."""
    return encoder.get_layer("vectorize")


def adapt_vocabulary(encoder, texts):
    """Fit the encoder's vocabulary on `texts` (a tf.data.Dataset of string batches, or an array).
    Unlabelled texts only: the vocabulary is part of what pretraining learns."""
    layer = vectorizer(encoder)
    layer.adapt(texts)
    # A word holding a character that splits lines ("\u2028", "\x85", ...) would not survive the
    # vocabulary file the saved model keeps it in: leave such words out (they become unknown words).
    vocabulary = layer.get_vocabulary()
    kept = [w for w in vocabulary[2:] if len(w.splitlines()) == 1 and w.strip()]
    if len(kept) < len(vocabulary) - 2:
        layer.set_vocabulary(vocabulary[:2] + kept)


def token_ids(encoder, texts):
    """The token ids the encoder reads for `texts`, (n, sequence_length) int64."""
    return vectorizer(encoder)(texts)


def is_text_model(model):
    """Whether `model` (an encoder, or a model with an "encoder") takes strings."""
    encoder = model.get_layer("encoder") if any(l.name == "encoder" for l in model.layers) else model
    return encoder.inputs[0].dtype == "string"


def _weighted_average(vectors, weights, floor):
    """(batch, length, dim) vectors averaged over length with (batch, length) weights, in float32; a
    text whose weights sum below `floor` (none of its tokens count) gives zeros."""
    total = ops.sum(ops.cast(vectors, "float32") * weights[..., None], axis=1)
    return total / ops.maximum(ops.sum(weights, axis=1)[..., None], floor)


@keras.saving.register_keras_serializable(package="zoo")
class MaskedMean(layers.Layer):
    """(vectors (batch, length, dim), token ids (batch, length)) -> the mean vector of each text's words,
    padding and out-of-vocabulary tokens left out (a text of none of them gives zeros). Float32."""

    def call(self, vectors, ids):
        return _weighted_average(vectors, ops.cast(ops.greater(ids, OOV), "float32"), 1.0)

    def compute_output_shape(self, vectors_shape, ids_shape=None):
        return (vectors_shape[0], vectors_shape[-1])


@keras.saving.register_keras_serializable(package="zoo")
class WeightedMean(layers.Layer):
    """(vectors (batch, length, dim), token ids (batch, length)) -> each text's weighted mean word
    vector, word w weighing a / (a + p(w)), p(w) its frequency in the pretraining texts and a the
    `smoothing` (smooth inverse frequency, SIF: Arora et al. 2017): frequent words ("the", "movie")
    count less than rare, telling ones. Padding and out-of-vocabulary tokens are left out. The weights
    are a non-trainable weight of the layer, set from word counts by `set_counts` (the model's
    `adapt`), so they are saved with it; until then every word weighs 1 (a plain mean). Float32."""

    def __init__(self, vocab_size, smoothing=1e-3, **kwargs):
        kwargs["dtype"] = "float32"  # weights near 1e-3 and their sums: no bfloat16 here
        super().__init__(**kwargs)
        self.vocab_size, self.smoothing = int(vocab_size), float(smoothing)
        self.word_weights = self.add_weight(
            shape=(self.vocab_size,), initializer="ones", trainable=False, name="word_weights"
        )

    def set_counts(self, counts, total=None):
        """Set each word's weight from `counts` (occurrences per id in the pretraining texts;
        padding and the unknown word are not counted); p(w) is a count over `total` (default: the
        sum of `counts`; with word pairs among the ids, the number of words)."""
        given = np.asarray(counts, np.float64)[: self.vocab_size]
        counts = np.zeros(self.vocab_size)
        counts[: len(given)] = given
        counts[[PAD, OOV]] = 0
        frequency = counts / max(counts.sum() if total is None else float(total), 1.0)
        self.word_weights.assign((self.smoothing / (self.smoothing + frequency)).astype("float32"))

    def call(self, vectors, ids):
        weights = ops.cast(ops.greater(ids, OOV), "float32") * ops.take(self.word_weights, ids)
        return _weighted_average(vectors, weights, 1e-6)

    def compute_output_shape(self, vectors_shape, ids_shape=None):
        return (vectors_shape[0], vectors_shape[-1])

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "smoothing": self.smoothing}


@keras.saving.register_keras_serializable(package="zoo")
class WordPairs(layers.Layer):
    """Word ids (batch, length) -> the same ids followed by the ids of their adjacent word pairs,
    (batch, 2 * length - 1): one bag of words and word pairs, read by one Embedding of
    `vocab_size + pairs` rows (the bigrams of fastText, Joulin et al. 2017; word2vec's phrases). A
    pair of the layer's pair vocabulary (the `pairs` most frequent pairs of the pretraining texts,
    set by `set_pairs`) reads as `vocab_size` + its place in it; any other pair, and a pair holding
    padding or an unknown word, reads as padding (0). The vocabulary is a non-trainable int64 weight
    (each pair as first id * vocab_size + second id, sorted; -1 an empty place, empty places first), so
    it is saved with the model and serves inside a SavedModel."""

    def __init__(self, vocab_size, pairs, **kwargs):
        super().__init__(**kwargs)
        self.vocab_size, self.pairs = int(vocab_size), int(pairs)
        self.keys = self.add_weight(
            shape=(self.pairs,),
            dtype="int64",
            initializer=keras.initializers.Constant(-1),
            trainable=False,
            name="pair_keys",
        )

    def set_pairs(self, pairs):
        """Set the pair vocabulary: `pairs`, an (n, 2) array of (first, second) word ids, n at most
        the layer's `pairs` (rows with a negative id are left out)."""
        pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
        pairs = pairs[(pairs >= 0).all(axis=1)]
        keys = np.unique(pairs[:, 0] * self.vocab_size + pairs[:, 1])
        if len(keys) > self.pairs:
            raise ValueError(f"{len(keys)} word pairs given, the layer holds {self.pairs}")
        self.keys.assign(np.concatenate([np.full(self.pairs - len(keys), -1, np.int64), keys]))

    def id_pairs(self):
        """The pair vocabulary as a (pairs, 2) array of (first, second) word ids, in place order;
        (-1, -1) for an empty place. Sorted as the places are, whatever the vocabulary size."""
        keys = np.asarray(self.keys, np.int64)
        return np.where(keys[:, None] >= 0, np.stack([keys // self.vocab_size, keys % self.vocab_size], 1), -1)

    def pair_names(self, vocabulary):
        """The name of each place of the pair vocabulary, "first_second" ("" for an empty place)."""
        return [f"{vocabulary[a]}_{vocabulary[b]}" if a >= 0 else "" for a, b in self.id_pairs().tolist()]

    def call(self, ids):
        ids = ops.cast(ids, "int64")
        first, second = ids[:, :-1], ids[:, 1:]
        keys = first * self.vocab_size + second
        flat = ops.reshape(keys, (-1,))
        place = ops.minimum(ops.searchsorted(self.keys, flat, side="left"), self.pairs - 1)
        found = ops.logical_and(
            ops.equal(ops.take(self.keys, place), flat),
            ops.reshape(ops.greater(first, OOV) & ops.greater(second, OOV), (-1,)),
        )
        pair_ids = ops.reshape(ops.where(found, ops.cast(place, "int64") + self.vocab_size, 0), ops.shape(keys))
        return ops.concatenate([ids, pair_ids], axis=1)

    def compute_output_shape(self, input_shape):
        length = input_shape[1]
        return (input_shape[0], None if length is None else 2 * length - 1)

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "pairs": self.pairs}


def word_pairs(encoder):
    """The `WordPairs` layer of a text encoder, or None."""
    found = [l for l in encoder.layers if isinstance(l, WordPairs)]
    return found[0] if found else None


def token_names(encoder):
    """The name of each row of a text encoder's word vectors: its vocabulary, then (with word pairs)
    each pair as "first_second"; "" for a row no token reads."""
    vocabulary = vectorizer(encoder).get_vocabulary()
    pairs = word_pairs(encoder)
    if pairs is None:
        return vocabulary
    return vocabulary + [""] * (pairs.vocab_size - len(vocabulary)) + pairs.pair_names(vocabulary)


def pair_keys(ids, vocab_size):
    """The keys (first * vocab_size + second) of the adjacent pairs of known words in `ids`
    (n, length), as a 1-D int64 array: what `WordPairs` looks up."""
    ids = np.asarray(ids, np.int64)
    first, second = ids[:, :-1], ids[:, 1:]
    keep = (first > OOV) & (second > OOV)
    return first[keep] * int(vocab_size) + second[keep]


def tokenisation(encoder):
    """What a text encoder's pretraining fitted on unlabelled texts, labels never read: its vocabulary,
    its word pairs where it has them (`WordPairs`) and, where it pools with `WeightedMean`, its word
    weights. An encoder trained from scratch beside
    it shares them (`set_tokenisation`), so the two differ by their trained weights alone."""
    found = {"vocabulary": vectorizer(encoder).get_vocabulary()}
    pairs = word_pairs(encoder)
    if pairs is not None:
        found["word_pairs"] = pairs.id_pairs()
    pooling = [l for l in encoder.layers if isinstance(l, WeightedMean)]
    if pooling:
        weights = np.asarray(pooling[0].word_weights, np.float32)
        found["word_weights"] = weights[: len(found["vocabulary"])]
        if pairs is not None:
            found["pair_weights"] = weights[pairs.vocab_size :]
    return found


def set_tokenisation(encoder, found):
    """Give `encoder` the vocabulary, the word pairs (where it has room for them) and the word weights
    (where both pool with `WeightedMean`) of `tokenisation(...)`; an encoder whose source has no word
    weights keeps a plain mean, one whose source has no word pairs reads none."""
    vectorizer(encoder).set_vocabulary(found["vocabulary"])
    pairs, found_pairs = word_pairs(encoder), found.get("word_pairs")
    if pairs is not None and found_pairs is not None:
        pairs.set_pairs(found_pairs)
    weights = found.get("word_weights")
    for layer in encoder.layers:
        if isinstance(layer, WeightedMean) and weights is not None:
            kept = np.ones(layer.vocab_size, np.float32)  # ids past the vocabulary never occur
            n = min(len(weights), layer.vocab_size)
            kept[:n] = weights[:n]
            pair_weights = found.get("pair_weights")
            if pairs is not None and found_pairs is not None and pair_weights is not None:
                # The pairs fill the last places of both (empty places come first).
                n = int((np.asarray(found_pairs) >= 0).all(axis=1).sum())
                end = pairs.vocab_size + pairs.pairs
                kept[end - n : end] = pair_weights[len(pair_weights) - n :]
            layer.word_weights.assign(kept)


@keras.saving.register_keras_serializable(package="zoo")
class TokenAndPositionEmbedding(layers.Layer):
    """Token ids -> token embedding + learned position embedding. `input_dim` counts every id the
    layer takes (the vocabulary and any special ids, such as a [MASK] id)."""

    def __init__(self, input_dim, sequence_length, output_dim, **kwargs):
        super().__init__(**kwargs)
        self.input_dim, self.sequence_length, self.output_dim = int(input_dim), int(sequence_length), int(output_dim)
        # The inner layers take this layer's dtype policy: a model saved under mixed precision and
        # loaded under another global policy computes as it was trained.
        self.tokens = layers.Embedding(self.input_dim, self.output_dim, dtype=self.dtype_policy, name="tokens")
        self.positions = layers.Embedding(
            self.sequence_length, self.output_dim, dtype=self.dtype_policy, name="positions"
        )

    def build(self, input_shape):
        self.tokens.build(input_shape)
        self.positions.build((self.sequence_length,))
        self.built = True

    def call(self, ids):
        return self.tokens(ids) + self.positions(ops.arange(ops.shape(ids)[-1]))[None]

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.output_dim)

    def get_config(self):
        return {
            **super().get_config(),
            "input_dim": self.input_dim,
            "sequence_length": self.sequence_length,
            "output_dim": self.output_dim,
        }


@keras.saving.register_keras_serializable(package="zoo")
class TransformerBlock(layers.Layer):
    """A Transformer encoder block (pre-LayerNorm, as small models train more steadily with it):
    x + attention(norm(x)), then x + MLP(norm(x)); padding (id 0) is never attended to."""

    def __init__(self, num_heads, intermediate_dim, dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        self.num_heads, self.intermediate_dim, self.dropout = int(num_heads), int(intermediate_dim), float(dropout)

    def build(self, x_shape, ids_shape=None):
        input_shape = tuple(x_shape)
        dim = int(input_shape[-1])
        if dim % self.num_heads:
            raise ZooError(f"hidden_dim={dim} must be a multiple of num_heads={self.num_heads}")
        policy = dict(dtype=self.dtype_policy)  # as TokenAndPositionEmbedding's inner layers
        self.norm1 = layers.LayerNormalization(epsilon=1e-6, name="norm1", **policy)
        self.attention = layers.MultiHeadAttention(
            self.num_heads, dim // self.num_heads, dropout=self.dropout, name="attention", **policy
        )
        self.norm2 = layers.LayerNormalization(epsilon=1e-6, name="norm2", **policy)
        self.dense1 = layers.Dense(self.intermediate_dim, activation="gelu", name="mlp_dense1", **policy)
        self.dense2 = layers.Dense(dim, name="mlp_dense2", **policy)
        self.drop = layers.Dropout(self.dropout, name="dropout", **policy)
        self.norm1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.norm2.build(input_shape)
        self.dense1.build(input_shape)
        self.dense2.build((*input_shape[:-1], self.intermediate_dim))
        self.built = True

    def call(self, x, ids, training=False):
        keep = ops.not_equal(ids, PAD)
        mask = ops.logical_and(keep[:, None, :], keep[:, :, None])
        h = self.norm1(x)
        x = x + self.drop(self.attention(h, h, attention_mask=mask, training=training), training=training)
        h = self.dense2(self.dense1(self.norm2(x)))
        return x + self.drop(h, training=training)

    def compute_output_shape(self, x_shape, ids_shape=None):
        return x_shape

    def get_config(self):
        return {
            **super().get_config(),
            "num_heads": self.num_heads,
            "intermediate_dim": self.intermediate_dim,
            "dropout": self.dropout,
        }


def nearest_words(encoder, embeddings, words, k=5):
    """{word: [(neighbour, cosine similarity), ...]}: the `k` words of the vocabulary whose rows of
    `embeddings` (vocab_size x dim) are most similar to each of `words` (skipped if unknown)."""
    vocabulary = vectorizer(encoder).get_vocabulary()
    index = {w: i for i, w in enumerate(vocabulary)}
    embeddings = np.asarray(embeddings, np.float64)[: len(vocabulary)]  # a small corpus fills fewer rows
    unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
    found = {}
    for word in words:
        i = index.get(word)
        if i is None or i <= OOV:
            continue
        similarity = unit @ unit[i]
        similarity[[PAD, OOV, i]] = -np.inf
        best = np.argsort(-similarity)[: min(k, len(vocabulary) - 3)]
        found[word] = [(vocabulary[j], float(similarity[j])) for j in best]
    return found


def texts_dataset(texts, batch_size=1024):
    """An array or list of texts as a tf.data.Dataset of string batches (what `adapt` reads)."""
    encoded = [t.encode("utf-8") if isinstance(t, str) else bytes(t) for t in texts]
    return tf.data.Dataset.from_tensor_slices(tf.constant(encoded, tf.string)).batch(batch_size)
