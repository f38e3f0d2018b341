"""Every registered model builds, runs, saves and reloads; the registry explains mistakes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest

import zoo

ALL_MODELS = zoo.list_models(include_tiny=True)
SHAPE = (8, 8, 1)


def _images(n=3, shape=SHAPE, seed=0):
    return np.random.default_rng(seed).integers(0, 256, (n, *shape)).astype("uint8")


@pytest.mark.parametrize("name", ALL_MODELS)
def test_build_run_save_reload(name, tmp_path):
    model = zoo.build_model(name, image_shape=SHAPE)
    encoder = model.get_layer("encoder")
    assert encoder.input.dtype == "uint8"
    images = _images()
    features = encoder(images, training=False)
    assert features.shape[0] == 3 and len(features.shape) == 2
    outputs = model(images, training=False)

    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    np.testing.assert_allclose(reloaded(images, training=False), outputs, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(reloaded.get_layer("encoder")(images), features, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("shape", [(8, 8, 1), (28, 28, 1), (32, 32, 3)])
@pytest.mark.parametrize("name", ["conv_autoencoder_tiny", "dense_autoencoder_tiny", "cnn_classifier_tiny",
                                  "conv_vae_tiny", "dense_vae_tiny"])
def test_builders_adapt_to_image_shape(name, shape):
    model = zoo.build_model(name, image_shape=shape)
    out = model(_images(2, shape), training=False)
    if zoo.get_entry(name).family in ("autoencoder", "vae"):
        assert out.shape == (2, *shape)
        assert float(np.min(out)) >= 0.0 and float(np.max(out)) <= 1.0
    else:
        assert out.shape == (2, 10)


def test_literature_dense_autoencoders_are_one_flag_away():
    shallow = zoo.build_model("dense_autoencoder", image_shape=(28, 28, 1), hidden_sizes=(), latent_dim=32)
    assert [l.units for l in shallow.get_layer("encoder").layers if isinstance(l, keras.layers.Dense)] == [32]
    deep = zoo.build_model("dense_autoencoder", image_shape=(28, 28, 1), hidden_sizes=(128, 64, 32, 16), latent_dim=8)
    dense = [l.units for l in deep.get_layer("encoder").layers if isinstance(l, keras.layers.Dense)]
    assert dense == [128, 64, 32, 16, 8]


def test_registry_lists_families_and_hides_tiny_variants():
    assert {"autoencoder", "cnn_classifier"} <= set(zoo.list_families())
    assert "conv_autoencoder" in zoo.list_models(family="autoencoder")
    assert "conv_autoencoder_tiny" not in zoo.list_models()
    assert "conv_autoencoder_tiny" in zoo.list_models(include_tiny=True)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(zoo.ZooError) as err:
        zoo.build_model("conv_autoencodr")
    message = str(err.value)
    assert "Did you mean 'conv_autoencoder'" in message and "dense_autoencoder" in message
    assert "\n" not in message


def test_unknown_hyperparameter_is_named():
    with pytest.raises(zoo.ZooError, match="no hyperparameter 'latnt_dim'.*latent_dim"):
        zoo.build_model("dense_autoencoder", latnt_dim=3)


def test_keras_files_reload_in_a_fresh_process(tmp_path):
    """A process that never imports zoo loads every functional model. (Families that are registered
    keras.Model classes, with their own train_step, need `import zoo`: tested in their own files.)"""
    functional = []
    for name in ALL_MODELS:
        model = zoo.build_model(name, image_shape=SHAPE)
        if type(model).__module__.startswith("keras."):
            model.save(str(tmp_path / f"{name}.keras"))
            functional.append(name)
    assert {"conv_autoencoder", "cnn_classifier"} <= set(functional)
    script = (
        "import sys, glob, keras, numpy as np\n"
        "sys.modules['zoo'] = None\n"
        "x = np.zeros((2, 8, 8, 1), 'uint8')\n"
        f"paths = sorted(glob.glob({str(tmp_path)!r} + '/*.keras'))\n"
        "for p in paths: keras.saving.load_model(p)(x)\n"
        "print(len(paths))\n"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=str(tmp_path),
                         env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == str(len(functional))
