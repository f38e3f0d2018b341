"""The autoencoder recipe end to end, through the one shared flow."""

import json
import os

import keras
import numpy as np
import pytest
import tensorflow_datasets as tfds
from absl import flags

from recipes import autoencoder, flow
from recipes.config import define_flags, from_flags
from zoo.errors import ZooError

ARTIFACT = ["encoder", "encoder.keras", "model", "model.keras", "manifest.json", "metrics.json",
            "figures", "logs", "flags.txt"]


def _read(model_dir, name):
    with open(os.path.join(model_dir, name)) as f:
        return json.load(f)


def test_end_to_end_writes_the_artifact(tiny_config):
    metrics = autoencoder.run(tiny_config.replace(transfer_repeats=2))
    d = tiny_config.model_dir
    assert sorted(os.listdir(d)) == sorted(ARTIFACT)
    assert {"curves.png", "reconstructions.png", "transfer.png"} <= set(os.listdir(os.path.join(d, "figures")))
    assert any(f.startswith("events.out.tfevents") for _, _, fs in os.walk(os.path.join(d, "logs")) for f in fs)
    assert not os.path.exists(os.path.join(os.path.dirname(d), ".run.partial"))

    assert _read(d, "metrics.json") == json.loads(json.dumps(metrics))
    assert [row["labels"] for row in metrics["transfer"]] == [10, 20]
    for row in metrics["transfer"]:
        for kind in ("frozen", "finetune", "scratch"):
            assert 0.0 <= row[kind] <= 1.0
            assert row[kind] == pytest.approx(np.mean([r[kind] for r in row["runs"]]))
            assert row["std"][kind] >= 0.0
        assert [r["seed"] for r in row["runs"]] == [0, 1]
    assert metrics["pretrain"]["eval_loss"] > 0 and metrics["wall_seconds"] > 0

    manifest = _read(d, "manifest.json")
    assert manifest["family"] == "autoencoder" and manifest["model"] == "conv_autoencoder_tiny"
    assert manifest["input"] == {"shape": [8, 8, 1], "dtype": "uint8", "range": [0, 255]}
    assert manifest["model_config"]["latent_dim"] == 4 and manifest["encoder"]["output_dim"] == 4
    assert manifest["dataset"]["train_split"] == "train" and manifest["seed"] == 0
    assert {"tensorflow", "keras", "tensorflow_datasets"} <= set(manifest["versions"])


def test_flags_txt_replays_the_run(tiny_config):
    autoencoder.run(tiny_config)
    fv = flags.FlagValues()
    define_flags(autoencoder.Config, fv)
    flagfile = os.path.join(tiny_config.model_dir, "flags.txt")
    fv(["prog", f"--flagfile={flagfile}"])
    assert from_flags(autoencoder.Config, fv) == tiny_config.replace(overwrite=False)


def test_existing_model_dir_is_refused_and_left_alone(tiny_config):
    os.makedirs(tiny_config.model_dir)
    marker = os.path.join(tiny_config.model_dir, "mine.txt")
    open(marker, "w").close()
    with pytest.raises(ZooError, match="already exists; pass --overwrite"):
        autoencoder.run(tiny_config)
    assert os.listdir(tiny_config.model_dir) == ["mine.txt"]
    autoencoder.run(tiny_config.replace(overwrite=True))
    assert not os.path.exists(marker) and os.path.exists(os.path.join(tiny_config.model_dir, "metrics.json"))


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


def test_mixed_precision_and_jit_compile(tiny_config):
    before = keras.config.dtype_policy().name
    metrics = autoencoder.run(tiny_config.replace(mixed_precision=True, jit_compile=True, label_budgets=(10,)))
    assert keras.config.dtype_policy().name == before  # the global policy is restored
    assert np.isfinite(metrics["pretrain"]["eval_loss"])
    encoder = keras.saving.load_model(os.path.join(tiny_config.model_dir, "encoder.keras"))
    assert encoder.get_layer("block0_0_conv").dtype_policy.name == "mixed_float16"
    assert encoder.output.dtype == "float32"


def test_dense_variant_with_denoising_on_a_mocked_tfds_dataset(tiny_config):
    with tfds.testing.mock_data(num_examples=64):
        metrics = autoencoder.run(tiny_config.replace(
            dataset="mnist", model="dense_autoencoder_tiny", hidden_sizes=(8,), masking_noise=0.3,
            label_budgets=(10,), augment=True, head_units=(8,)))
    manifest = _read(tiny_config.model_dir, "manifest.json")
    assert manifest["input"]["shape"] == [28, 28, 1] and manifest["model_config"]["hidden_sizes"] == [8]
    assert len(metrics["transfer"]) == 1


@pytest.mark.parametrize("change, message", [
    (dict(epochs=-1), "--epochs=-1: must be 0 or more"),
    (dict(learning_rate=0.0), "--learning_rate=0.0: must be positive"),
    (dict(label_budgets=()), "--label_budgets=: must not be empty"),
    (dict(label_budgets=(100, 0)), "--label_budgets=100,0: must be 1 or more"),
    (dict(head_dropout=1.0), "--head_dropout=1.0: must be in [0, 1)"),
    (dict(filters=(8, -1)), "--filters=8,-1: must be 1 or more"),
    (dict(strategy="tpu"), "--strategy=tpu: must be one of default, mirrored, multi_worker"),
    (dict(model_dir=" "), "--model_dir= : must not be empty"),
])
def test_config_rules_name_the_flag(tiny_config, change, message):
    with pytest.raises(ZooError) as err:
        autoencoder.run(tiny_config.replace(**change))
    assert str(err.value) == message
    assert not os.path.exists(tiny_config.model_dir)


def test_lists_stand_for_tuples():
    """JSON, papermill and manifest.json's "flags" give lists; they validate and replay like tuples."""
    config = autoencoder.Config(label_budgets=[100, 1000], filters=[8, 16])
    config.validate()
    assert config.label_budgets == (100, 1000) and config.filters == (8, 16)
    assert autoencoder.Config(**json.loads(json.dumps(flow.as_dict(config)))) == config


def test_tiny_models_build_tiny_unless_a_size_is_given():
    recipe = autoencoder.RECIPE
    tiny = recipe.model_config(autoencoder.Config(model="conv_autoencoder_tiny"), (8, 8, 1), 10)
    assert tiny["filters"] == (4, 8) and tiny["latent_dim"] == 4 and tiny["convs_per_block"] == 1
    sized = recipe.model_config(autoencoder.Config(model="conv_autoencoder_tiny", latent_dim=6), (8, 8, 1), 10)
    assert sized["latent_dim"] == 6 and sized["filters"] == (4, 8)
    full = recipe.model_config(autoencoder.Config(), (8, 8, 1), 10)
    assert full["filters"] == (32, 64) and full["latent_dim"] == 64
