"""Bad input and hostile conditions, for every recipe, recipes.transfer and recipes.distill: one clear line,
nothing written or deleted.

The fault table runs each recipe's command line (`python -m recipes.<family>`) on input it must
refuse before any training or that makes training diverge, `zoo.load_encoder` (in process) on broken
and foreign artifacts, and recipes.transfer and recipes.distill on a run whose manifest was edited.
The rest: --overwrite replaces only an artifact, one run per model_dir (a lock a killed run cannot
leave stuck), a run killed with SIGKILL or interrupted with Ctrl-C (SIGINT) while it trains or exports
resumes, and the same flags give the same metrics.
"""

import csv
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import zipfile

import keras
import numpy as np
import pytest
from conftest import RECIPES, REPO

import zoo
from recipes import artifact
from recipes.artifact import Stage, check_model_dir, check_writable_dir, os_error_line
from recipes.config import to_flagfile
from zoo.errors import ZooError
from zoo.loading import ARTIFACT_FORMAT

ROOT = os.geteuid() == 0 if hasattr(os, "geteuid") else False
UNWRITABLE = "/proc/zoo-test/out"  # no one, root included, creates directories in /proc
FINISHED = [
    "encoder",
    "encoder.keras",
    "figures",
    "flags.txt",
    "logs",
    "manifest.json",
    "metrics.json",
    "model",
    "model.keras",
]


def tiny_flags(family, **changes):
    """The command-line flags of `family`'s smoke config (its tiny model, one epoch, two steps)."""
    if family in ("transfer", "distill"):  # no model of their own: a small table
        return ["--label_budgets=10", "--transfer_repeats=1", "--transfer_steps=2"]
    module = RECIPES[family]
    config = module.RECIPE.smoke_config(**changes)
    return [
        line
        for line in to_flagfile(config, module.RECIPE.module).splitlines()
        if line.startswith("--") and not line.startswith(("--model_dir=", "--data_dir="))
    ]


PAUSE = """
import os, runpy, signal, sys, time
import keras
signal.signal(signal.SIGINT, signal.default_int_handler)  # a shell's background job ignores SIGINT: not this one
method, where, nth, marker, module = sys.argv[1:6]
del sys.argv[1:6]
original, calls = getattr(keras.Model, method), []
def paused(self, filepath, *args, **kwargs):
    original(self, filepath, *args, **kwargs)
    if where in os.fspath(filepath):
        calls.append(filepath)
        if len(calls) == int(nth):
            if method == "save_weights":  # as if the signal came while the file was written
                os.truncate(filepath, os.path.getsize(filepath) // 2)
            open(marker, "w").close()
            time.sleep(240)
setattr(keras.Model, method, paused)
sys.argv[0] = module
runpy.run_module(module, run_name="__main__", alter_sys=True)
"""


def cli(family, args, cwd, *, data_dir=None, wait=True, pause=None):
    """`python -m recipes.<family> args` in `cwd`, as a user runs it. `pause=(method, where, nth, marker)`
    runs the same main through PAUSE: the `nth` call of `keras.Model.<method>` on a path holding `where`
    creates the file `marker` and sleeps, for a signal to arrive there."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    flags = [*([f"--data_dir={data_dir}"] if data_dir else []), *args]
    if pause:
        command = [sys.executable, "-c", PAUSE, *map(str, pause), f"recipes.{family}", *flags]
    else:
        command = [sys.executable, "-m", f"recipes.{family}", *flags]
    if not wait:  # its output goes to a file: a full pipe would stop it
        log = tempfile.TemporaryFile("w+")
        process = subprocess.Popen(command, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, text=True)
        process.log = log
        return process
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


def snapshot(root):
    """Every path under `root` with its kind, size and modification time."""
    tree = {}
    for path, dirs, files in os.walk(root):
        for name in dirs + files:
            full = os.path.join(path, name)
            st = os.lstat(full)
            tree[os.path.relpath(full, root)] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return tree


def assert_one_error_line(out, expected):
    """Exit status non-zero, no traceback, and one `error:` line holding `expected` (absl's own flag
    errors, `FATAL Flags parsing error: ...`, count for unknown flags and values)."""
    assert out.returncode != 0, out.stdout[-2000:]
    assert "Traceback" not in out.stderr, out.stderr[-3000:]
    lines = [line for line in out.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith(("error:", "FATAL Flags parsing error:"))]
    assert len(errors) == 1, lines
    assert expected in errors[0], errors[0]
    if errors[0].startswith("error:"):
        assert lines[-1] == errors[0], lines


def write_manifest(directory, **fields):
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "manifest.json"), "w") as f:
        json.dump({"family": "autoencoder", "format": ARTIFACT_FORMAT, **fields}, f)


def hold_lock(path):
    """A process (no TensorFlow: quick to start) holding `path`'s flock, as a running recipe does."""
    script = (
        "import fcntl, os, sys, time\n"
        "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT, 0o644)\n"
        "fcntl.flock(fd, fcntl.LOCK_EX)\n"
        "os.write(fd, str(os.getpid()).encode())\n"
        "print('locked', flush=True)\n"
        "time.sleep(300)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", script, path], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    return holder


# --- the fault table: each recipe's command line --------------------------------------------------
# (family, extra flags, what the error line holds, setup). Flags may name {tmp}; setup(tmp) prepares
# tmp_path and may return a callable to run at the end. Each case fails before any training, but for
# a learning rate that makes the loss NaN, which fails in its first epoch and publishes nothing.


def _thesis(tmp):
    os.makedirs(tmp / "out" / "src")
    (tmp / "out" / "src" / "thesis.tex").write_text("\\chapter{Years of work}\n")


def _artifact_here(tmp):
    write_manifest(tmp / "out")


def _file(tmp):
    (tmp / "out").write_text("not a directory\n")


def _read_only(tmp):
    if ROOT:
        pytest.skip("root writes into a 0o555 directory; the /proc case covers an unwritable parent for root")
    (tmp / "ro").mkdir()
    os.chmod(tmp / "ro", 0o555)
    return lambda: os.chmod(tmp / "ro", 0o755)


def _foreign_scorer(tmp):
    (tmp / "scorer").mkdir()
    (tmp / "scorer" / "manifest.json").write_text('{"name": "somebody else\'s model"}\n')


def _run_without_dataset(tmp):
    """A finished run whose manifest lost its "dataset"."""
    export_small_artifact(tmp / "run")
    manifest = json.loads((tmp / "run" / "manifest.json").read_text())
    del manifest["dataset"]
    (tmp / "run" / "manifest.json").write_text(json.dumps(manifest))


def _interrupted_other_settings(tmp):
    (tmp / ".out.partial").mkdir()
    (tmp / ".out.partial" / "run.json").write_text('{"fingerprint": "--epochs=99\\n"}\n')


def _locked(tmp):
    """A run holding --model_dir (this process, through the Stage a recipe writes with); after the
    refused second run, it finishes unharmed."""
    first = Stage(str(tmp / "out"), False, "the first run's flags", say=lambda m: None)
    with open(first / "metrics.json", "w") as f:
        f.write("{}\n")

    def finish():
        first.publish()
        assert os.listdir(tmp) == ["out"] and os.listdir(tmp / "out") == ["metrics.json"]

    return finish


OUT, RUN = "--model_dir={tmp}/out", "--model_dir={tmp}/run"
CLI_CASES = [
    # unknown names
    ("autoencoder", [OUT, "--dataset=mnistt"], "error: --dataset=mnistt: no such TFDS dataset", None),
    ("vae", [OUT, "--model=conv_vae_huge"], "FATAL Flags parsing error: flag --model=conv_vae_huge", None),
    ("dcgan", [OUT, "--no_such_flag=1"], "FATAL Flags parsing error: Unknown command line flag 'no_such_flag'", None),
    # a text dataset for an image model: its features are checked before any download
    (
        "cnn_classifier",
        [OUT, "--dataset=imdb_reviews"],
        "error: --dataset=imdb_reviews holds texts, but cnn_classifier",
        None,
    ),
    # --overwrite replaces only a finished artifact or an empty directory
    (
        "autoencoder",
        [OUT, "--overwrite"],
        "error: --model_dir={tmp}/out already exists and is not a zoo artifact "
        "(it holds src/); --overwrite replaces only a finished artifact or an empty directory",
        _thesis,
    ),
    ("vae", ["--model_dir=/", "--overwrite"], "error: --model_dir=/ is a file-system root", None),
    (
        "simclr",
        [OUT],
        "error: {tmp}/.out.partial holds an interrupted run with other settings",
        _interrupted_other_settings,
    ),
    # unwritable destinations, a file where a directory belongs
    ("autoencoder", [f"--model_dir={UNWRITABLE}"], f"error: --model_dir={UNWRITABLE}: cannot write in /proc", None),
    ("vae", ["--model_dir={tmp}/ro/out"], "error: --model_dir={tmp}/ro/out: cannot write in {tmp}/ro", _read_only),
    ("dcgan", [OUT], "error: --model_dir={tmp}/out is a file, not a directory", _file),
    ("autoencoder", [RUN, "--data_dir={tmp}/out/tfds"], "error: --data_dir={tmp}/out/tfds: {tmp}/out is a file", _file),
    # another run holds the model_dir
    (
        "cnn_classifier",
        [OUT],
        "error: --model_dir={tmp}/out is being written by another run (process {pid} holds "
        "{tmp}/.out.lock); wait for it to finish, or choose another --model_dir",
        _locked,
    ),
    # a foreign artifact where a flag needs a zoo one; a missing flagfile
    ("dcgan", [OUT, "--scorer_dir={tmp}/scorer"], "{tmp}/scorer/manifest.json' is not a zoo manifest", _foreign_scorer),
    ("vae", ["--flagfile={tmp}/missing.txt"], "FATAL Flags parsing error: ERROR:: Unable to open flagfile", None),
    # recipes.transfer: no encoder, a missing or foreign one, a user's directory under --overwrite
    ("transfer", [OUT], "error: --encoder_dir=: must not be empty", None),
    ("transfer", [OUT, "--encoder_dir={tmp}/none"], "error: --encoder_dir={tmp}/none: no such directory", None),
    (
        "transfer",
        [OUT, "--encoder_dir={tmp}/scorer"],
        "{tmp}/scorer/manifest.json' is not a zoo manifest",
        _foreign_scorer,
    ),
    (
        "transfer",
        [OUT, "--overwrite", "--encoder_dir={tmp}/none"],
        "error: --model_dir={tmp}/out already exists and is not a zoo artifact",
        _thesis,
    ),
    (
        "transfer",
        [OUT, "--encoder_dir={tmp}/run"],
        "error: --encoder_dir={tmp}/run: '{tmp}/run/manifest.json' has no \"dataset\"",
        _run_without_dataset,
    ),
    # recipes.distill: no teacher, a missing or foreign one
    ("distill", [OUT], "error: --teacher_dir=: must not be empty", None),
    ("distill", [OUT, "--teacher_dir={tmp}/none"], "error: --teacher_dir={tmp}/none: no such directory", None),
    (
        "distill",
        [OUT, "--teacher_dir={tmp}/scorer"],
        "{tmp}/scorer/manifest.json' is not a zoo manifest",
        _foreign_scorer,
    ),
    (
        "distill",
        [OUT, "--teacher_dir={tmp}/run"],
        "error: --teacher_dir={tmp}/run: '{tmp}/run/manifest.json' has no \"dataset\"",
        _run_without_dataset,
    ),
    # a loss that becomes NaN: one line, and the artifact --overwrite would have replaced stays whole
    (
        "autoencoder",
        [OUT, "--overwrite", "--learning_rate=1e9"],
        "error: pretraining diverged in epoch 1 of 1 (loss is nan); lower --learning_rate (it is 1e+09) and "
        "run again; --model_dir={tmp}/out was left as it was",
        _artifact_here,
    ),
]


def _case_id(case):
    family, args, _, setup = case
    what = setup.__name__.strip("_") if setup else args[-1].split("=")[0].lstrip("-")
    return f"{family}-{what}"


@pytest.mark.parametrize("family, args, expected, setup", CLI_CASES, ids=[_case_id(c) for c in CLI_CASES])
def test_cli_refuses_in_one_line_and_touches_nothing(family, args, expected, setup, tfds_dir, tmp_path):
    finish = setup(tmp_path) if setup else None
    try:
        before = snapshot(tmp_path)
        args = [a.replace("{tmp}", str(tmp_path)) for a in args]
        out = cli(
            family,
            [*tiny_flags(family), *args],
            str(tmp_path),
            data_dir=None if any(a.startswith("--data_dir=") for a in args) else tfds_dir,
        )
        assert_one_error_line(out, expected.replace("{tmp}", str(tmp_path)).replace("{pid}", str(os.getpid())))
        assert snapshot(tmp_path) == before
    finally:
        if finish:
            finish()


# --- the fault table: the same checks through each recipe's `run` (in process: no start-up cost) -----
# (the command line prints these as `error: <message>`, as the cases above show)


def _home(tmp, monkeypatch):
    write_manifest(tmp / "home")
    monkeypatch.setenv("HOME", str(tmp / "home"))


def _artifact_in_cwd(tmp, monkeypatch):
    write_manifest(tmp)
    monkeypatch.chdir(tmp)


def _parent_of_cwd(tmp, monkeypatch):
    write_manifest(tmp / "project")
    (tmp / "project" / "work").mkdir()
    monkeypatch.chdir(tmp / "project" / "work")


RUN_CASES = {  # id: (family, config changes, how the message starts, setup(tmp_path, monkeypatch))
    "simclr-unknown-split": (
        "simclr",
        dict(model_dir="{tmp}/out", train_split="nope"),
        "--train_split=nope: not a split of uci_digits",
        None,
    ),
    "simclr-out-of-range": (
        "simclr",
        dict(model_dir="{tmp}/out", temperature=0.0),
        "--temperature=0.0: must be positive",
        None,
    ),
    "dcgan-cwd-holding-an-artifact": (
        "dcgan",
        dict(model_dir=".", overwrite=True),
        "--model_dir=. is the current working directory, which a run never replaces",
        _artifact_in_cwd,
    ),
    "simclr-thesis": (
        "simclr",
        dict(model_dir="{tmp}/out"),
        "--model_dir={tmp}/out already exists and is not a zoo artifact (it holds src/); --overwrite replaces only",
        lambda tmp, mp: _thesis(tmp),
    ),
    "vae-artifact-without-overwrite": (
        "vae",
        dict(model_dir="{tmp}/out"),
        "--model_dir={tmp}/out already exists; pass --overwrite to replace it",
        lambda tmp, mp: _artifact_here(tmp),
    ),
    "cnn_classifier-home": (
        "cnn_classifier",
        dict(model_dir="{tmp}/home", overwrite=True),
        "--model_dir={tmp}/home is the home directory, which a run never replaces",
        _home,
    ),
    "autoencoder-parent-of-cwd": (
        "autoencoder",
        dict(model_dir="{tmp}/project", overwrite=True),
        "--model_dir={tmp}/project is a parent of the current working directory",
        _parent_of_cwd,
    ),
    "simclr-under-a-file": (
        "simclr",
        dict(model_dir="{tmp}/out/run"),
        "--model_dir={tmp}/out/run: {tmp}/out is a file, not a directory",
        lambda tmp, mp: _file(tmp),
    ),
    "cnn_classifier-data_dir-in-proc": (
        "cnn_classifier",
        dict(model_dir="{tmp}/out", data_dir="/proc/zoo-test/tfds"),
        "--data_dir=/proc/zoo-test/tfds: cannot write in /proc",
        None,
    ),
    "dcgan-missing-scorer": (
        "dcgan",
        dict(model_dir="{tmp}/out", scorer_dir="{tmp}/none"),
        "model_dir '{tmp}/none' does not exist",
        None,
    ),
    # fails in its first epoch, after the generator's step made the discriminator NaN: staging discarded
    "dcgan-infinite-learning-rate": (
        "dcgan",
        dict(model_dir="{tmp}/out", learning_rate=float("inf")),
        "pretraining diverged in epoch 1 of 1 (g_loss is nan); lower --learning_rate (it is inf) and run again; "
        "--model_dir={tmp}/out was left as it was",
        None,
    ),
}


@pytest.mark.parametrize("family, changes, expected, setup", RUN_CASES.values(), ids=RUN_CASES.keys())
def test_run_refuses_in_one_line_and_touches_nothing(family, changes, expected, setup, tfds_dir, tmp_path, monkeypatch):
    if setup:
        setup(tmp_path, monkeypatch)
    module = RECIPES[family]
    changes = {k: v.replace("{tmp}", str(tmp_path)) if isinstance(v, str) else v for k, v in changes.items()}
    config = module.RECIPE.smoke_config(**{"data_dir": tfds_dir, **changes})
    before = snapshot(tmp_path)
    with pytest.raises(ZooError) as err:
        module.run(config)
    assert str(err.value).startswith(expected.replace("{tmp}", str(tmp_path))) and "\n" not in str(err.value), str(
        err.value
    )
    assert snapshot(tmp_path) == before


# --- the fault table: zoo.load_encoder on broken and foreign artifacts (in process) ------------------


@pytest.fixture(scope="module")
def small_artifact(tmp_path_factory):
    """What a recipe exports, as far as load_encoder, recipes.transfer and recipes.distill read it."""
    d = tmp_path_factory.mktemp("artifact") / "ae"
    export_small_artifact(d)
    return str(d)


def export_small_artifact(d):
    """manifest.json (the fields jobs on a saved run read), encoder/ and encoder.keras of a tiny
    untrained autoencoder on 8x8 grey images, into `d`."""
    model = zoo.build_model("conv_autoencoder_tiny", image_shape=(8, 8, 1))
    encoder = model.get_layer("encoder")
    artifact.export_saved_model(
        str(d / "encoder"),
        encoder,
        {"serve": (lambda images: encoder(images, training=False), [artifact.image_spec((8, 8, 1))])},
    )
    encoder.save(str(d / "encoder.keras"))
    write_manifest(
        d,
        model="conv_autoencoder_tiny",
        model_config=zoo.get_entry("conv_autoencoder_tiny").config(image_shape=[8, 8, 1]),
        dataset={"name": "uci_digits"},
        input={"shape": [8, 8, 1], "dtype": "uint8", "range": [0, 255]},
    )


def _manifest(**fields):
    def change(d):
        with open(os.path.join(d, "manifest.json"), "w") as f:
            f.write(fields["text"] if "text" in fields else json.dumps(fields))

    return change


def _truncate(name, keep=0.5):
    def change(d):
        path = os.path.join(d, name)
        with open(path, "rb") as f:
            data = f.read()
        with open(path, "wb") as f:
            f.write(data[: int(len(data) * keep)])

    return change


def _remove(name):
    return lambda d: os.remove(os.path.join(d, name))


def _garbage(d):
    with open(os.path.join(d, "encoder.keras"), "wb") as f:
        f.write(b"\x00not a keras file\xff" * 10)


def _corrupt_member(d):
    """A well-formed zip whose weights are garbage."""
    path = os.path.join(d, "encoder.keras")
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    files = {name: (b"garbage" if name.endswith(".h5") else data) for name, data in files.items()}
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


def _lambda_layer(d):
    """An encoder.keras whose Lambda layer would create a file if Keras ran its code on loading."""
    marker = os.path.join(d, "code-ran")
    inputs = keras.Input((8, 8, 1))
    outputs = keras.layers.Lambda(lambda x: (open(marker, "w").close(), x)[1])(inputs)  # noqa: SIM115
    keras.Model(inputs, outputs).save(os.path.join(d, "encoder.keras"))
    os.remove(marker)  # created while the model was built here


def _foreign_module(d):
    """An encoder.keras whose config names a function outside Keras and the zoo."""
    path = os.path.join(d, "encoder.keras")
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    config = json.loads(files["config.json"])
    layer = next(layer for layer in config["config"]["layers"] if "activation" in layer["config"])
    layer["config"]["activation"] = {
        "module": "os",
        "class_name": "function",
        "config": "system",
        "registered_name": None,
    }
    files["config.json"] = json.dumps(config).encode()
    with zipfile.ZipFile(path, "w") as z:
        for name, data in files.items():
            z.writestr(name, data)


LOAD_CASES = [
    (
        "newer-format",
        _manifest(family="autoencoder", format=ARTIFACT_FORMAT + 1),
        "manifest.json' is artifact format 2, newer than the 1 this zoo reads",
    ),
    ("foreign-manifest", _manifest(name="resnet50", framework="torch"), "manifest.json' is not a zoo manifest"),
    ("manifest-not-an-object", _manifest(text="[1, 2, 3]"), "manifest.json' is not a zoo manifest"),
    ("bad-format-value", _manifest(family="autoencoder", format="one"), "manifest.json' is not a zoo manifest"),
    ("truncated-manifest", _manifest(text='{"family": "autoen'), "manifest.json' is corrupt"),
    ("truncated-saved-model", _truncate("encoder/saved_model.pb"), "saved_model.pb' is corrupt"),
    ("saved-model-without-variables", _remove("encoder/variables/variables.index"), "variables.index' is missing"),
    ("corrupt-keras", _garbage, "encoder.keras': it is not a .keras archive"),
    ("truncated-keras", _truncate("encoder.keras"), "encoder.keras': it is not a .keras archive"),
    ("keras-with-a-corrupt-member", _corrupt_member, "cannot load '{d}/encoder.keras' ("),
    ("lambda-layer", _lambda_layer, "encoder.keras': it holds a Lambda layer"),
    ("foreign-code", _foreign_module, "encoder.keras': it refers to os.function"),
    ("no-encoder-keras", _remove("encoder.keras"), "has no encoder.keras"),
    ("family-not-a-name", _manifest(family=["autoencoder"], format=1), "manifest.json' is not a zoo manifest"),
    ("manifest-nested-too-deep", _manifest(text="[" * 100_000 + "]" * 100_000), "manifest.json' is corrupt (JSON"),
]


@pytest.mark.parametrize("change, expected", [c[1:] for c in LOAD_CASES], ids=[c[0] for c in LOAD_CASES])
def test_load_encoder_refuses_in_one_line_naming_the_file(change, expected, small_artifact, tmp_path):
    d = str(tmp_path / "copy")
    shutil.copytree(small_artifact, d)
    change(d)
    before = snapshot(d)
    with pytest.raises(ZooError) as err:
        zoo.load_encoder(d)
    message = str(err.value)
    assert expected.replace("{d}", d) in message and "\n" not in message, message
    assert d in message
    assert snapshot(d) == before  # nothing written: no code of the file ran


def test_an_artifact_without_a_format_loads_as_format_1(small_artifact, tmp_path):
    d = str(tmp_path / "old")
    shutil.copytree(small_artifact, d)
    write_manifest(d, model="conv_autoencoder_tiny")
    manifest = zoo.read_manifest(d)
    del manifest["format"]
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump(manifest, f)
    assert zoo.load_encoder(d).output_shape == (None, 4)
    assert artifact.is_artifact(d)


# --- the fault table: an edited manifest in --encoder_dir (recipes.transfer) or --teacher_dir (recipes.distill) -
# (id, change to the parsed manifest, the message after "--<flag>=<dir>: "). In process; each is refused
# before any data is read, with nothing written.


def _set(**fields):
    return lambda manifest: manifest.update(fields)


def _delete(name):
    return lambda manifest: manifest.pop(name)


_EDITED = "the manifest was edited or is corrupt; export the model again"
SOURCE_CASES = [
    (
        "no-dataset",
        _delete("dataset"),
        "'{m}' has no \"dataset\" (an object describing the dataset): the manifest is incomplete or was edited; "
        "export the model again",
    ),
    (
        "dataset-a-string",
        _set(dataset="uci_digits"),
        f'\'{{m}}\': "dataset" is "uci_digits", not an object describing the dataset: {_EDITED}',
    ),
    (
        "dataset-name-a-number",
        _set(dataset={"name": 5}),
        f"'{{m}}': \"dataset.name\" is 5, not the dataset's name: {_EDITED}",
    ),
    ("model-a-number", _set(model=42), f"'{{m}}': \"model\" is 42, not the name of a registered model: {_EDITED}"),
    (
        "model-unknown",
        _set(model="resnet9000"),
        "'{m}' names a model this zoo cannot build (unknown model 'resnet9000'.",
    ),
    (
        "model_config-a-string",
        _set(model_config="x"),
        f'\'{{m}}\': "model_config" is "x", not the model\'s keyword arguments: {_EDITED}',
    ),
    (
        "model_config-unknown-key",
        _set(model_config={"nope": 1}),
        "'{m}' names a model this zoo cannot build (model 'conv_autoencoder_tiny' has no hyperparameter 'nope';",
    ),
    (
        "model_config-wrong-value",
        lambda manifest: manifest["model_config"].update(latent_dim="four"),
        "'{m}': its \"model_config\" does not build conv_autoencoder_tiny (ValueError: ",
    ),
    (
        "input-a-string",
        _set(input="images"),
        f'\'{{m}}\': "input" is "images", not an object describing the encoder\'s input: {_EDITED}',
    ),
]


@pytest.mark.parametrize("job", ["transfer", "distill"])
@pytest.mark.parametrize("change, expected", [c[1:] for c in SOURCE_CASES], ids=[c[0] for c in SOURCE_CASES])
def test_an_edited_manifest_of_a_saved_run_is_one_line_and_nothing_is_written(
    job, change, expected, small_artifact, tfds_dir, tmp_path
):
    from recipes import distill, transfer

    d = str(tmp_path / "run")
    shutil.copytree(small_artifact, d)
    manifest_path = os.path.join(d, "manifest.json")
    with open(manifest_path) as f:
        manifest = json.load(f)
    change(manifest)
    with open(manifest_path, "w") as f:
        json.dump(manifest, f)
    module, flag = (transfer, "encoder_dir") if job == "transfer" else (distill, "teacher_dir")
    config = module.Config(
        **{flag: d},
        data_dir=tfds_dir,
        model_dir=str(tmp_path / "out"),
        label_budgets=(10,),
        transfer_repeats=1,
        transfer_steps=2,
        precision="float32",
    )
    before = snapshot(tmp_path)
    with pytest.raises(ZooError) as err:
        module.run(config)
    message = str(err.value)
    assert message.startswith(f"--{flag}={d}: " + expected.replace("{m}", manifest_path)), message
    assert "\n" not in message and message.endswith("export the model again"), message
    assert snapshot(tmp_path) == before  # no --model_dir, staging directory or lock


# --- what --overwrite may replace, in process ------------------------------------------------------


def test_overwrite_refuses_protected_directories_even_holding_an_artifact(tmp_path, monkeypatch):
    home, project, work = tmp_path / "home", tmp_path / "project", tmp_path / "project" / "work"
    for d in (home, project, work):
        write_manifest(d)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    for model_dir, why in (
        (".", "the current working directory"),
        (str(work), "the current working directory"),
        ("..", "a parent of the current working directory"),
        (str(home), "the home directory"),
        ("/", "a file-system root"),
    ):
        for overwrite in (True, False):
            with pytest.raises(ZooError, match=f"^--model_dir={model_dir} is {why}, which a run never replaces"):
                check_model_dir(model_dir, overwrite=overwrite)
    monkeypatch.chdir(tmp_path)
    check_model_dir(str(work), overwrite=True)  # an artifact elsewhere may be replaced


def test_overwrite_replaces_an_artifact_or_an_empty_directory(tmp_path):
    said = []
    for content in ("artifact", "empty"):
        model_dir = tmp_path / content
        model_dir.mkdir()
        if content == "artifact":
            write_manifest(model_dir)
            (model_dir / "metrics.json").write_text("{}")
        stage = Stage(str(model_dir), True, "flags", say=said.append)
        write_manifest(stage.path, family="vae")
        stage.publish()
        assert json.loads((model_dir / "manifest.json").read_text())["family"] == "vae"
        assert sorted(os.listdir(model_dir)) == ["manifest.json"]
    assert sorted(os.listdir(tmp_path)) == ["artifact", "empty"]  # no lock, staging or old copy left


def test_publish_checks_again_what_it_replaces(tmp_path):
    model_dir = tmp_path / "out"
    stage = Stage(str(model_dir), True, "flags", say=lambda m: None)
    write_manifest(stage.path)
    _thesis(tmp_path)  # appears while the run works
    with pytest.raises(ZooError, match="changed while this run worked .* finished artifact stays in"):
        stage.publish()
    assert (model_dir / "src" / "thesis.tex").exists() and os.path.exists(stage / "manifest.json")
    assert not stage.locked and not (tmp_path / ".out.lock").exists()


def test_leftovers_of_a_killed_publish_are_removed_with_a_line(tmp_path):
    old = tmp_path / ".out.old-abcd_123"
    write_manifest(old / "artifact")
    empty = tmp_path / ".out.old-zzzzzzzz"
    empty.mkdir()
    strange = tmp_path / ".out.old-qqqqqqqq"
    (strange / "notes").mkdir(parents=True)
    other = tmp_path / ".out.old-abcd_123.partial"  # the staging dir of a model_dir named "out.old-abcd_123"
    other.mkdir()
    said = []
    Stage(str(tmp_path / "out"), False, "flags", say=said.append).release()
    assert not old.exists() and not empty.exists()
    assert strange.exists() and other.exists()
    assert sum("Removed" in line and ".out.old-" in line for line in said) == 2
    assert any(line.startswith(f"Left {strange} alone") for line in said), said


def test_an_interrupted_run_with_other_settings_is_discarded_only_with_overwrite(tmp_path):
    said = []
    first = Stage(str(tmp_path / "out"), False, "--epochs=1", say=said.append)
    first.release()
    with pytest.raises(ZooError, match=r"\.out\.partial holds an interrupted run with other settings"):
        Stage(str(tmp_path / "out"), False, "--epochs=2", say=said.append)
    assert not (tmp_path / ".out.lock").exists()
    Stage(str(tmp_path / "out"), True, "--epochs=2", say=said.append).release()
    assert any(line.startswith("Discarding the interrupted run") for line in said), said
    Stage(str(tmp_path / "out"), False, "--epochs=2", say=said.append).release()
    assert said[-1].startswith("Resuming the interrupted run in")


# --- one run per model_dir --------------------------------------------------------------------------


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    lock = str(tmp_path / ".out.lock")
    holder = hold_lock(lock)
    with pytest.raises(ZooError, match=rf"is being written by another run \(process {holder.pid} holds "):
        Stage(str(tmp_path / "out"), False, "flags", say=lambda m: None)
    assert not (tmp_path / ".out.partial").exists()
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    holder.stdout.close()
    assert os.path.exists(lock)  # left behind, but no longer locked
    stage = Stage(str(tmp_path / "out"), False, "flags", say=lambda m: None)
    assert stage.locked
    stage.publish()
    assert os.listdir(tmp_path) == ["out"]


def test_another_thread_is_refused_and_a_failed_run_of_this_thread_is_not_in_the_way(tmp_path):
    model_dir = str(tmp_path / "out")
    failed = Stage(model_dir, False, "flags", say=lambda m: None)  # a run that raised: nothing released it
    errors = []
    thread = threading.Thread(target=lambda: errors.append(_refusal(model_dir)))
    thread.start()
    thread.join()
    assert "is being written by another run in this process" in errors[0]
    rerun = Stage(model_dir, False, "flags", say=lambda m: None)
    assert rerun.locked and not failed.locked
    failed.release()  # a late release of the old stage leaves the new one's lock alone
    assert rerun.locked
    with rerun:
        pass
    assert not rerun.locked and not os.path.exists(rerun.lock_path)


def _refusal(model_dir):
    try:
        Stage(model_dir, False, "flags", say=lambda m: None)
    except ZooError as e:
        return str(e)
    return "not refused"


def test_workers_other_than_the_chief_take_no_lock(tmp_path):
    chief = Stage(str(tmp_path / "out"), False, "flags", say=lambda m: None)
    worker = Stage(str(tmp_path / "out"), False, "flags", worker="worker-1", say=lambda m: None)
    assert chief.locked and not worker.locked and not worker.path.startswith(str(tmp_path))
    again = Stage(str(tmp_path / "out"), False, "flags", worker="worker-1", say=lambda m: None)
    assert again.path == worker.path  # a restarted worker finds its stage to resume from
    worker.publish()
    assert not os.path.exists(worker.path) and chief.locked
    chief.release()


# --- unwritable destinations, in process --------------------------------------------------------------


@pytest.mark.parametrize("where", ["proc", "read-only"])
def test_an_unwritable_parent_is_one_line_before_anything_is_created(where, tmp_path):
    if where == "proc":
        model_dir = f"{UNWRITABLE}/deeper/out"
    else:
        if ROOT:
            pytest.skip("root writes into a 0o555 directory; the /proc case covers an unwritable parent for root")
        os.chmod(tmp_path, 0o555)
        model_dir = str(tmp_path / "a" / "out")
    try:
        with pytest.raises(ZooError, match=rf"^--model_dir={model_dir}: cannot write in (/proc|{tmp_path}) "):
            Stage(model_dir, False, "flags", say=lambda m: None)
        with pytest.raises(ZooError, match=r"^--data_dir=.*: cannot write in "):
            check_writable_dir("data_dir", os.path.join(os.path.dirname(model_dir), "tfds"))
    finally:
        os.chmod(tmp_path, 0o755)
    assert not os.path.exists(os.path.dirname(model_dir)) or os.listdir(tmp_path) == []


def test_stage_turns_a_failed_write_into_one_line_and_undoes_what_it_made(tmp_path, monkeypatch):
    def full(path, value):
        raise OSError(28, "No space left on device", path)

    monkeypatch.setattr(artifact, "write_json", full)
    with pytest.raises(
        ZooError,
        match=r"--model_dir=.*/a/b/out: cannot write .*\.out\.partial/run\.json "
        r"\(No space left on device\); free space",
    ):
        Stage(str(tmp_path / "a" / "b" / "out"), False, "flags", say=lambda m: None)
    assert os.listdir(tmp_path) == []  # not a/b, the staging directory or the lock


def test_os_errors_about_the_model_dir_become_one_line(tmp_path):
    model_dir = str(tmp_path / "out")
    full = OSError(28, "No space left on device", str(tmp_path / ".out.partial" / "model.keras"))
    assert os_error_line(full, model_dir) == (
        f"--model_dir={model_dir}: cannot write {tmp_path}/.out.partial/model.keras (No space left on device); "
        "free space or make it writable, then rerun the same command to resume"
    )
    tf_style = RuntimeError(
        f"Failed to create a directory: {tmp_path}/.out.partial/encoder/variables; Read-only file system"
    )
    assert f"cannot write {tmp_path}/.out.partial/encoder/variables (Failed" in os_error_line(tf_style, model_dir)
    assert os_error_line(OSError(2, "No such file", "/elsewhere/data.csv"), model_dir) is None
    assert os_error_line(OSError(2, "No such file", str(tmp_path / "outside")), model_dir) is None


# --- killed with SIGKILL, then resumed ---------------------------------------------------------------


def _epochs(history):
    with open(history) as f:
        return [row["epoch"] for row in csv.DictReader(f)]


def test_a_run_killed_with_sigkill_resumes_and_finishes(tfds_dir, tmp_path):
    model_dir = tmp_path / "out"
    args = [*tiny_flags("autoencoder", epochs=4, batch_size=16, label_budgets=(10,)), f"--model_dir={model_dir}"]
    history = tmp_path / ".out.partial" / "logs" / "history.csv"
    run = cli("autoencoder", args, str(tmp_path), data_dir=tfds_dir, wait=False)
    try:
        deadline = time.monotonic() + 240
        while not (history.exists() and "1" in _epochs(history)):
            if run.poll() is not None:
                run.log.seek(0)
                pytest.fail(f"the run ended before epoch 1 was logged: {run.log.read()[-3000:]}")
            assert time.monotonic() < deadline, "epoch 1 never finished"
            time.sleep(0.02)
        run.send_signal(signal.SIGKILL)
    finally:
        run.kill()
        run.wait()
        run.log.close()
    assert run.returncode == -signal.SIGKILL
    assert not model_dir.exists() and (tmp_path / ".out.lock").exists()  # killed: its lock file stays

    rerun = cli("autoencoder", args, str(tmp_path), data_dir=tfds_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming the interrupted run in" in rerun.stdout
    assert _epochs(model_dir / "logs" / "history.csv") == ["0", "1", "2", "3"]  # no epoch trained twice
    assert sorted(os.listdir(model_dir)) == FINISHED
    assert os.listdir(tmp_path) == ["out"]  # no staging directory, lock or old copy left
    assert zoo.load_encoder(str(model_dir)).output_shape == (None, 4)
    assert json.loads((model_dir / "manifest.json").read_text())["format"] == ARTIFACT_FORMAT


# --- interrupted with Ctrl-C (SIGINT), then resumed -----------------------------------------------------
# PAUSE (see `cli`) makes the signal arrive at a known point: while an epoch's backup is written (the file
# half written, as a signal in the middle of the write leaves it), or in the middle of the export.


@pytest.mark.parametrize(
    "epochs, pause",
    [(3, ("save_weights", f"{os.sep}backup{os.sep}", 2)), (2, ("save", "encoder.keras", 1))],
    ids=["while-backing-up-an-epoch", "while-exporting"],
)
def test_a_run_interrupted_with_sigint_resumes_and_finishes(epochs, pause, tfds_dir, tmp_path):
    runs, marker = tmp_path / "runs", tmp_path / "paused"
    model_dir = runs / "out"
    args = [*tiny_flags("autoencoder", epochs=epochs, label_budgets=(10,)), f"--model_dir={model_dir}"]
    run = cli("autoencoder", args, str(tmp_path), data_dir=tfds_dir, wait=False, pause=(*pause, marker))
    try:
        deadline = time.monotonic() + 240
        while not marker.exists():
            if run.poll() is not None:
                run.log.seek(0)
                pytest.fail(f"the run ended before the pause: {run.log.read()[-3000:]}")
            assert time.monotonic() < deadline, "the run never reached the pause"
            time.sleep(0.02)
        run.send_signal(signal.SIGINT)
        run.wait(timeout=60)
    finally:
        if run.poll() is None:
            run.kill()
            run.wait()
        run.log.seek(0)
        out = run.log.read()
        run.log.close()
    assert run.returncode == 1 and "Traceback" not in out, out[-3000:]
    assert [line for line in out.splitlines() if line.startswith("interrupted:")] == [
        "interrupted: rerun the same command to resume from the last finished epoch"
    ], out[-3000:]
    assert os.listdir(runs) == [".out.partial"]  # nothing published, the lock given back

    rerun = cli("autoencoder", args, str(tmp_path), data_dir=tfds_dir)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    assert "Resuming the interrupted run in" in rerun.stdout
    assert _epochs(model_dir / "logs" / "history.csv") == [str(e) for e in range(epochs)]  # none trained twice
    assert sorted(os.listdir(model_dir)) == FINISHED
    assert os.listdir(runs) == ["out"]  # no staging directory, backup or lock left
    assert json.loads((model_dir / "metrics.json").read_text())["pretrain"]["images_per_second"] > 0
    assert zoo.load_encoder(str(model_dir)).output_shape == (None, 4)


# --- same seed, same machine, same flags: the same metrics -------------------------------------------


def _comparable(metrics):
    metrics = dict(metrics, wall_seconds=None, transfer_seconds=None)
    metrics["pretrain"] = dict(metrics["pretrain"], images_per_second=None, seconds=None)
    return metrics


def test_same_seed_and_flags_give_the_same_metrics(tfds_dir, tmp_path):
    """A run in this process and the command line in a fresh one, with the same flags."""
    module = RECIPES["autoencoder"]
    in_process = module.run(
        module.RECIPE.smoke_config(data_dir=tfds_dir, model_dir=str(tmp_path / "a"), label_budgets=(10,))
    )
    args = [*tiny_flags("autoencoder", label_budgets=(10,)), f"--model_dir={tmp_path / 'b'}"]
    out = cli("autoencoder", args, str(tmp_path), data_dir=tfds_dir)
    assert out.returncode == 0, out.stderr[-3000:]
    with open(tmp_path / "b" / "metrics.json") as f:
        from_cli = json.load(f)
    assert _comparable(from_cli) == _comparable(json.loads(json.dumps(in_process)))
    assert np.isfinite(from_cli["pretrain"]["eval_loss"])
