"""A small BERT-style Transformer encoder pretrained by masked language modelling (Devlin et al. 2019).

A `mask_rate` share of each text's words is chosen; of those, 80% are replaced by a [MASK] id, 10%
by a random word and 10% kept, and the model learns to predict the original words from the rest
of the text (BERT's recipe, without its next-sentence task, as RoBERTa drops it). The model is a
`MaskedLM`: a registered `keras.Model` that trains with plain `fit` on batches of raw texts (no
labels) and masks inside its `train_step`. Its sub-models:

- "encoder": texts -> features, the mean of the final states over the text's words; what transfers;
- "trunk" (inside the encoder): token ids -> final states (token + position embeddings, then
  `num_layers` Transformer blocks);
- "mlm_head": final states -> logits over the vocabulary, used only in pretraining.

Call `adapt(texts)` before `fit`: it fits the vocabulary.

Example:

    model = zoo.build_model("masked_lm", vocab_size=20000, num_layers=2)
    model.adapt(unlabelled_texts)
    model.compile(optimizer="adam")
    model.fit(unlabelled_texts, batch_size=64, epochs=5)
    model.fill_in(["a [mask] film"])        # the words it would put in place of [mask]
"""

import keras
import numpy as np
import tensorflow as tf
from keras import layers, ops

from zoo import text
from zoo.blocks import float32_output
from zoo.registry import register
from zoo.training import OwnObjective

FAMILY = "masked_lm"
MASK_WORD = "[mask]"  # what `fill_in` reads as a masked position (the vectorizer lower-cases text)


@keras.saving.register_keras_serializable(package="zoo")
class MaskedLM(OwnObjective):
    """Masked language modelling on the token ids of `encoder`'s vocabulary.

    Args:
      encoder: texts -> features, with layers "vectorize" and "trunk" (ids -> states).
      mlm_head: states -> logits over the vocabulary.
      mask_rate: share of each text's words chosen for prediction.
    """

    accuracy_name = "masked_accuracy"

    def __init__(self, encoder, mlm_head, mask_rate=0.15, **kwargs):
        super().__init__(**kwargs)
        if not 0 < mask_rate < 1:
            raise ValueError(f"mask_rate must be in (0, 1), got {mask_rate!r}")
        self.encoder, self.mlm_head, self.mask_rate = encoder, mlm_head, float(mask_rate)
        self.trunk = encoder.get_layer("trunk")
        self.vocab_size = int(mlm_head.output.shape[-1])
        self.mask_id = self.vocab_size  # one id past the vocabulary: the trunk's embedding has it
        self.built = True

    def call(self, texts, training=False):
        return self.encoder(texts, training=training)

    def adapt(self, texts):
        """Fit the vocabulary on `texts` (a dataset of string batches, or an array)."""
        text.adapt_vocabulary(self.encoder, texts)

    def corrupt(self, ids):
        """(ids with some words masked, which positions to predict): BERT's 80/10/10 corruption of a
        `mask_rate` share of the words (padding and unknown words are never chosen)."""
        words = ops.greater(ids, text.OOV)
        chosen = ops.logical_and(words, tf.random.uniform(ops.shape(ids)) < self.mask_rate)
        roll = tf.random.uniform(ops.shape(ids))
        random_words = tf.random.uniform(ops.shape(ids), text.OOV + 1, self.vocab_size, dtype=ids.dtype)
        corrupted = ops.where(ops.logical_and(chosen, roll < 0.8), ops.cast(self.mask_id, ids.dtype), ids)
        corrupted = ops.where(
            ops.logical_and(chosen, ops.logical_and(roll >= 0.8, roll < 0.9)), random_words, corrupted
        )
        return corrupted, chosen

    def objective(self, texts, training=False):
        """(cross-entropy of each chosen word, whether it was predicted right), float32."""
        ids = text.token_ids(self.encoder, texts)
        corrupted, chosen = self.corrupt(ids)
        states = self.trunk(corrupted, training=training)
        logits = ops.cast(self.mlm_head(tf.boolean_mask(states, chosen), training=training), "float32")
        targets = tf.boolean_mask(ids, chosen)
        losses = ops.sparse_categorical_crossentropy(targets, logits, from_logits=True)
        correct = ops.cast(ops.equal(ops.argmax(logits, axis=-1), targets), "float32")
        return losses, correct

    def fill_in(self, texts, k=5):
        """For each text, the `k` words the model ranks highest at each "[mask]" in it:
        [[(position, [(word, probability), ...]), ...], ...]."""
        vocabulary = text.vectorizer(self.encoder).get_vocabulary()
        ids = np.array(text.token_ids(self.encoder, np.asarray(texts, dtype=object)))
        for row, t in zip(ids, texts):
            words = str(t).split()
            # Where each word lands among the tokens: a word of punctuation alone yields none.
            yields = np.asarray(text.token_ids(self.encoder, np.array(words or [""], dtype=object)))[:, 0] != text.PAD
            positions = np.cumsum(yields) - 1
            masked = [p for w, y, p in zip(words, yields, positions) if y and w.lower().strip(".,!?;:") == MASK_WORD]
            row[[p for p in masked if p < len(row)]] = self.mask_id
        states = ops.reshape(self.trunk(ids), (-1, self.trunk.output.shape[-1]))
        probabilities = np.asarray(ops.softmax(ops.cast(self.mlm_head(states), "float32"), axis=-1))
        # Padding and the unknown word are never targets; a small corpus fills fewer ids than vocab_size.
        probabilities = probabilities.reshape(*ids.shape, -1)[..., : len(vocabulary)].copy()
        probabilities[..., [text.PAD, text.OOV]] = 0.0
        found = []
        for row, p in zip(ids, probabilities):
            positions = np.flatnonzero(row == self.mask_id)
            found.append(
                [(int(i), [(vocabulary[j], float(p[i, j])) for j in np.argsort(-p[i])[:k]]) for i in positions]
            )
        return found

    def get_config(self):
        return {
            **super().get_config(),
            "encoder": keras.saving.serialize_keras_object(self.encoder),
            "mlm_head": keras.saving.serialize_keras_object(self.mlm_head),
            "mask_rate": self.mask_rate,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("encoder", "mlm_head"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


@register("masked_lm", family=FAMILY)
@register(
    "masked_lm_tiny",
    family=FAMILY,
    tiny=True,
    vocab_size=200,
    sequence_length=16,
    hidden_dim=8,
    num_layers=1,
    num_heads=2,
    intermediate_dim=16,
)
def masked_lm(
    vocab_size=20000,
    sequence_length=128,
    hidden_dim=128,
    num_layers=2,
    num_heads=4,
    intermediate_dim=256,
    dropout=0.1,
    mask_rate=0.15,
):
    """A small BERT-style encoder for masked language modelling.

    Args:
      vocab_size: words in the vocabulary (padding and the unknown word included).
      sequence_length: tokens read per text (longer texts are cut).
      hidden_dim: width of the embeddings and states, the encoder's features.
      num_layers: Transformer blocks.
      num_heads: attention heads per block (hidden_dim must be a multiple).
      intermediate_dim: width of each block's MLP.
      dropout: dropout in the blocks.
      mask_rate: share of each text's words to predict.

    Returns:
      A `MaskedLM` model with the sub-models "encoder" (texts -> features, holding "trunk") and "mlm_head".
    """
    inputs, ids = text.text_input(vocab_size, sequence_length)
    token_ids = keras.Input(shape=(int(sequence_length),), dtype="int64", name="token_ids")
    x = text.TokenAndPositionEmbedding(int(vocab_size) + 1, sequence_length, hidden_dim, name="embedding")(token_ids)
    x = layers.LayerNormalization(epsilon=1e-6, name="embedding_norm")(x)
    x = layers.Dropout(dropout, name="embedding_dropout")(x)
    for i in range(int(num_layers)):
        x = text.TransformerBlock(num_heads, intermediate_dim, dropout, name=f"block{i}")(x, token_ids)
    states = layers.LayerNormalization(epsilon=1e-6, name="final_norm")(x)
    trunk = keras.Model(token_ids, states, name="trunk")
    features = float32_output(text.MaskedMean(name="mean")(trunk(ids), ids), name="features")
    encoder = keras.Model(inputs, features, name="encoder")

    head_input = keras.Input(shape=(int(hidden_dim),), name="states")
    h = layers.Dense(int(hidden_dim), activation="gelu", name="mlm_dense")(head_input)
    h = layers.LayerNormalization(epsilon=1e-6, name="mlm_norm")(h)
    logits = float32_output(layers.Dense(int(vocab_size), name="mlm_logits")(h), name="logits")
    mlm_head = keras.Model(head_input, logits, name="mlm_head")
    return MaskedLM(encoder, mlm_head, mask_rate=mask_rate, name="masked_lm")
