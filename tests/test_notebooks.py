"""Every notebook in notebooks/ runs top to bottom at tiny settings, and is committed stripped.

papermill replaces the values of each notebook's cell tagged "parameters" with the tiny ones below
that the notebook defines, then runs it in a Jupyter kernel of this very interpreter, with the
repository root on the path. No notebook is given its data: each reads what its defaults name,
which must exist offline (the text notebook writes its own sample corpus).
"""

import json
import os
import re
import sys

import nbformat
import papermill
import pytest
from ipykernel.kernelspec import write_kernel_spec
from jupyter_client import KernelManager
from jupyter_client.kernelspec import NoSuchKernel

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTEBOOKS = sorted(name for name in os.listdir(os.path.join(REPO, "notebooks")) if name.endswith(".ipynb"))

# Shrinks every size a notebook's parameters cell may set. The paths and the tiny model names
# are added per run; a parameter found in neither list fails the test, so a new notebook states
# how to make it small.
TINY_PARAMETERS = {
    "EPOCHS": 1,
    "LABEL_BUDGETS": [10, 20],
    "TRANSFER_REPEATS": 1,
    "TRANSFER_STEPS": 2,
    "FILTERS": [4, 8],
    "LATENT_DIM": 4,
    "DENSE_UNITS": [],
    "NUM_LABELS": 20,
    "TRAIN_EPOCHS": 1,
    "TINY": True,
    "IW_SAMPLES": 2,
    "SCORER_EPOCHS": 1,
    "SCORE_SAMPLES": 50,
    "FAMILIES": ["autoencoder", "cnn_classifier"],  # two make a comparison; test_recipes runs every family
    "SAMPLE_REVIEWS": [40, 12],  # per class, train and test
}
TINY_MODELS = {
    "autoencoder.ipynb": "conv_autoencoder_tiny",
    "use_saved_encoder.ipynb": "conv_autoencoder_tiny",
    "cnn_classifier.ipynb": "cnn_classifier_tiny",
    "vae.ipynb": "conv_vae_tiny",
    "dcgan.ipynb": "dcgan_tiny",
    "simclr.ipynb": "simclr_tiny",
}
DATA_PARAMETERS = {"DATASET", "MANUAL_DIR"}  # never injected: a notebook runs on the data its defaults name
RUN_IN_A_FRESH_DIRECTORY = {"text.ipynb"}  # by test_text_notebook_runs_offline_at_its_defaults
SIZE_FREE = {
    "MANUAL_DIR",
    "DATASET",
    "SOURCE_CLASSES",
    "TARGET_CLASSES",
    "UNFREEZE_TOP",
    "BETA",
    "TEMPERATURE",
}


def _starts_this_python(kernel_name):
    try:
        command = KernelManager(kernel_name=kernel_name).format_kernel_cmd()
    except NoSuchKernel:
        return False
    return os.path.abspath(command[0]) == sys.executable


@pytest.fixture(scope="module")
def kernel(tmp_path_factory):
    """The name of a kernel that runs this interpreter, in an environment where the repo imports.

    "python3" if it resolves to this interpreter (jupyter_client turns a bare "python" into
    sys.executable); otherwise, say under a user-wide "python3" of another Python, a kernelspec
    for this interpreter written to a temporary JUPYTER_PATH. Kernels inherit os.environ when they
    start; the variables are restored afterwards.
    """
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("PYTHONPATH", os.pathsep.join(filter(None, [REPO, os.environ.get("PYTHONPATH")])))
        mp.setenv("TF_CPP_MIN_LOG_LEVEL", "3")
        name = "python3"
        if not _starts_this_python(name):
            jupyter = tmp_path_factory.mktemp("jupyter")
            name = "keras-transfer-zoo-tests"
            write_kernel_spec(path=str(jupyter / "kernels" / name))
            mp.setenv("JUPYTER_PATH", os.pathsep.join(filter(None, [str(jupyter), os.environ.get("JUPYTER_PATH")])))
        yield name


def test_kernel_runs_the_interpreter_running_pytest(kernel):
    command = KernelManager(kernel_name=kernel).format_kernel_cmd()
    assert os.path.abspath(command[0]) == sys.executable, f"kernel '{kernel}' would start {command[0]}"


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_stripped(name):
    nb = nbformat.read(os.path.join(REPO, "notebooks", name), as_version=4)
    nbformat.validate(nb)
    code = [cell for cell in nb.cells if cell.cell_type == "code"]
    assert code and "parameters" in code[0].metadata.get("tags", []), "the first code cell must be tagged 'parameters'"
    for i, cell in enumerate(code):
        assert cell.outputs == [] and cell.execution_count is None, f"code cell {i} has outputs: strip them"


def tiny_parameters(name, available, kept=()):
    """The values of `available` that notebook `name` defines; fails on a parameter that has none
    (but those `kept` at their defaults)."""
    defined = papermill.inspect_notebook(os.path.join(REPO, "notebooks", name))
    unknown = sorted(set(defined) - set(available) - SIZE_FREE - set(kept))
    assert not unknown, f"{name}: add a tiny value for {unknown} to TINY_PARAMETERS (or to SIZE_FREE) in {__file__}"
    parameters = {key: value for key, value in available.items() if key in defined}
    assert not DATA_PARAMETERS & set(parameters), "a notebook's data comes from its own defaults"
    return parameters


@pytest.mark.parametrize("name", [name for name in NOTEBOOKS if name not in RUN_IN_A_FRESH_DIRECTORY])
def test_notebook_runs(name, tmp_path, tfds_dir, kernel):
    available = {
        **TINY_PARAMETERS,
        "DATA_DIR": tfds_dir,
        "MODEL_DIR": str(tmp_path / "model_dir"),
        "RUNS_DIR": str(tmp_path / "runs"),
    }
    if name in TINY_MODELS:
        available["MODEL"] = TINY_MODELS[name]
    execute(name, tiny_parameters(name, available), tmp_path, kernel, cwd=REPO)


def test_text_notebook_runs_offline_at_its_defaults(tmp_path, kernel, monkeypatch):
    """As a reader without the IMDB reviews runs it: in an empty working directory, every default kept
    (the dataset, its folder, where runs and TFDS data go) but the sizes, which are made tiny."""
    monkeypatch.setenv("TFDS_DATA_DIR", str(tmp_path / "tfds"))  # TFDS's own folder, were DATA_DIR "": not ~
    work = tmp_path / "work"
    work.mkdir()
    parameters = tiny_parameters("text.ipynb", TINY_PARAMETERS, kept=("RUNS_DIR", "DATA_DIR"))
    execute("text.ipynb", parameters, tmp_path, kernel, cwd=str(work))
    assert os.path.isfile(work / "runs" / "text_masked_lm" / "manifest.json")
    assert sorted(os.listdir(work / "runs" / "text_sample")) == ["test", "train"]  # the notebook's own corpus


def execute(name, parameters, tmp_path, kernel, cwd):
    """Run notebook `name` with `parameters` in `cwd` (a copy with outputs in `tmp_path`); a failing
    cell fails the test with its source and traceback."""
    try:
        papermill.execute_notebook(
            os.path.join(REPO, "notebooks", name),
            str(tmp_path / name),
            parameters=parameters,
            kernel_name=kernel,
            cwd=cwd,
            progress_bar=False,
            execution_timeout=600,
        )
        return
    except papermill.PapermillExecutionError as e:
        error = e
    traceback = re.sub(r"\x1b\[[0-9;]*m", "", "\n".join(error.traceback))  # without the terminal colours
    pytest.fail(
        f"{name}: the cell run as In [{error.exec_count}] raised {error.ename}: {error.evalue}\n"
        f"tiny parameters: {json.dumps(parameters)}\n--- cell ---\n{error.source}\n"
        f"--- traceback ---\n{traceback[-4000:]}",
        pytrace=False,
    )
