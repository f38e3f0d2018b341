"""Autoencoder recipe: learn to reconstruct images, transfer the encoder.

    python -m recipes.autoencoder --model_dir=runs/autoencoder
    python -m recipes.autoencoder --dataset=mnist_idx --manual_dir=../shared/data/mnist-10k \\
        --train_split='test[:8000]' --eval_split='test[8000:]' --model_dir=runs/ae-mnist10k

From Python or a notebook, without flags:

    from recipes import autoencoder
    metrics = autoencoder.run(autoencoder.Config(model_dir="runs/ae", epochs=5))
"""

import dataclasses

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import figures, flow
from recipes.config import RecipeConfig, option


@dataclasses.dataclass
class Config(RecipeConfig):
    model_dir: str = option("runs/autoencoder", "Where the artifact is written.")
    epochs: int = option(20, "Pretraining epochs.")
    model: str = option("conv_autoencoder", "Which autoencoder to build.",
                        choices=tuple(zoo.list_models(family="autoencoder", include_tiny=True)))
    latent_dim: int = option(64, "Size of the code, the encoder's output.")
    hidden_sizes: tuple = option((256,), "Dense models: hidden widths between pixels and code "
                                 "(empty for 784->32; 128,64,32,16 with --latent_dim=8 for the deep one).")
    filters: tuple = option((32, 64), "Conv models: filters per encoder block.")
    convs_per_block: int = option(2, "Conv models: convolutions per encoder block.")
    dropout: float = option(0.0, "Conv models: spatial dropout after each encoder block.")
    masking_noise: float = option(0.0, "Denoising: fraction of input pixels zeroed during pretraining.")

    def validate(self):
        super().validate()
        if self.latent_dim < 1:
            raise zoo.ZooError(f"--latent_dim={self.latent_dim}: must be 1 or more")
        if not 0 <= self.masking_noise < 1:
            raise zoo.ZooError(f"--masking_noise={self.masking_noise}: must be in [0, 1)")
        if not 0 <= self.dropout < 1:
            raise zoo.ZooError(f"--dropout={self.dropout}: must be in [0, 1)")
        if self.convs_per_block < 1:
            raise zoo.ZooError(f"--convs_per_block={self.convs_per_block}: must be 1 or more")
        if not self.filters or any(f < 1 for f in self.filters):
            raise zoo.ZooError(f"--filters={','.join(map(str, self.filters))}: give positive filter counts")


class Autoencoder(flow.Recipe):
    family = "autoencoder"
    module = "recipes.autoencoder"
    Config = Config

    def compile(self, model, config):
        model.compile(
            optimizer=keras.optimizers.Adam(config.learning_rate),
            loss="binary_crossentropy",
            metrics=[keras.metrics.MeanSquaredError(name="mse")],
            jit_compile=config.jit_compile,
        )

    def pretrain_example(self, config):
        noise = config.masking_noise

        def example(image, label):
            target = tf.cast(image, tf.float32) / 255.0
            if noise:
                keep = tf.random.uniform(tf.shape(image)) >= noise
                image = image * tf.cast(keep, image.dtype)
            return image, target

        return example

    def figures(self, model, data, config, fig_dir):
        images = data.eval_images[:12]
        reconstructions = model.predict(images, verbose=0)
        figures.image_rows([images, reconstructions], f"{fig_dir}/reconstructions.png", ["eval", "decoded"])


RECIPE = Autoencoder()


def run(config: Config) -> dict:
    """Run the whole autoencoder recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(RECIPE)
