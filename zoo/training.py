"""What the families with their own `train_step` share."""

import keras
import tensorflow as tf
from keras import ops


def replica_share(loss):
    """A loss reduced by hand to the mean over this replica's batch, scaled so that the gradients
    summed over the replicas of a `tf.distribute` strategy are those of the global mean (Keras'
    built-in losses do this themselves)."""
    return loss / tf.distribute.get_strategy().num_replicas_in_sync


class OwnObjective(keras.Model):
    """A model that trains with plain `fit` on its inputs alone (no labels) and computes its own loss.

    A subclass defines `objective(inputs, training)`, which returns (losses, correct): float32 tensors,
    the loss of each item it scores (views, words, pairs: any number, none included) and whether it
    was right, and names that accuracy in `accuracy_name`. Training minimises the mean loss; fit
    and evaluate report `loss` and the accuracy.
    """

    accuracy_name = "accuracy"

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.loss_tracker = keras.metrics.Mean(name="loss")
        self.accuracy_tracker = keras.metrics.Mean(name=self.accuracy_name)

    @property
    def metrics(self):
        return [self.loss_tracker, self.accuracy_tracker]

    def objective(self, inputs, training=False):
        raise NotImplementedError

    def _track(self, losses, correct):
        self.loss_tracker.update_state(losses)
        self.accuracy_tracker.update_state(correct)
        return {m.name: m.result() for m in self.metrics}

    def train_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        with tf.GradientTape() as tape:
            losses, correct = self.objective(inputs, training=True)
            count = ops.maximum(ops.cast(ops.size(losses), "float32"), 1.0)
            scaled = self.optimizer.scale_loss(replica_share(ops.sum(losses) / count))  # scaled under mixed_float16
        gradients = tape.gradient(scaled, self.trainable_weights)
        self.optimizer.apply(gradients, self.trainable_weights)
        return self._track(losses, correct)

    def test_step(self, data):
        inputs, _, _ = keras.utils.unpack_x_y_sample_weight(data)
        return self._track(*self.objective(inputs))
