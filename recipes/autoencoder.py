"""Autoencoder recipe: learn to reconstruct images, transfer the encoder.

    python -m recipes.autoencoder --model_dir=runs/autoencoder
    python -m recipes.autoencoder --dataset=mnist_idx --manual_dir=mnist-files \\
        --train_split='test[:8000]' --eval_split='test[8000:]' --model_dir=runs/ae-mnist10k

From Python or a notebook, without flags:

    from recipes import autoencoder
    metrics = autoencoder.run(autoencoder.Config(model_dir="runs/ae", epochs=5))
"""

import dataclasses

import keras
import tensorflow as tf

import zoo
from recipes import figures, flow
from recipes.config import RecipeConfig, hyperparameter, new_default, option


@dataclasses.dataclass
class Config(RecipeConfig):
    model_dir: str = new_default("model_dir", "runs/autoencoder")
    epochs: int = new_default("epochs", 20)
    model: str = option(
        "conv_autoencoder",
        "Which autoencoder to build.",
        choices=tuple(zoo.list_models(family="autoencoder", include_tiny=True)),
    )
    latent_dim: int = hyperparameter("Size of the code, the encoder's output.", minimum=1)
    hidden_sizes: tuple = hyperparameter(
        "Dense models: hidden widths between pixels and code "
        "(empty for 784->32; 128,64,32,16 with --latent_dim=8 for the deep one).",
        minimum=1,
    )
    filters: tuple = hyperparameter("Conv models: filters per encoder block.", minimum=1, nonempty=True)
    convs_per_block: int = hyperparameter("Conv models: convolutions per encoder block.", minimum=1)
    decoder_filters: tuple = hyperparameter(
        "Conv models: filters per decoder block, from the code out (empty: --filters reversed); "
        "narrower ones make pretraining cheaper and leave the encoder as it is.",
        minimum=1,
    )
    dropout: float = hyperparameter("Conv models: spatial dropout after each encoder block.", minimum=0, below=1)
    masking_noise: float = option(
        0.0, "Denoising: fraction of input pixels zeroed during pretraining.", minimum=0, below=1
    )


class Autoencoder(flow.Recipe):
    family = "autoencoder"
    module = "recipes.autoencoder"
    Config = Config
    features = "the code (the latent layer the decoder reconstructs from)"

    smoke = dict(convs_per_block=1)

    def compile(self, run, model):
        model.compile(
            optimizer=keras.optimizers.Adam(run.config.learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.MeanSquaredError(name="mse")],
            jit_compile=run.config.jit_compile,
        )

    def pretrain_example(self, run):
        noise = run.config.masking_noise

        def example(image, label):
            target = tf.cast(image, tf.float32) / 255.0
            if noise:
                keep = tf.random.uniform(tf.shape(image)) >= noise
                image = image * tf.cast(keep, image.dtype)
            return image, target

        return example

    def figures(self, run, model):
        images = run.source.eval_inputs[:12]
        reconstructions = model.predict(images, verbose=0)
        figures.image_rows([images, reconstructions], run.fig_dir + "/reconstructions.png", ["eval", "decoded"])


RECIPE = Autoencoder()


def run(config: Config) -> dict:
    """Run the whole autoencoder recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(run, Config)
