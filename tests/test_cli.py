"""`python -m recipes.autoencoder`: bad input ends in one clear line, with nothing written."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

from recipes import quiet

TINY = [
    "--model=conv_autoencoder_tiny",
    "--filters=4,8",
    "--latent_dim=4",
    "--epochs=1",
    "--convs_per_block=1",
    "--label_budgets=10",
    "--transfer_steps=2",
]


def _cli(args, tfds_dir, cwd):
    # as a user's shell has it: no TF_CPP_MIN_LOG_LEVEL (the tests' own process sets one)
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PYTHONPATH": REPO}
    return subprocess.run(
        [sys.executable, "-m", "recipes.autoencoder", f"--data_dir={tfds_dir}", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


@pytest.mark.parametrize(
    "args, message",
    [
        (["--dataset=mnistt"], "error: --dataset=mnistt: no such TFDS dataset. Did you mean mnist"),
        (["--dataset=imdb_reviews"], "error: --dataset=imdb_reviews holds texts, but autoencoder"),
        (["--epochs=-1"], "error: --epochs=-1: must be 0 or more"),
        (["--label_budgets=100,0"], "error: --label_budgets=100,0: must be 1 or more"),
        (["--label_budgets=ten"], "error: --label_budgets=ten: give a comma list of integers"),
        (["--masking_noise=1.5"], "error: --masking_noise=1.5: must be in [0, 1)"),
        (["--strategy=tpu"], "FATAL Flags parsing error: flag --strategy=tpu"),
    ],
)
def test_bad_input_is_one_line_and_writes_nothing(args, message, tfds_dir, tmp_path):
    model_dir = tmp_path / "out"
    out = _cli([f"--model_dir={model_dir}", *TINY, *args], tfds_dir, str(tmp_path))
    assert out.returncode != 0
    assert "Traceback" not in out.stderr, out.stderr[-2000:]
    lines = [l for l in out.stderr.strip().splitlines() if not l.startswith("WARNING: All log messages")]
    if message.startswith("error:"):
        assert lines[-1].startswith(message) and sum(l.startswith("error:") for l in lines) == 1, lines
    else:  # absl's own flag parsing: its standard message, no traceback
        assert any(message in l for l in lines), lines
    assert not model_dir.exists() and not (tmp_path / ".out.partial").exists()


def test_existing_model_dir_is_refused(tfds_dir, tmp_path):
    (tmp_path / "out").mkdir()
    out = _cli([f"--model_dir={tmp_path / 'out'}", *TINY], tfds_dir, str(tmp_path))
    assert out.returncode != 0 and "Traceback" not in out.stderr
    assert (
        out.stderr.strip()
        .splitlines()[-1]
        .endswith("already exists; pass --overwrite to replace it, or choose another")
    )
    assert os.listdir(tmp_path / "out") == []


def test_cli_runs_quietly_and_replays_from_its_flagfile(tfds_dir, tmp_path):
    first = _cli([f"--model_dir={tmp_path / 'a'}", *TINY, "--label_budgets=10,5000,all"], tfds_dir, str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "pretraining" in first.stdout and "N=10:" in first.stdout
    # a budget beyond the split is capped, and `all` is the same budget: one row of all 1437
    assert "--label_budgets: 5000 is more than the 1437 labelled images of --train_split=train; using all 1437" in (
        first.stdout
    )
    assert first.stdout.count("N=1437:") == 1 and "95% CI" in first.stdout
    # no start-up lines of TensorFlow's (CUDA, oneDNN, CPU instructions, absl's log)
    assert not [l for l in first.stderr.splitlines() if quiet.noise(l)], first.stderr[-3000:]
    replay = _cli(
        [f"--flagfile={tmp_path / 'a' / 'flags.txt'}", f"--model_dir={tmp_path / 'b'}"], tfds_dir, str(tmp_path)
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    a, b = ((tmp_path / d / "flags.txt").read_text().splitlines() for d in "ab")
    assert [l for l in a if "model_dir" not in l] == [l for l in b if "model_dir" not in l]


def test_the_quiet_start_leaves_out_only_tensorflows_start_up_lines():
    said = [
        "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
        "I0000 00:00:1796551770.095937    9958 cudart_stub.cc:31] Could not find cuda drivers on your machine, GPU "
        "will not be used.",
        "I0000 00:00:1796551770.150386    9958 cpu_feature_guard.cc:227] This TensorFlow binary is optimized to use "
        "available CPU instructions in performance-critical operations.",
        "To enable the following instructions: AVX2 FMA, in other operations, rebuild TensorFlow with the appropriate "
        "compiler flags.",
        "E0000 00:00:1796551776.062472    9958 cuda_platform.cc:52] failed call to cuInit: INTERNAL: CUDA error: "
        "Failed call to cuInit: UNKNOWN ERROR (303)",
        "I tensorflow/core/util/port.cc:153] oneDNN custom operations are on. You may see slightly different "
        "numerical results due to floating-point round-off errors from different computation orders.",
    ]
    assert all(quiet.noise(line) for line in said)
    assert not quiet.noise(said[4], no_driver=False)  # a failed cuInit where a driver exists says why: kept
    kept = ["UserWarning: the dataset is small", "W0000 ... Out of memory while trying to allocate", "error: --epochs"]
    assert not any(quiet.noise(line) for line in kept)
    assert quiet.asks_for_logs(["--verbosity=1"]) and quiet.asks_for_logs(["-v", "1"])
    assert not quiet.asks_for_logs(["--model_dir=runs/v", "--vocab_size=3"])


def test_verbosity_keeps_tensorflows_start_up_lines(tmp_path):
    """The same start with --verbosity given: TensorFlow's own lines are left as they are (on a
    machine without a GPU, at least the failed CUDA start), so the quiet test above can fail."""
    env = {**{k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}, "PYTHONPATH": REPO}
    out = {}
    for args in ([], ["--verbosity=0"]):
        out[bool(args)] = subprocess.run(
            [sys.executable, "-m", "recipes.transfer", "--helpshort", *args],
            capture_output=True,
            text=True,
            cwd=str(tmp_path),
            env=env,
            timeout=300,
        )
        assert "--helpfull" in out[bool(args)].stdout, out[bool(args)].stderr[-2000:]  # absl's help, then exit 1
    assert not [l for l in out[False].stderr.splitlines() if quiet.noise(l)], out[False].stderr
    assert [l for l in out[True].stderr.splitlines() if quiet.noise(l)], out[True].stderr
