"""The exported encoder reloads three ways, and frozen means frozen."""

import json
import os
import shutil
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo
from recipes.data import labelled_dataset

IMAGES = np.random.default_rng(0).integers(0, 256, (5, 8, 8, 1)).astype("uint8")


def test_load_encoder_returns_a_frozen_keras_model(trained_dir):
    encoder = zoo.load_encoder(trained_dir)
    assert not encoder.trainable and encoder.trainable_weights == []
    assert encoder.input.dtype == "uint8" and encoder.output_shape == (None, 4)
    assert zoo.load_encoder(trained_dir, trainable=True).trainable_weights


def test_plain_keras_and_plain_tensorflow_without_zoo(trained_dir, tmp_path):
    """TFSMLayer and tf.saved_model.load in a process where `import zoo` fails."""
    np.save(tmp_path / "images.npy", IMAGES)
    script = f"""
import json, sys
sys.modules["zoo"] = None
sys.modules["recipes"] = None
try:
    import zoo
    raise SystemExit("zoo was importable")
except ImportError:
    pass
import keras, numpy as np, tensorflow as tf
images = np.load({str(tmp_path / "images.npy")!r})
layer = keras.layers.TFSMLayer({trained_dir!r} + "/encoder", call_endpoint="serve", trainable=False)
inputs = keras.Input((8, 8, 1), dtype="uint8")
model = keras.Model(inputs, keras.layers.Dense(3)(layer(inputs)))
model.compile("adam", "sparse_categorical_crossentropy")
model.fit(images, np.array([0, 1, 2, 0, 1]), epochs=1, verbose=0)
loaded = tf.saved_model.load({trained_dir!r} + "/encoder")  # keep a reference while calling it
json.dump({{"tfsm": np.asarray(layer(images)).tolist(),
            "tf": loaded.serve(tf.constant(images)).numpy().tolist(),
            "frozen_weights": len(layer.trainable_weights)}}, sys.stdout)
"""
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
        timeout=300,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    expected = zoo.load_encoder(trained_dir)(IMAGES, training=False)
    np.testing.assert_allclose(result["tfsm"], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(result["tf"], expected, rtol=1e-4, atol=1e-5)
    assert result["frozen_weights"] == 0


def test_model_endpoint_reconstructs_images(trained_dir):
    import tensorflow as tf

    loaded = tf.saved_model.load(os.path.join(trained_dir, "model"))
    out = loaded.serve(tf.constant(IMAGES)).numpy()
    assert out.shape == IMAGES.shape and 0.0 <= out.min() and out.max() <= 1.0


def test_training_the_head_leaves_the_frozen_encoder_bit_identical(trained_dir):
    encoder = zoo.load_encoder(trained_dir, trainable=False)
    moving = [w for w in encoder.weights if "moving" in w.path]
    assert moving, "the test needs an encoder with BatchNorm statistics"
    before = {w.path: w.numpy().copy() for w in encoder.weights}

    model = zoo.classifier_on(encoder, 10, hidden_units=(8,))
    head_before = model.get_layer("head_logits").kernel.numpy().copy()
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    images = np.random.default_rng(1).integers(0, 256, (64, 8, 8, 1)).astype("uint8")
    model.fit(
        labelled_dataset(images, np.arange(64) % 10, 16, seed=0), steps_per_epoch=10, epochs=1, shuffle=False, verbose=0
    )

    assert not np.array_equal(model.get_layer("head_logits").kernel.numpy(), head_before)  # the head trained
    for w in encoder.weights:
        np.testing.assert_array_equal(w.numpy(), before[w.path], err_msg=w.path)

    # Control: the same training on an unfrozen encoder does move its BatchNorm statistics.
    encoder.trainable = True
    model.compile(keras.optimizers.Adam(1e-2), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(
        labelled_dataset(images, np.arange(64) % 10, 16, seed=0), steps_per_epoch=2, epochs=1, shuffle=False, verbose=0
    )
    assert any(not np.array_equal(w.numpy(), before[w.path]) for w in moving)


def test_load_encoder_on_missing_or_corrupt_dirs(trained_dir, tmp_path):
    with pytest.raises(zoo.ZooError, match="does not exist"):
        zoo.load_encoder(str(tmp_path / "nope"))
    with pytest.raises(zoo.ZooError, match="has no manifest.json"):
        zoo.load_encoder(str(tmp_path))

    corrupt = str(tmp_path / "corrupt")
    shutil.copytree(trained_dir, corrupt)
    with open(os.path.join(corrupt, "encoder.keras"), "wb") as f:
        f.write(b"not a zip file")
    with pytest.raises(zoo.ZooError, match="encoder.keras.*corrupt, export the model again") as err:
        zoo.load_encoder(corrupt)
    assert "\n" not in str(err.value)

    with open(os.path.join(corrupt, "manifest.json"), "w") as f:
        f.write("{truncated")
    with pytest.raises(zoo.ZooError, match="manifest.json' is corrupt"):
        zoo.load_encoder(corrupt)


def test_recalibration_sets_trainable_batchnorm_and_leaves_frozen_layers_alone(trained_dir):
    from recipes.downstream import recalibrate_batchnorm

    encoder = zoo.load_encoder(trained_dir, trainable=False)
    before = {w.path: w.numpy().copy() for w in encoder.weights}
    model = zoo.classifier_on(encoder, 10)
    images = np.random.default_rng(2).integers(0, 256, (64, 8, 8, 1)).astype("uint8")
    norm = model.get_layer("head_norm")
    momentum = norm.momentum
    recalibrate_batchnorm(model, images)

    for w in encoder.weights:
        np.testing.assert_array_equal(w.numpy(), before[w.path], err_msg=w.path)
    features = encoder(images, training=False).numpy()
    np.testing.assert_allclose(norm.moving_mean.numpy(), features.mean(axis=0), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(norm.moving_variance.numpy(), features.var(axis=0), rtol=1e-3, atol=1e-5)
    assert norm.momentum == momentum


def test_recalibration_samples_a_long_split_at_random_not_its_first_examples():
    """A split in file order holds one class, then the next: statistics of its first examples would
    be those of one class."""
    from recipes.downstream import recalibrate_batchnorm

    inputs = keras.Input((1,))
    model = keras.Model(inputs, keras.layers.BatchNormalization()(inputs))
    ordered = np.arange(10_000, dtype="float32")[:, None]  # the first 100 have mean 49.5
    recalibrate_batchnorm(model, ordered, max_examples=100)
    mean = float(model.layers[-1].moving_mean.numpy()[0])
    assert abs(mean - 4999.5) < 1500, mean  # a random sample's mean: 4999.5 +- 289 (1 sd)
