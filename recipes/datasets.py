"""TFDS builders for data that needs no network.

Importing this module registers them with TFDS, so `--dataset=uci_digits` and
`--dataset=mnist_idx` go through the same `tfds.builder` code path as `mnist`.

- `uci_digits`: the 1,797 8x8 UCI handwritten digits that scikit-learn ships
  (values 0-16, rescaled to uint8 0-255); a fixed, seeded 1,437/360 train/test split.
- `mnist_idx`: MNIST-format IDX files from a local directory (`--manual_dir`):
  `train-images-idx3-ubyte[.gz]` + `train-labels-idx1-ubyte[.gz]` give the
  'train' split, `t10k-*` the 'test' split; whichever pairs are present. Works
  for MNIST, Fashion-MNIST and KMNIST files alike.

Two builders for text classification, with the features of TFDS's `imdb_reviews`
(`text` (Text) and `label` (ClassLabel)):

- `imdb_local`: a local copy of the Large Movie Review Dataset in its `aclImdb/`
  layout, with the splits and features of TFDS's `imdb_reviews`: 'train'
  (train/neg, train/pos), 'test' (test/neg, test/pos) and, where train/unsup
  exists, 'unsupervised' (label -1). `--manual_dir` is the aclImdb folder, a
  folder holding aclImdb/, or a .tar.gz of it such as aclImdb_v1.tar.gz (read
  as a stream, never unpacked). Texts are kept as they are (with `<br />`).
- `text_folder`: your own texts, the layout of Keras' `text_dataset_from_directory`:
  `--manual_dir=DIR` holds train/<class>/*.txt and test/<class>/*.txt (UTF-8),
  the same classes in both; labels are the sorted class folder names.

Both read files in sorted order (neg before pos), with shuffling disabled, and
name their config after a hash of what they read, so other files never reuse a
prepared copy; bad input is refused with one line before anything is written.
"""

import dataclasses
import gzip
import hashlib
import os
import tarfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from zoo.errors import ZooError

IDX_SPLITS = {"train": "train", "test": "t10k"}


def read_idx(path):
    """Read an IDX file (optionally gzipped) into a uint8 NumPy array."""
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[0] != 0 or data[1] != 0 or data[2] != 0x08:
        raise ZooError(f"'{path}' is not a uint8 IDX file (bad magic number)")
    ndim = data[3]
    shape = tuple(int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    body = np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim)
    if body.size != int(np.prod(shape)):
        raise ZooError(f"'{path}' is truncated: header says {shape}, found {body.size} values")
    return body.reshape(shape)


def write_idx(path, array):
    """Write a uint8 array as an IDX file (gzipped if `path` ends in .gz)."""
    array = np.asarray(array, dtype=np.uint8)
    header = bytes([0, 0, 0x08, array.ndim]) + b"".join(d.to_bytes(4, "big") for d in array.shape)
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "wb") as f:
        f.write(header + array.tobytes())


def _idx_file(directory, prefix, kind):
    name = f"{prefix}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for candidate in (name + ".gz", name):
        path = os.path.join(directory, candidate)
        if os.path.isfile(path):
            return path
    return None


def _idx_pairs(directory):
    """{split: (images_path, labels_path)} for the IDX pairs found in `directory`."""
    pairs = {}
    for split, prefix in IDX_SPLITS.items():
        images, labels = _idx_file(directory, prefix, "images"), _idx_file(directory, prefix, "labels")
        if images and labels:
            pairs[split] = (images, labels)
    return pairs


class MnistIdx(tfds.core.GeneratorBasedBuilder):
    """MNIST-format IDX files from a local directory (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass --manual_dir=DIR, where DIR holds train-images-idx3-ubyte[.gz] and "
        "train-labels-idx1-ubyte[.gz] and/or the t10k-* pair."
    )

    @classmethod
    def config_for_manual_dir(cls, manual_dir):
        """A config keyed on the files' contents, so other files never hit a stale cache."""
        if not manual_dir:
            raise ZooError("--dataset=mnist_idx needs --manual_dir=DIR, a directory of MNIST-format IDX files")
        if not os.path.isdir(manual_dir):
            raise ZooError(f"--manual_dir={manual_dir}: no such directory")
        pairs = _idx_pairs(manual_dir)
        if not pairs:
            raise ZooError(
                f"--manual_dir={manual_dir}: no IDX pair found; expected train-images-idx3-ubyte[.gz] with "
                "train-labels-idx1-ubyte[.gz], or the t10k-* pair"
            )
        digest = hashlib.sha256()
        for split in sorted(pairs):
            for path in pairs[split]:
                with open(path, "rb") as f:
                    digest.update(f.read())
        return tfds.core.BuilderConfig(
            name=f"files_{digest.hexdigest()[:12]}",
            description=f"IDX files from {os.path.abspath(manual_dir)}",
        )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(28, 28, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep file order, so 'test[:8000]' means images 0-7,999
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(paths) for split, paths in _idx_pairs(dl_manager.manual_dir).items()}

    def _generate_examples(self, paths):
        images, labels = (read_idx(os.fspath(p)) for p in paths)
        if images.ndim != 3 or images.shape[1:] != (28, 28):
            raise ZooError(f"'{paths[0]}' holds images of shape {images.shape[1:]}; mnist_idx reads 28x28 images")
        if len(images) != len(labels):
            raise ZooError(f"'{paths[0]}' has {len(images)} images but '{paths[1]}' has {len(labels)} labels")
        if labels.max(initial=0) > 9:
            raise ZooError(f"'{paths[1]}' has label {labels.max()}; mnist_idx reads labels 0-9")
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image[..., None], "label": int(label)}


class UciDigits(tfds.core.GeneratorBasedBuilder):
    """The UCI handwritten digits (8x8) that scikit-learn ships: no network needed."""

    VERSION = tfds.core.Version("1.0.0")
    NUM_TRAIN = 1437

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=(8, 8, 1)),
                    "label": tfds.features.ClassLabel(num_classes=10),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://archive.ics.uci.edu/dataset/80",
            disable_shuffling=True,
        )

    def _split_generators(self, dl_manager):
        from sklearn.datasets import load_digits

        digits = load_digits()
        images = np.round(digits.images * (255.0 / 16.0)).astype(np.uint8)[..., None]
        order = np.random.RandomState(0).permutation(len(images))
        train, test = order[: self.NUM_TRAIN], order[self.NUM_TRAIN :]
        return {
            "train": self._generate_examples(images[train], digits.target[train]),
            "test": self._generate_examples(images[test], digits.target[test]),
        }

    def _generate_examples(self, images, labels):
        for i, (image, label) in enumerate(zip(images, labels)):
            yield i, {"image": image, "label": int(label)}


TEXT_SUFFIX = ".txt"
TEXT_SPLITS = ("train", "test")  # text_folder's splits, each <split>/<class>/*.txt
IMDB_SPLITS = {  # imdb_local's splits and the aclImdb folders they read, in order
    "train": ("train/neg", "train/pos"),
    "test": ("test/neg", "test/pos"),
    "unsupervised": ("train/unsup",),
}
IMDB_REQUIRED = IMDB_SPLITS["train"] + IMDB_SPLITS["test"]
IMDB_LABELS = {"neg": 0, "pos": 1, "unsup": -1}  # -1: no label, as in TFDS's imdb_reviews
IMDB_WHERE = "the aclImdb folder, a folder holding aclImdb/, or aclImdb_v1.tar.gz itself"


@dataclasses.dataclass(eq=False)
class TextFilesConfig(tfds.core.BuilderConfig):
    """A config for texts on disk: where they are read from and what was found there."""

    source: str = ""  # the folder (or, for imdb_local, the .tar.gz file) the texts are read from
    class_names: tuple = ()  # label names, in label order
    splits: tuple = ()  # the splits found


def _is_text_file(name):
    return name.lower().endswith(TEXT_SUFFIX) and not name.startswith(".")


def _text_files(folder):
    """Sorted names of the .txt files directly inside `folder` ([] if it is not a folder);
    hidden files (`.name`, such as macOS's `._name`) are left out."""
    if not os.path.isdir(folder):
        return []
    return sorted(f for f in os.listdir(folder) if _is_text_file(f) and os.path.isfile(os.path.join(folder, f)))


def _utf8(data, path, manual_dir):
    """`data` decoded, or a one-line error naming the file."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ZooError(
            f"--manual_dir={manual_dir}: '{path}' is not UTF-8 text (byte 0x{data[e.start]:02x} at offset "
            f"{e.start}); save it as UTF-8 or remove it"
        ) from None


def _read_text(path, manual_dir):
    with open(path, "rb") as f:
        return _utf8(f.read(), path, manual_dir)


def _hash_texts(manual_dir, root, relpaths):
    """12 hex digits of a hash of the relative paths and contents of these files, each checked to be UTF-8."""
    digest = hashlib.sha256()
    for rel in relpaths:
        path = os.path.join(root, *rel.split("/"))
        with open(path, "rb") as f:
            data = f.read()
        _utf8(data, path, manual_dir)
        digest.update(rel.encode() + b"\0" + len(data).to_bytes(8, "big") + data)
    return digest.hexdigest()[:12]


def _hash_file(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()[:12]


def _imdb_tar_reviews(path, manual_dir):
    """(folder, file name, bytes) of each review in an aclImdb .tar.gz, in archive order, read as a
    stream (nothing is unpacked to disk); folder is one of the IMDB_SPLITS folders, e.g. 'train/pos'."""
    folders = {f for split in IMDB_SPLITS.values() for f in split}
    try:
        with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            for member in tar:
                parts = member.name.removeprefix("./").split("/")
                if (
                    member.isfile()
                    and len(parts) == 4
                    and parts[0] == "aclImdb"
                    and f"{parts[1]}/{parts[2]}" in folders
                    and _is_text_file(parts[3])
                ):
                    yield f"{parts[1]}/{parts[2]}", parts[3], tar.extractfile(member).read()
            # A stream cut at a member's boundary ends the loop without an error: read the rest of the
            # gzip stream to its end marker, which raises EOFError for a truncated archive.
            while stream.read(1 << 20):
                pass
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        reason = str(e).strip().splitlines()[0] if str(e).strip() else "unreadable"
        raise ZooError(
            f"--manual_dir={manual_dir}: not a readable gzip-compressed tar file ({type(e).__name__}: {reason}); "
            "pass aclImdb_v1.tar.gz or the aclImdb folder it unpacks to"
        ) from None


def _imdb_root(manual_dir):
    """The aclImdb folder: `manual_dir` itself or its aclImdb/ sub-folder; None if neither looks like one."""
    for root in (manual_dir, os.path.join(manual_dir, "aclImdb")):
        if any(os.path.isdir(os.path.join(root, split)) for split in TEXT_SPLITS):
            return root
    return None


def _imdb_splits(manual_dir, counts):
    """The splits of an aclImdb copy with `counts` reviews per folder; a one-line error if train or
    test misses a class."""
    missing = [f"aclImdb/{folder}/" for folder in IMDB_REQUIRED if not counts.get(folder)]
    if missing:
        raise ZooError(
            f"--manual_dir={manual_dir}: no review (.txt file) in {', '.join(missing)}; the train and test splits "
            "need reviews in aclImdb/train/neg, train/pos, test/neg and test/pos: pass a complete copy"
        )
    return tuple(split for split, folders in IMDB_SPLITS.items() if all(counts.get(f) for f in folders))


class ImdbLocal(tfds.core.GeneratorBasedBuilder):
    """The Large Movie Review Dataset from a local aclImdb copy (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Pass --manual_dir=PATH, where PATH is {IMDB_WHERE}."

    @classmethod
    def config_for_manual_dir(cls, manual_dir):
        """A config keyed on the input's contents (the .tar.gz's bytes, or the folder's relative
        paths and files), after checking the layout and that every review is UTF-8."""
        if not manual_dir:
            raise ZooError(
                f"--dataset=imdb_local needs --manual_dir=DIR, {IMDB_WHERE}; or use --dataset=imdb_reviews, "
                "which TFDS downloads"
            )
        if os.path.isfile(manual_dir):
            counts = {}
            for folder, name, data in _imdb_tar_reviews(manual_dir, manual_dir):
                _utf8(data, f"aclImdb/{folder}/{name}", manual_dir)  # the path inside the archive
                counts[folder] = counts.get(folder, 0) + 1
            splits = _imdb_splits(manual_dir, counts)
            source, name = manual_dir, f"tar_{_hash_file(manual_dir)}"
        elif os.path.isdir(manual_dir):
            source = _imdb_root(manual_dir)
            if source is None:
                raise ZooError(
                    f"--manual_dir={manual_dir}: neither the aclImdb folder (train/ and test/ inside) nor a folder "
                    "holding aclImdb/; pass the folder aclImdb_v1.tar.gz unpacks to, or the .tar.gz itself"
                )
            files = {f: _text_files(os.path.join(source, *f.split("/"))) for s in IMDB_SPLITS.values() for f in s}
            splits = _imdb_splits(manual_dir, {folder: len(names) for folder, names in files.items()})
            relpaths = [f"{folder}/{n}" for split in splits for folder in IMDB_SPLITS[split] for n in files[folder]]
            name = f"files_{_hash_texts(manual_dir, source, relpaths)}"
        else:
            raise ZooError(f"--manual_dir={manual_dir}: no such file or directory; pass {IMDB_WHERE}")
        return TextFilesConfig(
            name=name,
            description=f"aclImdb reviews from {os.path.abspath(source)}",
            source=os.path.abspath(source),
            class_names=("neg", "pos"),
            splits=splits,
        )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {"text": tfds.features.Text(), "label": tfds.features.ClassLabel(names=["neg", "pos"])}
            ),
            supervised_keys=("text", "label"),
            homepage="http://ai.stanford.edu/~amaas/data/sentiment/",
            disable_shuffling=True,  # keep the sorted file order: neg, then pos
        )

    def _split_generators(self, dl_manager):
        # The config knows the source: dl_manager.manual_dir insists on a folder, the source may be a .tar.gz.
        return {split: self._generate_examples(split) for split in self.builder_config.splits}

    def _generate_examples(self, split):
        source, folders = self.builder_config.source, IMDB_SPLITS[split]
        if os.path.isfile(source):  # one pass over the archive per split, this split's reviews kept in memory
            found = {(f, n): data for f, n, data in _imdb_tar_reviews(source, source) if f in folders}
            reviews = ((f, n, found[f, n]) for f, n in sorted(found, key=lambda k: (folders.index(k[0]), k[1])))
        else:
            reviews = ((f, n, None) for f in folders for n in _text_files(os.path.join(source, *f.split("/"))))
        for folder, name, data in reviews:
            path = os.path.join(source, *folder.split("/"), name)
            text = _utf8(data, path, source) if data is not None else _read_text(path, source)
            yield f"{folder}/{name}", {"text": text, "label": IMDB_LABELS[folder.split("/")[1]]}


class TextFolder(tfds.core.GeneratorBasedBuilder):
    """Your own texts, train/<class>/*.txt and test/<class>/*.txt (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass --manual_dir=DIR, where DIR holds train/<class>/*.txt and test/<class>/*.txt, "
        "one sub-folder per class, the same classes in both."
    )

    @classmethod
    def config_for_manual_dir(cls, manual_dir):
        """A config with the class names, keyed on the files' relative paths and contents, after
        checking the layout and that every file is UTF-8."""
        if not manual_dir:
            raise ZooError(
                "--dataset=text_folder needs --manual_dir=DIR, a folder with train/<class>/*.txt and "
                "test/<class>/*.txt (UTF-8, one sub-folder per class): make one and pass it"
            )
        if not os.path.isdir(manual_dir):
            what = "not a directory" if os.path.exists(manual_dir) else "no such directory"
            raise ZooError(f"--manual_dir={manual_dir}: {what}; pass the folder that holds train/ and test/")
        if not os.listdir(manual_dir):
            raise ZooError(
                f"--manual_dir={manual_dir}: the folder is empty; put each class's texts in "
                "train/<class name>/*.txt and test/<class name>/*.txt"
            )
        classes = {}
        for split in TEXT_SPLITS:
            root = os.path.join(manual_dir, split)
            if not os.path.isdir(root):
                raise ZooError(
                    f"--manual_dir={manual_dir}: no {split}/ folder; put each class's texts in "
                    f"{split}/<class name>/*.txt"
                )
            classes[split] = sorted(
                d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)) and not d.startswith(".")
            )
            if not classes[split]:
                raise ZooError(
                    f"--manual_dir={manual_dir}: {split}/ has no class sub-folders; put each class's texts in "
                    f"{split}/<class name>/*.txt"
                )
        train, test = set(classes["train"]), set(classes["test"])
        if train != test:
            diff = "; ".join(
                f"only in {split}/: {', '.join(sorted(names))}"
                for split, names in (("train", train - test), ("test", test - train))
                if names
            )
            raise ZooError(
                f"--manual_dir={manual_dir}: train/ and test/ have different classes ({diff}); "
                "give both the same class sub-folders"
            )
        relpaths = []
        for split in TEXT_SPLITS:
            for name in classes[split]:
                files = _text_files(os.path.join(manual_dir, split, name))
                if not files:
                    raise ZooError(
                        f"--manual_dir={manual_dir}: class '{name}' of {split}/ has no {TEXT_SUFFIX} file; add UTF-8 "
                        f"{TEXT_SUFFIX} files or remove the folder"
                    )
                relpaths += [f"{split}/{name}/{f}" for f in files]
        return TextFilesConfig(
            name=f"files_{_hash_texts(manual_dir, manual_dir, relpaths)}",
            description=f"Text files from {os.path.abspath(manual_dir)}",
            source=os.path.abspath(manual_dir),
            class_names=tuple(classes["train"]),
            splits=TEXT_SPLITS,
        )

    def _info(self):
        if self.builder_config is None:  # tfds.builder("text_folder") without a config
            self.config_for_manual_dir("")
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "text": tfds.features.Text(),
                    "label": tfds.features.ClassLabel(names=list(self.builder_config.class_names)),
                }
            ),
            supervised_keys=("text", "label"),
            disable_shuffling=True,  # keep the sorted order: classes, then file names
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(split) for split in self.builder_config.splits}

    def _generate_examples(self, split):
        source = self.builder_config.source
        for label, name in enumerate(self.builder_config.class_names):
            folder = os.path.join(source, split, name)
            for f in _text_files(folder):
                yield f"{split}/{name}/{f}", {"text": _read_text(os.path.join(folder, f), source), "label": label}
