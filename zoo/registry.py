"""A registry of model builders: list them, build one by name.

Each family module registers its builders with `@register`. A builder is a
function that takes hyperparameters (`image_shape` for an image model) and returns
a `keras.Model` with a nested sub-model named "encoder": uint8 images in, or for a
text model a batch of strings in, feature vectors out.
Tiny variants exist so one parametrised test covers every model cheaply.

Example:

    import zoo
    zoo.list_models()                       # ['conv_autoencoder', 'dense_autoencoder', ...]
    model = zoo.build_model("dense_autoencoder", image_shape=(28, 28, 1), latent_dim=32)
    encoder = model.get_layer("encoder")
"""

import dataclasses
import difflib
import inspect
from collections.abc import Callable
from typing import Any

import keras

from zoo.blocks import fuse_batchnorm
from zoo.errors import ZooError


@dataclasses.dataclass(frozen=True)
class ModelEntry:
    """One registered model: a builder function with default hyperparameters."""

    name: str
    family: str
    builder: Callable[..., Any]
    defaults: dict
    tiny: bool

    @property
    def inputs(self) -> str:
        """What the model reads: "images" (uint8, its builder takes `image_shape`) or "texts" (strings)."""
        return "images" if "image_shape" in inspect.signature(self.builder).parameters else "texts"

    def config(self, **overrides) -> dict:
        """The full keyword arguments a build with these overrides would use."""
        params = inspect.signature(self.builder).parameters
        unknown = sorted(set(overrides) - set(params))
        if unknown:
            raise ZooError(
                f"model '{self.name}' has no hyperparameter {', '.join(map(repr, unknown))}; "
                f"it takes: {', '.join(params)}"
            )
        config = {k: p.default for k, p in params.items() if p.default is not inspect.Parameter.empty}
        config.update(self.defaults)
        config.update(overrides)
        return config


_REGISTRY: dict[str, ModelEntry] = {}


def register(name: str, *, family: str, tiny: bool = False, **defaults):
    """Decorator: register `builder` under `name`, with `defaults` bound.

    The same builder may be registered several times with different defaults
    (a full-size and a tiny variant, say).
    """

    def decorator(builder):
        if name in _REGISTRY:
            raise ValueError(f"a model named '{name}' is already registered")
        _REGISTRY[name] = ModelEntry(name, family, builder, dict(defaults), tiny)
        return builder

    return decorator


def list_models(family: str | None = None, include_tiny: bool = False) -> list[str]:
    """Names of the registered models, sorted; optionally of one family only."""
    return sorted(
        e.name for e in _REGISTRY.values() if (family is None or e.family == family) and (include_tiny or not e.tiny)
    )


def list_families() -> list[str]:
    """Names of the registered families, sorted."""
    return sorted({e.family for e in _REGISTRY.values()})


def get_entry(name: str) -> ModelEntry:
    """The registry entry for `name`; an unknown name lists the valid ones."""
    try:
        return _REGISTRY[name]
    except KeyError:
        valid = list_models(include_tiny=True)
        close = difflib.get_close_matches(name, valid, n=1)
        hint = f" Did you mean '{close[0]}'?" if close else ""
        raise ZooError(f"unknown model '{name}'.{hint} Registered models: {', '.join(valid)}") from None


def build_model(name: str, **kwargs) -> keras.Model:
    """Build the registered model `name` with hyperparameters `kwargs`.

    Args:
      name: a name from `list_models(include_tiny=True)`.
      **kwargs: `image_shape` and any hyperparameter of the builder; the rest
        take the registered defaults.

    Returns:
      A functional `keras.Model` whose layer "encoder" is the feature extractor.
    """
    entry = get_entry(name)
    return fuse_batchnorm(entry.builder(**entry.config(**kwargs)))
