"""Writing the artifact of DESIGN.md: staged, then published atomically.

A run works in a hidden sibling of --model_dir, `.<name>.partial/`, which also
holds its BackupAndRestore checkpoint; a killed run restarted with the same
settings resumes there. Only a finished artifact is renamed into --model_dir,
so a crash never leaves a half-written one behind.
"""

import json
import os
import shutil
import tempfile

import keras
import tensorflow as tf

from zoo.errors import ZooError

RUN_RECORD = "run.json"


def check_model_dir(model_dir, overwrite):
    """Refuse an existing --model_dir unless --overwrite, before any work."""
    if os.path.exists(model_dir) and not overwrite:
        raise ZooError(f"--model_dir={model_dir} already exists; pass --overwrite to replace it, or choose another")
    if os.path.exists(model_dir) and not os.path.isdir(model_dir):
        raise ZooError(f"--model_dir={model_dir} is a file, not a directory")


class Stage:
    """The working directory of one run, published into model_dir at the end."""

    def __init__(self, model_dir, overwrite, fingerprint, is_chief=True, say=print):
        check_model_dir(model_dir, overwrite)
        self.final = os.path.abspath(model_dir)
        self.is_chief = is_chief
        parent, name = os.path.split(self.final)
        os.makedirs(parent, exist_ok=True)
        if not is_chief:  # other workers of a multi-worker run write into a throwaway dir
            self.path = tempfile.mkdtemp(prefix=f".{name}.worker-")
            return
        self.path = os.path.join(parent, f".{name}.partial")
        record = os.path.join(self.path, RUN_RECORD)
        if os.path.isdir(self.path):
            previous = read_json(record).get("fingerprint")
            if previous == fingerprint:
                say(f"Resuming the interrupted run in {self.path}")
                return
            if not overwrite:
                raise ZooError(
                    f"{self.path} holds an interrupted run with other settings; pass --overwrite to discard it, "
                    "or rerun with the same flags to resume it"
                )
            shutil.rmtree(self.path)
        os.makedirs(self.path)
        write_json(record, {"fingerprint": fingerprint})

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    @property
    def backup_dir(self):
        return self / "backup"

    def publish(self):
        """Move the finished artifact into model_dir, replacing any old one."""
        for leftover in (self.backup_dir, self / RUN_RECORD):
            if os.path.isdir(leftover):
                shutil.rmtree(leftover)
            elif os.path.exists(leftover):
                os.remove(leftover)
        if not self.is_chief:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        old = None
        if os.path.exists(self.final):
            old = tempfile.mkdtemp(prefix=f".{os.path.basename(self.final)}.old-", dir=os.path.dirname(self.final))
            os.replace(self.final, os.path.join(old, "artifact"))
        os.replace(self.path, self.final)
        if old:
            shutil.rmtree(old)


def export_saved_model(path, model, endpoints):
    """Write `model` as a SavedModel with `endpoints`: {name: (fn, [TensorSpec])}."""
    archive = keras.export.ExportArchive()
    archive.track(model)
    for name, (fn, signature) in endpoints.items():
        archive.add_endpoint(name=name, fn=fn, input_signature=signature)
    archive.write_out(path, verbose=False)


def generator_endpoints(generate, latent_dim, name="latent"):
    """A generator's SavedModel endpoints: `serve` maps latent vectors (float32, N x latent_dim) to
    uint8 images; `sample(n, seed)` draws n images from the prior N(0, I), the same ones for a seed."""

    def sample(n, seed):
        return generate(tf.random.stateless_normal(tf.stack([n, latent_dim]), seed=tf.stack([seed, 0])))

    return {
        "serve": (generate, [tf.TensorSpec((None, latent_dim), tf.float32, name=name)]),
        "sample": (sample, [tf.TensorSpec((), tf.int32, name="n"), tf.TensorSpec((), tf.int32, name="seed")]),
    }


def image_spec(image_shape):
    """The TensorSpec of a batch of uint8 images, as TFDS yields them."""
    return tf.TensorSpec(shape=(None, *image_shape), dtype=tf.uint8, name="images")


def read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def write_json(path, value):
    with open(path, "w") as f:
        json.dump(value, f, indent=2, sort_keys=False, default=_jsonable)
        f.write("\n")


def _jsonable(value):
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, tuple):
        return list(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


