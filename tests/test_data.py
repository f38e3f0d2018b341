"""Datasets: the offline builders, any TFDS dataset, class-balanced draws, augmentation."""

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

from recipes.config import RecipeConfig
from recipes.data import balanced_sample, labelled_dataset, load_data
from recipes.datasets import read_idx, write_idx
from zoo.errors import ZooError


def test_idx_round_trip(tmp_path):
    array = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    for name in ("a-idx3-ubyte", "b-idx3-ubyte.gz"):
        write_idx(str(tmp_path / name), array)
        np.testing.assert_array_equal(read_idx(str(tmp_path / name)), array)


def test_idx_with_bad_magic_is_named(tmp_path):
    (tmp_path / "x").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ZooError, match="not a uint8 IDX file"):
        read_idx(str(tmp_path / "x"))


def test_mnist_idx_reads_local_files_in_order(idx_dir, tfds_dir):
    data = load_data(
        RecipeConfig(
            dataset="mnist_idx", manual_dir=idx_dir, data_dir=tfds_dir, train_split="test[:20]", eval_split="test[20:]"
        )
    )
    assert data.image_shape == (28, 28, 1) and data.num_classes == 10
    np.testing.assert_array_equal(data.train_labels, np.arange(20) % 10)
    np.testing.assert_array_equal(data.eval_inputs[:, 0, 0, 0], np.arange(20, 30))  # file order kept
    full = load_data(RecipeConfig(dataset="mnist_idx", manual_dir=idx_dir, data_dir=tfds_dir))
    assert full.num_train == 40 and len(full.eval_labels) == 30


def test_mnist_idx_without_files_is_named(tmp_path, tfds_dir):
    with pytest.raises(ZooError, match="needs --manual_dir"):
        load_data(RecipeConfig(dataset="mnist_idx", data_dir=tfds_dir))
    with pytest.raises(ZooError, match="no IDX pair found"):
        load_data(RecipeConfig(dataset="mnist_idx", manual_dir=str(tmp_path), data_dir=tfds_dir))


def test_default_dataset_is_offline_uci_digits(tfds_dir):
    data = load_data(RecipeConfig(data_dir=tfds_dir))
    assert (data.num_train, len(data.eval_labels)) == (1437, 360)
    assert data.image_shape == (8, 8, 1) and data.eval_inputs.dtype == np.uint8
    assert data.eval_inputs.max() == 255 and set(np.unique(data.train_labels)) == set(range(10))


def test_any_tfds_image_dataset_through_mock_data(tmp_path):
    with tfds.testing.mock_data(num_examples=64):
        data = load_data(RecipeConfig(dataset="fashion_mnist", data_dir=str(tmp_path)))
        assert data.image_shape == (28, 28, 1)
        ((images, labels),) = data.labelled_subsets([10], [0]).values()
        assert images.shape == (10, 28, 28, 1) and np.bincount(labels, minlength=10).tolist() == [1] * 10
        x, y = next(iter(data.pretrain_dataset(lambda i, l: (i, l), 16, seed=0)))
        assert x.shape == (16, 28, 28, 1) and x.dtype == "uint8"


@pytest.mark.parametrize(
    "name, match",
    [
        ("mnistt", "no such TFDS dataset. Did you mean mnist"),
        ("glue/mrpc", "need one input, an 'image' \\(Image\\) or one text"),
    ],
)
def test_unusable_datasets_are_named(name, match, tmp_path):
    with pytest.raises(ZooError, match=match):
        load_data(RecipeConfig(dataset=name, data_dir=str(tmp_path)), prepare=False)


def test_unknown_split_is_named(tfds_dir):
    with pytest.raises(ZooError, match="--eval_split=validation: not a split of uci_digits.*train, test"):
        load_data(RecipeConfig(data_dir=tfds_dir, eval_split="validation"))


def test_balanced_sample_is_balanced_seeded_and_as_even_as_the_labels_allow():
    labels = np.repeat(np.arange(10), 30)
    idx = balanced_sample(labels, 105, 10, seed=3)
    counts = np.bincount(labels[idx], minlength=10)
    assert len(set(idx)) == 105 and counts.min() == 10 and counts.max() == 11
    np.testing.assert_array_equal(idx, balanced_sample(labels, 105, 10, seed=3))
    assert not np.array_equal(idx, balanced_sample(labels, 105, 10, seed=4))
    np.testing.assert_array_equal(balanced_sample(labels, 300, 10, seed=0), np.arange(300))  # all of them
    left_out = np.where(labels < 5, -1, labels - 5)  # classes 0-4 left out of the task, as `restrict` marks them
    np.testing.assert_array_equal(balanced_sample(left_out, 500, 5, seed=0), np.arange(150, 300))
    assert np.bincount(left_out[balanced_sample(left_out, 50, 5, seed=0)]).tolist() == [10] * 5
    uneven = np.repeat(np.arange(3), (5, 40, 40))  # class 0 cannot give its share of 60
    idx = balanced_sample(uneven, 61, 3, seed=1)  # 5 of class 0, the other 56 shared
    assert len(set(idx)) == 61 and np.bincount(uneven[idx], minlength=3).tolist() == [5, 28, 28]
    counts = np.bincount(uneven[balanced_sample(uneven, 62, 3, seed=1)], minlength=3)
    assert counts[0] == 5 and sorted(counts[1:].tolist()) == [28, 29]


def test_augmentation_changes_images_but_not_labels():
    images = np.zeros((8, 28, 28, 1), np.uint8)
    images[:, 10:18, 10:18] = 255
    labels = np.arange(8)
    x, y = next(iter(labelled_dataset(images, labels, 8, seed=0, augment=True)))
    assert x.dtype == "uint8" and x.shape == images.shape
    assert sorted(y.numpy().tolist()) == labels.tolist()
    assert not np.array_equal(x.numpy(), images)


def test_every_pipeline_shards_by_data_without_autotuning(tfds_dir):
    """Autotuning makes deleting an iterator wait for its tuning thread (every epoch end); sharding by
    file would leave a worker without data on a one-file split."""
    data = load_data(RecipeConfig(data_dir=tfds_dir))
    images, labels = data.eval_inputs[:32], data.eval_labels[:32]
    pipelines = {
        "pretrain": data.pretrain_dataset(lambda i, l: (i, l), 16, seed=0),
        "eval": data.eval_dataset(lambda i, l: (i, l), 16),
        "labelled": labelled_dataset(images, labels, 8, seed=0),
    }
    for name, ds in pipelines.items():
        options = ds.options()
        assert options.autotune.enabled is False, name
        assert options.experimental_distribute.auto_shard_policy == tf.data.experimental.AutoShardPolicy.DATA, name
