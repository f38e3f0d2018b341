"""A quiet start for `python -m recipes.<job>`: TensorFlow's start-up lines left out.

Importing TensorFlow prints lines a user can do nothing about (that CUDA drivers are missing on a
CPU machine, the oneDNN and CPU-instruction notices, absl's note about its own log) from C++, past
Python's logging and before TF_CPP_MIN_LOG_LEVEL is read for some of them. `start` imports
TensorFlow and lists its devices with the process's stderr caught, then writes back every line
that is not one of those; and unless the environment says otherwise it sets TF_CPP_MIN_LOG_LEVEL=2,
which hides TensorFlow's C++ info and warning lines for the rest of the run (errors still show;
Python's warnings are untouched). `--verbosity` (or `-v`) on the command line leaves all of it as
TensorFlow has it.
"""

import os
import re
import sys
import tempfile

NOISE = re.compile(
    "|".join(
        (
            r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"Could not find cuda drivers on your machine",
            r"failed call to cuInit",
            r"oneDNN custom operations are on",
            r"This TensorFlow binary is optimized to use available CPU instructions",
            r"rebuild TensorFlow with the appropriate compiler flags",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"TF-TRT Warning: Could not find TensorRT",
        )
    )
)


def noise(line):
    """Whether `line` is one of TensorFlow's start-up lines that `start` leaves out."""
    return bool(NOISE.search(line))


def asks_for_logs(argv):
    """Whether the command line sets absl's verbosity (--verbosity=N, -v N and their spellings)."""
    return any(re.match(r"--?(verbosity|v)(=|$)", arg) for arg in argv)


def start(argv):
    """Import TensorFlow quietly (see the module's docstring) unless `argv` asks for its logs."""
    if asks_for_logs(argv) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as caught:
        os.dup2(caught.fileno(), 2)
        try:
            import tensorflow as tf

            tf.config.list_physical_devices()  # where CUDA is tried (and fails on a CPU machine)
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            caught.seek(0)
            lines = caught.read().decode("utf-8", "replace").splitlines(keepends=True)
            sys.stderr.write("".join(line for line in lines if not noise(line)))
            sys.stderr.flush()
