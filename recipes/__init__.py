"""Runnable recipes, one module per job: `python -m recipes.<name> --helpfull`."""

import importlib
import pkgutil
import sys

if sys.argv[:1] == ["-m"]:  # `python -m recipes.<job>` is starting: TensorFlow's start-up lines left out
    from recipes import quiet

    quiet.start(sys.argv[1:])


def all_recipes() -> dict:
    """{family: recipe module} for every module of this package that defines a `RECIPE`."""
    found = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        recipe = getattr(module, "RECIPE", None)
        if recipe is not None:
            found[recipe.family] = module
    return dict(sorted(found.items()))
