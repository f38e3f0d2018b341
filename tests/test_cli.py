"""`python -m recipes.autoencoder`: bad input ends in one clear line, with nothing written."""

import os
import subprocess
import sys

import pytest
from conftest import REPO

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
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
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
        (["--label_budgets=100,5000"], "error: --label_budgets: 5000 is more than the 1437 examples"),
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


def test_cli_runs_and_replays_from_its_flagfile(tfds_dir, tmp_path):
    first = _cli([f"--model_dir={tmp_path / 'a'}", *TINY], tfds_dir, str(tmp_path))
    assert first.returncode == 0, first.stderr[-3000:]
    assert "pretraining" in first.stdout and "N=10:" in first.stdout
    replay = _cli(
        [f"--flagfile={tmp_path / 'a' / 'flags.txt'}", f"--model_dir={tmp_path / 'b'}"], tfds_dir, str(tmp_path)
    )
    assert replay.returncode == 0, replay.stderr[-3000:]
    a, b = ((tmp_path / d / "flags.txt").read_text().splitlines() for d in "ab")
    assert [l for l in a if "model_dir" not in l] == [l for l in b if "model_dir" not in l]
