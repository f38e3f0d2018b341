"""The DCGAN family: builder, two optimizers under distribution, mixed precision and resume, the
offline scorer, and the recipe's artifact."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import on_run_of

import zoo
from recipes import dcgan
from recipes.data import load_data
from recipes.flow import make_strategy, precision
from recipes.scoring import Scorer, frechet_distance
from zoo.dcgan import DCGAN

SHAPE = (8, 8, 1)
IMAGES = np.random.default_rng(0).integers(0, 256, (16, *SHAPE)).astype("uint8")


@pytest.mark.parametrize(
    "shape, features",
    [((8, 8, 1), 4 * 4 * 4 + 2 * 2 * 8), ((28, 28, 1), 4 * 4 * 4 + 4 * 4 * 8), ((32, 32, 3), 4 * 4 * 4 + 4 * 4 * 8)],
)
def test_shapes_follow_the_image(shape, features):
    model = zoo.build_model("dcgan_tiny", image_shape=shape)
    images = model.generate(model.noise(3))
    assert images.dtype == "uint8" and images.shape == (3, *shape)
    assert model.get_layer("encoder").output_shape == (None, features)
    assert model(np.zeros((2, *shape), "uint8")).shape == (2, 1)
    trunk = model.discriminator.get_layer("disc_trunk")
    assert model.get_layer("encoder").get_layer("disc_trunk") is trunk  # shared, not copied


def _momenta(optimizer):
    """Adam's first moments: after one step from zero they are (1 - beta_1) * gradient."""
    return [v.numpy() for v in optimizer.variables if "momentum" in v.path]


def _one_step(strategy, weights):
    with strategy.scope():
        model = zoo.build_model("dcgan_tiny", image_shape=SHAPE, batch_norm=False)
        model.set_weights(weights)
        model.compile(learning_rate=1e-3)
    for optimizer in (model.optimizer, model.d_optimizer):
        if isinstance(optimizer, keras.optimizers.LossScaleOptimizer):
            optimizer.dynamic_scale.assign(2.0**8)  # from 2^15, a float16 overflow would skip the one step
    history = model.fit(IMAGES, batch_size=len(IMAGES), epochs=1, shuffle=False, verbose=0).history
    return history, _momenta(model.d_optimizer), _momenta(model.optimizer), model


@pytest.fixture
def fixed_noise(monkeypatch):
    """The same noise for every example: one device and two replicas then compute the same thing."""
    monkeypatch.setattr(DCGAN, "noise", lambda self, n: tf.ones((n, self.latent_dim)) * 0.5)


def test_mirrored_strategy_gives_the_same_losses_and_gradients(fixed_noise):
    strategy = make_strategy("mirrored")  # the process's one mirrored strategy, over the two logical CPUs
    assert strategy.num_replicas_in_sync == 2
    keras.utils.set_random_seed(0)
    weights = zoo.build_model("dcgan_tiny", image_shape=SHAPE, batch_norm=False).get_weights()
    one, one_d, one_g, _ = _one_step(tf.distribute.get_strategy(), weights)
    two, two_d, two_g, _ = _one_step(strategy, weights)
    for key in ("d_loss", "g_loss", "d_real", "d_fake"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5)
    for a, b in zip(two_d + two_g, one_d + one_g):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-8)
    assert len(one_d) and len(one_g) and max(np.abs(m).max() for m in one_g) > 0


def test_mixed_precision_scales_both_losses(fixed_noise):
    keras.utils.set_random_seed(0)
    weights = zoo.build_model("dcgan_tiny", image_shape=SHAPE, batch_norm=False).get_weights()
    _, full_d, full_g, _ = _one_step(tf.distribute.get_strategy(), weights)
    with precision("mixed_float16"):
        history, mixed_d, mixed_g, model = _one_step(tf.distribute.get_strategy(), weights)
    assert isinstance(model.optimizer, keras.optimizers.LossScaleOptimizer)
    assert isinstance(model.d_optimizer, keras.optimizers.LossScaleOptimizer)
    assert model.generator.get_layer("gen_dense").compute_dtype == "float16"
    assert all(np.isfinite(v[0]) for v in history.values())
    for a, b in zip(mixed_d + mixed_g, full_d + full_g):  # unscaled gradients: as in float32, to fp16 precision
        np.testing.assert_allclose(a, b, rtol=0.05, atol=0.02 * np.abs(b).max() + 1e-7)


def test_resume_restores_both_optimizers(tmp_path):
    class Killed(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 1:
                raise RuntimeError("killed")

    def fit(callbacks):
        keras.utils.set_random_seed(0)
        model = zoo.build_model("dcgan_tiny", image_shape=SHAPE, d_steps=2)
        model.compile()
        model.fit(
            IMAGES,
            batch_size=8,
            epochs=3,
            verbose=0,
            callbacks=[keras.callbacks.BackupAndRestore(str(tmp_path / "backup")), *callbacks],
        )
        return model

    with pytest.raises(RuntimeError, match="killed"):
        fit([Killed()])
    model = fit([])
    assert int(model.optimizer.iterations) == 3 * 2  # 2 steps per epoch, 3 epochs: 2 before the kill
    assert int(model.d_optimizer.iterations) == 3 * 2 * 2  # d_steps=2


def test_keras_file_reloads_with_both_optimizers(tmp_path):
    model = zoo.build_model("dcgan_tiny", image_shape=SHAPE)
    model.compile(learning_rate=1e-3)
    model.fit(IMAGES, batch_size=8, epochs=1, verbose=0)
    model.save(str(tmp_path / "gan.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "gan.keras"))  # no custom_objects
    z = np.random.default_rng(1).standard_normal((4, model.latent_dim)).astype("float32")
    np.testing.assert_array_equal(reloaded.generate(z), model.generate(z))
    np.testing.assert_allclose(reloaded.get_layer("encoder")(IMAGES), model.get_layer("encoder")(IMAGES), rtol=1e-5)
    assert int(reloaded.optimizer.iterations) == 2 and int(reloaded.d_optimizer.iterations) == 2


def test_frechet_distance_by_hand():
    rng = np.random.default_rng(0)
    x = rng.standard_normal((500, 3))
    stats = (x.mean(0), np.cov(x, rowvar=False))
    assert abs(frechet_distance(stats, stats)) < 1e-6
    a = (np.array([1.0]), np.array([[4.0]]))
    b = (np.array([-1.0]), np.array([[1.0]]))
    assert frechet_distance(a, b) == pytest.approx((1 - -1) ** 2 + (2 - 1) ** 2)  # (mu_a-mu_b)^2 + (sd_a-sd_b)^2


def test_scorer_separates_real_from_noise(tfds_dir):
    data = load_data(dcgan.Config(data_dir=tfds_dir))
    scorer = Scorer.train(data, epochs=2, seed=0, batch_size=64)
    real = scorer.statistics(data.eval_inputs)
    train_images, _ = data.train_arrays()
    noise = np.random.default_rng(0).integers(0, 256, (len(data.eval_inputs), *data.image_shape)).astype("uint8")
    real_vs_real = scorer.score(train_images[: len(data.eval_inputs)], real)["frechet_distance"]
    real_vs_noise = scorer.score(noise, real)
    same = scorer.score(data.eval_inputs, real)["frechet_distance"]
    assert abs(same) < 1e-6 * real_vs_noise["frechet_distance"]  # the eval images against themselves
    assert real_vs_noise["frechet_distance"] > 10 * real_vs_real  # train images against eval: small
    assert sum(real_vs_noise["class_histogram"]) == len(noise)
    assert 1.0 <= real_vs_noise["classifier_score"] <= data.num_classes


@on_run_of("dcgan")
def test_recipe_scores_every_epoch_and_the_end(finished_run):
    config, metrics = finished_run("dcgan")
    d = config.model_dir
    assert {"samples.png", "interpolation.png"} <= set(os.listdir(f"{d}/figures"))
    assert sorted(os.listdir(f"{d}/figures/epochs")) == ["epoch_001.png", "epoch_002.png"]
    assert os.listdir(f"{d}/logs/scores")  # the per-epoch scores, for TensorBoard
    pre = metrics["pretrain"]
    for key in ("d_loss", "g_loss", "frechet_distance", "frechet_distance_train_vs_eval", "classifier_score"):
        assert np.isfinite(pre[key] if key.startswith(("frechet", "classifier")) else pre[f"eval_{key}"]), key
    assert len(pre["class_histogram"]) == 10 and sum(pre["class_histogram"]) == config.score_samples
    with open(os.path.join(d, "manifest.json")) as f:
        assert "discriminator" in json.load(f)["encoder"]["features"]


@on_run_of("dcgan")
def test_generator_endpoints_return_uint8_images(finished_run):
    d = finished_run("dcgan")[0].model_dir
    generator = tf.saved_model.load(f"{d}/model")
    model = keras.saving.load_model(f"{d}/model.keras")
    z = np.random.default_rng(0).standard_normal((4, model.latent_dim)).astype("float32")
    images = generator.serve(tf.constant(z))
    assert images.dtype == tf.uint8 and images.shape == (4, *SHAPE)
    np.testing.assert_array_equal(images, model.generate(z))
    first = generator.sample(n=tf.constant(5), seed=tf.constant(3))
    assert first.shape == (5, *SHAPE)
    np.testing.assert_array_equal(first, generator.sample(n=tf.constant(5), seed=tf.constant(3)))


@on_run_of("dcgan")
def test_scorer_dir_must_be_a_classifier_run(finished_run, tmp_path):
    config, _ = finished_run("dcgan")
    config = config.replace(scorer_dir=config.model_dir, model_dir=str(tmp_path / "run"))
    with pytest.raises(zoo.ZooError, match="--scorer_dir=.*not a cnn_classifier run"):
        dcgan.run(config)
    assert os.listdir(tmp_path) == []  # stopped before any work: no artifact, no staging directory


def test_scorer_loads_a_classifier_run(tmp_path, tfds_dir):
    data = load_data(dcgan.Config(data_dir=tfds_dir))
    classifier = zoo.build_model("cnn_classifier_tiny", image_shape=data.image_shape, num_classes=10)
    classifier.save(str(tmp_path / "model.keras"))
    with open(tmp_path / "manifest.json", "w") as f:
        json.dump({"family": "cnn_classifier", "input": {"shape": list(data.image_shape)}}, f)
    scorer = Scorer.load(str(tmp_path), data)
    np.testing.assert_allclose(
        scorer.predict(data.eval_inputs[:5]), np.argmax(classifier.predict(data.eval_inputs[:5], verbose=0), -1)
    )
    with open(tmp_path / "manifest.json", "w") as f:
        json.dump({"family": "cnn_classifier", "input": {"shape": [28, 28, 1]}}, f)
    with pytest.raises(zoo.ZooError, match=r"takes \(28, 28, 1\) images, the dataset has \(8, 8, 1\)"):
        Scorer.load(str(tmp_path), data)
