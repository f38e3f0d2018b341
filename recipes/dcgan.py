"""DCGAN recipe: train a GAN, score it offline, transfer its discriminator's features.

    python -m recipes.dcgan --model_dir=runs/dcgan
    python -m recipes.dcgan --dataset=mnist_idx --manual_dir=mnist-files \\
        --train_split='test[:8000]' --eval_split='test[8000:]' --model_dir=runs/dcgan-mnist10k

Generated images are scored in the features of the zoo's CNN classifier trained
on the same dataset (trained in the run, or the `model.keras` of a
`recipes.cnn_classifier` run given by --scorer_dir): the Fréchet distance to
the eval images, with the train-vs-eval distance beside it for scale, the
classifier score and the class histogram. A fixed-noise grid and the scores go
to figures/epochs/ and TensorBoard each epoch. `model/` is the generator:
endpoint `serve` maps noise to uint8 images, `sample` draws `n` from a seed.

From Python or a notebook, without flags:

    from recipes import dcgan
    metrics = dcgan.run(dcgan.Config(model_dir="runs/dcgan", epochs=5))
"""

import dataclasses
import os

import keras
import numpy as np
import tensorflow as tf

import zoo
from recipes import figures, flow
from recipes.artifact import generator_endpoints
from recipes.config import RecipeConfig, hyperparameter, new_default, option
from recipes.downstream import recalibrate_batchnorm
from recipes.scoring import Scorer, frechet_distance

GRID = 64  # images in the fixed-noise grid drawn each epoch


@dataclasses.dataclass
class Config(RecipeConfig):
    model_dir: str = new_default("model_dir", "runs/dcgan")
    epochs: int = new_default("epochs", 30)
    learning_rate: float = new_default("learning_rate", 2e-4)
    # 200, not 300: on a validation slice of MNIST-10k (benchmarks/README.md#the-dcgans-time) every column moved
    # by at most 0.6 points (less than its spread) for 0.73 of the table's time.
    transfer_steps: int = new_default("transfer_steps", 200)
    model: str = option(
        "dcgan", "Which GAN to build.", choices=tuple(zoo.list_models(family="dcgan", include_tiny=True))
    )
    latent_dim: int = hyperparameter("Size of the generator's noise input.", minimum=1)
    generator_widths: tuple = hyperparameter(
        "Generator filters: after the dense layer, then per upsampling "
        "stage but the last (one stride-2 stage per entry).",
        minimum=1,
        nonempty=True,
    )
    discriminator_widths: tuple = hyperparameter(
        "Discriminator filters, one stride-2 convolution each.", minimum=1, nonempty=True
    )
    label_smoothing: float = hyperparameter(
        "One-sided label smoothing: the discriminator's target for real images is 1 minus this.", minimum=0, below=1
    )
    d_steps: int = hyperparameter("Discriminator updates per generator update.", minimum=1)
    scorer_dir: str = option(
        "",
        "model_dir of a recipes.cnn_classifier run on the same images to score "
        "with (empty: train the zoo's CNN classifier on --dataset in the run).",
    )
    scorer_epochs: int = option(5, "Epochs of the scoring classifier when it is trained in the run.", minimum=1)
    score_samples: int = option(2000, "Generated images per score (capped at the eval split's size).", minimum=2)


class Scoring:
    """Scores generated images against the eval images, in the features of one scoring classifier."""

    def __init__(self, scorer, eval_inputs):
        self.scorer, self.real_statistics = scorer, scorer.statistics(eval_inputs)

    def __call__(self, model, n, seed):
        z = tf.random.stateless_normal((n, model.latent_dim), seed=(seed, 1))
        return self.scorer.score(np.asarray(model.generate(z)), self.real_statistics)


class ScoreEachEpoch(keras.callbacks.Callback):
    """Each epoch: the fixed-noise grid (PNG and TensorBoard) and the scores (TensorBoard and a line)."""

    def __init__(self, scoring, noise, fig_dir, log_dir, samples, seed):
        super().__init__()
        self.scoring, self.noise, self.fig_dir, self.samples, self.seed = scoring, noise, fig_dir, samples, seed
        self.writer = tf.summary.create_file_writer(os.path.join(log_dir, "scores"))

    def on_epoch_end(self, epoch, logs=None):
        grid = np.asarray(self.model.generate(self.noise))
        figures.image_rows(np.split(grid, 8), os.path.join(self.fig_dir, f"epoch_{epoch + 1:03d}.png"))
        scores = self.scoring(self.model, self.samples, self.seed + epoch)
        with self.writer.as_default(step=epoch):
            tf.summary.image("fixed_noise_samples", grid[:16].astype(np.float32) / 255.0, max_outputs=16)
            tf.summary.scalar("frechet_distance", scores["frechet_distance"])
            tf.summary.scalar("classifier_score", scores["classifier_score"])
        self.writer.flush()
        flow.say(
            f"[dcgan] epoch {epoch + 1}: Fréchet distance {scores['frechet_distance']:.1f}, "
            f"classifier score {scores['classifier_score']:.2f}"
        )


def _image_only(image, label):
    return image


class Dcgan(flow.Recipe):
    family = "dcgan"
    module = "recipes.dcgan"
    Config = Config
    features = (
        "the discriminator's conv layers, each max-pooled to at most 4x4, flattened and "
        "concatenated (the DCGAN paper's CIFAR-10 features)"
    )
    smoke = dict(scorer_epochs=1, score_samples=50)

    def compile(self, run, model):
        model.compile(learning_rate=run.config.learning_rate, jit_compile=run.config.jit_compile)

    def pretrain_example(self, run):
        return _image_only

    def datasets(self, run):
        # A given scorer loads first, so that a bad --scorer_dir stops the run before any work.
        if run.config.scorer_dir:
            run.state["scorer"] = Scorer.load(run.config.scorer_dir, run.source)
        return run.source, run.target

    def callbacks(self, run, model):
        """The scorer, made before training so that every epoch is scored."""
        config, data = run.config, run.source
        if "scorer" in run.state:
            flow.say(f"[dcgan] scoring with the classifier of {config.scorer_dir}")
        else:
            flow.say(f"[dcgan] training the scoring classifier (cnn_classifier, {config.scorer_epochs} epochs)")
            run.state["scorer"] = Scorer.train(data, config.scorer_epochs, config.seed)
            flow.say(f"[dcgan] scoring classifier: {run.state['scorer'].accuracy:.1%} eval accuracy")
        scoring = run.state["scoring"] = Scoring(run.state["scorer"], data.eval_inputs)
        noise = np.random.default_rng(config.seed).standard_normal((GRID, model.latent_dim)).astype("float32")
        os.makedirs(run.stage / "figures/epochs", exist_ok=True)
        samples = min(config.score_samples, len(data.eval_inputs))
        return [ScoreEachEpoch(scoring, noise, run.stage / "figures/epochs", run.stage / "logs", samples, config.seed)]

    def recalibrate(self, run, model, images):
        recalibrate_batchnorm(model.encoder, images)  # the discriminator's trunk, on real images
        recalibrate_batchnorm(model.generator, model.noise(len(images)))

    def evaluate(self, run, model):
        config, data = run.config, run.source
        scoring = run.state["scoring"]
        scorer = scoring.scorer
        metrics = super().evaluate(run, model)
        n = min(config.score_samples, len(data.eval_inputs))
        metrics.update(scoring(model, n, config.seed))
        train_images, _ = data.train_arrays()
        metrics["frechet_distance_train_vs_eval"] = frechet_distance(
            scorer.statistics(train_images[:n]), scoring.real_statistics
        )
        metrics["score_samples"] = n
        metrics["classifier_score_eval"] = scorer.score(data.eval_inputs, scoring.real_statistics)["classifier_score"]
        if scorer.accuracy is not None:
            metrics["scorer_accuracy"] = scorer.accuracy
        flow.say(
            f"[dcgan] Fréchet distance {metrics['frechet_distance']:.1f} (train vs eval images: "
            f"{metrics['frechet_distance_train_vs_eval']:.1f}), classifier score "
            f"{metrics['classifier_score']:.2f} (eval images: {metrics['classifier_score_eval']:.2f}), "
            f"generated classes {metrics['class_histogram']}"
        )
        return metrics

    def endpoints(self, run, model):
        return generator_endpoints(model.generate, model.latent_dim, "noise")

    def figures(self, run, model):
        seed, fig_dir = run.config.seed, run.fig_dir
        noise = np.random.default_rng(seed).standard_normal((GRID, model.latent_dim)).astype("float32")
        figures.image_rows(np.split(np.asarray(model.generate(noise)), 8), f"{fig_dir}/samples.png")
        ends = np.random.default_rng(seed + 1).standard_normal((8, model.latent_dim))
        figures.interpolation(model.generate, ends, f"{fig_dir}/interpolation.png")


RECIPE = Dcgan()


def run(config: Config) -> dict:
    """Run the whole DCGAN recipe for `config`; returns metrics.json's content."""
    return flow.run(RECIPE, config)


if __name__ == "__main__":
    flow.cli(run, Config)
