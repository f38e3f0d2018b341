"""Reload what a recipe exported to its model_dir."""

import json
import os

import keras

from zoo.errors import ZooError

ENCODER_KERAS = "encoder.keras"
MANIFEST = "manifest.json"


def read_manifest(model_dir) -> dict:
    """The manifest.json of an exported model_dir, checked to exist and parse."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ZooError(f"model_dir '{model_dir}' does not exist; run a recipe with --model_dir={model_dir} first")
    path = os.path.join(model_dir, MANIFEST)
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        raise ZooError(f"'{model_dir}' has no {MANIFEST}: it is not an exported model_dir") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"'{path}' is corrupt ({e}); export the model again") from None


def load_encoder(model_dir, trainable=False):
    """Load the encoder a recipe exported, ready to drop into other Keras code.

    Args:
      model_dir: the directory a recipe wrote (it holds `encoder.keras`).
      trainable: False freezes every layer (weights and BatchNorm statistics stay
        fixed, BatchNorm runs in inference mode); True allows fine-tuning.

    Returns:
      A `keras.Model` from uint8 images (as the dataset yields them) to feature
      vectors.

    Example:

        encoder = zoo.load_encoder("runs/ae")
        inputs = keras.Input(encoder.input_shape[1:], dtype="uint8")
        logits = keras.layers.Dense(10)(encoder(inputs))
        model = keras.Model(inputs, logits)
    """
    read_manifest(model_dir)
    path = os.path.join(os.fspath(model_dir), ENCODER_KERAS)
    if not os.path.isfile(path):
        raise ZooError(f"'{model_dir}' has no {ENCODER_KERAS}; export the model again")
    try:
        encoder = keras.saving.load_model(path)
    except Exception as e:  # a truncated or foreign file fails in many ways inside Keras
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise ZooError(f"cannot load '{path}' ({reason}); the file is corrupt, export the model again") from None
    encoder.trainable = bool(trainable)
    return encoder
