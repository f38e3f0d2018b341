"""Classifier heads on top of any zoo encoder: the encoder/head seam."""

import keras
from keras import layers, ops

from zoo.blocks import float32_output
from zoo.errors import ZooError

# ITU-R BT.601 luma weights: colour -> grey as image libraries convert it.
LUMA = (0.299, 0.587, 0.114)


@keras.saving.register_keras_serializable(package="zoo")
class AdaptImages(layers.Layer):
    """uint8 images of one shape -> uint8 images of another: bilinear resize to the target height and
    width, grey -> colour by repeating the channel, colour -> grey by luminance.

    Lets an encoder trained on one image shape take another dataset's images inside the model's own
    graph, so an exported classifier still takes that dataset's raw uint8 images.
    """

    def __init__(self, target_shape, **kwargs):
        super().__init__(**kwargs)
        self.target_shape = tuple(int(d) for d in target_shape)

    def call(self, images):
        height, width, channels = self.target_shape
        x = ops.cast(images, "float32")
        if tuple(x.shape[1:3]) != (height, width):
            x = ops.image.resize(x, (height, width), interpolation="bilinear", antialias=True)
        if x.shape[-1] == 1 and channels == 3:
            x = ops.repeat(x, 3, axis=-1)
        elif x.shape[-1] == 3 and channels == 1:
            x = ops.sum(x * ops.convert_to_tensor(LUMA, "float32"), axis=-1, keepdims=True)
        return ops.cast(ops.clip(ops.round(x), 0, 255), "uint8")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.target_shape)

    def get_config(self):
        return {**super().get_config(), "target_shape": list(self.target_shape)}


def adaptation(source_shape, target_shape):
    """How images of `source_shape` become `target_shape` (one line), or None if they already are.

    Raises:
      ZooError: when no adaptation exists (channels other than 1 and 3).
    """
    source_shape, target_shape = tuple(source_shape), tuple(target_shape)
    if source_shape == target_shape:
        return None
    steps = []
    if source_shape[:2] != target_shape[:2]:
        steps.append(f"resize {source_shape[0]}x{source_shape[1]} -> {target_shape[0]}x{target_shape[1]}")
    if source_shape[2] != target_shape[2]:
        if {source_shape[2], target_shape[2]} != {1, 3}:
            raise ZooError(
                f"images of shape {source_shape} cannot be adapted to {target_shape}: only 1 and 3 channels convert"
            )
        steps.append("grey -> colour (repeat)" if source_shape[2] == 1 else "colour -> grey (luminance)")
    return ", ".join(steps)


def classifier_on(
    encoder: keras.Model,
    num_classes: int,
    *,
    hidden_units: tuple[int, ...] = (),
    dropout: float = 0.0,
    normalize: bool = True,
    image_shape: tuple[int, int, int] | None = None,
    name: str = "classifier",
) -> keras.Model:
    """A classifier: uint8 images -> (adapt) -> encoder -> head -> logits; or, on a text encoder,
    strings -> encoder -> head -> logits.

    The encoder is used as given: freeze it first with `encoder.trainable = False`
    to train only the head. (In Keras 3 `trainable=False` also keeps its
    BatchNormalization layers in inference mode inside `fit`; a `training=False`
    passed here would be overridden by `fit`.)

    Args:
      encoder: a Keras model from uint8 images (or strings) to feature vectors.
      num_classes: number of output logits.
      hidden_units: widths of hidden ReLU layers in the head; `()` is linear.
      dropout: dropout rate on the features before each head layer.
      normalize: standardise the features with a BatchNormalization without
        scale or offset first. Pretrained features come at arbitrary scales; a
        head trained by SGD on few labels learns far better on standardised
        ones (MAE's linear probe does the same).
      image_shape: the shape of the images the classifier takes, if not the
        encoder's: they are adapted to the encoder's inside the model
        (`AdaptImages`).
      name: the model's name.

    Returns:
      A functional `keras.Model` with layers "encoder" and the head's layers.

    Example:

        encoder = zoo.load_encoder("runs/simclr")              # 8x8 grey digits, say
        model = zoo.classifier_on(encoder, 10, image_shape=(28, 28, 1))
    """
    encoder_shape = tuple(encoder.input_shape[1:])
    if encoder.inputs[0].dtype == "string":  # a text encoder: a batch of strings in
        inputs = x = keras.Input(shape=(), dtype="string", name="texts")
    else:
        image_shape = tuple(image_shape or encoder_shape)
        inputs = x = keras.Input(shape=image_shape, dtype="uint8", name="image")
    if encoder.inputs[0].dtype != "string" and adaptation(image_shape, encoder_shape):
        x = AdaptImages(encoder_shape, name="adapt")(x)
    x = encoder(x)
    if normalize:
        x = layers.BatchNormalization(center=False, scale=False, name="head_norm")(x)
    for i, units in enumerate(hidden_units):
        if dropout:
            x = layers.Dropout(dropout, name=f"head_dropout{i}")(x)
        x = layers.Dense(units, activation="relu", name=f"head_dense{i}")(x)
    if dropout:
        x = layers.Dropout(dropout, name="head_dropout")(x)
    logits = float32_output(layers.Dense(num_classes, name="head_logits")(x), name="logits")
    return keras.Model(inputs, logits, name=name)
