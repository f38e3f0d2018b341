"""What the families with their own `train_step` share."""

import tensorflow as tf


def replica_share(loss):
    """A loss reduced by hand to the mean over this replica's batch, scaled so that the gradients
    summed over the replicas of a `tf.distribute` strategy are those of the global mean (Keras'
    built-in losses do this themselves)."""
    return loss / tf.distribute.get_strategy().num_replicas_in_sync
