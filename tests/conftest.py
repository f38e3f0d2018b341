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
import zoo  # noqa: E402
from recipes import autoencoder, flow  # noqa: E402
from recipes.datasets import write_idx  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RECIPES = recipes.all_recipes()  # {family: module}: every recipe gets the contract tests


WORDS = {  # the smoke corpus: each class has words of its own, and all share some
    "neg": "awful boring dull worst bad waste poor terrible".split(),
    "pos": "great superb lovely best good brilliant fine wonderful".split(),
}
SHARED = "the film movie a plot actor was and it of this".split()


def example_texts(n=5, seed=0, label=None):
    """Short texts of the smoke corpus's words (of one class's, when `label` is given)."""
    rng = np.random.default_rng(seed)
    words = SHARED + (WORDS[label] if label else WORDS["neg"] + WORDS["pos"])
    return np.array([" ".join(rng.choice(words, rng.integers(4, 24))) for _ in range(n)], dtype=object)


def example_inputs(name, n=5, seed=0, image_shape=(8, 8, 1)):
    """Inputs the registered model `name` reads: uint8 images, or texts."""
    if zoo.get_entry(name).inputs == "texts":
        return example_texts(n, seed)
    return np.random.default_rng(seed).integers(0, 256, (n, *image_shape)).astype("uint8")


def build(name, image_shape=(8, 8, 1), **kwargs):
    """The registered model `name`, for `image_shape` if it reads images; a text model has its
    vocabulary fitted on example texts."""
    if zoo.get_entry(name).inputs == "texts":
        model = zoo.build_model(name, **kwargs)
        model.adapt(example_texts(64, seed=1))
        return model
    return zoo.build_model(name, image_shape=image_shape, **kwargs)


def write_text_folder(root, per_class=(40, 12), seed=0):
    """A text_folder corpus: train/<class>/*.txt and test/<class>/*.txt of `example_texts`."""
    for split, n in zip(("train", "test"), per_class):
        for c, label in enumerate(WORDS):
            os.makedirs(os.path.join(root, split, label), exist_ok=True)
            for i, t in enumerate(example_texts(n, seed=seed + 100 * c + (split == "test"), label=label)):
                with open(os.path.join(root, split, label, f"{i}.txt"), "w", encoding="utf-8") as f:
                    f.write(t)
    return root


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
def text_dir(tmp_path_factory):
    """A text_folder corpus, written once per session."""
    return write_text_folder(str(tmp_path_factory.mktemp("texts")))


@pytest.fixture(scope="session")
def smoke(tfds_dir, text_dir):
    """smoke(family, **changes): the family's smoke config on the session's offline data (a text
    family's on the session's text folder)."""

    def make(family, **changes):
        recipe = RECIPES[family].RECIPE
        data = {"manual_dir": text_dir} if isinstance(recipe, flow.TextRecipe) else {}
        return recipe.smoke_config(**{"data_dir": tfds_dir, **data, **changes})

    return make


def _claim_for_this_worker(tmp_path_factory, family):
    """Fails if another pytest-xdist worker of this session already made the smoke run of `family`:
    the tests marked `on_run_of(family)` were not sent to one worker, so every such run is paid twice."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker is None:
        return
    claim = tmp_path_factory.getbasetemp().parent / f"finished_run-{family}"
    try:
        with open(claim, "x") as f:
            f.write(worker)
    except FileExistsError:
        pytest.fail(
            f"the smoke run of {family} was made on {claim.read_text()} and again on {worker}: --dist loadgroup "
            "did not group the tests marked on_run_of (pytest 9.2 drops pytest-xdist's groups, pytest-xdist "
            "issue 1386; setup.cfg keeps pytest below 9.2)"
        )


@pytest.fixture(scope="session")
def finished_run(smoke, tmp_path_factory):
    """finished_run(family) -> (config, metrics): one smoke run of each recipe per test session
    (two epochs, two seeds per budget), shared by the contract tests and the family's own."""
    done = {}

    def get(family):
        if family not in done:
            _claim_for_this_worker(tmp_path_factory, family)
            module = RECIPES[family]
            config = smoke(family, model_dir=str(tmp_path_factory.mktemp(family) / "run"), epochs=2, transfer_repeats=2)
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


def prepared_files(data_dir, name):
    """{path: modification time} of every file TFDS prepared for the builder `name` under `data_dir`."""
    found = {}
    for folder, _, names in os.walk(os.path.join(data_dir, name)):
        for file in names:
            found[os.path.join(folder, file)] = os.stat(os.path.join(folder, file)).st_mtime_ns
    return found
