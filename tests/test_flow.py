"""The shared flow beyond the contract: resume, strategies, precision, mocked datasets, configs."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds

from recipes import autoencoder, flow


def _read(model_dir, name):
    with open(os.path.join(model_dir, name)) as f:
        return json.load(f)


def test_crash_leaves_no_artifact_and_rerun_resumes(tiny_config, monkeypatch):
    config = tiny_config.replace(epochs=3)
    started = []
    original_begin, original_end = flow.Throughput.on_epoch_begin, flow.Throughput.on_epoch_end

    def begin(self, epoch, logs=None):
        started.append(epoch)
        original_begin(self, epoch, logs)

    def killed_after_second_epoch(self, epoch, logs=None):
        original_end(self, epoch, logs)
        if epoch == 1:
            raise RuntimeError("killed")

    monkeypatch.setattr(flow.Throughput, "on_epoch_begin", begin)
    monkeypatch.setattr(flow.Throughput, "on_epoch_end", killed_after_second_epoch)
    with pytest.raises(RuntimeError, match="killed"):
        autoencoder.run(config)
    assert not os.path.exists(config.model_dir)  # nothing half-written where users look
    assert started == [0, 1]

    monkeypatch.setattr(flow.Throughput, "on_epoch_end", original_end)
    started.clear()
    autoencoder.run(config)
    assert started == [2]  # the two finished epochs were not trained again
    with open(os.path.join(config.model_dir, "logs", "history.csv")) as f:
        assert [line.split(",")[0] for line in f.read().split()[1:]] == ["0", "1", "2"]


def test_mirrored_strategy_over_two_cpus(tiny_config):
    assert flow.make_strategy("mirrored").num_replicas_in_sync == 2
    metrics = autoencoder.run(tiny_config.replace(strategy="mirrored", label_budgets=(10,)))
    assert 0.0 <= metrics["transfer"][0]["frozen"] <= 1.0
    assert np.isfinite(metrics["pretrain"]["eval_loss"])


def test_mixed_float16_and_jit_compile(tiny_config):
    before = keras.config.dtype_policy().name
    metrics = autoencoder.run(
        tiny_config.replace(precision="mixed_float16", jit_compile=True, label_budgets=(10,), reference=False)
    )
    assert keras.config.dtype_policy().name == before  # the global policy is restored
    assert np.isfinite(metrics["pretrain"]["eval_loss"])
    encoder = keras.saving.load_model(os.path.join(tiny_config.model_dir, "encoder.keras"))
    assert encoder.get_layer("block0_0_conv").dtype_policy.name == "mixed_float16"
    assert encoder.output.dtype == "float32"


def test_dense_variant_with_denoising_on_a_mocked_tfds_dataset(tiny_config):
    with tfds.testing.mock_data(num_examples=64):
        metrics = autoencoder.run(
            tiny_config.replace(
                dataset="mnist",
                model="dense_autoencoder_tiny",
                hidden_sizes=(8,),
                masking_noise=0.3,
                label_budgets=(10,),
                augment=True,
                head_units=(8,),
            )
        )
    manifest = _read(tiny_config.model_dir, "manifest.json")
    assert manifest["input"]["shape"] == [28, 28, 1] and manifest["model_config"]["hidden_sizes"] == [8]
    assert len(metrics["transfer"]) == 1


def test_lists_stand_for_tuples():
    """JSON, papermill and manifest.json's "flags" give lists; they validate and replay like tuples."""
    config = autoencoder.Config(label_budgets=[100, 1000], filters=[8, 16])
    config.validate()
    assert config.label_budgets == (100, 1000) and config.filters == (8, 16)
    assert autoencoder.Config(**json.loads(json.dumps(flow.as_dict(config)))) == config


def _fake_machine(monkeypatch, cpu_flags, gpu_capability=None):
    gpus = [] if gpu_capability is None else ["GPU:0"]
    monkeypatch.setattr(flow, "_cpu_flags", lambda: cpu_flags)
    monkeypatch.setattr(flow.tf.config, "list_physical_devices", lambda kind=None: gpus if kind == "GPU" else [])
    monkeypatch.setattr(
        flow.tf.config.experimental, "get_device_details", lambda device: {"compute_capability": gpu_capability}
    )


@pytest.mark.parametrize(
    "cpu_flags, gpu, expected",
    [
        (["avx", "avx2"], None, "float32"),  # bfloat16 would be emulated: slower
        (["avx512f", "avx512_bf16"], None, "mixed_bfloat16"),
        (["avx512f", "amx_tile", "amx_bf16"], None, "mixed_bfloat16"),
        (["avx2"], (7, 0), "float32"),  # V100: no bfloat16 tensor cores
        (["avx2"], (8, 0), "mixed_bfloat16"),  # A100 and later
        (["amx_bf16"], (7, 5), "float32"),  # a GPU decides where there is one
    ],
)
def test_auto_precision_follows_the_hardware(monkeypatch, cpu_flags, gpu, expected):
    _fake_machine(monkeypatch, cpu_flags, gpu)
    assert flow.resolve_precision("auto") == expected
    assert flow.resolve_precision("float32") == "float32"
    assert flow.resolve_precision("mixed_float16") == "mixed_float16"


def test_bfloat16_run_exports_an_encoder_that_serves_uint8_in_float32_out(tiny_config):
    import tensorflow as tf

    metrics = autoencoder.run(tiny_config.replace(precision="mixed_bfloat16", label_budgets=(10,)))
    assert metrics["precision"] == "mixed_bfloat16" and np.isfinite(metrics["pretrain"]["eval_loss"])
    assert _read(tiny_config.model_dir, "manifest.json")["precision"] == "mixed_bfloat16"
    encoder = keras.saving.load_model(os.path.join(tiny_config.model_dir, "encoder.keras"))
    assert encoder.get_layer("block0_0_conv").compute_dtype == "bfloat16"
    loaded = tf.saved_model.load(os.path.join(tiny_config.model_dir, "encoder"))
    images = np.random.default_rng(0).integers(0, 256, (3, 8, 8, 1)).astype("uint8")
    features = loaded.serve(tf.constant(images))
    (spec,), _ = loaded.serve.concrete_functions[0].structured_input_signature
    assert spec.dtype == tf.uint8 and features.dtype == tf.float32
    assert np.all(np.isfinite(features.numpy()))


def test_losses_stay_float32_under_bfloat16():
    """Every loss the families compute reads float32 outputs and is float32 itself."""
    import zoo
    from zoo.simclr import nt_xent

    images = np.random.default_rng(0).integers(0, 256, (8, 8, 8, 1)).astype("uint8")
    with flow.precision("mixed_bfloat16"):
        for name in ("conv_autoencoder_tiny", "cnn_classifier_tiny"):
            model = zoo.build_model(name, image_shape=(8, 8, 1))
            assert model.get_layer("encoder").layers[2].compute_dtype == "bfloat16"
            assert model(images).dtype == "float32"
        vae = zoo.build_model("conv_vae_tiny", image_shape=(8, 8, 1))
        assert all(t.dtype == "float32" for t in vae.terms(images, training=True))
        gan = zoo.build_model("dcgan_tiny", image_shape=(8, 8, 1))
        assert gan.generator.get_layer("gen_dense").compute_dtype == "bfloat16"
        real = images.astype("float32") / 127.5 - 1.0
        assert gan._d_loss(real, True)[0].dtype == "float32" and gan._g_loss(8, True)[0].dtype == "float32"
        simclr = zoo.build_model("simclr_tiny", image_shape=(8, 8, 1))
        z = simclr(images, training=True)
        assert z.dtype == "float32" and nt_xent(z, z, 0.5)[0].dtype == "float32"


def test_mixed_precision_flag_is_now_the_float16_choice(tfds_dir, tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "recipes.autoencoder",
            "--mixed_precision",
            "--precision=float32",
            f"--data_dir={tfds_dir}",
            f"--model_dir={tmp_path / 'out'}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines()[-1] == (
        "error: --mixed_precision contradicts --precision=float32; give only --precision"
    )
    assert not (tmp_path / "out").exists()
