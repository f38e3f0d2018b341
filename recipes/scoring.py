"""Offline scores of generated images, in the features of the zoo's own CNN classifier.

No scoring network is downloaded: the classifier is the zoo's `cnn_classifier_bn`,
trained on the same dataset (or loaded from a `recipes.cnn_classifier` run).
Its penultimate features stand in for Inception features in the Fréchet
distance (Heusel et al. 2017), and its class probabilities give the classifier
score (the Inception Score of Salimans et al. 2016, with this classifier) and a
class histogram of generated images, the mode-collapse signal.
"""

import os
import warnings

import keras
import numpy as np
import tensorflow as tf
from scipy import linalg

import zoo
from recipes.downstream import recalibrate_batchnorm


def frechet_distance(stats_a, stats_b):
    """||mu_a - mu_b||^2 + Tr(C_a + C_b - 2 (C_a C_b)^(1/2)) between two (mean, covariance) pairs."""
    (mu_a, cov_a), (mu_b, cov_b) = stats_a, stats_b
    with warnings.catch_warnings():  # dead ReLU features make covariances singular; the check below copes
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        root = linalg.sqrtm(cov_a @ cov_b)
    if not np.isfinite(root).all():  # nearly singular product: offset the diagonals (as the FID code does)
        offset = np.eye(len(cov_a)) * 1e-6
        root = linalg.sqrtm((cov_a + offset) @ (cov_b + offset))
    return float(np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a + cov_b - 2.0 * np.real(root)))


class Scorer:
    """Scores uint8 images with a classifier (uint8 images -> logits) that has a "head_logits" layer."""

    def __init__(self, classifier, accuracy=None):
        self.classifier = classifier
        self.accuracy = accuracy  # on the eval split, when known
        features = keras.Model(classifier.input, [classifier.get_layer("head_logits").input, classifier.output])
        # Traced once: eager calls took 2.5x as long, paid on every epoch's scores.
        self._features = tf.function(lambda images: features(images, training=False), reduce_retracing=True)

    @classmethod
    def train(cls, data, epochs, seed, batch_size=128):
        """The zoo's CNN classifier trained with labels on `data`'s train split, BatchNorm recalibrated."""
        keras.utils.set_random_seed(seed)
        model = zoo.build_model("cnn_classifier_bn", image_shape=data.image_shape, num_classes=data.num_classes)
        model.compile(
            optimizer=keras.optimizers.Adam(1e-3), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        )
        model.fit(
            data.pretrain_dataset(lambda image, label: (image, label), batch_size, seed),
            epochs=epochs,
            verbose=0,
            shuffle=False,
        )
        recalibrate_batchnorm(model, data.train_arrays()[0])
        scorer = cls(model)
        scorer.accuracy = float(np.mean(scorer.predict(data.eval_inputs) == data.eval_labels))
        return scorer

    @classmethod
    def load(cls, model_dir, data):
        """The classifier of a `recipes.cnn_classifier` run on the same kind of images."""
        manifest = zoo.read_manifest(model_dir)
        if manifest.get("family") != "cnn_classifier":
            raise zoo.ZooError(
                f"--scorer_dir={model_dir}: not a cnn_classifier run (family "
                f"{manifest.get('family')!r}); give the model_dir of `python -m recipes.cnn_classifier`"
            )
        if tuple(manifest["input"]["shape"]) != tuple(data.image_shape):
            raise zoo.ZooError(
                f"--scorer_dir={model_dir}: its classifier takes {tuple(manifest['input']['shape'])} "
                f"images, the dataset has {tuple(data.image_shape)}"
            )
        return cls(keras.saving.load_model(os.path.join(model_dir, "model.keras")))

    def _outputs(self, images, batch_size=500):
        features, logits = [], []
        for start in range(0, len(images), batch_size):
            f, l = self._features(images[start : start + batch_size])
            features.append(np.asarray(f, np.float64))
            logits.append(np.asarray(l, np.float64))
        return np.concatenate(features), np.concatenate(logits)

    def predict(self, images):
        return np.argmax(self._outputs(images)[1], axis=-1)

    def statistics(self, images):
        """(mean, covariance) of the penultimate features."""
        features, _ = self._outputs(images)
        return features.mean(axis=0), np.cov(features, rowvar=False)

    def score(self, images, real_statistics):
        """Fréchet distance to the real statistics, classifier score and class histogram of `images`."""
        features, logits = self._outputs(images)
        stats = (features.mean(axis=0), np.cov(features, rowvar=False))
        p = np.exp(logits - logits.max(axis=-1, keepdims=True))
        p /= p.sum(axis=-1, keepdims=True)
        marginal = p.mean(axis=0)
        kl = np.sum(p * (np.log(p + 1e-12) - np.log(marginal + 1e-12)), axis=-1)
        return {
            "frechet_distance": frechet_distance(stats, real_statistics),
            "classifier_score": float(np.exp(kl.mean())),
            "class_histogram": np.bincount(np.argmax(logits, axis=-1), minlength=logits.shape[-1]).tolist(),
        }
