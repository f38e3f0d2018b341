"""The contract every recipe keeps (docs/artifact.md), parametrised over `recipes.all_recipes()`:
a new recipe gets these tests without new test code."""

import dataclasses
import json
import os
import types

import keras
import numpy as np
import pytest
from absl import flags
from conftest import RECIPES, assert_encoder_reloads_frozen, example_texts, on_run_of

import zoo
from recipes import flow
from recipes.config import RecipeConfig, as_dict, define_flags, from_flags
from zoo.errors import ZooError

FAMILIES = list(RECIPES)
RUNS = [pytest.param(family, marks=on_run_of(family)) for family in FAMILIES]
ARTIFACT = {
    "encoder",
    "encoder.keras",
    "model",
    "model.keras",
    "manifest.json",
    "metrics.json",
    "figures",
    "logs",
    "flags.txt",
}


def _read(model_dir, name):
    with open(os.path.join(model_dir, name)) as f:
        return json.load(f)


EXTRA = {"word2vec": {"vectors.txt"}}  # files of a family's own beside the standard artifact


def _inputs(manifest, n=5):
    """Inputs of the kind the artifact's encoder takes: images of its shape, or texts."""
    if manifest["input"]["dtype"] == "string":
        return example_texts(n)
    return np.random.default_rng(0).integers(0, 256, (n, *manifest["input"]["shape"])).astype("uint8")


@pytest.mark.parametrize("family", RUNS)
def test_artifact_metrics_and_manifest(family, finished_run):
    config, metrics = finished_run(family)
    d = config.model_dir
    assert set(os.listdir(d)) == ARTIFACT | EXTRA.get(family, set())
    assert {"curves.png", "transfer.png"} <= set(os.listdir(os.path.join(d, "figures")))
    assert any(f.startswith("events.out.tfevents") for _, _, fs in os.walk(os.path.join(d, "logs")) for f in fs)
    assert not [f for f in os.listdir(os.path.dirname(d)) if f.startswith(".")]  # no staging dir left behind

    assert _read(d, "metrics.json") == json.loads(json.dumps(metrics))
    assert metrics["precision"] == "float32" and metrics["wall_seconds"] > 0
    stages = metrics["pretrain"]["seconds"], metrics["transfer_seconds"]
    assert min(stages) > 0 and sum(stages) <= metrics["wall_seconds"]
    text = isinstance(RECIPES[family].RECIPE, flow.TextRecipe)
    assert metrics["pretrain"]["texts_per_second" if text else "images_per_second"] > 0
    assert [row["labels"] for row in metrics["transfer"]] == list(config.label_budgets)
    for row in metrics["transfer"]:
        assert [r["seed"] for r in row["runs"]] == [config.seed, config.seed + 1]
        for kind in ("frozen", "finetune", "scratch"):
            per_seed = [r[kind] for r in row["runs"]]
            assert all(0.0 <= v <= 1.0 for v in per_seed)
            assert row[kind] == pytest.approx(np.mean(per_seed))
            assert row["std"][kind] == pytest.approx(np.std(per_seed))

    manifest = _read(d, "manifest.json")
    encoder = zoo.load_encoder(d)
    assert manifest["family"] == family and manifest["model"] == config.model
    if text:
        assert manifest["input"] == {"shape": [], "dtype": "string", "feature": "text"}
        assert metrics["pretrain"]["tokens_per_second"] > 0
    else:
        assert manifest["input"] == {"shape": [8, 8, 1], "dtype": "uint8", "range": [0, 255]}
    assert manifest["encoder"]["output_dim"] == encoder.output_shape[-1] and manifest["encoder"]["features"]
    assert manifest["precision"] == "float32" and manifest["flags"] == as_dict(config)
    assert manifest["dataset"]["name"] == config.dataset and manifest["seed"] == config.seed
    rebuilt = zoo.build_model(config.model, **manifest["model_config"])  # the manifest rebuilds the architecture
    assert rebuilt.count_params() == keras.saving.load_model(os.path.join(d, "model.keras")).count_params()
    assert {"tensorflow", "keras", "tensorflow_datasets"} <= set(manifest["versions"])


@pytest.mark.parametrize("family", RUNS)
def test_encoder_reloads_frozen_three_ways(family, finished_run):
    config, _ = finished_run(family)
    assert_encoder_reloads_frozen(config.model_dir, _inputs(_read(config.model_dir, "manifest.json")))


@pytest.mark.parametrize("family", RUNS)
def test_flags_txt_replays_the_run(family, finished_run):
    config, _ = finished_run(family)
    fv = flags.FlagValues()
    define_flags(RECIPES[family].Config, fv)
    fv(["prog", f"--flagfile={os.path.join(config.model_dir, 'flags.txt')}"])
    assert from_flags(RECIPES[family].Config, fv) == config.replace(overwrite=False)


def _bad_values(field):
    """(value, why) pairs that break each rule the field declares."""
    rule = field.metadata
    bad = []
    if rule.get("choices"):
        bad.append(("no-such-choice", "must be one of"))
    if rule.get("minimum") is not None:
        low = rule["minimum"] - 1
        bad.append(((low,) if field.type in (tuple, "tuple") else low, "must be"))
    if rule.get("below") is not None:
        bad.append((rule["below"], "must be in"))
    if rule.get("positive"):
        bad.append((0.0, "must be positive"))
    if rule.get("nonempty"):
        bad.append(((), "must not be empty") if field.type in (tuple, "tuple") else (" ", "must not be empty"))
    return bad


@pytest.mark.parametrize("family", FAMILIES)
def test_every_config_rule_names_its_flag(family):
    Config = RECIPES[family].Config
    checked = 0
    for field in dataclasses.fields(Config):
        for value, why in _bad_values(field):
            with pytest.raises(ZooError) as err:
                Config(**{field.name: value}).validate()
            message = str(err.value)
            assert message.startswith(f"--{field.name}=") and why in message and "\n" not in message, message
            checked += 1
    assert checked >= 10
    Config().validate()  # the defaults are valid


@pytest.mark.parametrize("family", FAMILIES)
def test_a_hyperparameter_given_is_built_even_when_it_equals_a_default(family):
    """Not given (None) means the model's own value; a value given is used, whatever it equals."""
    recipe = RECIPES[family].RECIPE
    tiny = recipe.smoke_config().model
    full = zoo.get_entry(recipe.Config().model).config()
    data = type("Data", (), {"image_shape": (8, 8, 1), "num_classes": 10})
    built = recipe.model_config(flow.Run(recipe.Config(model=tiny), data, data, None))
    shape = {"image_shape": (8, 8, 1)} if "image_shape" in built else {}
    assert built == zoo.get_entry(tiny).config(**shape, **({"num_classes": 10} if "num_classes" in built else {}))
    hyper = [f.name for f in dataclasses.fields(recipe.Config) if f.metadata.get("hyperparameter")]
    differs = [k for k in hyper if k in built and built[k] != full[k]]
    assert differs, "the tiny model should differ from the full one somewhere"
    given = recipe.Config(model=tiny, **{k: full[k] for k in differs})
    built = recipe.model_config(flow.Run(given, data, data, None))
    assert {k: built[k] for k in differs} == {k: full[k] for k in differs}


@pytest.mark.parametrize("kind", ["images", "texts"])
def test_budgets_beyond_the_split_are_capped_and_all_is_the_whole_split(kind):
    data = types.SimpleNamespace(num_train=240, kind=kind, train_split="train")
    config = types.SimpleNamespace(label_budgets=(1000, 20, "all", 240))
    budgets, notes = flow.label_budgets(config, data)
    assert budgets == [20, 240]  # 1000, all and 240 are one budget
    assert notes == [
        f"--label_budgets: 1000 is more than the 240 labelled {kind} of --train_split=train; using all 240"
    ]
    assert flow.label_budgets(types.SimpleNamespace(label_budgets=(20, 100)), data) == ([20, 100], [])
    with pytest.raises(ZooError, match=r"--label_budgets=10,ALL: must be integers or all"):
        RecipeConfig(label_budgets=(10, "ALL")).validate()


def test_a_recipe_class_is_checked_when_it_is_defined():
    with pytest.raises(TypeError, match="must define module, features, Config .*compile"):

        class Incomplete(flow.Recipe):  # noqa: F841
            family = "incomplete"
