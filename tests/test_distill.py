"""Label distillation: the loss against hand-computed values, pseudo-labels that never read the pool's
labels, the recipe end to end on images (its student reloads the three ways and feeds
recipes.transfer) and on texts, and the bad input that stops it."""

import dataclasses
import json
import os
import types

import keras
import numpy as np
import pytest
from conftest import assert_encoder_reloads_frozen, example_texts, on_run_of
from test_transfer import TINY as TRANSFER_TINY

from recipes import distill, flow, transfer
from recipes.data import load_data
from recipes.downstream import Downstream
from zoo.errors import ZooError

TINY = dict(**TRANSFER_TINY, student="cnn_classifier_tiny", student_epochs=1, student_batch_size=32)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def test_distillation_loss_against_hand_computed_values():
    teacher = np.array([[2.0, 0.0, -1.0], [0.0, 1.0, 0.0]], np.float32)
    student = np.array([[0.5, 0.2, 0.0], [1.0, 1.0, 1.0]], np.float32)
    # T = 2: p = softmax(teacher / 2), q = softmax(student / 2); T^2 * mean over the batch of sum p log(p / q).
    # Row 1: p = (0.629, 0.231, 0.140), q = (0.362, 0.312, 0.326) -> 0.1376; row 2: p = (0.274, 0.452, 0.274),
    # q = 1/3 each -> 0.0270. 4 * (0.1376 + 0.0270) / 2 = 0.3291.
    assert float(distill.distillation_loss(2.0)(teacher, student)) == pytest.approx(0.3291, abs=2e-4)
    p, q = softmax(teacher / 2), softmax(student / 2)
    assert float(distill.distillation_loss(2.0)(teacher, student)) == pytest.approx(
        4 * np.mean(np.sum(p * np.log(p / q), axis=1)), rel=1e-5
    )
    # A hard label at T = 1 is the cross-entropy of the student's softmax: -log softmax(student)[label].
    hard = distill.hard_logits(np.array([0, 2]), 3)
    expected = -np.mean(np.log(softmax(student)[[0, 1], [0, 2]]))
    assert float(distill.distillation_loss(1.0)(hard, student)) == pytest.approx(expected, rel=1e-5)


def test_pseudo_targets_soft_hard_and_confident():
    probs = np.array([[0.7, 0.2, 0.1], [0.4, 0.35, 0.25]])
    soft, keep = distill.pseudo_targets(np.log(probs), confidence=0.5)
    np.testing.assert_allclose(softmax(soft), probs, rtol=1e-6)
    assert keep.tolist() == [True, False]
    hard, keep = distill.pseudo_targets(np.log(probs), hard=True)
    np.testing.assert_allclose(softmax(hard / 100), np.eye(3)[[0, 0]], atol=1e-30)  # one-hot even at T = 100
    assert keep.all()


def test_the_closing_line_says_beat_only_when_the_interval_lies_above_zero():
    row = dict(labels=100, teacher=0.735, student=0.745, ceiling=0.836)
    gains = lambda low, high: {"gains": {"student_over_teacher": {"points": 1.0, "ci95": [low, high]}}}  # noqa: E731
    assert (
        "the student beat its teacher (+1.0 points over the teacher, 95% CI +0.2 to +1.8) and closed 10% of the gap"
        in (distill.gap_closed({**row, **gains(0.2, 1.8)}))
    )
    assert "the student showed no clear difference from its teacher (+1.0 points over the teacher, 95% CI -0.5" in (
        distill.gap_closed({**row, **gains(-0.5, 2.5)})
    )
    assert "the student fell below its teacher" in distill.gap_closed({**row, "student": 0.725, **gains(-1.9, -0.1)})
    # a row without intervals (an older metrics.json) claims nothing
    assert "showed no clear difference from its teacher (+1.0 points, no interval)" in distill.gap_closed(row)
    assert "closed 0% of" in distill.gap_closed({**row, "student": 0.7349})
    assert "(the teacher is at or above the ceiling)" in distill.gap_closed({**row, "ceiling": 0.70})


def test_the_pool_is_the_train_split_then_the_unlabelled_split(tmp_path):
    from test_text_data import IMDB, write_imdb

    config = distill.Config(
        teacher_dir="unused",
        dataset="imdb_local",
        manual_dir=write_imdb(str(tmp_path / "src")),
        data_dir=str(tmp_path / "tfds"),
        model_dir=str(tmp_path / "out"),
    )
    train = [IMDB[f][n] for f in ("train/neg", "train/pos") for n in sorted(IMDB[f])]
    unlabelled = [IMDB["train/unsup"][n] for n in sorted(IMDB["train/unsup"])]
    assert [t.decode("utf-8") for t in distill.pool_inputs(load_data(config))] == train + unlabelled
    only_train = load_data(config.replace(unlabelled_split=""))
    assert [t.decode("utf-8") for t in distill.pool_inputs(only_train)] == train


def _context(tfds_dir, tmp_path, **changes):
    config = distill.Config(teacher_dir="unused", data_dir=tfds_dir, model_dir=str(tmp_path / "out"), **TINY)
    config = config.replace(**changes)
    data = load_data(config)
    return flow.Run(config, data, data, flow.make_strategy("default"), "float32", distill.student_config(config, data))


def test_pseudo_labels_never_read_the_pool_labels(tfds_dir, tmp_path, monkeypatch):
    """The students learn the same targets whatever the pool's true labels are; only the
    pseudo-label accuracy (a figure for the table) changes with them."""
    ctx = _context(tfds_dir, tmp_path, teacher_views=2, confidence=0.05, rounds=2)
    pool = ctx.target.train_inputs()
    np.testing.assert_array_equal(pool, ctx.target.train_arrays()[0])  # every image, in the labels' order
    keras.utils.set_random_seed(0)
    teacher = keras.Sequential([keras.Input((8, 8, 1)), keras.layers.Flatten(), keras.layers.Dense(10)])
    images, labels = ctx.target.labelled_subsets((10,), (0,))[(10, 0)]
    seen = []

    def record(run, model, x, targets, steps, seed, temperature, callbacks=()):
        seen.append((x, targets))

    monkeypatch.setattr(distill, "train_student", record)
    cells = []
    for shuffled in (False, True):
        data = ctx.target
        if shuffled:
            data = dataclasses.replace(data, train_labels=np.roll(data.train_labels, 1))
        run = flow.Run(ctx.config, data, data, ctx.strategy, ctx.precision, ctx.model_config)
        cells.append(
            distill.students(run, Downstream(ctx.config, data, ctx.strategy), teacher, pool, images, labels, 0)[0]
        )
    assert len(seen) == 4  # two rounds, twice
    for (x1, t1), (x2, t2) in zip(seen[:2], seen[2:]):
        np.testing.assert_array_equal(x1, x2)
        np.testing.assert_array_equal(t1, t2)
    assert cells[0]["pseudo_labels"] != cells[1]["pseudo_labels"]


def test_a_student_of_any_family_gets_a_head(tfds_dir, tmp_path):
    ctx = _context(tfds_dir, tmp_path, student="conv_autoencoder_tiny", head_units=(8,))
    student = distill.build_student(ctx)
    assert student.output_shape == (None, 10) and student.get_layer("encoder").output_shape == (None, 4)
    assert distill.build_student(_context(tfds_dir, tmp_path)).name == "cnn_classifier"


def test_distill_end_to_end_and_the_student_feeds_transfer(trained_dir, tfds_dir, tmp_path):
    out = str(tmp_path / "distill")
    metrics = distill.run(
        distill.Config(
            teacher_dir=trained_dir,
            data_dir=tfds_dir,
            model_dir=out,
            rounds=2,
            teacher_views=2,
            confidence=0.05,
            **{**TINY, "label_budgets": (10, 20)},
        )
    )
    assert sorted(os.listdir(out)) == [
        "encoder",
        "encoder.keras",
        "figures",
        "flags.txt",
        "manifest.json",
        "metrics.json",
        "model",
        "model.keras",
    ]
    assert os.path.isfile(os.path.join(out, "figures", "distill.png"))
    row = metrics["distill"][1]
    assert row["labels"] == 20
    for k in ("teacher", "pseudo_labels", "student", "scratch", "reference", "ceiling", "student_2", "pseudo_labels_2"):
        assert 0.0 <= row[k] <= 1.0, k
    assert row["student"] == row["student_2"] and 0.0 < row["kept"] <= 1.0
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["family"] == "distill" and manifest["teacher"]["path"] == os.path.abspath(trained_dir)
    assert manifest["model"] == "cnn_classifier_tiny" and manifest["student"]["labels"] == 20
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype("uint8")
    assert_encoder_reloads_frozen(out, images)
    import tensorflow as tf

    served = tf.saved_model.load(os.path.join(out, "model"))
    logits = served.serve(tf.constant(images))
    assert logits.dtype == tf.float32 and logits.shape == (3, 10)
    np.testing.assert_allclose(
        logits, keras.saving.load_model(os.path.join(out, "model.keras"), compile=False)(images), rtol=1e-4, atol=1e-5
    )
    again = transfer.run(
        transfer.Config(
            encoder_dir=out,
            data_dir=tfds_dir,
            model_dir=str(tmp_path / "transfer"),
            **TRANSFER_TINY,
        )
    )
    assert set(again["transfer"][0]) >= {"frozen", "finetune", "scratch"}


@on_run_of("word2vec")
def test_distill_texts_end_to_end(finished_run, tfds_dir, text_dir, tmp_path):
    """A word2vec teacher on a text folder: the student (auto: word2vec) tokenises with the teacher's
    vocabulary, the reference is TF-IDF, and the student's encoder takes strings."""
    teacher_dir = finished_run("word2vec")[0].model_dir
    out = str(tmp_path / "distill")
    texts = dict(dataset="text_folder", manual_dir=text_dir)
    metrics = distill.run(
        distill.Config(
            teacher_dir=teacher_dir, data_dir=tfds_dir, model_dir=out, **texts, **{**TINY, "student": "auto"}
        )
    )
    row = metrics["distill"][0]
    for k in ("teacher", "pseudo_labels", "student", "scratch", "reference", "ceiling"):
        assert 0.0 <= row[k] <= 1.0, k
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["model"] == "word2vec" and manifest["input"]["dtype"] == "string"
    teacher, student = (keras.saving.load_model(os.path.join(d, "encoder.keras")) for d in (teacher_dir, out))
    taught, learnt = flow.tokenisation(teacher), flow.tokenisation(student)
    assert learnt["vocabulary"] == taught["vocabulary"]
    assert manifest["model_config"]["vocab_size"] == len(taught["vocabulary"])
    n = len(taught["vocabulary"])  # the student's word weights are the teacher's
    np.testing.assert_array_equal(learnt["word_weights"][:n], taught["word_weights"][:n])
    # So are its word pairs and their weights, in the same places (its vocab_size is the teacher's
    # vocabulary's length, not the teacher's vocab_size: the pairs are keyed anew).
    assert manifest["model_config"]["pairs"] == len(taught["word_pairs"]) and (taught["word_pairs"] >= 0).any()
    np.testing.assert_array_equal(learnt["word_pairs"], taught["word_pairs"])
    np.testing.assert_array_equal(learnt["pair_weights"], taught["pair_weights"])
    assert_encoder_reloads_frozen(out, example_texts(3))
    with pytest.raises(ZooError) as raised:  # the extra views are augmented images
        distill.run(
            distill.Config(
                teacher_dir=teacher_dir, data_dir=tfds_dir, model_dir=str(tmp_path / "views"), **texts, **TINY
            ).replace(student="auto", teacher_views=2)
        )
    assert str(raised.value).startswith("--teacher_views=2: the extra views are augmented images")
    assert not (tmp_path / "views").exists()
    with pytest.raises(ZooError, match="--student=cnn_classifier_tiny reads images, but --dataset=text_folder holds"):
        distill.run(
            distill.Config(teacher_dir=teacher_dir, data_dir=tfds_dir, model_dir=str(tmp_path / "img"), **texts, **TINY)
        )


BAD = {  # id: (config changes, how the message starts)
    "unknown-student": (dict(student="nope"), "--student=nope: unknown model 'nope'"),
    "zero-temperature": (dict(distill_temperature=0.0), "--distill_temperature=0.0: must be positive"),
    "huge-temperature": (dict(distill_temperature=1000.0), "--distill_temperature=1000.0: must be at most 100"),
    "confidence-one": (dict(confidence=1.0), "--confidence=1.0: must be in [0, 1)"),
    "negative-confidence": (dict(confidence=-0.1), "--confidence=-0.1: must be in [0, 1)"),
    "no-pool": (
        dict(train_split="train[:20]", label_budgets=(20,)),
        "--train_split=train[:20] has 20 images, no more than the 20 labelled ones",
    ),
    "teacher-not-a-run": (dict(teacher_dir="{tmp}"), "--teacher_dir={tmp}: "),
    "unknown-unlabelled-split": (dict(unlabelled_split="unsup"), "--unlabelled_split=unsup: not a split of"),
    "shape-refused": (
        dict(dataset="mnist_idx", manual_dir="{idx}", adapt="none"),
        "--adapt=none: the target's images are (28, 28, 1) but the encoder takes (8, 8, 1)",
    ),
}


@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_and_writes_nothing(case, trained_dir, tfds_dir, idx_dir, tmp_path):
    changes, message = BAD[case]
    changes = {
        k: v.replace("{tmp}", str(tmp_path)).replace("{idx}", idx_dir) if isinstance(v, str) else v
        for k, v in changes.items()
    }
    config = distill.Config(teacher_dir=trained_dir, data_dir=tfds_dir, model_dir=str(tmp_path / "out"), **TINY)
    with pytest.raises(ZooError) as raised:
        distill.run(config.replace(**changes))
    assert str(raised.value).startswith(message.replace("{tmp}", str(tmp_path))), str(raised.value)
    assert "\n" not in str(raised.value)
    assert not (tmp_path / "out").exists()


def test_the_pool_counts_the_unlabelled_split():
    """`--label_budgets=all` labels the whole train split: an unlabelled split is then the pool."""
    config = types.SimpleNamespace(train_split="train")
    texts = types.SimpleNamespace(num_train=20, num_unlabelled=100, unlabelled_split="unsup", kind="texts")
    distill.check_pool(config, texts, 20)  # 100 unlabelled texts to teach from
    images = types.SimpleNamespace(num_train=20, num_unlabelled=0, unlabelled_split="", kind="images")
    with pytest.raises(ZooError, match="--train_split=train has 20 images, no more than the 20 labelled ones"):
        distill.check_pool(config, images, 20)
