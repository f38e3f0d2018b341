"""A quiet start for `python -m recipes.<job>`: TensorFlow's start-up lines left out.

Importing TensorFlow prints lines a user can do nothing about (that CUDA drivers are missing on a
CPU machine, the oneDNN and CPU-instruction notices, absl's note about its own log) from C++, past
Python's logging and before TF_CPP_MIN_LOG_LEVEL is read for some of them. `start` imports
TensorFlow and lists its devices with the process's stderr running through a pipe, and passes on
every line that is not one of those as it comes (a failed cuInit is left out only where no CUDA
driver was found: on a machine with one, it says why the GPU is not used). Unless the environment
says otherwise it sets TF_CPP_MIN_LOG_LEVEL=2, which hides TensorFlow's C++ info and warning lines
for the rest of the run (errors still show; Python's warnings are untouched). `--verbosity` (or
`-v`) on the command line leaves all of it as TensorFlow has it.
"""

import os
import re
import sys
import threading

NOISE = re.compile(
    "|".join(
        (
            r"All log messages before absl::InitializeLog\(\) is called are written to STDERR",
            r"Could not find cuda drivers on your machine",
            r"oneDNN custom operations are on",
            r"This TensorFlow binary is optimized to use available CPU instructions",
            r"rebuild TensorFlow with the appropriate compiler flags",
            r"Unable to register cu(DNN|FFT|BLAS) factory",
            r"computation placer already registered",
            r"TF-TRT Warning: Could not find TensorRT",
        )
    )
)
NO_DRIVER = "Could not find cuda drivers on your machine"
CUINIT = "failed call to cuInit"  # noise only where no CUDA driver was found: else it says why a GPU is not used


def noise(line, no_driver=True):
    """Whether `line` is one of TensorFlow's start-up lines that `start` leaves out (the failed cuInit
    only on a machine without a CUDA driver, `no_driver`)."""
    return bool(NOISE.search(line)) or (no_driver and CUINIT in line)


def asks_for_logs(argv):
    """Whether the command line sets absl's verbosity (--verbosity=N, -v N and their spellings)."""
    return any(re.match(r"--?(verbosity|v)(=|$)", arg) for arg in argv)


def _pass_on(read_fd, write_fd):
    """Copy the lines of `read_fd` to `write_fd` as they come, leaving out `noise`, until end of file."""
    no_driver = False
    with os.fdopen(read_fd, "rb") as lines:
        for raw in lines:
            line = raw.decode("utf-8", "replace")
            no_driver = no_driver or NO_DRIVER in line
            if not noise(line, no_driver):
                os.write(write_fd, raw)


def start(argv):
    """Import TensorFlow quietly (see the module's docstring) unless `argv` asks for its logs."""
    if asks_for_logs(argv) or "tensorflow" in sys.modules:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    sys.stderr.flush()
    try:
        saved = os.dup(2)
        read_fd, write_fd = os.pipe()
    except OSError:  # no stderr to redirect: import as it is
        return
    # A thread passes every other line on as it comes, so nothing is held back if the import fails.
    reader = threading.Thread(target=_pass_on, args=(read_fd, saved), daemon=True)
    reader.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        import tensorflow as tf

        tf.config.list_physical_devices()  # where CUDA is tried (and fails on a CPU machine)
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # the pipe's last writer closes: the reader reaches its end
        reader.join(timeout=10)
        os.close(saved)
