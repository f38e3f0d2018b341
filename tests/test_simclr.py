"""The SimCLR family: the loss by hand, under distribution and mixed precision, the recipe's artifact."""

import json
import math
import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import on_run_of

import zoo
from recipes import flow, simclr
from recipes.flow import make_strategy, precision
from zoo.simclr import SimCLR, nt_xent

SHAPE = (8, 8, 1)
IMAGES = np.random.default_rng(0).integers(0, 256, (16, *SHAPE)).astype("uint8")
NO_AUGMENTATION = dict(crop=0.0, translate=0.0, rotate=0.0, noise=0.0, contrast=0.0, color_jitter=0.0)


def numpy_nt_xent(z1, z2, temperature):
    """NT-Xent written out: anchor i's positive is its other view, every other view a negative."""
    z = np.concatenate([z1, z2]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    sim, n = z @ z.T / temperature, len(z1)
    losses = []
    for i in range(2 * n):
        others = [k for k in range(2 * n) if k != i]
        losses.append(-sim[i, (i + n) % (2 * n)] + np.log(np.sum(np.exp(sim[i, others]))))
    return np.array(losses)


def test_loss_matches_a_hand_computed_value():
    # Two images, identical views along orthogonal axes: each anchor has similarity 1 with its
    # positive and 0 with both negatives, so loss = -1/t + log(e^(1/t) + 2) = log(1 + 2 e^(-1/t)).
    z = np.array([[2.0, 0.0], [0.0, 3.0]], np.float32)
    losses, correct = nt_xent(z, z, 0.5)
    np.testing.assert_allclose(losses, [math.log(1 + 2 * math.exp(-2))] * 4, rtol=1e-6)
    np.testing.assert_array_equal(correct, [1, 1, 1, 1])

    rng = np.random.default_rng(1)
    z1, z2 = rng.standard_normal((2, 3, 5)).astype(np.float32)
    for temperature in (0.1, 1.0):
        losses, _ = nt_xent(z1, z2, temperature)
        np.testing.assert_allclose(losses, numpy_nt_xent(z1, z2, temperature), rtol=1e-5)


def test_local_anchors_against_global_negatives_are_the_global_loss_rows():
    """What each replica computes: its rows of the loss over the whole (gathered) batch."""
    rng = np.random.default_rng(2)
    z1, z2 = rng.standard_normal((2, 6, 4)).astype(np.float32)
    full = numpy_nt_xent(z1, z2, 0.2)
    local, _ = nt_xent(z1[2:4], z2[2:4], 0.2, z1, z2, offset=2)
    np.testing.assert_allclose(local, np.concatenate([full[2:4], full[8:10]]), rtol=1e-5)


def test_shapes_views_and_fit():
    model = zoo.build_model("simclr_tiny", image_shape=SHAPE, projection_dim=3)
    encoder = model.get_layer("encoder")
    assert encoder(IMAGES).shape == (16, 8)  # the trunk's pooled features: no projection head
    assert not any(layer.name.startswith("proj") for layer in encoder.layers)
    assert model(IMAGES).shape == (16, 3)
    views = model.augment(IMAGES)
    assert views.dtype == "uint8" and views.shape == IMAGES.shape
    assert not np.array_equal(views, model.augment(IMAGES))
    model.compile(optimizer="adam")
    history = model.fit(IMAGES, batch_size=8, epochs=1, verbose=0).history
    assert set(history) == {"loss", "contrastive_accuracy"}
    assert np.isfinite(history["loss"][0]) and 0 <= history["contrastive_accuracy"][0] <= 1
    assert len(model.trainable_weights) == len({id(w) for w in model.trainable_weights})


def test_pooling_is_the_average_the_maximum_or_both():
    model = zoo.build_model("simclr_tiny", image_shape=SHAPE, pooling="avg_max")
    encoder = model.get_layer("encoder")
    feature_map = keras.Model(encoder.inputs, encoder.get_layer("block1_pool").output)(IMAGES).numpy()
    both = encoder(IMAGES).numpy()
    assert both.shape == (16, 16) and model(IMAGES).shape == (16, 4)
    np.testing.assert_allclose(both[:, :8], feature_map.mean(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(both[:, 8:], feature_map.max(axis=(1, 2)), rtol=1e-5, atol=1e-6)
    for pooling, reduce in (("avg", np.mean), ("max", np.max)):
        one = zoo.build_model("simclr_tiny", image_shape=SHAPE, pooling=pooling)
        one.get_layer("encoder").set_weights(encoder.get_weights())  # the same trunk: only the pooling differs
        np.testing.assert_allclose(
            one.get_layer("encoder")(IMAGES), reduce(feature_map, axis=(1, 2)), rtol=1e-5, atol=1e-6
        )
    with pytest.raises(ValueError, match="pooling must be one of avg, max, avg_max; got 'sum'"):
        zoo.build_model("simclr_tiny", image_shape=SHAPE, pooling="sum")


def test_each_augmentation_is_a_flag_and_colour_jitter_needs_colour():
    def steps(shape, **flags):
        model = zoo.build_model("simclr_tiny", image_shape=shape, **{**NO_AUGMENTATION, **flags})
        return [layer.name for layer in model.get_layer("augment").layers]

    assert steps(SHAPE) == ["identity"]
    assert steps(SHAPE, crop=0.3, rotate=0.1) == ["crop", "rotate"]
    assert "color_jitter" not in steps(SHAPE, color_jitter=0.5)
    assert steps((8, 8, 3), color_jitter=0.5) == ["color_jitter"]
    model = zoo.build_model("simclr_tiny", image_shape=(8, 8, 3))
    colour = np.random.default_rng(0).integers(0, 256, (4, 8, 8, 3)).astype("uint8")
    assert model.augment(colour).shape == colour.shape and model(colour).shape == (4, 4)
    unchanged = zoo.build_model("simclr_tiny", image_shape=SHAPE, **NO_AUGMENTATION)
    np.testing.assert_array_equal(unchanged.augment(IMAGES), IMAGES)


def _one_step(strategy, weights, optimizer):
    """History and weight change after one `fit` step on IMAGES as one global batch."""
    with strategy.scope():
        # No BatchNorm (it normalises per replica) and no augmentation (each replica draws its own):
        # one device and two replicas then see the same computation.
        model = zoo.build_model("simclr_tiny", image_shape=SHAPE, batch_norm=False, **NO_AUGMENTATION)
        model.set_weights(weights)
        model.compile(optimizer=optimizer())
    before = [w.numpy() for w in model.trainable_weights]
    history = model.fit(IMAGES, batch_size=len(IMAGES), epochs=1, shuffle=False, verbose=0).history
    return history, [b - w.numpy() for b, w in zip(before, model.trainable_weights)], model


def _weights():
    keras.utils.set_random_seed(0)
    return zoo.build_model("simclr_tiny", image_shape=SHAPE, batch_norm=False, **NO_AUGMENTATION).get_weights()


def test_mirrored_strategy_contrasts_the_global_batch():
    """Negatives span the global batch: two replicas give one device's loss and gradients."""
    strategy = make_strategy("mirrored")  # the process's one mirrored strategy, over the two logical CPUs
    assert strategy.num_replicas_in_sync == 2
    weights = _weights()
    sgd = lambda: keras.optimizers.SGD(0.1)  # noqa: E731  (the weight change is -lr * gradient)
    one, one_delta, _ = _one_step(tf.distribute.get_strategy(), weights, sgd)
    two, two_delta, _ = _one_step(strategy, weights, sgd)
    for key in ("loss", "contrastive_accuracy"):
        np.testing.assert_allclose(two[key], one[key], rtol=1e-5)
    # With negatives per replica (each half of the batch on its own) the loss would differ.
    model = zoo.build_model("simclr_tiny", image_shape=SHAPE, batch_norm=False, **NO_AUGMENTATION)
    model.set_weights(weights)
    z = model(IMAGES)
    np.testing.assert_allclose(one["loss"][0], np.mean(nt_xent(z, z, model.temperature)[0]), rtol=1e-5)
    per_replica = np.mean([nt_xent(h, h, model.temperature)[0] for h in (z[:8], z[8:])])
    assert abs(per_replica - one["loss"][0]) > 1e-3
    for a, b in zip(two_delta, one_delta):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-7)
    assert max(np.abs(d).max() for d in one_delta) > 1e-4  # the step moved the weights


def test_mixed_precision_scales_the_loss_and_matches_float32():
    weights = _weights()
    sgd = lambda: keras.optimizers.SGD(0.1)  # noqa: E731
    scaled = lambda: keras.optimizers.LossScaleOptimizer(sgd(), initial_scale=2.0**8)  # noqa: E731
    _, full, _ = _one_step(tf.distribute.get_strategy(), weights, sgd)
    with precision("mixed_float16"):
        history, mixed, model = _one_step(tf.distribute.get_strategy(), weights, scaled)
        assert model.get_layer("encoder").get_layer("block0_0_conv").compute_dtype == "float16"
        assert model(IMAGES).dtype == "float32"
        recipe_model = zoo.build_model("simclr_tiny", image_shape=SHAPE)
        simclr.RECIPE.compile(flow.Run(simclr.Config(), None, None, None), recipe_model)
        assert isinstance(recipe_model.optimizer, keras.optimizers.LossScaleOptimizer)
        augmented = recipe_model.fit(IMAGES, batch_size=8, epochs=1, verbose=0).history  # views in float16 too
        assert np.isfinite(augmented["loss"][0])
    assert np.isfinite(history["loss"][0])
    # A loss scaled but not unscaled (or never scaled) would be off by 256x; float16 leaves a few percent.
    for a, b in zip(mixed, full):
        assert np.linalg.norm(a - b) <= 0.1 * np.linalg.norm(b) + 1e-7


def test_keras_file_keeps_temperature_and_views(tmp_path):
    model = zoo.build_model("simclr_tiny", image_shape=SHAPE, temperature=0.3, crop=0.0)
    model.save(str(tmp_path / "simclr.keras"))
    reloaded = keras.saving.load_model(str(tmp_path / "simclr.keras"))
    assert isinstance(reloaded, SimCLR) and reloaded.temperature == 0.3
    assert [l.name for l in reloaded.get_layer("augment").layers] == [l.name for l in model.get_layer("augment").layers]


@on_run_of("simclr")
def test_recipe_writes_views_and_features(finished_run):
    config, metrics = finished_run("simclr")
    d = config.model_dir
    assert {"views.png", "features.png"} <= set(os.listdir(f"{d}/figures"))
    pre = metrics["pretrain"]
    assert np.isfinite(pre["eval_loss"]) and 0 <= pre["eval_contrastive_accuracy"] <= 1
    with open(os.path.join(d, "manifest.json")) as f:
        assert "projection head is not" in json.load(f)["encoder"]["features"]
    encoder = keras.saving.load_model(f"{d}/encoder.keras")
    assert not any(layer.name.startswith("proj") for layer in encoder.layers)


@on_run_of("simclr")
def test_linear_probe_is_written_to_tensorboard_every_epoch(finished_run):
    config, _ = finished_run("simclr")
    d = config.model_dir
    files = os.listdir(f"{d}/logs/probe")
    assert files and all(f.startswith("events.out.tfevents") for f in files)
    steps = []
    for f in files:
        for event in tf.compat.v1.train.summary_iterator(f"{d}/logs/probe/{f}"):
            for value in event.summary.value:
                assert value.tag == "eval_accuracy"
                accuracy = float(tf.make_ndarray(value.tensor))
                assert 0.0 <= accuracy <= 1.0
                steps.append(event.step)
    assert sorted(steps) == list(range(config.epochs))
