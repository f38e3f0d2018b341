"""--strategy=multi_worker for real: two worker processes on 127.0.0.1, each a recipe's command line
with its own TF_CONFIG, as a user starts them on two machines."""

import json
import os
import re
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, assert_encoder_reloads_frozen
from test_faults import tiny_flags

from recipes.flow import resolve_precision
from recipes.multi_worker import local_cluster

TIMEOUT = 240  # seconds for both workers; a worker whose peer died stops by itself on the collective's error


def start_workers(family, flags, cwd, n=2):
    """n processes of `python -m recipes.<family> --strategy=multi_worker`, one per worker, one thread each."""
    workers = []
    for tf_config in local_cluster(n):
        env = {
            **os.environ,
            "TF_CONFIG": json.dumps(tf_config),
            "TF_CPP_MIN_LOG_LEVEL": "3",
            "PYTHONPATH": REPO,
            "TF_NUM_INTRAOP_THREADS": "1",
            "TF_NUM_INTEROP_THREADS": "1",
        }
        command = [sys.executable, "-m", f"recipes.{family}", *flags, "--strategy=multi_worker"]
        workers.append(
            subprocess.Popen(command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    return workers


def wait_all(workers):
    outputs = []
    try:
        for worker in workers:
            outputs.append(worker.communicate(timeout=TIMEOUT)[0])
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.communicate()
    return outputs


AUTO = resolve_precision("auto")  # what a user gets on this machine: mixed_bfloat16 where bfloat16 is native


@pytest.mark.parametrize(
    "family, precision",
    [
        ("autoencoder", "auto"),
        ("simclr", "auto"),
        # bfloat16 where `auto` does not pick it here (emulated: slower, the same ops): predict's gather
        pytest.param(
            "simclr",
            "mixed_bfloat16",
            marks=pytest.mark.skipif(AUTO == "mixed_bfloat16", reason="auto picks mixed_bfloat16 here: run above"),
        ),
    ],
)
def test_two_workers_train_as_one_and_the_chief_alone_publishes(family, precision, tfds_dir, tmp_path):
    out = tmp_path / "runs" / "out"
    flags = [
        *tiny_flags(family, epochs=2, label_budgets=(10,), transfer_repeats=1, reference=False, precision=precision),
        f"--data_dir={tfds_dir}",
        f"--model_dir={out}",
    ]
    workers = start_workers(family, flags, str(tmp_path))
    outputs = wait_all(workers)
    for index, (worker, output) in enumerate(zip(workers, outputs)):
        assert worker.returncode == 0, f"worker {index}:\n{output[-3000:]}"
    expected = resolve_precision(precision)
    assert all(f"precision {expected}" in output for output in outputs), outputs[0][-3000:]
    digests = [re.findall(r": weights sha256 ([0-9a-f]{64})", output) for output in outputs]
    assert len(digests[0]) == 1 and digests[0] == digests[1], digests  # the same weights on both workers
    assert f"wrote {out}" in outputs[0] and "worker-1 done" in outputs[1]
    assert sorted(os.listdir(tmp_path / "runs")) == ["out"]  # one artifact, no stage or lock left beside it
    with open(out / "manifest.json") as f:
        manifest = json.load(f)
    assert manifest["flags"]["strategy"] == "multi_worker" and manifest["precision"] == expected
    images = np.random.default_rng(0).integers(0, 256, (3, *manifest["input"]["shape"])).astype("uint8")
    assert_encoder_reloads_frozen(str(out), images)
