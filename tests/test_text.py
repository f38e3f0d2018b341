"""The text families' own promises, beyond the contract tests every recipe and model passes (which
reload the string-in encoders and transfer them to a text folder): the word vectors in word2vec's
text format, masked-word predictions, the TF-IDF reference column, the scratch column's vocabulary,
and one line for a dataset or encoder of the other kind."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import RECIPES, build, example_texts, on_run_of

import zoo
from recipes import flow, transfer
from recipes.config import TextRecipeConfig
from recipes.data import load_data
from zoo.errors import ZooError


@on_run_of("word2vec")
def test_word2vec_writes_its_vectors_in_word2vec_text_format(finished_run):
    config, _ = finished_run("word2vec")
    with open(os.path.join(config.model_dir, "vectors.txt"), encoding="utf-8") as f:
        header, *rows = f.read().splitlines()
    count, dim = map(int, header.split())
    encoder = zoo.load_encoder(config.model_dir)
    vocabulary = zoo.text.vectorizer(encoder).get_vocabulary()
    pairs = [f"{vocabulary[a]}_{vocabulary[b]}" for a, b in zoo.text.word_pairs(encoder).id_pairs().tolist() if a >= 0]
    assert pairs  # the smoke corpus repeats some pairs of words
    assert count == len(rows) == len(vocabulary) - 2 + len(pairs) and dim == encoder.output_shape[-1]
    words = [r.split(" ")[0] for r in rows]
    # Padding and the unknown word left out, the words in the vocabulary's order, then the word pairs.
    assert words == vocabulary[2:] + pairs
    first = np.array(rows[0].split(" ")[1:], np.float32)
    vectors = np.asarray(encoder.get_layer("word_vectors").embeddings)
    np.testing.assert_allclose(first, vectors[2], rtol=1e-4, atol=1e-6)
    # The encoder's features of a one-word text are that word's vector.
    np.testing.assert_allclose(encoder(np.array([words[0]], dtype=object))[0], vectors[2], rtol=1e-4, atol=1e-6)
    assert os.path.isfile(os.path.join(config.model_dir, "figures", "neighbours.png"))


def test_sif_pooling_weighs_each_word_by_its_smooth_inverse_frequency():
    vectors = np.arange(24, dtype=np.float32).reshape(1, 4, 6) % 7  # 4 tokens, 6-d
    ids = np.array([[2, 3, 3, 0]])  # two words, the second twice, then padding
    pooling = zoo.text.WeightedMean(vocab_size=5, smoothing=0.1)
    np.testing.assert_allclose(pooling(vectors, ids), zoo.text.MaskedMean()(vectors, ids), rtol=1e-6)  # no counts yet
    pooling.set_counts([9, 9, 6, 3, 1])  # padding and the unknown word are not counted: p = 0.6, 0.3, 0.1
    weights = np.array([0.1 / 0.7, 0.1 / 0.4, 0.1 / 0.4])
    expected = (weights[:, None] * vectors[0, :3]).sum(0) / weights.sum()
    np.testing.assert_allclose(pooling(vectors, ids)[0], expected, rtol=1e-5)
    assert np.asarray(pooling.word_weights)[[0, 1]].tolist() == [1.0, 1.0]  # never read: ids 0 and 1 are left out


PAIR_TEXTS = ["not bad at all", "not good", "a good film", "not bad", "a bad film", "good film"] * 3 + ["bad good"]


def pair_model(**changes):
    model = zoo.build_model("word2vec_tiny", **{"pairs": 4, "subsample": 0.0, **changes})
    model.adapt(np.array(PAIR_TEXTS, dtype=object))
    return model


def test_word_pairs_keep_the_most_frequent_pairs_and_read_them_after_the_words():
    # "not bad" and "good film" occur 6 times, six other pairs 3 times, "bad good" once.
    assert sorted(zoo.text.token_names(pair_model(pairs=2).get_layer("encoder"))[200:]) == ["good_film", "not_bad"]
    model = pair_model(pairs=10)
    encoder = model.get_layer("encoder")
    names = zoo.text.token_names(encoder)
    expected = ["a_bad", "a_good", "at_all", "bad_at", "bad_film", "good_film", "not_bad", "not_good"]
    assert names[200:202] == ["", ""] and sorted(names[202:]) == expected  # a pair seen once is not kept
    ids = np.asarray(zoo.text.token_ids(encoder, np.array(["not bad unseenword film", "good film"], dtype=object)))
    tokens = np.asarray(encoder.get_layer("pairs")(ids))
    assert tokens.shape == (2, 2 * 16 - 1)
    np.testing.assert_array_equal(tokens[:, :16], ids)  # the words first, as they were
    assert names[tokens[0, 16]] == "not_bad" and names[tokens[1, 16]] == "good_film"
    assert tokens[0, 17] == tokens[0, 18] == 0  # a pair with an unknown word reads as padding
    assert (tokens[:, 19:] == 0).all()  # as do pairs of padding
    counts = np.asarray(model.counts)
    assert counts[tokens[0, 16]] == 6 and counts.shape == (200 + 10,) and counts[200:202].tolist() == [0, 0]
    # The pair weights follow their counts as the word weights do, over the number of words.
    weights = np.asarray(encoder.get_layer("mean").word_weights)
    words = counts[:200].sum()
    np.testing.assert_allclose(weights[tokens[0, 16]], 1e-3 / (1e-3 + 6 / words), rtol=1e-5)


def test_word_pair_vectors_are_pretrained_and_travel_with_the_tokenisation(tmp_path):
    model = pair_model(pairs=8)
    encoder = model.get_layer("encoder")
    before = np.asarray(encoder.get_layer("word_vectors").embeddings).copy()
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(zoo.text.texts_dataset(PAIR_TEXTS, 8), epochs=2, verbose=0)
    after = np.asarray(encoder.get_layer("word_vectors").embeddings)
    assert not np.allclose(before[200:], after[200:])  # the pairs' own vectors learnt
    model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras").get_layer("encoder")
    texts = np.array(["not bad at all", "a good film"], dtype=object)
    np.testing.assert_allclose(reloaded(texts), encoder(texts), rtol=1e-6)
    # A scratch or student encoder with a vocabulary of its own size reads the same pairs, weighed alike.
    tokens = zoo.text.tokenisation(encoder)
    fresh = zoo.build_model("word2vec_tiny", vocab_size=len(tokens["vocabulary"]), pairs=8).get_layer("encoder")
    zoo.text.set_tokenisation(fresh, tokens)
    names = zoo.text.token_names(fresh)
    read = np.asarray(fresh.get_layer("pairs")(zoo.text.token_ids(fresh, texts)))[:, 16]
    assert [names[i] for i in read] == ["not_bad", "a_good"]
    np.testing.assert_array_equal(zoo.text.tokenisation(fresh)["pair_weights"], tokens["pair_weights"])


@on_run_of("masked_lm")
def test_masked_lm_fills_in_masks_from_its_artifact(finished_run):
    config, metrics = finished_run("masked_lm")
    model = keras.saving.load_model(os.path.join(config.model_dir, "model.keras"))
    found = model.fill_in(["the film was [mask]", "[mask] movie - and [mask]. plot"], k=3)
    assert [len(f) for f in found] == [1, 2] and [p for p, _ in found[1]] == [0, 3]  # "-" is no token
    vocabulary = set(zoo.text.vectorizer(model.get_layer("encoder")).get_vocabulary())
    assert all(len(words) == 3 and {w for w, _ in words} <= vocabulary for f in found for _, words in f)
    assert 0 <= metrics["pretrain"]["eval_masked_accuracy"] <= 1
    assert os.path.isfile(os.path.join(config.model_dir, "figures", "fill_in.png"))


@pytest.mark.parametrize("family", [pytest.param(f, marks=on_run_of(f)) for f in ("word2vec", "masked_lm")])
def test_text_table_has_the_tfidf_reference(family, finished_run):
    _, metrics = finished_run(family)
    for row in metrics["transfer"]:
        assert row["reference_model"] == "tfidf_logreg" and 0 <= row["reference"] <= 1
        assert "TF-IDF reference" in flow.verdict(row)


@on_run_of("word2vec")
def test_the_scratch_column_tokenises_like_the_pretrained_encoder(finished_run):
    """recipes.transfer and the recipes rebuild the architecture from random weights with the
    pretrained vocabulary and word weights: the scratch and pretrained encoders read the same token
    ids and weigh them alike."""
    config, _ = finished_run("word2vec")
    pretrained = zoo.load_encoder(config.model_dir)
    tokens = flow.tokenisation(pretrained)
    scratch = flow.fresh_encoder(config.model, zoo.read_manifest(config.model_dir)["model_config"], tokens)
    texts = example_texts(4)
    np.testing.assert_array_equal(zoo.text.token_ids(scratch, texts), zoo.text.token_ids(pretrained, texts))
    np.testing.assert_array_equal(flow.tokenisation(scratch)["word_weights"], tokens["word_weights"])
    assert not np.allclose(scratch(texts), pretrained(texts))  # the weights are not the pretrained ones
    assert len(tokens["vocabulary"]) > 2  # the smoke corpus filled a vocabulary
    # The word weights came from the pretraining texts' counts and were saved: frequent words weigh less.
    weights = tokens["word_weights"][2 : len(tokens["vocabulary"])]
    assert weights.min() < weights.max() <= 1.0 and weights[0] == weights.min()  # id 2 is the most frequent word


@on_run_of("word2vec")
def test_a_text_encoder_on_images_is_one_line(finished_run, tfds_dir, tmp_path):
    config, _ = finished_run("word2vec")
    with pytest.raises(ZooError, match="--dataset=uci_digits holds images, but the encoder of --encoder_dir=") as err:
        transfer.run(transfer.Config(encoder_dir=config.model_dir, data_dir=tfds_dir, model_dir=str(tmp_path / "o")))
    assert "\n" not in str(err.value) and not os.path.exists(tmp_path / "o")


@pytest.mark.parametrize(
    "family, changes, message",
    [
        ("word2vec", dict(dataset="uci_digits"), "--dataset=uci_digits holds images, but word2vec"),
        ("masked_lm", dict(augment=True), "--augment: random translation"),
        ("word2vec", dict(vocab_size=2), "--vocab_size=2: must be 3 or more"),
        ("word2vec", dict(pooling="max"), "--pooling=max: must be one of sif, mean"),
        ("word2vec", dict(sif_smoothing=1.0), r"--sif_smoothing=1.0: must be in \(0, 1\)"),
        ("word2vec", dict(pairs=-1), "--pairs=-1: must be 0 or more"),
        ("masked_lm", dict(sequence_length=5000), "--sequence_length=5000: must be at most 4096"),
        ("masked_lm", dict(hidden_dim=6, num_heads=4), "--hidden_dim=6: must be a multiple of --num_heads=4"),
        ("word2vec", dict(unlabelled_split="unsup"), "--unlabelled_split=unsup: not a split of text_folder"),
        ("word2vec", dict(dataset="imdb_local", manual_dir=""), "--dataset=imdb_local needs --manual_dir"),
    ],
)
def test_text_bad_input_is_one_line_and_writes_nothing(family, changes, message, smoke, tmp_path):
    config = smoke(family, model_dir=str(tmp_path / "out"), **changes)
    with pytest.raises(ZooError, match=message) as err:
        RECIPES[family].run(config)
    assert "\n" not in str(err.value)
    assert os.listdir(tmp_path) == []


def test_text_data_reads_strings_and_the_unlabelled_split_without_labels(text_dir, tfds_dir):
    data = load_data(TextRecipeConfig(dataset="text_folder", manual_dir=text_dir, data_dir=tfds_dir))
    assert data.kind == "texts" and data.image_shape is None and data.class_names == ["neg", "pos"]
    assert data.eval_inputs.dtype == object and isinstance(data.eval_inputs[0], bytes)
    assert data.input_spec().dtype == tf.string and data.input_manifest()["dtype"] == "string"
    assert data.unlabelled_split == "" and data.num_pretrain == data.num_train == 80
    texts = np.concatenate(list(data.pretrain_inputs(batch_size=16).as_numpy_iterator()))
    assert len(texts) == 80 and texts.dtype == object  # texts only: no label goes with them
    draws = data.labelled_subsets((10,), (0,))
    inputs, labels = draws[(10, 0)]
    assert len(inputs) == 10 and np.bincount(labels).tolist() == [5, 5]


@pytest.mark.parametrize("name", ["word2vec_tiny", "masked_lm_tiny"])
def test_a_text_model_saved_in_bfloat16_computes_the_same_when_loaded_under_float32(name, tmp_path):
    """Layers built inside the zoo's own layers take the outer layer's dtype policy: a model trained
    under mixed_bfloat16 reloads, under the default float32 policy, into the same computation."""
    with flow.precision("mixed_bfloat16"):
        model = build(name)
        texts = example_texts(4)
        expected = np.asarray(model.get_layer("encoder")(texts))
        model.save(tmp_path / "model.keras")
    reloaded = keras.saving.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(reloaded.get_layer("encoder")(texts), expected, rtol=1e-2, atol=1e-3)
    assert np.asarray(reloaded.get_layer("encoder")(texts)).dtype == np.float32
    if name.startswith("masked_lm"):
        assert len(reloaded.fill_in(["the [mask] film"])[0]) == 1
