"""Transfer anywhere: recipes.transfer from every family's saved run, other datasets and image shapes,
the user's own image folder, the k-NN and reference columns, and the bad input that stops a transfer."""

import hashlib
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import RECIPES, example_texts, on_run_of

import zoo
from recipes import flow, transfer
from recipes.data import load_data
from recipes.datasets import write_idx
from recipes.downstream import Downstream, knn_accuracy
from zoo.errors import ZooError
from zoo.heads import LUMA, AdaptImages

TINY = dict(
    label_budgets=(10,),
    transfer_steps=2,
    transfer_batch_size=8,
    reference_model="cnn_classifier_tiny",
    precision="float32",
)


def _tree_digest(path):
    """One hash of every file's path and bytes under `path`."""
    digest = hashlib.sha256()
    for root, dirs, files in sorted(os.walk(path)):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode())
            with open(full, "rb") as f:
                digest.update(f.read())
    return digest.hexdigest()


def test_knn_against_a_hand_computed_case():
    train = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [-1.0, 0.05]])
    labels = np.array([0, 0, 1, 1, 2])
    queries = np.array([[2.0, 0.1], [0.2, 3.0], [-0.8, 0.5]])
    # k=1: the most cosine-similar example decides (scale does not matter: features are L2-normalised).
    assert knn_accuracy(train, labels, queries, np.array([0, 1, 2]), 3, k=1) == 1.0
    # k=3 on [-0.8, 0.5]: cosines to the 5 examples are -0.85, -0.78, 0.53, 0.43, 0.88; the nearest
    # three are class 2 (0.88), class 1 (0.53, 0.43). Weights exp(s / 0.07): class 1 gets
    # exp(7.57) + exp(6.14) = 2406, class 2 exp(12.57) = 2.9e5: class 2 wins despite two votes to one.
    assert knn_accuracy(train, labels, queries[2:], np.array([2]), 3, k=3) == 1.0
    # With a high temperature the votes are near equal: two class-1 votes beat one class-2 vote.
    assert knn_accuracy(train, labels, queries[2:], np.array([1]), 3, k=3, temperature=100.0) == 1.0


def test_images_adapt_to_the_encoders_shape():
    grey = np.arange(16, dtype=np.uint8).reshape(1, 4, 4, 1) * 16
    big = AdaptImages((8, 8, 1))(grey)
    assert big.dtype == "uint8" and big.shape == (1, 8, 8, 1)
    colour = np.asarray(AdaptImages((4, 4, 3))(grey))
    np.testing.assert_array_equal(colour, np.repeat(grey, 3, axis=-1))
    rgb = np.array([[[[200, 100, 50]]]], np.uint8)
    luma = np.asarray(AdaptImages((1, 1, 1))(rgb))
    assert luma[0, 0, 0, 0] == round(sum(w * v for w, v in zip(LUMA, (200, 100, 50))))
    encoder = keras.Sequential(
        [keras.Input((8, 8, 3), dtype="uint8"), keras.layers.Rescaling(1 / 255), keras.layers.GlobalAveragePooling2D()]
    )
    model = zoo.classifier_on(encoder, 3, image_shape=(4, 4, 1))
    assert model.get_layer("adapt").target_shape == (8, 8, 3) and model(grey).shape == (1, 3)
    with pytest.raises(ZooError, match="cannot be adapted"):
        zoo.classifier_on(encoder, 3, image_shape=(4, 4, 2))


def test_twins_train_each_classifier_as_compiling_it_would(tiny_config, trained_dir, monkeypatch):
    """Two cells of the table through the compiled twins give what compiling every classifier gives,
    with one twin compiled per role, and the classifier a cell returns stays as it was trained."""
    config = tiny_config.replace(transfer_steps=3, reference_model="cnn_classifier_tiny")
    data = load_data(config)
    draws = data.labelled_subsets((10,), (0, 1))
    model_config = dict(image_shape=(8, 8, 1), filters=(4, 8), latent_dim=4)
    load = lambda: zoo.load_encoder(trained_dir, trainable=False)  # noqa: E731
    scratch = lambda: zoo.build_model(config.model, **model_config).get_layer("encoder")  # noqa: E731
    compiled, compile_ = [], Downstream._compile
    monkeypatch.setattr(Downstream, "_compile", lambda self, *args: compiled.append(args[0]) or compile_(self, *args))
    results = []
    for twins in (True, False):
        downstream, cells = Downstream(config, data, flow.make_strategy("default"), twins=twins), []
        for (_, seed), (images, labels) in draws.items():
            scores, model = downstream.cell(images, labels, seed, load, scratch)
            cells.append((scores, model, [np.array(v) for v in model.variables]))
        results.append(cells)
    assert len(compiled) == 4 + 4 * len(draws)  # a twin per role (frozen, finetune, scratch, reference), then each
    for (scores, model, weights), (alone, _, alone_weights) in zip(*results):
        assert scores == alone
        for now, trained, other in zip(model.variables, weights, alone_weights):
            np.testing.assert_array_equal(now, trained)  # the next cell left the returned classifier alone
            np.testing.assert_allclose(trained, other, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("family", [pytest.param(f, marks=on_run_of(f)) for f in RECIPES])
def test_transfer_from_a_saved_run_of_every_family(family, finished_run, tfds_dir, text_dir, tmp_path):
    source_dir = finished_run(family)[0].model_dir
    before = _tree_digest(source_dir)
    out = str(tmp_path / "out")
    text = isinstance(RECIPES[family].RECIPE, flow.TextRecipe)
    data = dict(dataset="text_folder", manual_dir=text_dir) if text else {}
    metrics = transfer.run(transfer.Config(encoder_dir=source_dir, data_dir=tfds_dir, model_dir=out, **data, **TINY))
    assert _tree_digest(source_dir) == before  # the source run is only read
    assert sorted(os.listdir(out)) == [
        "classifier",
        "classifier.keras",
        "figures",
        "flags.txt",
        "manifest.json",
        "metrics.json",
    ]
    row = metrics["transfer"][0]
    assert set(row) == {
        *("labels", "frozen", "finetune", "knn", "scratch", "reference", "runs", "reference_model", "gains")
    }
    assert set(row["gains"]) == {
        f"{p}_over_{b}" for p in ("frozen", "finetune", "knn") for b in ("scratch", "reference")
    }
    low, high = row["gains"]["finetune_over_scratch"]["ci95"]
    assert low <= row["gains"]["finetune_over_scratch"]["points"] <= high
    assert row["reference_model"] == ("tfidf_logreg" if text else TINY["reference_model"])
    with open(os.path.join(out, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["family"] == "transfer" and manifest["format"] == zoo.loading.ARTIFACT_FORMAT
    assert manifest["source"]["family"] == family and manifest["source"]["path"] == os.path.abspath(source_dir)
    assert manifest["classifier"]["labels"] == 10 and manifest["adapted"] is None
    images = example_texts(3) if text else np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype("uint8")
    loaded = tf.saved_model.load(os.path.join(out, "classifier"))  # keep a reference while calling it
    logits = loaded.serve(tf.constant(list(images)) if text else tf.constant(images))
    assert logits.dtype == tf.float32 and logits.shape == (3, 2 if text else 10)
    np.testing.assert_allclose(
        logits, keras.saving.load_model(os.path.join(out, "classifier.keras"))(images), rtol=1e-4, atol=1e-5
    )


@on_run_of("simclr")
def test_transfer_to_another_image_shape_adapts_inside_the_classifier(finished_run, idx_dir, tfds_dir, tmp_path):
    source_dir = finished_run("simclr")[0].model_dir  # 8x8 grey digits
    config = transfer.Config(
        encoder_dir=source_dir,
        dataset="mnist_idx",
        manual_dir=idx_dir,
        data_dir=tfds_dir,
        model_dir=str(tmp_path / "out"),
        **TINY,
    )
    with pytest.raises(
        ZooError,
        match=r"--adapt=none: the target's images are \(28, 28, 1\) but the encoder "
        r"takes \(8, 8, 1\)",
    ):
        transfer.run(config.replace(adapt="none"))
    assert not (tmp_path / "out").exists()
    transfer.run(config)
    with open(tmp_path / "out" / "manifest.json") as f:
        assert json.load(f)["adapted"] == "resize 28x28 -> 8x8"
    classifier = tf.saved_model.load(str(tmp_path / "out" / "classifier"))
    assert classifier.serve(tf.constant(np.zeros((2, 28, 28, 1), np.uint8))).shape == (2, 10)


def _image_folder(root, size=(12, 10), mode="RGB", classes=("cat", "dog"), per_class=12):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, n in (("train", per_class), ("test", per_class // 2)):
        for c, name in enumerate(classes):
            os.makedirs(root / split / name)
            for i in range(n):
                pixels = rng.integers(0, 256, (*size, 3 if mode == "RGB" else 1), dtype=np.uint8) // 4 + 64 * c
                Image.fromarray(pixels if mode == "RGB" else pixels[..., 0], mode).save(
                    root / split / name / f"{i}.png"
                )
    return str(root)


@on_run_of("autoencoder")
def test_transfer_to_the_users_own_image_folder(finished_run, tmp_path):
    folder = _image_folder(tmp_path / "pets")
    source_dir = finished_run("autoencoder")[0].model_dir
    metrics = transfer.run(
        transfer.Config(
            encoder_dir=source_dir,
            dataset="image_folder",
            manual_dir=folder,
            data_dir=str(tmp_path / "tfds"),  # the folder's prepared copy, not in ~/tensorflow_datasets
            model_dir=str(tmp_path / "out"),
            **{**TINY, "label_budgets": (4,)},
        )
    )
    assert 0.0 <= metrics["transfer"][0]["finetune"] <= 1.0
    with open(tmp_path / "out" / "manifest.json") as f:
        manifest = json.load(f)
    assert manifest["dataset"]["class_names"] == ["cat", "dog"] and manifest["dataset"]["num_eval"] == 12
    assert manifest["input"]["shape"] == [8, 8, 3] and manifest["adapted"] == "colour -> grey (luminance)"


@pytest.mark.parametrize(
    "family",
    [pytest.param(f, marks=on_run_of(f)) for f in RECIPES if not isinstance(RECIPES[f].RECIPE, flow.TextRecipe)],
)
def test_every_recipe_transfers_to_a_second_local_folder(family, tfds_dir, idx_dir, tmp_path):
    """Pretrain on one local IDX folder, transfer to another (28x28 -> 28x28)."""
    other = tmp_path / "other"
    other.mkdir()
    for prefix, n in (("train", 30), ("t10k", 20)):
        write_idx(str(other / f"{prefix}-images-idx3-ubyte"), np.full((n, 28, 28), 7, np.uint8))
        write_idx(str(other / f"{prefix}-labels-idx1-ubyte"), np.arange(n) % 10)
    module = RECIPES[family]
    config = module.RECIPE.smoke_config(
        dataset="mnist_idx",
        manual_dir=idx_dir,
        data_dir=tfds_dir,
        model_dir=str(tmp_path / "run"),
        target_dataset="mnist_idx",
        target_manual_dir=str(other),
        label_budgets=(10,),
        reference=False,
        **({"source_classes": "", "target_classes": ""} if family == "cnn_classifier" else {}),
    )
    module.run(config)
    with open(tmp_path / "run" / "manifest.json") as f:
        manifest = json.load(f)
    assert manifest["target"]["num_train"] == 30 and manifest["dataset"]["num_train"] == 40


@pytest.fixture
def saved_run(tmp_path_factory, finished_run):
    return finished_run("autoencoder")[0].model_dir


def _bad_folder(kind, root):
    if kind == "no class folders":
        (root / "train").mkdir(parents=True)
        (root / "train" / "loose.png").write_bytes(b"")
    elif kind == "unreadable image":
        _image_folder(root)
        (root / "train" / "cat" / "5.png").write_bytes(b"not a png")
    elif kind == "empty class":
        _image_folder(root)
        os.makedirs(root / "test" / "bird")
    return str(root)


@on_run_of("autoencoder")
@pytest.mark.parametrize(
    "change, message",
    [
        (dict(encoder_dir="/nonexistent/run"), "--encoder_dir=/nonexistent/run: no such directory"),
        (dict(encoder_dir="NOT_AN_ARTIFACT"), "has no manifest.json"),
        (dict(encoder_dir="CORRUPT"), "encoder.keras"),
        (dict(dataset="imdb_reviews"), "--dataset=imdb_reviews holds texts, but the encoder of --encoder_dir="),
        (dict(label_budgets=(10, "ten")), "--label_budgets=10,ten: must be integers or all"),
        (dict(eval_split="validation"), "--eval_split=validation: not a split of uci_digits"),
        (dict(dataset="image_folder", manual_dir="no class folders"), "train/ has no class sub-folders"),
        (dict(dataset="image_folder", manual_dir="unreadable image"), "cannot read image"),
        (dict(dataset="image_folder", manual_dir="empty class"), "class 'bird' of test/ has no image"),
        (dict(dataset="image_folder"), "--dataset=image_folder needs --manual_dir"),
    ],
)
def test_bad_input_stops_before_any_work(change, message, saved_run, tfds_dir, tmp_path):
    if change.get("encoder_dir") == "NOT_AN_ARTIFACT":
        change = {**change, "encoder_dir": str(tmp_path)}
    elif change.get("encoder_dir") == "CORRUPT":
        corrupt = tmp_path / "corrupt"
        shutil.copytree(saved_run, corrupt)
        (corrupt / "encoder.keras").write_bytes(b"truncated")
        change = {**change, "encoder_dir": str(corrupt)}
    if change.get("manual_dir"):
        change = {**change, "manual_dir": _bad_folder(change["manual_dir"], tmp_path / "folder")}
    out = tmp_path / "out"
    config = transfer.Config(encoder_dir=saved_run, data_dir=tfds_dir, model_dir=str(out), **TINY)
    with tfds.testing.mock_data(num_examples=16) if change.get("dataset") == "imdb_reviews" else _nothing():
        with pytest.raises(ZooError, match=message) as err:
            transfer.run(config.replace(**change))
    assert "\n" not in str(err.value)
    assert not out.exists() and not any(p.name.startswith(".out") for p in tmp_path.iterdir())


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False
