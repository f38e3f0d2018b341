"""SimCLR on the MNIST-10k protocol (benchmarks/README.md).

    python benchmarks/simclr_mnist10k.py                    # the recipe's defaults, 60 epochs
    python benchmarks/simclr_mnist10k.py --manual_dir=/path/to/mnist-10k   # offline, local IDX files
    python benchmarks/simclr_mnist10k.py --temperature=0.5 --epochs=20

Pretrains contrastively on images 0-7,999 of the real MNIST test set (labels
unseen), then the transfer table (N = 100 and 1,000; frozen / finetune /
scratch; seeds 0-2, evaluated on images 8,000-9,999) beside the protocol's
reference CNN from scratch. Last, the images/s of the training step side by
side with a plain-Keras SimCLR written as the keras-io example writes it
(float images from NumPy, the augmenter and the loss in `train_step`, `fit`),
on the same encoder, head and augmentations. Any recipe flag gives a variant.

Measured with the defaults (1,000 steps per downstream classifier) on a shared 2-core CPU: N = 100
frozen 95.1 +- 0.9, finetune 96.0 +- 0.6, scratch 84.9 +- 1.7 (small CNN from scratch 94.3 +- 0.3);
N = 1,000 frozen 98.1 +- 0.2, finetune 98.5 +- 0.2, scratch 97.4 +- 0.2 (reference 98.5 +- 0.2).
Recipe 860 s; 1,344 s with the reference and the throughput comparison.
"""

import keras
import tensorflow as tf
from keras import ops

import zoo
from protocol import benchmark_main, interleaved_rates, recipe_model, seeded_build
from recipes import flow, simclr

EPOCHS = 60  # 8,000 images: more epochs than the recipe's offline default needs
SHOWN = (
    "filters",
    "convs_per_block",
    "pooling",
    "projection_units",
    "projection_dim",
    "temperature",
    "crop",
    "translate",
    "rotate",
    "noise",
    "contrast",
    "batch_size",
    "learning_rate",
    "epochs",
    "transfer_steps",
)


class KerasIoSimCLR(keras.Model):
    """keras-io's ContrastiveModel (semisupervised_simclr.py): augment twice, encode, project,
    a symmetric cross-view contrastive loss, one Mean tracker."""

    def __init__(self, augmenter, encoder, projection_head, temperature, **kwargs):
        super().__init__(**kwargs)
        self.augmenter, self.encoder, self.projection_head = augmenter, encoder, projection_head
        self.temperature = temperature
        self.loss_tracker = keras.metrics.Mean(name="c_loss")

    @property
    def metrics(self):
        return [self.loss_tracker]

    def contrastive_loss(self, projections_1, projections_2):
        projections_1 = ops.normalize(projections_1, axis=1)
        projections_2 = ops.normalize(projections_2, axis=1)
        similarities = ops.matmul(projections_1, ops.transpose(projections_2)) / self.temperature
        labels = ops.arange(ops.shape(projections_1)[0])
        loss_1_2 = keras.losses.sparse_categorical_crossentropy(labels, similarities, from_logits=True)
        loss_2_1 = keras.losses.sparse_categorical_crossentropy(labels, ops.transpose(similarities), from_logits=True)
        return (loss_1_2 + loss_2_1) / 2

    def train_step(self, images):
        # The encoder takes uint8 (it scales inside), so the float views go back to 0-255.
        views = [
            ops.cast(ops.round(ops.clip(self.augmenter(images, training=True), 0, 1) * 255), "uint8") for _ in range(2)
        ]
        with tf.GradientTape() as tape:
            projections = [self.projection_head(self.encoder(v, training=True), training=True) for v in views]
            loss = self.contrastive_loss(*projections)
        gradients = tape.gradient(loss, self.trainable_weights)
        self.optimizer.apply_gradients(zip(gradients, self.trainable_weights))
        self.loss_tracker.update_state(loss)
        return {m.name: m.result() for m in self.metrics}


def throughput(config):
    """Images/s of the training step: the recipe (zoo SimCLR, tf.data pipeline) vs keras-io style (NumPy floats)."""
    recipe = simclr.RECIPE
    run = flow.prepare(recipe, config)
    data = run.source
    images, _ = data.train_arrays()
    floats = images.astype("float32") / 255.0

    def build_plain():
        # the same layers (Keras computing their BatchNorm), keras-io's training step
        parts = zoo.blocks.fuse_batchnorm(zoo.build_model(config.model, **run.model_config), fused=False)
        model = KerasIoSimCLR(parts.augmenter, parts.encoder, parts.projector, run.model_config["temperature"])
        model.compile(optimizer=keras.optimizers.Adam(config.learning_rate))
        return model

    ours, plain = recipe_model(recipe, run), seeded_build(build_plain, config.seed)
    pipeline = data.pretrain_dataset(recipe.pretrain_example(run), config.batch_size, config.seed)
    rate = interleaved_rates(
        {
            "recipe": lambda: ours.fit(pipeline, epochs=1, verbose=0, shuffle=False),
            "keras_io": lambda: plain.fit(floats, batch_size=config.batch_size, epochs=1, verbose=0),
        },
        len(images),
    )
    return rate["recipe"], rate["keras_io"]


def speed(config):
    ours, plain = throughput(config)
    return (
        f"training step, images/s (median of 3 epochs, interleaved): recipe {ours:.0f}, "
        f"keras-io style {plain:.0f}, ratio {ours / plain:.2f}"
    )


def extra(metrics):
    pre = metrics["pretrain"]
    print(
        f"eval NT-Xent loss {pre['eval_loss']:.3f}, contrastive accuracy {pre['eval_contrastive_accuracy']:.1%}; "
        f"training step {pre['images_per_second']:.0f} images/s (each image is two views; median epoch)"
    )


if __name__ == "__main__":
    benchmark_main(
        simclr,
        "simclr",
        SHOWN,
        speed,
        extra,
        epochs=EPOCHS,
        speed_help="Also compare training-step throughput with a keras-io style SimCLR.",
    )
