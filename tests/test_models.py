"""The contract every registered model keeps, parametrised over `zoo.list_models(include_tiny=True)`:
it builds for any image shape (a text model: any sequence length, strings in), saves and reloads
exactly (also in a fresh process), every trainable weight learns, and the default build's size is
pinned. The registry explains mistakes."""

import os
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import REPO, build, example_inputs

import zoo
from recipes.downstream import walk_layers

ALL_MODELS = zoo.list_models(include_tiny=True)
IMAGE_MODELS = [n for n in ALL_MODELS if zoo.get_entry(n).inputs == "images"]
TEXT_MODELS = [n for n in ALL_MODELS if zoo.get_entry(n).inputs == "texts"]
SHAPES = [(8, 8, 1), (28, 28, 1), (32, 32, 3)]

# Parameters of each default build for 28x28x1 images: an architecture changed by accident fails here.
PARAMETERS = {
    "cnn_classifier": 165962,
    "cnn_classifier_bn": 75306,
    "cnn_classifier_flat": 427914,
    "cnn_classifier_tiny": 5050,
    "conv_autoencoder": 329537,
    "conv_autoencoder_tiny": 3317,
    "conv_vae": 108466,
    "conv_vae_tiny": 1256,
    "dcgan": 923586,
    "dcgan_tiny": 6302,
    "dense_autoencoder": 419120,
    "dense_autoencoder_tiny": 26036,
    "dense_vae": 1079601,
    "dense_vae_tiny": 26005,
    "masked_lm": 5438752,
    "masked_lm_tiny": 4256,
    "simclr": 143584,
    "simclr_tiny": 504,
    "small_resnet": 698538,
    "small_resnet_tiny": 1470,
    # 15.36 M word and word-pair vectors, 2.56 M context vectors; 340,000 not trained: the weights,
    # the counts (of 20,000 words and 100,000 word pairs) and the pair keys
    "word2vec": 18260000,
    "word2vec_tiny": 4150,
}


def test_every_registered_model_has_a_pinned_size():
    assert sorted(PARAMETERS) == ALL_MODELS


@pytest.mark.parametrize("name", ALL_MODELS)
def test_default_build_has_the_pinned_parameter_count(name):
    shape = {"image_shape": (28, 28, 1)} if name in IMAGE_MODELS else {}
    assert zoo.build_model(name, **shape).count_params() == PARAMETERS[name]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", IMAGE_MODELS)
def test_builds_for_any_image_shape(name, shape):
    model = zoo.build_model(name, image_shape=shape)
    encoder = model.get_layer("encoder")
    assert encoder.input.dtype == "uint8" and tuple(encoder.input.shape[1:]) == shape
    features = np.asarray(encoder(example_inputs(name, 4, image_shape=shape), training=False))
    assert features.shape[0] == 4 and features.ndim == 2 and np.all(np.isfinite(features))
    assert np.all(np.isfinite(np.asarray(model(example_inputs(name, 4, image_shape=shape), training=False))))


@pytest.mark.parametrize(
    "shape, filters, pads", [((28, 28, 1), (8, 16, 32), 1), ((27, 31, 3), (4, 8), 2)], ids=["28-3blocks", "27x31"]
)
@pytest.mark.parametrize("name", ["conv_autoencoder", "conv_vae"])
def test_conv_decoders_undo_pooling_of_odd_sizes(name, shape, filters, pads):
    """A trunk that pools an odd size drops a row or column (28 -> 14 -> 7 -> 3): the decoder
    still ends at the image's size, one padding layer per level pooled from an odd size."""
    model = zoo.build_model(name, image_shape=shape, filters=filters, convs_per_block=1)
    decoder = model.get_layer("decoder")
    assert tuple(decoder.output_shape[1:]) == shape
    assert np.asarray(decoder(np.zeros((2, decoder.input_shape[-1]), "float32"))).shape == (2, *shape)
    assert len([layer for layer in decoder.layers if layer.name.endswith("_pad")]) == pads


@pytest.mark.parametrize("name", ["conv_autoencoder", "conv_vae"])
def test_decoder_filters_change_the_decoder_alone(name):
    """A lighter decoder: its blocks take the given widths, the encoder stays weight for weight
    the default's, and the images come out at their size; a width per block or one line."""
    default, light = zoo.build_model(name), zoo.build_model(name, decoder_filters=(16, 8))

    def shapes(model):
        return [tuple(v.shape) for v in model.get_layer("encoder").weights]

    assert shapes(light) == shapes(default)
    decoder = light.get_layer("decoder")
    widths = [layer.filters for layer in decoder.layers if layer.name.endswith("_deconv")]
    assert widths == [16, 8] and decoder.get_layer("dec_reshape").output.shape[-1] == 16
    assert tuple(decoder.output_shape[1:]) == (28, 28, 1)
    assert light.count_params() < default.count_params()
    assert zoo.build_model(name, decoder_filters=()).count_params() == PARAMETERS[name]  # empty: the default
    with pytest.raises(zoo.ZooError, match="decoder_filters=8: give one width per encoder block") as err:
        zoo.build_model(name, decoder_filters=(8,))
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("length", [2, 16, 64])
@pytest.mark.parametrize("name", [n for n in TEXT_MODELS if zoo.get_entry(n).tiny])
def test_text_models_take_strings_for_any_sequence_length(name, length):
    model = build(name, sequence_length=length)
    encoder = model.get_layer("encoder")
    assert encoder.input.dtype == "string" and tuple(encoder.input.shape) == (None,)
    texts = np.concatenate([example_inputs(name, 3), np.array(["", "unseen words only"], dtype=object)])
    features = np.asarray(encoder(texts, training=False))
    assert features.shape == (5, encoder.output_shape[-1]) and np.all(np.isfinite(features))
    assert np.all(features[3:] == 0)  # no known word: the mean of nothing is zero
    ids = np.asarray(zoo.text.token_ids(encoder, texts))
    assert ids.shape == (5, length) and ids.max() < zoo.get_entry(name).config()["vocab_size"]


@pytest.mark.parametrize(
    "change, message",
    [(dict(vocab_size=2), "vocab_size=2: must be in"), (dict(sequence_length=1), "sequence_length=1: must be in")],
)
@pytest.mark.parametrize("name", [n for n in TEXT_MODELS if zoo.get_entry(n).tiny])
def test_text_sizes_out_of_range_are_one_line(name, change, message):
    with pytest.raises(zoo.ZooError, match=message) as err:
        zoo.build_model(name, **change)
    assert "\n" not in str(err.value)


@pytest.mark.parametrize("name", [n for n in ALL_MODELS if zoo.get_entry(n).tiny])
def test_every_trainable_weight_learns(name):
    """One training step moves every trainable weight: none is left out of the loss."""
    keras.utils.set_random_seed(0)
    model = build(name)
    images = example_inputs(name, n=16)
    if type(model).train_step is keras.Model.train_step:  # functional: a loss on its output
        outputs = model(images)
        targets = np.zeros(outputs.shape[0], "int64") if outputs.shape[-1] == 10 else images / 255.0
        loss = "sparse_categorical_crossentropy" if outputs.shape[-1] == 10 else "mse"
        model.compile(optimizer=keras.optimizers.Adam(1e-2), loss=loss)
        fit = lambda: model.fit(images, targets, batch_size=16, epochs=1, verbose=0)  # noqa: E731
    else:  # its own train_step and loss
        model.compile()
        data = tf.data.Dataset.from_tensor_slices(images).batch(16)  # texts too (NumPy string arrays are not)
        fit = lambda: model.fit(data, epochs=1, verbose=0)  # noqa: E731
    before = [w.numpy().copy() for w in model.trainable_weights]
    fit()
    still = [w.path for w, b in zip(model.trainable_weights, before) if np.array_equal(w.numpy(), b)]
    assert model.trainable_weights and not still, f"no gradient reached {still}"


@pytest.mark.parametrize("name", ALL_MODELS)
def test_keras_file_round_trip(name, tmp_path):
    model = build(name)
    images = example_inputs(name)
    path = str(tmp_path / f"{name}.keras")
    model.save(path)
    reloaded = keras.saving.load_model(path)  # no custom_objects
    assert type(reloaded) is type(model) and len(reloaded.weights) == len(model.weights)
    np.testing.assert_allclose(reloaded(images, training=False), model(images, training=False), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        reloaded.get_layer("encoder")(images), model.get_layer("encoder")(images), rtol=1e-5, atol=1e-6
    )


def test_keras_files_reload_in_a_fresh_process(tmp_path):
    """Functional models load where zoo cannot be imported; registered Model classes (their own
    train_step) need only `import zoo`, never custom_objects. Outputs match this process's."""
    np.save(tmp_path / "images.npy", example_inputs(IMAGE_MODELS[0]))
    np.save(tmp_path / "texts.npy", example_inputs(TEXT_MODELS[0]))
    expected = {}
    for name in ALL_MODELS:
        model = build(name)
        functional = type(model).__module__.startswith("keras.")
        model.save(str(tmp_path / f"{'plain' if functional else 'zoo'}-{name}.keras"))
        expected[name] = np.asarray(model.get_layer("encoder")(example_inputs(name)))
    script = """
import glob, json, os, sys
import keras, numpy as np
images, texts = np.load("images.npy"), np.load("texts.npy", allow_pickle=True)
out = {}
for with_zoo in (False, True):
    if with_zoo:
        del sys.modules["zoo"]
        import zoo  # noqa: F401  (registers the zoo's Model classes)
    else:
        sys.modules["zoo"] = None
    for path in sorted(glob.glob(("zoo" if with_zoo else "plain") + "-*.keras")):
        name = os.path.basename(path)[:-6].split("-", 1)[1]
        encoder = keras.saving.load_model(path).get_layer("encoder")
        out[name] = np.asarray(encoder(texts if encoder.input.dtype == "string" else images)).tolist()
print(json.dumps(out))
"""
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        cwd=str(tmp_path),
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO},
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    reloaded = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert sorted(reloaded) == ALL_MODELS
    for name in ALL_MODELS:
        np.testing.assert_allclose(reloaded[name], expected[name], rtol=1e-5, atol=1e-6, err_msg=name)


def test_registry_lists_families_and_hides_tiny_variants():
    assert set(zoo.list_families()) == {zoo.get_entry(n).family for n in ALL_MODELS}
    assert "conv_autoencoder" in zoo.list_models(family="autoencoder")
    assert "conv_autoencoder_tiny" not in zoo.list_models()
    assert all(zoo.get_entry(n).tiny == n.endswith("_tiny") for n in ALL_MODELS)
    families = {zoo.get_entry(n).family for n in ALL_MODELS}
    assert all(any(zoo.get_entry(n).tiny for n in zoo.list_models(family=f, include_tiny=True)) for f in families)


def test_unknown_model_lists_the_valid_ones():
    with pytest.raises(zoo.ZooError) as err:
        zoo.build_model("conv_autoencodr")
    message = str(err.value)
    assert "Did you mean 'conv_autoencoder'" in message and "dense_autoencoder" in message
    assert "\n" not in message


def test_unknown_hyperparameter_is_named():
    with pytest.raises(zoo.ZooError, match="no hyperparameter 'latnt_dim'.*latent_dim"):
        zoo.build_model("dense_autoencoder", latnt_dim=3)


def op_types(layer, x):
    graph = tf.function(lambda x: layer(x, training=True)).get_concrete_function(x).graph
    return {op.type for op in graph.get_operations()}


@pytest.mark.parametrize(
    "shape, options", [((16, 6, 6, 8), {}), ((32, 5), {}), ((32, 5), {"center": False, "scale": False})]
)
def test_fused_batchnorm_computes_what_keras_batchnorm_computes(shape, options):
    """A BatchNormalization layer under zoo.blocks.fuse_batchnorm (TensorFlow's fused kernel) against
    Keras's own: outputs, gradients and moving statistics in training, outputs in inference."""
    x = tf.constant(np.random.default_rng(0).normal(2.0, 3.0, shape), tf.float32)
    results = []
    for fused in (False, True):
        layer = keras.layers.BatchNormalization(momentum=0.9, **options)
        layer.build(shape)
        if fused:
            zoo.blocks.fuse_batchnorm(keras.Sequential([layer]))
        assert fused == ("FusedBatchNormV3" in op_types(layer, x))
        if layer.scale:
            layer.gamma.assign(np.linspace(0.5, 1.5, shape[-1]))
            layer.beta.assign(np.linspace(-1.0, 1.0, shape[-1]))
        with tf.GradientTape() as tape:
            tape.watch(x)
            y = layer(x, training=True)
            loss = tf.reduce_sum(y**3)
        gradients = tape.gradient(loss, [x, *layer.trainable_weights])
        results.append([y, *gradients, layer.moving_mean, layer.moving_variance, layer(x, training=False)])
    keras_results, fused_results = results
    assert len(fused_results) == (7 if options == {} else 5)
    for want, got in zip(keras_results, fused_results):
        want, got = np.asarray(want), np.asarray(got)
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.abs(want).max())


@pytest.mark.parametrize("dtype", ["bfloat16", "float16"])
def test_fused_batchnorm_reads_low_precision_inputs(dtype):
    layer = keras.layers.BatchNormalization(dtype=keras.DTypePolicy(f"mixed_{dtype}"))
    zoo.blocks.fuse_batchnorm(keras.Sequential([layer]))
    x = tf.cast(tf.random.stateless_normal((8, 4, 4, 3), seed=(1, 2)) * 5.0 + 3.0, dtype)
    assert "FusedBatchNormV3" in op_types(layer, x)
    y = layer(x, training=True)
    assert y.dtype == dtype and layer.moving_mean.dtype == "float32"
    np.testing.assert_allclose(np.asarray(tf.reduce_mean(tf.cast(y, tf.float32), axis=(0, 1, 2))), 0.0, atol=0.05)
    np.testing.assert_allclose(
        layer.moving_mean.numpy(), 0.01 * tf.reduce_mean(tf.cast(x, tf.float32), (0, 1, 2)), rtol=0.02
    )


@pytest.mark.parametrize("name", ["conv_autoencoder_tiny", "conv_vae_tiny", "dcgan_tiny", "simclr_tiny"])
def test_build_model_fuses_every_batchnorm(name):
    model = build(name)
    norms = [layer for layer in walk_layers(model) if isinstance(layer, keras.layers.BatchNormalization)]
    assert norms and all("call" in vars(layer) for layer in norms)
    zoo.blocks.fuse_batchnorm(model, fused=False)
    assert not any("call" in vars(layer) for layer in norms)
