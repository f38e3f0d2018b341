"""One process against two workers (--strategy=multi_worker over 127.0.0.1) on MNIST-10k.

    python benchmarks/multi_worker.py --manual_dir=/path/to/mnist-10k
    python benchmarks/multi_worker.py --manual_dir=/path/to/mnist-10k --recipe=simclr --model=simclr --epochs=2

Runs the recipe's pretraining three ways, in turn, and prints the images/s of its training step
(`metrics.json`'s `pretrain.images_per_second`: the median epoch after the first, global images):
one process on one core, one process on two cores, and two worker processes with one core each
(pinned with sched_setaffinity, one TensorFlow thread pool each). Scaling efficiency is the two
workers' rate over twice the one-core rate. The global batch is --batch_size in every case.
"""

import json
import os
import subprocess
import sys
import tempfile

from absl import app, flags

from recipes.multi_worker import local_cluster

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
flags.DEFINE_string("manual_dir", "", "Folder of the MNIST-10k IDX files (offline); empty: TFDS mnist.")
flags.DEFINE_string("recipe", "autoencoder", "The recipe to run.")
flags.DEFINE_string("model", "conv_autoencoder", "Its --model.")
flags.DEFINE_integer("epochs", 4, "Pretraining epochs per run (the first compiles and is not timed).")
flags.DEFINE_integer("batch_size", 128, "Global batch size.")
flags.DEFINE_string("precision", "float32", "--precision of every run.")
FLAGS = flags.FLAGS


def command(model_dir, strategy):
    dataset = ["--dataset=mnist_idx", f"--manual_dir={FLAGS.manual_dir}"] if FLAGS.manual_dir else ["--dataset=mnist"]
    return [
        sys.executable,
        "-m",
        f"recipes.{FLAGS.recipe}",
        *dataset,
        "--train_split=test[:8000]",
        "--eval_split=test[8000:]",
        f"--model={FLAGS.model}",
        f"--epochs={FLAGS.epochs}",
        f"--batch_size={FLAGS.batch_size}",
        f"--precision={FLAGS.precision}",
        "--label_budgets=10",
        "--transfer_steps=1",
        "--noreference",
        f"--strategy={strategy}",
        f"--model_dir={model_dir}",
        "--overwrite",
    ]


def start(model_dir, strategy, cores, tf_config=None):
    threads = str(len(cores))
    env = {
        **os.environ,
        "PYTHONPATH": REPO,
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "TF_NUM_INTRAOP_THREADS": threads,
        "TF_NUM_INTEROP_THREADS": threads,
    }
    if tf_config:
        env["TF_CONFIG"] = json.dumps(tf_config)
    return subprocess.Popen(
        command(model_dir, strategy),
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=lambda: os.sched_setaffinity(0, cores),
    )


def rate(processes, model_dir):
    for p in processes:
        _, err = p.communicate(timeout=3600)
        if p.returncode:
            raise SystemExit(f"a run failed:\n{err[-2000:]}")
    with open(os.path.join(model_dir, "metrics.json")) as f:
        return json.load(f)["pretrain"]["images_per_second"]


def main(argv):
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("this benchmark needs two cores")
    work = tempfile.mkdtemp(prefix="zoo-multi-worker-")
    one_core = rate([start(f"{work}/one-core", "default", {cores[0]})], f"{work}/one-core")
    two_cores = rate([start(f"{work}/two-cores", "default", set(cores[:2]))], f"{work}/two-cores")
    tasks = local_cluster(2)
    workers = [start(f"{work}/workers", "multi_worker", {cores[i]}, task) for i, task in enumerate(tasks)]
    two_workers = rate(workers, f"{work}/workers")
    print(
        f"\n{FLAGS.recipe} ({FLAGS.model}), global batch {FLAGS.batch_size}, {FLAGS.precision}, {FLAGS.epochs} epochs:"
    )
    print("| run | images/s | vs one core |")
    print("| --- | ---: | ---: |")
    for name, value in (
        ("one process, one core", one_core),
        ("one process, two cores", two_cores),
        ("two workers, one core each", two_workers),
    ):
        print(f"| {name} | {value:,.0f} | ×{value / one_core:.2f} |")
    print(f"scaling efficiency of two workers: {two_workers / (2 * one_core):.0%}")


if __name__ == "__main__":
    app.run(main)
