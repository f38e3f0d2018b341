"""Pretraining throughput of the conv autoencoder and VAE with the mirrored decoder and narrower ones.

    python benchmarks/decoder_widths.py --manual_dir=/path/to/mnist-10k                 # offline, local IDX files
    python benchmarks/decoder_widths.py --families=vae --widths=32:16,16:8 --precision=float32

For each family, the recipe's pretraining model (its defaults, built and compiled as the recipe does)
with each decoder (`--decoder_filters`: the mirrored default, then each of `--widths`) trains on the
MNIST-10k pool through the recipe's own pipeline, one epoch per decoder in turns, `--repeats` times;
the median images/s after the first (compiling) epoch, and its ratio to the mirrored decoder's. The
encoder is the same in every row. What the narrower decoders do to the transfer table is measured by
the family benchmarks (`--decoder_filters=...`; benchmarks/README.md).
"""

from absl import app, flags

from protocol import SPLITS, interleaved_rates, protocol_dataset, quiet_logging, recipe_model
from recipes import autoencoder, flow, vae

FAMILIES = {"autoencoder": autoencoder, "vae": vae}

flags.DEFINE_string("manual_dir", "", "Folder with MNIST's test-set IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_list("families", list(FAMILIES), "Families to measure.")
flags.DEFINE_list("widths", ["32:16"], "Decoder widths to compare with the mirrored one, from the code out (32:16).")
flags.DEFINE_string("precision", "auto", "Precision of every model (--precision of the recipes).")
flags.DEFINE_integer("repeats", 4, "Epochs per decoder, in turns; the first (compiling) one is not counted.")
FLAGS = flags.FLAGS
MIRRORED = "mirrored"


def family_rates(module):
    """({decoder: images/s}, {decoder: parameters}, precision) of the family's pretraining model per
    decoder; the mirrored one is given explicitly (the trunk's filters reversed), since a family's
    default decoder need not be it (the VAE's is half as wide)."""
    recipe = module.RECIPE
    base = module.Config(
        dataset=protocol_dataset("", FLAGS.manual_dir),
        manual_dir=FLAGS.manual_dir,
        **SPLITS,
        model_dir="/tmp/unused",
        precision=FLAGS.precision,
    )
    fits, sizes = {}, {}
    for widths in [MIRRORED, *FLAGS.widths]:
        if widths == MIRRORED:
            decoder = tuple(reversed(recipe.model_config(flow.prepare(recipe, base))["filters"]))
        else:
            decoder = tuple(int(w) for w in widths.split(":"))
        run = flow.prepare(recipe, base.replace(decoder_filters=decoder))
        with flow.precision(run.precision):
            model = recipe_model(recipe, run)
            pipeline = run.source.pretrain_dataset(recipe.pretrain_example(run), base.batch_size, base.seed)
        fits[widths] = lambda model=model, pipeline=pipeline: model.fit(pipeline, epochs=1, verbose=0, shuffle=False)
        sizes[widths], images, precision = model.count_params(), run.source.num_train, run.precision
    return interleaved_rates(fits, images, FLAGS.repeats), sizes, precision


def main(argv):
    quiet_logging()
    print("| family (model) | decoder | parameters | precision | images/s | × mirrored |")
    print("| --- | --- | ---: | --- | ---: | ---: |")
    for family in FLAGS.families:
        rates, sizes, precision = family_rates(FAMILIES[family])
        name = FAMILIES[family].Config().model
        for widths, rate in rates.items():
            print(
                f"| {family} ({name}) | {widths} | {sizes[widths]:,} | {precision} | {rate:.0f} "
                f"| ×{rate / rates[MIRRORED]:.2f} |",
                flush=True,
            )
    print(f"\nmedian of {FLAGS.repeats - 1} epochs per row, epochs interleaved")


if __name__ == "__main__":
    app.run(main)
