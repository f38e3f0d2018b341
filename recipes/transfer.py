"""The transfer table: frozen, finetune and scratch classifiers per label budget."""

import numpy as np
import keras

from recipes.data import labelled_dataset
from zoo.heads import classifier_on


def accuracy(model, images, labels, batch_size=1000):
    """Eval accuracy, in eager batches (`predict` would trace anew for every classifier)."""
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size], training=False)
        correct += int(np.sum(np.argmax(logits, axis=-1) == labels[start:start + batch_size]))
    return correct / len(images)


def walk_layers(model):
    """Every layer of `model`, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def unfreeze_for_finetuning(encoder):
    """Make the encoder trainable, but keep BatchNorm frozen and in inference mode.

    With a few hundred labels, re-estimating BatchNorm statistics from small
    batches would undo what pretraining learned.
    """
    encoder.trainable = True
    for layer in walk_layers(encoder):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def recalibrate_batchnorm(model, images, max_examples=2048):
    """Re-estimate the statistics of the trainable BatchNorm layers on `images`.

    Trained for few steps, or from scratch on a few hundred labels, a BatchNorm
    network's weights move faster than its moving averages follow: measured on
    MNIST with 100 labels, the same weights scored 86% with batch statistics and
    36-55% with the moving ones. One training-mode pass with momentum 0 sets them to the
    statistics of the labelled set ("precise BN", Wu & Johnson 2021). Frozen
    layers (trainable=False) run in inference mode and are left untouched.
    """
    norms = [l for l in walk_layers(model) if isinstance(l, keras.layers.BatchNormalization) and l.trainable]
    momenta = [l.momentum for l in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        model(images[:max_examples], training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


class Downstream:
    """Trains the three classifiers of one (budget, seed) cell of the table."""

    def __init__(self, config, data, strategy):
        self.config, self.data, self.strategy = config, data, strategy

    def _classifier(self, encoder, learning_rate, steps):
        c = self.config
        with self.strategy.scope():
            model = classifier_on(encoder, self.data.num_classes, hidden_units=c.head_units,
                                  dropout=c.head_dropout, normalize=c.head_norm)
            self._compile(model, learning_rate, steps)
        return model

    def _compile(self, model, learning_rate, steps):
        # Cosine decay to zero: the weights settle at the end, so BatchNorm's moving
        # statistics catch up with them before the inference-mode evaluation.
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
        with self.strategy.scope():
            model.compile(
                optimizer=keras.optimizers.Adam(schedule),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=self.config.jit_compile,
            )

    def _train(self, model, images, labels, steps, seed):
        c = self.config
        ds = labelled_dataset(images, labels, c.transfer_batch_size, seed, augment=c.augment)
        model.fit(ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        with self.strategy.scope():
            recalibrate_batchnorm(model, images)

    def evaluate(self, model):
        return accuracy(model, self.data.eval_images, self.data.eval_labels)

    def cell(self, images, labels, seed, load_pretrained, build_scratch):
        """{'frozen', 'finetune', 'scratch'} eval accuracies for one labelled draw."""
        c = self.config
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            encoder = load_pretrained()
        model = self._classifier(encoder, c.probe_learning_rate, c.transfer_steps)
        self._train(model, images, labels, c.transfer_steps, seed)
        frozen = self.evaluate(model)

        unfreeze_for_finetuning(encoder)
        self._compile(model, c.transfer_learning_rate * c.finetune_lr_factor, c.transfer_steps)
        self._train(model, images, labels, c.transfer_steps, seed + 1)
        finetune = self.evaluate(model)

        return {"frozen": frozen, "finetune": finetune, "scratch": self.scratch(images, labels, seed, build_scratch)}

    def scratch(self, images, labels, seed, build_encoder):
        """A randomly initialised encoder + the same head, trained end to end with the
        optimizer budget of frozen and finetune together."""
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            encoder = build_encoder()
        steps = 2 * self.config.transfer_steps
        model = self._classifier(encoder, self.config.transfer_learning_rate, steps)
        self._train(model, images, labels, steps, seed)
        return self.evaluate(model)


def summarise(budget, runs, kinds=("frozen", "finetune", "scratch")):
    """One row of the table: means, and the spread when there are several seeds."""
    row = {"labels": budget}
    row.update({k: float(np.mean([r[k] for r in runs])) for k in kinds})
    if len(runs) > 1:
        row["std"] = {k: float(np.std([r[k] for r in runs])) for k in kinds}
    row["runs"] = runs
    return row


def verdict(row):
    """One line saying whether pretraining helped at this budget."""
    best = max(("frozen", "finetune"), key=lambda k: row[k])
    gain = 100 * (row[best] - row["scratch"])
    word = "helped" if gain > 0 else "did not help"
    return (
        f"N={row['labels']}: frozen {row['frozen']:.1%}, finetune {row['finetune']:.1%}, "
        f"scratch {row['scratch']:.1%} -> pretraining {word} ({best} {gain:+.1f} points)"
    )
