"""Runnable transfer-learning recipes, one module per family: `python -m recipes.<family>`."""
