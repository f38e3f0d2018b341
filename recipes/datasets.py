"""TFDS builders for data that needs no network.

Importing this module registers them with TFDS, so `--dataset=uci_digits` and
`--dataset=mnist_idx` go through the same `tfds.builder` code path as `mnist`.

- `uci_digits`: the 1,797 8x8 UCI handwritten digits that scikit-learn ships
  (values 0-16, rescaled to uint8 0-255); a fixed, seeded 1,437/360 train/test split.
- `mnist_idx`: MNIST-format IDX files from a local directory (`--manual_dir`):
  `train-images-idx3-ubyte[.gz]` + `train-labels-idx1-ubyte[.gz]` give the
  'train' split, `t10k-*` the 'test' split; whichever pairs are present. Works
  for MNIST, Fashion-MNIST and KMNIST files alike.
"""

import gzip
import hashlib
import os

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
