"""A Keras model zoo for pretraining on one dataset and transferring to another.

import zoo
zoo.list_models()
model = zoo.build_model("conv_autoencoder", image_shape=(28, 28, 1))
encoder = zoo.load_encoder("runs/ae")        # what a recipe exported, frozen
"""

from zoo import autoencoder, cnn, dcgan, masked_lm, simclr, vae, word2vec  # noqa: F401  (importing a family registers its models)
from zoo.errors import ZooError
from zoo.heads import classifier_on
from zoo.loading import load_encoder, read_manifest
from zoo.registry import build_model, get_entry, list_families, list_models, register

__all__ = [
    "ZooError",
    "build_model",
    "classifier_on",
    "get_entry",
    "list_families",
    "list_models",
    "load_encoder",
    "read_manifest",
    "register",
]
__version__ = "0.1.0"
