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

One builder for your own images, `image_folder` (`image` (Image) and `label`
(ClassLabel)): `--manual_dir=DIR` holds <split>/<class>/<image> (train/ with
test/ or val/) or <class>/<image> alone, from which a seeded, class-balanced
share is held out (`image_folder_plan`). Each image is decoded once, with PIL
(`read_image`: any mode, resized to one shape), into TFDS's files; the config is
named after a hash of the files, their splits and the shape, as above.

One builder for CIFAR-10 as JPEGs, `cifar10_local` (`image` (32, 32, 3) and `label`
(ClassLabel: airplane, automobile, bird, cat, deer, dog, frog, horse, ship, truck, the standard
order 0-9, which is the sorted folder names)): `--manual_dir` is a folder holding
cifar10-jpeg.tar.gz or that .tar.gz itself, with train/<class>/*.jpg and test/<class>/*.jpg
inside. The archive is read as a stream in one pass (never unpacked) and each JPEG decoded once,
with PIL (`read_cifar10_jpeg`), into TFDS's files; splits 'train' and 'test', each ordered by
label, then by file name. The config is named after a hash of the archive's bytes.
"""

import dataclasses
import gzip
import hashlib
import io
import os
import tarfile
import zlib

import numpy as np
import tensorflow_datasets as tfds

from zoo.errors import ZooError, first_line

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


TAR_ERRORS = (tarfile.TarError, OSError, EOFError, zlib.error)  # what a damaged or cut .tar.gz raises


def _tar_stream(path):
    """(member, the open tar to extract it from) of each member of the .tar.gz at `path`, read as a
    stream in one decompression pass (nothing is unpacked to disk). A stream cut at a member's
    boundary ends the members without an error, so the rest of the gzip stream is then read to its
    end marker, which raises EOFError for a truncated archive. Raises one of TAR_ERRORS."""
    with gzip.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            yield member, tar
        while stream.read(1 << 20):
            pass


def _imdb_tar_reviews(path, manual_dir):
    """(folder, file name, bytes) of each review in an aclImdb .tar.gz, in archive order, read as a
    stream (nothing is unpacked to disk); folder is one of the IMDB_SPLITS folders, e.g. 'train/pos'."""
    folders = {f for split in IMDB_SPLITS.values() for f in split}
    try:
        for member, tar in _tar_stream(path):
            parts = member.name.removeprefix("./").split("/")
            if (
                member.isfile()
                and len(parts) == 4
                and parts[0] == "aclImdb"
                and f"{parts[1]}/{parts[2]}" in folders
                and _is_text_file(parts[3])
            ):
                yield f"{parts[1]}/{parts[2]}", parts[3], tar.extractfile(member).read()
    except TAR_ERRORS as e:
        reason = first_line(e, "unreadable")
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


IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp")  # other files are left out, unread
EVAL_FOLDERS = ("val", "validation")  # what --eval_split=test (its default) reads in a folder without test/
GREY_MODES = ("1", "L", "LA", "La", "I", "I;16", "I;16L", "I;16B", "I;16N", "F")  # PIL modes read as grey
ALPHA_MODES = ("RGBA", "RGBa", "LA", "La", "PA")  # PIL modes with transparency, composited on white
IMAGE_FORMAT = 1  # how images are prepared: part of the key, so a change here never reuses an older copy


def split_name(split):
    """'train[:80%]' -> 'train': the split a TFDS split expression reads."""
    return split.split("[")[0].strip()


def _visible(folder):
    """The names in `folder` that are not hidden: `.name` (macOS's `._name` copies of images,
    `.DS_Store`, `.ipynb_checkpoints`) and the `__MACOSX` folder of a zip made on a Mac are left out."""
    return sorted(n for n in os.listdir(folder) if not n.startswith(".") and n != "__MACOSX")


def _sub_folders(folder):
    return [n for n in _visible(folder) if os.path.isdir(os.path.join(folder, n))]


def _image_files(folder):
    """The image files (by extension) directly inside `folder`, sorted; others (Thumbs.db, README.txt) are left out."""
    return [
        n for n in _visible(folder) if n.lower().endswith(IMAGE_SUFFIXES) and os.path.isfile(os.path.join(folder, n))
    ]


@dataclasses.dataclass(eq=False)
class ImageFilesConfig(tfds.core.BuilderConfig):
    """A config for an image folder: where it is, what was found there and the shape it is prepared at."""

    source: str = ""  # the folder, absolute
    where: str = ""  # how error messages name it: "--manual_dir=DIR"
    class_names: tuple = ()  # label names, in label order
    splits: tuple = ()  # ((split, ((relative path, label), ...)), ...): what each split reads, in order
    image_shape: tuple = ()  # (height, width, channels) of every prepared image


@dataclasses.dataclass
class ImageFolderPlan:
    """What `image_folder_plan` found: the builder's config, the eval split to read and what to say."""

    config: ImageFilesConfig
    eval_split: str  # the --eval_split given, or the val/ folder read in place of a missing test/
    notes: tuple  # lines that say what was decided for the user (val/ for test/, a held-out split)
    num_images: int


def _image_error(where, path, e):
    reason = type(e).__name__
    return ZooError(f"{where}: cannot read image '{path}' ({reason}); remove or replace it")


def _image_header(path, data, where):
    """(mode, (height, width) as displayed) of the image in `data`, from its header (nothing is decoded)."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            height, width = img.height, img.width
            if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientation: shown rotated by 90 degrees
                height, width = width, height
            return img.mode, (height, width)
    except Exception as e:  # PIL raises many kinds for a file that is not an image
        raise _image_error(where, path, e) from None


def _to_8_bits(img):
    """A 16- or 32-bit grey image as 8-bit 'L' (65535 -> 255); other modes as they are."""
    from PIL import Image

    if img.mode not in ("I", "F") and not img.mode.startswith("I;16"):
        return img
    values = np.asarray(img, np.float64)
    if img.mode.startswith("I;16") or values.max(initial=0) > 255:
        values = values / 257.0
    elif img.mode == "F" and values.max(initial=0) <= 1.0:
        values = values * 255.0
    return Image.fromarray(np.clip(np.round(values), 0, 255).astype(np.uint8), "L")


def read_image(path, shape):
    """The image at `path` as a uint8 array of `shape` (height, width, channels 1 or 3), decoded once:

    - turned as its EXIF orientation says, as photo viewers show it;
    - 16-bit grey (I;16) scaled to 8 bits; palette (P), CMYK, YCbCr and others converted by PIL;
    - transparency (RGBA, LA, a palette's) composited on white;
    - converted to grey (ITU-R BT.601 luminance) or colour (grey repeated) as `shape` asks;
    - resized to height x width (bilinear, antialiased) when its size differs.
    """
    from PIL import Image, ImageOps

    height, width, channels = shape
    with Image.open(path) as img:
        img.draft(img.mode, (max(height, width),) * 2)  # a large JPEG decodes at a reduced scale, still >= shape
        img.load()
        img = ImageOps.exif_transpose(img)
    if img.mode in ALPHA_MODES or "transparency" in img.info:
        rgba = _to_8_bits(img).convert("RGBA")
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    img = _to_8_bits(img).convert("L" if channels == 1 else "RGB")
    if img.size != (width, height):
        img = img.resize((width, height), Image.Resampling.BILINEAR)
    pixels = np.asarray(img, np.uint8)
    return pixels[..., None] if channels == 1 else pixels


def _holdout(where, class_files, fraction, seed):
    """(train, held out): a seeded share `fraction` of each class's files held out, at least one of
    each and never all; each list in the classes' and the files' order."""
    rng = np.random.default_rng(seed)
    train, held = [], []
    for label, (name, files) in enumerate(class_files):
        if len(files) < 2:
            raise ZooError(
                f"{where}: class '{name}' has {len(files)} image; holding out a share of each class to evaluate "
                "on needs 2 or more: add images, or lay the folder out as train/<class>/ and test/<class>/"
            )
        k = min(len(files) - 1, max(1, int(fraction * len(files) + 0.5)))
        chosen = set(rng.choice(len(files), k, replace=False).tolist())
        for i, f in enumerate(files):
            (held if i in chosen else train).append((f, label))
    return train, held


def image_folder_plan(
    manual_dir, train_split="train", eval_split="test", image_size=(), seed=0, holdout_fraction=0.2, prefix=""
):
    """What an image folder holds and how it is read, after checking its layout and every image's header.

    Two layouts:

    - split folders, `<split>/<class>/<image>`: the split flags name the folders (`train[:80%]`
      reads train/). When `eval_split` is 'test' (its default) and there is no test/ but a val/ or
      validation/, that is read instead, and a note says so.
    - class folders, `<class>/<image>`, when none of train/, test/, val/, validation/ or the split
      flags' folders exists: a seeded (`seed`), class-balanced `holdout_fraction` of each class is
      the eval split, the rest the train split, and a note says how many each has. A train and eval
      split of the same name read every image (slice them: 'train[:80%]', 'train[80%:]').

    Images are prepared at `image_size` (height, width), or the first train image's size; grey
    (1 channel) when every image's mode is grey, else colour (3). The config is named after a hash
    of all that and of every file's path, label, split and bytes, so a changed folder or another
    size never reuses a prepared copy. Bad input is one ZooError line, before anything is written.
    """
    if not manual_dir:
        raise ZooError(
            f"--{prefix}dataset=image_folder needs --{prefix}manual_dir=DIR, a folder with <class>/<image> or "
            "<split>/<class>/<image> inside (e.g. cat/1.png, or train/cat/1.png and test/cat/2.png)"
        )
    if not os.path.isdir(manual_dir):
        raise ZooError(f"--{prefix}manual_dir={manual_dir}: no such directory")
    if image_size and len(image_size) != 2:
        raise ZooError(f"--image_size={','.join(map(str, image_size))}: give height,width, e.g. 64,64")
    where = f"--{prefix}manual_dir={manual_dir}"
    train, evaluate = split_name(train_split), split_name(eval_split)
    top = _sub_folders(manual_dir)
    notes = []
    if set(top) & {train, evaluate, "train", "test", *EVAL_FOLDERS}:
        if eval_split == "test" and "test" not in top:
            found = next((f for f in EVAL_FOLDERS if f in top), None)
            if found:
                eval_split = evaluate = found
                notes.append(
                    f"[data] {where} has {found}/ and no test/: evaluating on {found}/ "
                    f"(--{prefix}eval_split names another split)"
                )
        splits, class_names = {}, set()
        for split, flag, given in ((train, "train_split", train_split), (evaluate, "eval_split", eval_split)):
            if split in splits:
                continue
            root = os.path.join(manual_dir, split)
            if not os.path.isdir(root):
                raise ZooError(
                    f"{where}: no {split}/ folder for --{prefix}{flag}={given}; it holds "
                    f"{', '.join(f + '/' for f in top)}: name one of them with --{prefix}{flag}"
                )
            classes = _sub_folders(root)
            if not classes:
                raise ZooError(
                    f"{where}: {split}/ has no class sub-folders; put each class's images in {split}/<class name>/"
                )
            splits[split] = []
            for name in classes:
                images = _image_files(os.path.join(root, name))
                if not images:
                    raise ZooError(
                        f"{where}: class '{name}' of {split}/ has no image ({', '.join(IMAGE_SUFFIXES)}); add "
                        "images or remove the folder"
                    )
                splits[split].append((name, [f"{split}/{name}/{f}" for f in images]))
                class_names.add(name)
        class_names = sorted(class_names)
        label = {name: i for i, name in enumerate(class_names)}
        splits = {s: [(f, label[name]) for name, files in found for f in files] for s, found in splits.items()}
    else:
        if not top:
            loose = "holds images but " if _image_files(manual_dir) else ""
            raise ZooError(
                f"{where}: {loose}no class sub-folders; put each class's images in <class name>/ (or in "
                "train/<class name>/ and test/<class name>/)"
            )
        class_files = []
        for name in top:
            images = _image_files(os.path.join(manual_dir, name))
            if not images:
                hint = (
                    f"if {name}/ is a split of class folders, name it with --{prefix}train_split or "
                    f"--{prefix}eval_split"
                    if _sub_folders(os.path.join(manual_dir, name))
                    else "add images or remove the folder"
                )
                raise ZooError(f"{where}: class '{name}' has no image ({', '.join(IMAGE_SUFFIXES)}); {hint}")
            class_files.append((name, [f"{name}/{f}" for f in images]))
        class_names = top
        if train == evaluate:
            splits = {train: [(f, label) for label, (_, files) in enumerate(class_files) for f in files]}
        else:
            kept, held = _holdout(where, class_files, holdout_fraction, seed)
            splits = {train: kept, evaluate: held}
            notes.append(
                f"[data] {where} has class folders and no split folders: held out {holdout_fraction:g} of each "
                f"class (--holdout_fraction) as {evaluate}: {len(kept)} {train} and {len(held)} "
                f"{evaluate} images of {len(class_names)} classes"
            )

    digest = hashlib.sha256(f"image_folder {IMAGE_FORMAT}\0{class_names}\0".encode())
    grey, first = True, None
    for split, files in splits.items():
        digest.update(f"split {split}\0".encode())
        for rel, label in files:
            path = os.path.join(manual_dir, *rel.split("/"))
            with open(path, "rb") as f:
                data = f.read()
            mode, size = _image_header(path, data, where)
            grey = grey and mode in GREY_MODES
            first = first or size
            digest.update(f"{rel}\0{label}\0{len(data)}\0".encode() + hashlib.sha256(data).digest())
    shape = (*(tuple(image_size) or first), 1 if grey else 3)
    digest.update(f"shape {shape}".encode())
    config = ImageFilesConfig(
        name=f"files_{digest.hexdigest()[:12]}",
        description=f"Images from {os.path.abspath(manual_dir)} at {shape[0]}x{shape[1]}x{shape[2]}",
        source=os.path.abspath(manual_dir),
        where=where,
        class_names=tuple(class_names),
        splits=tuple((s, tuple(files)) for s, files in splits.items()),
        image_shape=tuple(int(d) for d in shape),
    )
    return ImageFolderPlan(config, eval_split, tuple(notes), sum(len(files) for files in splits.values()))


class ImageFolder(tfds.core.GeneratorBasedBuilder):
    """Your own images, `<split>/<class>/<image>` or `<class>/<image>`, decoded once into TFDS's files
    (see `image_folder_plan` for the layouts and `read_image` for how images are read)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = (
        "Pass --manual_dir=DIR, where DIR holds <class>/<image> or <split>/<class>/<image> (train/, test/ or val/)."
    )

    def _info(self):
        if self.builder_config is None:  # tfds.builder("image_folder") without a config
            image_folder_plan("")
        config = self.builder_config
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=config.image_shape),
                    "label": tfds.features.ClassLabel(names=list(config.class_names)),
                }
            ),
            supervised_keys=("image", "label"),
            disable_shuffling=True,  # keep the sorted order: classes, then file names
        )

    def _split_generators(self, dl_manager):
        return {split: self._generate_examples(files) for split, files in self.builder_config.splits}

    def _generate_examples(self, files):
        config = self.builder_config
        for rel, label in files:
            path = os.path.join(config.source, *rel.split("/"))
            try:
                image = read_image(path, config.image_shape)
            except Exception as e:  # a truncated or corrupt file: PIL raises many kinds
                raise _image_error(config.where, path, e) from None
            yield rel, {"image": image, "label": label}


CIFAR10_ARCHIVE = "cifar10-jpeg.tar.gz"  # what cifar10_local reads: train/<class>/*.jpg and test/<class>/*.jpg
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
CIFAR10_SPLITS = ("train", "test")
CIFAR10_SHAPE = (32, 32, 3)
CIFAR10_WHERE = f"a folder holding {CIFAR10_ARCHIVE}, or the .tar.gz itself"


@dataclasses.dataclass(eq=False)
class ArchiveConfig(tfds.core.BuilderConfig):
    """A config for one archive: the file read and how error messages name it."""

    source: str = ""  # the .tar.gz, absolute
    where: str = ""  # how error messages name it: "--manual_dir=DIR"


def _cifar10_archive(manual_dir):
    """The archive `--manual_dir` names (the .tar.gz itself, or DIR/cifar10-jpeg.tar.gz); else one line."""
    if not manual_dir:
        raise ZooError(
            f"--dataset=cifar10_local needs --manual_dir=DIR, {CIFAR10_WHERE}; or use --dataset=cifar10, "
            "which TFDS downloads"
        )
    if os.path.isdir(manual_dir):
        archive = os.path.join(manual_dir, CIFAR10_ARCHIVE)
        if not os.path.isfile(archive):
            others = sorted(n for n in os.listdir(manual_dir) if n.endswith((".tar.gz", ".tgz")))
            if others:
                hint = f"; it holds {others[0]}: pass --manual_dir={os.path.join(manual_dir, others[0])} if that is it"
            elif os.path.isdir(os.path.join(manual_dir, "train")):
                hint = "; an unpacked copy (train/<class>/*.jpg) reads with --dataset=image_folder"
            else:
                hint = f"; pass {CIFAR10_WHERE}"
            raise ZooError(f"--manual_dir={manual_dir}: no {CIFAR10_ARCHIVE} in this folder{hint}")
        return archive
    if not os.path.exists(manual_dir):
        raise ZooError(f"--manual_dir={manual_dir}: no such file or directory; pass {CIFAR10_WHERE}")
    with open(manual_dir, "rb") as f:
        magic = f.read(2)
    if magic != b"\x1f\x8b":
        raise ZooError(
            f"--manual_dir={manual_dir}: not a gzip-compressed tar file; pass {CIFAR10_ARCHIVE} as given "
            "(or the folder holding it)"
        )
    return manual_dir


def _hidden(parts):
    """True for macOS's and editors' files in an archive: `.name`, `._name` and anything under __MACOSX/."""
    return any(p.startswith(".") or p == "__MACOSX" for p in parts)


def _cifar10_members(path, where):
    """{(split, class, file name): JPEG bytes} of every image in a CIFAR-10 archive, read as a stream in
    one pass (nothing is unpacked to disk). Members outside train/ and test/ and hidden files are left
    out; a member of train/ or test/ elsewhere than <split>/<class>/<file>, of another class, or a link,
    and an unreadable archive, are one line naming the member."""
    found, name, last = {}, None, None
    try:
        for member, tar in _tar_stream(path):
            name = member.name  # until its bytes are read
            parts = [p for p in member.name.split("/") if p not in ("", ".")]
            if member.isdir() or not parts or parts[0] not in CIFAR10_SPLITS or _hidden(parts):
                name, last = None, member.name
                continue
            if len(parts) != 3:
                raise ZooError(
                    f"{where}: member '{member.name}' is not at <split>/<class>/<file>; the archive holds "
                    f"train/<class>/*.jpg and test/<class>/*.jpg: pass {CIFAR10_ARCHIVE} as given"
                )
            if parts[1] not in CIFAR10_CLASSES:
                raise ZooError(
                    f"{where}: member '{member.name}' is in '{parts[1]}/', not a CIFAR-10 class "
                    f"({', '.join(CIFAR10_CLASSES)}); for other classes unpack the archive and use "
                    "--dataset=image_folder"
                )
            if not member.isfile():
                raise ZooError(f"{where}: member '{member.name}' is a link, not a file; pack the image itself")
            found[tuple(parts)] = tar.extractfile(member).read()
            name, last = None, member.name
    except TAR_ERRORS as e:
        reason = first_line(e, "unreadable")
        at = f" at member '{name}'" if name else f" after member '{last}'" if last else ""
        raise ZooError(
            f"{where}: the archive is unreadable{at} ({type(e).__name__}: {reason}); it is cut short or corrupt: "
            f"copy {CIFAR10_ARCHIVE} again"
        ) from None
    folders = {key[:2] for key in found}
    missing = [f"{s}/{c}/" for s in CIFAR10_SPLITS for c in CIFAR10_CLASSES if (s, c) not in folders]
    if len(missing) == 2 * len(CIFAR10_CLASSES):
        raise ZooError(
            f"{where}: no image in train/<class>/ or test/<class>/ at the archive's top; pass {CIFAR10_ARCHIVE} "
            "as given"
        )
    if missing:
        raise ZooError(
            f"{where}: no image in {', '.join(missing)}; both splits need every CIFAR-10 class: pass a complete "
            f"{CIFAR10_ARCHIVE}"
        )
    return found


def read_cifar10_jpeg(data, member, where):
    """The 32x32 RGB image in `data` (a member's bytes) as uint8 pixels, decoded with PIL (libjpeg's
    accurate integer IDCT: the pixels of tf.io.decode_jpeg(dct_method="INTEGER_ACCURATE")); an image
    that does not decode, or is not 32x32 RGB, is one line naming the member."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            mode, size, pixels = img.mode, img.size, np.asarray(img, np.uint8)
    except Exception as e:  # PIL raises many kinds for a file that is not an image, or is cut short
        reason = first_line(e, "unreadable")
        if isinstance(e, Image.UnidentifiedImageError):
            reason = "not an image"
        raise ZooError(
            f"{where}: member '{member}' is not a readable image ({type(e).__name__}: {reason}); the archive is "
            f"damaged: copy {CIFAR10_ARCHIVE} again"
        ) from None
    if mode != "RGB" or pixels.shape != CIFAR10_SHAPE:
        raise ZooError(
            f"{where}: member '{member}' is a {size[1]}x{size[0]} {mode} image, not 32x32 RGB as every CIFAR-10 "
            f"image is: pass {CIFAR10_ARCHIVE} as given"
        )
    return pixels


class Cifar10Local(tfds.core.GeneratorBasedBuilder):
    """CIFAR-10 from its JPEG archive, cifar10-jpeg.tar.gz (see module docstring)."""

    VERSION = tfds.core.Version("1.0.0")
    MANUAL_DOWNLOAD_INSTRUCTIONS = f"Pass --manual_dir=PATH, where PATH is {CIFAR10_WHERE}."

    @classmethod
    def config_for_manual_dir(cls, manual_dir):
        """A config keyed on the archive's bytes (a hash of the .tar.gz as a file: nothing is decompressed
        here), so another archive never reuses a prepared copy."""
        archive = _cifar10_archive(manual_dir)
        return ArchiveConfig(
            name=f"tar_{_hash_file(archive)}",
            description=f"CIFAR-10 JPEGs from {os.path.abspath(archive)}",
            source=os.path.abspath(archive),
            where=f"--manual_dir={manual_dir}",
        )

    def _info(self):
        return self.dataset_info_from_configs(
            features=tfds.features.FeaturesDict(
                {
                    "image": tfds.features.Image(shape=CIFAR10_SHAPE),
                    "label": tfds.features.ClassLabel(names=list(CIFAR10_CLASSES)),
                }
            ),
            supervised_keys=("image", "label"),
            homepage="https://www.cs.toronto.edu/~kriz/cifar.html",
            disable_shuffling=True,  # keep the order: classes in label order, then file names
        )

    def _split_generators(self, dl_manager):
        config = self.builder_config
        if not getattr(config, "source", ""):  # tfds.builder("cifar10_local") without a config
            _cifar10_archive("")
        members = _cifar10_members(config.source, config.where)  # one pass over the archive for both splits
        return {split: self._generate_examples(members, split) for split in CIFAR10_SPLITS}

    def _generate_examples(self, members, split):
        where = self.builder_config.where
        for label, name in enumerate(CIFAR10_CLASSES):
            for key in sorted(k for k in members if k[:2] == (split, name)):
                member = "/".join(key)
                yield member, {"image": read_cifar10_jpeg(members[key], member, where), "label": label}


OFFLINE_BUILDERS = (  # prepared from local files, quietly
    MnistIdx,
    UciDigits,
    ImdbLocal,
    TextFolder,
    ImageFolder,
    Cifar10Local,
)
