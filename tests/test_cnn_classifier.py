"""The CNN classifier recipe: class-split and cross-dataset transfer, its endpoints, its errors."""

import json
import os

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from recipes import cnn_classifier
from recipes.cnn_classifier import parse_classes
from recipes.config import RecipeConfig
from recipes.data import load_data
from zoo.errors import ZooError


@pytest.fixture
def cnn_config(tfds_dir, tmp_path):
    return cnn_classifier.Config(
        data_dir=tfds_dir,
        model_dir=str(tmp_path / "cnn"),
        model="cnn_classifier_tiny",
        filters=(4, 8),
        convs_per_block=1,
        dense_units=(8,),
        epochs=1,
        batch_size=64,
        label_budgets=(10,),
        transfer_steps=2,
        transfer_batch_size=8,
    )


def test_class_split_transfer_end_to_end(cnn_config):
    metrics = cnn_classifier.run(cnn_config)
    d = cnn_config.model_dir
    with open(os.path.join(d, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["dataset"]["dataset_labels"] == [0, 1, 2, 3, 4]
    assert manifest["target"]["dataset_labels"] == [5, 6, 7, 8, 9]
    assert manifest["model_config"]["num_classes"] == 5 and manifest["target"]["num_classes"] == 5
    assert 0.0 <= metrics["pretrain"]["eval_accuracy"] <= 1.0
    assert 0.0 <= metrics["transfer"][0]["frozen"] <= 1.0
    assert {"curves.png", "confusion.png", "misclassified.png", "transfer.png"} <= set(os.listdir(f"{d}/figures"))

    loaded = tf.saved_model.load(os.path.join(d, "model"))
    images = tf.constant(np.zeros((3, 8, 8, 1), np.uint8))
    assert loaded.serve(images).shape == (3, 5)
    assert loaded.features(images).shape == (3, 8)  # the penultimate layer: dense_units[-1]


def test_cross_dataset_transfer_on_mocked_tfds_datasets(cnn_config):
    with tfds.testing.mock_data(num_examples=64):
        metrics = cnn_classifier.run(
            cnn_config.replace(dataset="mnist", target_dataset="kmnist", source_classes="", target_classes="")
        )
    with open(os.path.join(cnn_config.model_dir, "manifest.json")) as f:
        manifest = json.load(f)
    assert manifest["dataset"]["name"] == "mnist" and manifest["target"]["name"] == "kmnist"
    assert manifest["target"]["num_classes"] == 10 and len(metrics["transfer"]) == 1


def test_restricted_data_relabels_and_streams_only_its_classes(tfds_dir):
    data = load_data(RecipeConfig(data_dir=tfds_dir)).restrict((5, 6, 7, 8, 9))
    assert set(np.unique(data.eval_labels)) == set(range(5)) and data.class_names == ["5", "6", "7", "8", "9"]
    ((images, labels),) = data.labelled_subsets([10], [0]).values()
    assert sorted(labels.tolist()) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    streamed = np.concatenate([y for _, y in data.pretrain_dataset(lambda i, l: (i, l), 256, seed=0)])
    assert len(streamed) == data.num_train and set(np.unique(streamed)) == set(range(5))


@pytest.mark.parametrize(
    "text, match",
    [
        ("5-4", "the class set is empty"),
        ("0-x", "give label ids like 0-4"),
        ("3,12", "no class 12"),
    ],
)
def test_bad_class_sets_are_named(text, match):
    with pytest.raises(ZooError, match=match):
        parse_classes("source_classes", text, 10)
    assert parse_classes("source_classes", "0-2,7", 10) == (0, 1, 2, 7)
    assert parse_classes("source_classes", "", 3) == (0, 1, 2)


def test_overlapping_classes_and_unadaptable_shapes_are_refused(cnn_config):
    with pytest.raises(ZooError, match="share class 4"):
        cnn_classifier.run(cnn_config.replace(source_classes="0-4", target_classes="4-9"))
    with tfds.testing.mock_data(num_examples=64):
        with pytest.raises(
            ZooError, match=r"--adapt=none: the target's images are \(28, 28, 1\) but the encoder takes \(8, 8, 1\)"
        ):
            cnn_classifier.run(cnn_config.replace(target_dataset="mnist", target_classes="", adapt="none"))
    assert not os.path.exists(cnn_config.model_dir)
