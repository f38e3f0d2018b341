"""Transfer job: the transfer table of any saved run on any dataset of its kind, without pretraining again.

    python -m recipes.transfer --encoder_dir=runs/simclr --model_dir=runs/simclr-on-digits
    python -m recipes.transfer --encoder_dir=runs/simclr --dataset=mnist_idx --manual_dir=DIR \\
        --train_split='test[:8000]' --eval_split='test[8000:]' --model_dir=runs/simclr-on-mnist
    python -m recipes.transfer --encoder_dir=runs/simclr --dataset=image_folder --manual_dir=my_images \\
        --model_dir=runs/simclr-on-mine          # my_images/{train,test}/<class>/*.png
    python -m recipes.transfer --encoder_dir=runs/word2vec --dataset=text_folder --manual_dir=my_texts \\
        --model_dir=runs/w2v-on-mine             # a text encoder: texts, my_texts/{train,test}/<class>/*.txt

The encoder of `--encoder_dir` (the model_dir of any recipe's run, any family) is reloaded frozen;
the table has the same columns as every recipe's (frozen, finetune, knn, scratch, reference), the
scratch column rebuilding the encoder's architecture from the source manifest. Target images of
another shape are adapted inside the classifier (resize; grey <-> colour). The artifact holds
metrics.json, figures/transfer.png, manifest.json naming the source run, flags.txt, and the
fine-tuned classifier of the largest budget: `classifier/` (SavedModel, endpoint `serve`: the
target's uint8 images in, logits out) and `classifier.keras`. The source run is only read.

From Python or a notebook:

    from recipes import transfer
    metrics = transfer.run(transfer.Config(encoder_dir="runs/simclr", model_dir="runs/simclr-on-digits"))
"""

import dataclasses
import os
import time

import keras

import zoo
from recipes import flow
from recipes.artifact import export_saved_model
from recipes.config import TransferConfig, new_default, option
from recipes.data import IMAGE_FOLDER, load_data
from zoo.errors import ZooError

MODULE = "recipes.transfer"


@dataclasses.dataclass
class Config(TransferConfig):
    encoder_dir: str = option("", "model_dir of a finished run of any recipe: its encoder transfers.", nonempty=True)
    model_dir: str = new_default("model_dir", "runs/transfer")


def source_run(path, flag="encoder_dir"):
    """The manifest of the run at `path` and its encoder, frozen; one line naming --`flag` if either
    is missing or broken. What the job reads of the manifest is checked here, before anything is
    written: its fields' types, and that its `model_config` builds (the scratch column builds it)."""
    if not os.path.isdir(path):
        raise ZooError(f"--{flag}={path}: no such directory; give the --model_dir of a finished run")
    try:
        manifest = zoo.read_manifest(path)
        if "model" not in manifest or "model_config" not in manifest:
            raise ZooError(f"'{path}/manifest.json' names no model: it is not a pretraining run")
        zoo.loading.check_run_manifest(manifest, os.path.join(path, zoo.loading.MANIFEST))
        return manifest, zoo.load_encoder(path, trainable=False)
    except ZooError as e:
        raise ZooError(f"--{flag}={path}: {e}") from None


def from_saved_run(config, path, flag, name):
    """The first steps of a job on a saved run's encoder (this one, recipes.distill): check the
    destinations, make the strategy (before any TensorFlow op: multi_worker configures the runtime),
    read the run at `path` (--`flag`), load --dataset (an image folder at the encoder's image size
    unless --image_size is given) and say how its images reach the encoder.

    Returns:
      (config, strategy, the run's manifest, its encoder (frozen), data, the adaptation of the images or None).
    """
    flow.check_destinations(config)
    strategy = flow.make_strategy(config.strategy)
    manifest, encoder = source_run(path, flag)
    encoder_shape = tuple(encoder.input_shape[1:])  # () for a text encoder
    if config.dataset == IMAGE_FOLDER and not config.image_size and encoder_shape:
        config = config.replace(image_size=encoder_shape[:2])
    flow.say(
        f"[{name}] {manifest['family']} encoder of {path} ({manifest['model']}, pretrained on "
        f"{manifest['dataset']['name']}) -> {config.dataset} ({config.train_split} / {config.eval_split})"
    )
    data = load_data(
        config, reads="texts" if encoder_shape == () else "images", reader=f"the encoder of --{flag}={path}"
    )
    adapted = flow.check_adaptation(config, data, encoder_shape, name)
    return config, strategy, manifest, encoder, data, adapted


def run(config: Config) -> dict:
    """The transfer table of `config.encoder_dir`'s encoder on `config.dataset`; returns metrics.json's content."""
    start = time.time()
    config.validate()
    config, strategy, manifest, encoder, data, adapted = from_saved_run(
        config, config.encoder_dir, "encoder_dir", "transfer"
    )
    subsets = flow.labelled_draws(config, data, "transfer")
    ctx = flow.Run(config, data, data, strategy, flow.resolve_precision(config.precision))
    ctx.stage = flow.open_stage(ctx, MODULE)

    tokens = flow.tokenisation(encoder)  # a text encoder's: the scratch column tokenises with it
    keras.utils.set_random_seed(config.seed)
    with flow.precision(ctx.precision):
        started = time.time()
        table, (classifier, kept) = flow.transfer_table(
            ctx,
            subsets,
            title=f"{manifest['model']} ({manifest['dataset']['name']}) -> {data.name}",
            load_pretrained=lambda: zoo.load_encoder(config.encoder_dir, trainable=False),
            build_scratch=lambda: flow.fresh_encoder(manifest["model"], manifest["model_config"], tokens),
        )
        seconds = round(time.time() - started, 1)
        export_saved_model(
            ctx.stage / "classifier",
            classifier,
            {"serve": (lambda inputs: classifier(inputs, training=False), [data.input_spec()])},
        )
        classifier.save(ctx.stage / "classifier.keras")

    flow.write_manifest(
        ctx,
        "transfer",
        MODULE,
        data,
        source={
            "path": os.path.abspath(config.encoder_dir),
            "family": manifest["family"],
            "model": manifest["model"],
            "dataset": manifest["dataset"]["name"],
            "input": manifest.get("input"),
        },
        adapted=adapted,
        classifier={"kind": "finetune", **kept, "endpoint": "serve", "outputs": "logits"},
    )
    return flow.finish(ctx, "transfer", {"transfer": table, "transfer_seconds": seconds}, start)


if __name__ == "__main__":
    flow.cli(run, Config)
