"""Shared test setup: offline, tiny, and fast.

Two logical CPU devices are configured before TensorFlow starts, so a
MirroredStrategy test has two replicas on any machine.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import tensorflow as tf  # noqa: E402

_cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(_cpu, [tf.config.LogicalDeviceConfiguration()] * 2)

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import recipes  # noqa: E402
from recipes import autoencoder  # noqa: E402
from recipes.datasets import write_idx  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = recipes.all_recipes()  # {family: module}: every recipe gets the contract tests


def on_run_of(family):
    """Marks a test that reads `finished_run(family)`: pytest-xdist (--dist loadgroup) sends all
    such tests to one worker, so each recipe's smoke run happens once per session."""
    return pytest.mark.xdist_group(family)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """One TFDS data dir per session: the offline datasets are prepared once."""
    return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture
def tiny_config(tfds_dir, tmp_path):
    """The autoencoder recipe at tiny settings on the offline default dataset."""
    return autoencoder.Config(
        data_dir=tfds_dir,
        model_dir=str(tmp_path / "run"),
        model="conv_autoencoder_tiny",
        filters=(4, 8),
        convs_per_block=1,
        latent_dim=4,
        epochs=1,
        batch_size=64,
        label_budgets=(10, 20),
        transfer_steps=2,
        transfer_batch_size=8,
        precision="float32",
    )


@pytest.fixture(scope="session")
def finished_run(tfds_dir, tmp_path_factory):
    """finished_run(family) -> (config, metrics): one smoke run of each recipe per test session
    (two epochs, two seeds per budget), shared by the contract tests and the family's own."""
    done = {}

    def get(family):
        if family not in done:
            module = RECIPES[family]
            config = module.RECIPE.smoke_config(
                data_dir=tfds_dir, model_dir=str(tmp_path_factory.mktemp(family) / "run"), epochs=2, transfer_repeats=2
            )
            done[family] = (config, module.run(config))
        return done[family]

    return get


@pytest.fixture(scope="session")
def trained_dir(tfds_dir, tmp_path_factory):
    """An artifact from one tiny run, shared by the reload and frozen tests."""
    model_dir = str(tmp_path_factory.mktemp("trained") / "ae")
    autoencoder.run(
        autoencoder.Config(
            data_dir=tfds_dir,
            model_dir=model_dir,
            model="conv_autoencoder_tiny",
            filters=(4, 8),
            convs_per_block=1,
            latent_dim=4,
            epochs=2,
            batch_size=64,
            label_budgets=(10,),
            transfer_steps=2,
            transfer_batch_size=8,
            precision="float32",
        )
    )
    return model_dir


@pytest.fixture
def idx_dir(tmp_path):
    """MNIST-format IDX files: 40 train and 30 test images, label i % 10, pixel value = index."""
    for prefix, n in (("train", 40), ("t10k", 30)):
        images = np.zeros((n, 28, 28), np.uint8)
        images[:, 0, 0] = np.arange(n)
        write_idx(str(tmp_path / f"{prefix}-images-idx3-ubyte.gz"), images)
        write_idx(str(tmp_path / f"{prefix}-labels-idx1-ubyte"), np.arange(n) % 10)
    return str(tmp_path)


def assert_encoder_reloads_frozen(model_dir, images):
    """The three documented ways to reload an encoder agree: zoo.load_encoder (frozen), TFSMLayer, tf.saved_model."""
    import keras

    import zoo

    encoder = zoo.load_encoder(model_dir)
    assert not encoder.trainable_weights
    expected = np.asarray(encoder(images))
    layer = keras.layers.TFSMLayer(f"{model_dir}/encoder", call_endpoint="serve", trainable=False)
    loaded = tf.saved_model.load(f"{model_dir}/encoder")  # keep a reference while calling it
    np.testing.assert_allclose(layer(images), expected, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(loaded.serve(tf.constant(images)), expected, rtol=1e-5, atol=1e-6)
