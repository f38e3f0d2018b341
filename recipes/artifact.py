"""Writing a run's artifact (docs/artifact.md): staged, then published atomically.

A run works in a hidden sibling of --model_dir, `.<name>.partial/`, which also
holds its BackupAndRestore checkpoint; a killed run restarted with the same
settings resumes there. Only a finished artifact is renamed into --model_dir,
so a crash never leaves a half-written one behind.

What a run may write is checked before any work (`check_model_dir`):
--overwrite replaces only a finished zoo artifact (a directory whose
manifest.json has a "family") or an empty directory, and never the working
directory, a parent of it, the home directory or a file-system root.

One run at a time writes a model_dir: the chief holds an exclusive `flock` on
`.<name>.lock` beside the staging directory for the life of its `Stage`. The
kernel drops the lock when the process dies, so a killed run never blocks the
next one; the file itself is removed when the stage is published or released.
"""

import atexit
import errno
import hashlib
import json
import os
import re
import shutil
import tempfile
import threading

import keras
import tensorflow as tf

from zoo.errors import ZooError
from zoo.loading import MANIFEST, artifact_format

try:
    import fcntl
except ImportError:  # not POSIX: runs are not locked
    fcntl = None

RUN_RECORD = "run.json"
OLD = "artifact"  # what `.<name>.old-XXXXXXXX/` holds while a replaced artifact is moved aside


def is_artifact(path):
    """Whether `path` is a directory holding a finished zoo artifact: a manifest.json that is a JSON
    object with a "family" and a format (an artifact written before formats has none: format 1)."""
    try:
        with open(os.path.join(path, MANIFEST), encoding="utf-8") as f:
            manifest = json.load(f)
    except (OSError, ValueError, RecursionError):  # RecursionError: JSON nested too deep to parse
        return False
    return artifact_format(manifest) is not None


def check_model_dir(model_dir, overwrite):
    """Refuse, before any work, a --model_dir this run must not write.

    An existing --model_dir is replaced only with --overwrite, and only when it is a finished zoo
    artifact or an empty directory; never the working directory, a parent of it, the home directory
    or a file-system root. Its parent must exist as a directory, or be creatable, and be writable.
    """
    flag = f"--model_dir={model_dir}"
    final = os.path.abspath(model_dir)
    if os.path.lexists(final):
        why = _protected(final)
        if why:
            raise ZooError(f"{flag} is {why}, which a run never replaces; give a new directory for the artifact")
        if not os.path.isdir(final):
            raise ZooError(f"{flag} is a file, not a directory; choose another path")
        try:
            contents = sorted(os.listdir(final))
        except OSError as e:
            raise ZooError(f"{flag} cannot be read ({e.strerror}); choose another --model_dir") from None
        if contents and not is_artifact(final):
            raise ZooError(
                f"{flag} already exists and is not a zoo artifact (it holds {_listing(final, contents)}); "
                "--overwrite replaces only a finished artifact or an empty directory: "
                "choose another --model_dir"
            )
        if not overwrite:
            raise ZooError(f"{flag} already exists; pass --overwrite to replace it, or choose another")
    _check_can_create(flag, os.path.dirname(final))


def check_writable_dir(flag, path):
    """Refuse, before any work, a directory flag (`flag` without dashes) that names a file or cannot be
    created. An existing directory passes even when read-only: it may hold what is read from it."""
    if not path:
        return
    full = os.path.abspath(os.path.expanduser(path))
    if os.path.isdir(full):
        return
    if os.path.lexists(full):
        raise ZooError(f"--{flag}={path} is a file, not a directory; choose another path")
    _check_can_create(f"--{flag}={path}", full)


class Stage:
    """The working directory of one run, published into model_dir at the end.

    The chief locks the model_dir for the life of the stage (see the module docstring); `publish()`
    and `release()` give the lock back, and so does the end of the process. A Stage is also a
    context manager that releases on exit. The other workers of a multi-worker run (`worker`, their
    name: "worker-1", ...) stage into a private directory of the temporary directory, named after the
    model_dir and the worker so that a restarted worker resumes from it, take no lock, and remove it
    when the chief publishes.
    """

    def __init__(self, model_dir, overwrite, fingerprint, worker=None, say=print):
        check_model_dir(model_dir, overwrite)
        self.model_dir = model_dir
        self.final = os.path.abspath(model_dir)
        self.overwrite = overwrite
        self.is_chief = worker is None
        self.lock_path = None
        self._lock = None  # the token of the lock this stage holds
        self._fresh = False  # whether this stage created its staging directory
        parent, name = os.path.split(self.final)
        flag = f"--model_dir={model_dir}"
        if worker is not None:
            digest = hashlib.sha256(self.final.encode()).hexdigest()[:12]
            self.path = os.path.join(tempfile.gettempdir(), f"zoo-{name}-{digest}.{worker}")
            try:
                self._open(fingerprint, True, say)  # private: a stage of other settings is discarded
            except OSError as e:
                raise _write_error(flag, e, self.path) from None
            return
        self.path = os.path.join(parent, f".{name}.partial")
        created = []
        try:
            created = _makedirs(parent)
            self.lock_path = os.path.join(parent, f".{name}.lock")
            self._lock = _lock(self.lock_path, flag, say)
            _remove_old_copies(parent, name, say)
            self._open(fingerprint, overwrite, say)
        except BaseException as e:
            self._abandon(created)
            if isinstance(e, OSError):
                raise _write_error(flag, e, self.path) from None
            raise

    def _open(self, fingerprint, overwrite, say):
        record = os.path.join(self.path, RUN_RECORD)
        if os.path.isdir(self.path) and not os.path.islink(self.path):
            previous = read_json(record)
            if isinstance(previous, dict) and previous.get("fingerprint") == fingerprint:
                say(f"Resuming the interrupted run in {self.path}")
                return
            if not overwrite:
                raise ZooError(
                    f"{self.path} holds an interrupted run with other settings; pass --overwrite to discard it, "
                    "or rerun with the same flags to resume it"
                )
            say(f"Discarding the interrupted run with other settings in {self.path} (--overwrite)")
            shutil.rmtree(self.path)
        elif os.path.lexists(self.path):
            raise ZooError(
                f"{self.path} is in the way of this run's staging directory and was not written by "
                "the zoo; move it away, or choose another --model_dir"
            )
        os.makedirs(self.path)
        self._fresh = True
        write_json(record, {"fingerprint": fingerprint})

    def _abandon(self, created):
        """Undo a stage that could not open: what it created, and its lock."""
        if self._fresh:
            shutil.rmtree(self.path, ignore_errors=True)
        self.release()
        for path in reversed(created):
            try:
                os.rmdir(path)
            except OSError:
                break

    def __truediv__(self, name):
        return os.path.join(self.path, name)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.release()

    @property
    def backup_dir(self):
        return self / "backup"

    @property
    def locked(self):
        """Whether this stage holds its model_dir's lock."""
        return self._lock is not None and _HELD.get(self.lock_path, (None, None, None))[2] is self._lock

    def release(self):
        """Give back the lock (and remove its file) without publishing; the staging directory stays,
        for a rerun with the same settings to resume. Safe to call more than once."""
        if self._lock is not None:
            _unlock(self.lock_path, self._lock)
            self._lock = None

    def discard(self):
        """Remove the staging directory and give back the lock, publishing nothing: for a run that
        cannot succeed as it is (its training diverged), so that a rerun with other settings starts
        afresh. What model_dir holds is left as it was."""
        shutil.rmtree(self.path, ignore_errors=True)
        self.release()

    def publish(self):
        """Move the finished artifact into model_dir, replacing an old one there (with --overwrite),
        and release the lock."""
        if not self.is_chief:
            shutil.rmtree(self.path, ignore_errors=True)
            return
        flag = f"--model_dir={self.model_dir}"
        try:
            self._check_destination(flag)
            for leftover in (self.backup_dir, self / RUN_RECORD):
                if os.path.isdir(leftover):
                    shutil.rmtree(leftover)
                elif os.path.exists(leftover):
                    os.remove(leftover)
            parent, name = os.path.split(self.final)
            old = None
            if os.path.isdir(self.final) and os.listdir(self.final):  # an empty one is replaced by the rename
                old = tempfile.mkdtemp(prefix=f".{name}.old-", dir=parent)
                os.replace(self.final, os.path.join(old, OLD))
            try:
                os.replace(self.path, self.final)
            except OSError:
                if old:  # put the old artifact back
                    os.replace(os.path.join(old, OLD), self.final)
                    os.rmdir(old)
                raise
            if old:
                shutil.rmtree(old)
        except OSError as e:
            raise _write_error(flag, e, self.final) from None
        finally:
            self.release()

    def _check_destination(self, flag):
        """What is at model_dir now may be replaced: checked again, as the run may have taken hours."""
        if not os.path.lexists(self.final):
            return
        keep = f"this run's finished artifact stays in {self.path}: move it where you want it"
        if not self.overwrite:
            raise ZooError(f"{flag} was created while this run worked; {keep}")
        if (
            not os.path.isdir(self.final)
            or _protected(self.final)
            or (os.listdir(self.final) and not is_artifact(self.final))
        ):
            raise ZooError(
                f"{flag} changed while this run worked and is no longer an artifact or an empty directory; {keep}"
            )


def os_error_line(error, model_dir):
    """A one-line message for an OSError (or a TensorFlow file error) about --model_dir or its staging
    siblings, for the command line; None when the error is about something else."""
    final = os.path.abspath(model_dir)
    parent, name = os.path.split(final)
    staging = os.path.join(parent, f".{name}.")

    def ours(path):
        return path == final or path.startswith((final + os.sep, staging))

    text = str(error).strip()
    named = [
        os.fsdecode(value)
        for value in (getattr(error, "filename", None), getattr(error, "filename2", None))
        if isinstance(value, (str, bytes, os.PathLike))
    ]
    # TensorFlow's errors name the file only in their message
    named += [m.group(0).rstrip("'\":;,.)") for m in re.finditer(re.escape(parent + os.sep) + r"\S+", text)]
    where = next((path for path in named if ours(os.path.abspath(path))), None)
    if where is None:
        return None
    reason = getattr(error, "strerror", None) or (text.splitlines()[0] if text else type(error).__name__)
    if len(reason) > 200:
        reason = reason[:200] + "..."
    return (
        f"--model_dir={model_dir}: cannot write {where} ({reason}); free space or make it writable, "
        "then rerun the same command to resume"
    )


class Backup(keras.callbacks.BackupAndRestore):
    """Keras's `BackupAndRestore` in a stage's backup/, with two changes. Each epoch's weights and
    training metadata are written beside the last ones and renamed over them, so an interrupt or a
    kill while they are written leaves the previous epoch's backup whole (a truncated weights file
    would stop every rerun). And the backup is kept after training: a run stopped while exporting
    resumes after its last epoch instead of training again; `Stage.publish` removes it."""

    def __init__(self, backup_dir):
        super().__init__(backup_dir, delete_checkpoint=False)

    def _save_model(self):
        final = self._weights_path, self._training_metadata_path
        staged = os.path.join(self.backup_dir, "next.weights.h5"), final[1] + ".next"
        self._weights_path, self._training_metadata_path = staged
        try:
            super()._save_model()
        finally:
            self._weights_path, self._training_metadata_path = final
        for source, destination in zip(staged, final):
            os.replace(source, destination)


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
    except (OSError, ValueError, RecursionError):
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


# --- where a run may write ---------------------------------------------------------------------


def _protected(path):
    """Why `path` must never be replaced, or None: the working directory, a parent of it, the home
    directory, a file-system root or another mount point."""
    real = os.path.realpath(path)
    if os.path.dirname(real) == real or os.path.ismount(real):
        return "a file-system root"
    if real == os.path.realpath(os.path.expanduser("~")):
        return "the home directory"
    try:
        cwd = os.path.realpath(os.getcwd())
    except OSError:
        return None
    if cwd == real:
        return "the current working directory"
    if cwd.startswith(real + os.sep):
        return "a parent of the current working directory"
    return None


def _listing(path, names, shown=3):
    """'a, src/ and 4 more': some of a directory's entries, directories marked."""
    marked = [n + "/" if os.path.isdir(os.path.join(path, n)) else n for n in names[:shown]]
    more = f" and {len(names) - shown} more" if len(names) > shown else ""
    return ", ".join(marked) + more


def _nearest_existing(path):
    while not os.path.lexists(path):
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    return path


def _check_can_create(flag, path):
    """`path` exists as a directory, or its nearest existing ancestor is one, and entries can be
    created there (tried with an empty directory, removed at once: permission bits do not tell
    for root, read-only mounts or /proc)."""
    base = _nearest_existing(path)
    if not os.path.isdir(base):
        raise ZooError(f"{flag}: {base} is a file, not a directory; choose another path")
    try:
        os.rmdir(tempfile.mkdtemp(prefix=".zoo-write-check-", dir=base))
    except OSError as e:
        raise ZooError(f"{flag}: cannot write in {base} ({e.strerror or e}); choose a writable directory") from None


def _makedirs(path):
    """os.makedirs, returning the directories it created, outermost first."""
    missing = []
    while not os.path.lexists(path):
        missing.append(path)
        parent = os.path.dirname(path)
        if parent == path:
            break
        path = parent
    created = []
    for d in reversed(missing):
        os.mkdir(d)
        created.append(d)
    return created


def _write_error(flag, error, default):
    where = os.fsdecode(error.filename) if getattr(error, "filename", None) else default
    reason = error.strerror or str(error) or type(error).__name__
    if error.errno == errno.ENOSPC:
        return ZooError(f"{flag}: cannot write {where} ({reason}); free space or choose another --model_dir")
    return ZooError(f"{flag}: cannot write {where} ({reason}); choose a writable directory")


_OLD_COPY = r"\.{}\.old-[a-z0-9_]{{8}}"  # tempfile.mkdtemp's names


def _remove_old_copies(parent, name, say):
    """Remove `.<name>.old-*` directories: replaced artifacts that a run killed while publishing left."""
    pattern = re.compile(_OLD_COPY.format(re.escape(name)))
    for entry in sorted(os.listdir(parent)):
        path = os.path.join(parent, entry)
        if not pattern.fullmatch(entry) or os.path.islink(path) or not os.path.isdir(path):
            continue
        contents = os.listdir(path)
        inside = os.path.join(path, OLD)
        if contents == [] or (
            contents == [OLD]
            and os.path.isdir(inside)
            and not os.path.islink(inside)
            and (is_artifact(inside) or not os.listdir(inside))
        ):
            shutil.rmtree(path)
            say(f"Removed {path}: an artifact replaced by an earlier run that stopped while publishing")
        else:
            say(
                f"Left {path} alone: it holds something other than a replaced artifact ({_listing(path, contents)}); "
                "remove it yourself"
            )


# --- one run per model_dir ---------------------------------------------------------------------

_HELD = {}  # lock file -> (thread, fd, token): the model_dir locks this process holds
_HELD_GUARD = threading.Lock()
_UNLOCKABLE = {errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL}


def _lock(path, flag, say):
    """Take the exclusive lock of a model_dir and return its token (None where locks are not
    supported), or raise ZooError naming who holds it."""
    if fcntl is None:
        return None
    with _HELD_GUARD:
        held = _HELD.get(path)
        if held:
            thread, _, token = held
            if thread is threading.current_thread() or not thread.is_alive():
                # An earlier run in this thread stopped with an error before publishing (a notebook
                # cell, a test): it cannot still be writing, so its lock passes to this run.
                _unlock(path, token, guarded=True)
            else:
                raise ZooError(
                    f"{flag} is being written by another run in this process (which holds {path}); "
                    "wait for it to finish, or choose another --model_dir"
                )
        for _ in range(10):
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_pid(fd)
                os.close(fd)
                who = f"process {holder}" if holder else "another process"
                raise ZooError(
                    f"{flag} is being written by another run ({who} holds {path}); "
                    "wait for it to finish, or choose another --model_dir"
                ) from None
            except OSError as e:
                os.close(fd)
                if e.errno in _UNLOCKABLE:
                    say(
                        f"{path} cannot be locked on this file system ({e.strerror}); "
                        "make sure no other run writes the same --model_dir"
                    )
                    return None
                raise
            try:
                same = os.stat(path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                break
            os.close(fd)  # its holder removed the file as we opened it: lock the new one
        else:
            raise ZooError(f"{flag}: could not lock {path}, runs keep replacing it; choose another --model_dir")
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        token = object()
        _HELD[path] = (threading.current_thread(), fd, token)
        return token


def _unlock(path, token, guarded=False):
    """Remove the lock file, then drop the lock (in this order, so no one locks a removed file);
    only while `token`'s holder still holds it."""
    if not guarded:
        with _HELD_GUARD:
            return _unlock(path, token, guarded=True)
    held = _HELD.get(path)
    if held is None or held[2] is not token:
        return
    del _HELD[path]
    fd = held[1]
    try:
        if os.stat(path).st_ino == os.fstat(fd).st_ino:
            os.unlink(path)
    except OSError:
        pass
    os.close(fd)


def _read_pid(fd):
    try:
        text = os.pread(fd, 32, 0).decode().strip()
        return int(text) if text.isdigit() else None
    except (OSError, ValueError):
        return None


@atexit.register
def _release_all():
    """At exit (a run that stopped with an error), remove the lock files this process holds."""
    for path, (_, _, token) in list(_HELD.items()):
        _unlock(path, token)
