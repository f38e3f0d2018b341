"""Reload what a recipe exported to its model_dir.

An artifact says which layout it has in manifest.json's "format" (an artifact
written before the key existed has none, and is format 1). A zoo reads every
format up to its own `ARTIFACT_FORMAT` and refuses newer ones with one line.
"""

import json
import os
import zipfile

import keras

from zoo.errors import ZooError, first_line

ARTIFACT_FORMAT = 1  # the layout of docs/artifact.md that this zoo writes and reads
ENCODER_KERAS = "encoder.keras"
ENCODER_SAVED_MODEL = "encoder"
MANIFEST = "manifest.json"


def artifact_format(manifest):
    """The format of a parsed manifest: its "format", or 1 when it has none (written before the key);
    None when `manifest` is not a zoo manifest at all (not a JSON object whose "family" is a name)."""
    if not isinstance(manifest, dict) or not isinstance(manifest.get("family"), str) or not manifest["family"]:
        return None
    value = manifest.get("format", 1)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        return None
    return value


def read_manifest(model_dir) -> dict:
    """The manifest.json of an exported model_dir, checked to exist, parse, and be of a format this zoo reads."""
    model_dir = os.fspath(model_dir)
    if not os.path.isdir(model_dir):
        raise ZooError(f"model_dir '{model_dir}' does not exist; run a recipe with --model_dir={model_dir} first")
    path = os.path.join(model_dir, MANIFEST)
    try:
        with open(path, encoding="utf-8") as f:
            manifest = json.load(f)
    except FileNotFoundError:
        raise ZooError(f"'{model_dir}' has no {MANIFEST}: it is not an exported model_dir") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ZooError(f"'{path}' is corrupt ({e}); export the model again") from None
    except RecursionError:
        raise ZooError(f"'{path}' is corrupt (JSON nested too deep to read); export the model again") from None
    except OSError as e:
        raise ZooError(f"cannot read '{path}' ({e.strerror}); check its permissions") from None
    version = artifact_format(manifest)
    if version is None:
        raise ZooError(
            f"'{path}' is not a zoo manifest (it needs a \"family\" name and a positive integer "
            '"format"): the directory was not written by a zoo recipe'
        )
    if version > ARTIFACT_FORMAT:
        raise ZooError(
            f"'{path}' is artifact format {version}, newer than the {ARTIFACT_FORMAT} this zoo reads; "
            "upgrade keras-transfer-zoo to load it"
        )
    return manifest


def manifest_field(manifest, path, name, kind, what):
    """The field `name` of a parsed manifest (dotted for a nested one: "dataset.name"), checked to be
    of `kind`; a missing or wrong-typed field is one ZooError line naming the manifest file `path`."""
    value = manifest
    for key in name.split("."):
        if not isinstance(value, dict) or key not in value:
            raise ZooError(
                f"'{path}' has no \"{name}\" ({what}): the manifest is incomplete or was edited; export the model again"
            )
        value = value[key]
    if isinstance(value, bool) or not isinstance(value, kind) or value == "":
        shown = json.dumps(value)
        shown = shown if len(shown) <= 60 else shown[:60] + "..."
        raise ZooError(
            f"'{path}': \"{name}\" is {shown}, not {what}: the manifest was edited or is corrupt; "
            "export the model again"
        )
    return value


def check_run_manifest(manifest, path):
    """What jobs on a saved run (recipes.transfer, recipes.distill) read of its manifest (at `path`):
    "model", "model_config", "dataset" and "input" of the right types, and a model that builds from
    them (the transfer table's scratch column builds it). ZooError naming the file otherwise."""
    from zoo.registry import build_model

    model = manifest_field(manifest, path, "model", str, "the name of a registered model")
    model_config = manifest_field(manifest, path, "model_config", dict, "the model's keyword arguments")
    manifest_field(manifest, path, "dataset", dict, "an object describing the dataset")
    manifest_field(manifest, path, "dataset.name", str, "the dataset's name")
    if "input" in manifest:
        manifest_field(manifest, path, "input", dict, "an object describing the encoder's input")
    try:
        build_model(model, **model_config)
    except ZooError as e:
        raise ZooError(f"'{path}' names a model this zoo cannot build ({e}); export the model again") from None
    except Exception as e:  # a wrong value inside model_config fails in the builder, in many ways
        reason = first_line(e)
        raise ZooError(
            f"'{path}': its \"model_config\" does not build {model} ({type(e).__name__}: {reason}); "
            "the manifest was edited or is corrupt, export the model again"
        ) from None


def load_keras_file(path, what="the model"):
    """A `.keras` file loaded in Keras's safe mode: a `Lambda` layer holding Python code is refused,
    never run. Any failure is one ZooError line naming the file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ZooError(f"'{path}' does not exist; export {what} again")
    if not zipfile.is_zipfile(path):
        raise ZooError(
            f"cannot load '{path}': it is not a .keras archive (no zip directory): truncated or "
            f"corrupt, export {what} again"
        )
    _check_keras_config(path)  # before Keras reads it: safe mode differs between Keras versions
    try:
        return keras.saving.load_model(path, safe_mode=True)
    except Exception as e:  # a truncated or foreign file fails in many ways inside Keras
        text = str(e)
        if "safe_mode" in text or "Lambda" in text:
            raise ZooError(_lambda_message(path)) from None
        reason = first_line(e)
        raise ZooError(
            f"cannot load '{path}' ({type(e).__name__}: {reason}); the file is corrupt or not a "
            f"zoo export, export {what} again"
        ) from None


SAFE_MODULES = ("keras", "zoo", "builtins")  # what the configs of the zoo's own models refer to


def _lambda_message(path):
    return (
        f"cannot load '{path}': it holds a Lambda layer (Python code), which is never loaded, as it could "
        "run anything; rebuild the model without Lambda layers"
    )


def _check_keras_config(path):
    """Refuse a `.keras` file whose config holds a Lambda layer or refers to code outside Keras and the zoo.
    A file that is not a readable archive passes here; Keras then reports it."""
    try:
        with zipfile.ZipFile(path) as archive:
            config = json.loads(archive.read("config.json"))
    except Exception:  # not a zip, truncated, no config.json: Keras says what is wrong
        return
    stack = [config]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(node)
        elif isinstance(node, dict):
            if node.get("class_name") in ("Lambda", "__lambda__"):
                raise ZooError(_lambda_message(path))
            module = node.get("module")
            if isinstance(module, str) and module.split(".")[0] not in SAFE_MODULES:
                raise ZooError(
                    f"cannot load '{path}': it refers to {module}.{node.get('class_name')}, which is "
                    "neither Keras's nor the zoo's; it was not exported by a zoo recipe"
                )
            stack.extend(node.values())


def check_saved_model(path):
    """A SavedModel directory's graph parses and its variables are there; a truncated or partial
    copy is one ZooError line naming the file. (Cheap: reads the graph, not the weights.)"""
    from tensorflow.core.protobuf import saved_model_pb2

    graph = os.path.join(path, "saved_model.pb")
    index = os.path.join(path, "variables", "variables.index")
    for required in (graph, index):
        if not os.path.isfile(required):
            raise ZooError(f"'{required}' is missing: the SavedModel is incomplete, export the model again")
    try:
        with open(graph, "rb") as f:
            proto = saved_model_pb2.SavedModel()
            proto.ParseFromString(f.read())
    except Exception as e:  # protobuf's DecodeError, or an unreadable file
        reason = first_line(e)
        raise ZooError(
            f"'{graph}' is corrupt ({reason}); the SavedModel is truncated, export the model again"
        ) from None
    if not proto.meta_graphs:
        raise ZooError(f"'{graph}' holds no graph; the SavedModel is truncated, export the model again")


def load_encoder(model_dir: str | os.PathLike, trainable: bool = False) -> keras.Model:
    """Load the encoder a recipe exported, ready to drop into other Keras code.

    Args:
      model_dir: the directory a recipe wrote (it holds `encoder.keras`).
      trainable: False freezes every layer (weights and BatchNorm statistics stay
        fixed, BatchNorm runs in inference mode); True allows fine-tuning.

    Returns:
      A `keras.Model` from uint8 images (as the dataset yields them) to feature
      vectors.

    Raises:
      ZooError: one line naming the file, for a missing, corrupt, truncated or
        foreign artifact, one of a newer format, or an encoder holding a
        `Lambda` layer (Keras's safe mode stays on: no saved Python code runs).

    Example:

        encoder = zoo.load_encoder("runs/ae")
        inputs = keras.Input(encoder.input_shape[1:], dtype="uint8")
        logits = keras.layers.Dense(10)(encoder(inputs))
        model = keras.Model(inputs, logits)
    """
    read_manifest(model_dir)
    model_dir = os.fspath(model_dir)
    path = os.path.join(model_dir, ENCODER_KERAS)
    if not os.path.isfile(path):
        raise ZooError(f"'{model_dir}' has no {ENCODER_KERAS}; export the model again")
    check_saved_model(os.path.join(model_dir, ENCODER_SAVED_MODEL))
    encoder = load_keras_file(path, "the model")
    encoder.trainable = bool(trainable)
    return encoder
