"""cifar10_local: CIFAR-10 read from its JPEG archive (cifar10-jpeg.tar.gz), prepared once into TFDS's
files: labels from the folder names, pixels as the JPEGs decode, keyed on the archive, bad archives in one line."""

import io
import os
import shutil
import tarfile

import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds
from conftest import prepared_files
from PIL import Image

from recipes import datasets
from recipes.config import RecipeConfig
from recipes.data import load_data, make_builder
from zoo.errors import ZooError

CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
PER_SPLIT = {"train": 3, "test": 2}  # images per class


def jpeg(pixels, quality=75):
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="jpeg", quality=quality)
    return buffer.getvalue()


def cifar_members(seed=0, per_split=PER_SPLIT):
    """{member name: JPEG bytes}: `per_split` 32x32 RGB images of each class, smooth colour ramps that
    differ by image."""
    rng = np.random.default_rng(seed)
    ramp = np.linspace(0, 1, 32)[:, None, None] * np.linspace(0.2, 1, 32)[None, :, None]
    members = {}
    for split, n in per_split.items():
        for name in CLASSES:
            for i in range(n):
                colour = rng.integers(0, 256, 3)
                pixels = np.clip(ramp * colour + rng.normal(0, 20, (32, 32, 3)), 0, 255).astype(np.uint8)
                members[f"{split}/{name}/{i:04d}.jpg"] = jpeg(pixels)
    return members


def write_archive(path, members, extras=True, seed=0):
    """A .tar.gz of `members` (and their folders), added in a shuffled order (the builder sorts);
    with `extras`, a README beside them and a macOS `._` file inside a class folder, which are left out."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    files = dict(members)
    if extras:
        files.update({"README.md": b"CIFAR-10 as JPEG folders", "train/cat/._0000.jpg": b"\x00\x05\x16\x07"})
    names = sorted(files)
    np.random.default_rng(seed).shuffle(names)
    with tarfile.open(path, "w:gz") as tar:
        for folder in sorted({os.path.dirname(n) for n in names} - {""}):
            info = tarfile.TarInfo(folder)
            info.type = tarfile.DIRTYPE
            tar.addfile(info)
        for name in names:
            info = tarfile.TarInfo(name)
            info.size = len(files[name])
            tar.addfile(info, io.BytesIO(files[name]))
    return str(path)


def expected(members, split):
    """[(pixels, label)] of a split in the builder's order: by label, then by file name; each JPEG
    decoded directly with PIL."""
    names = sorted((n for n in members if n.startswith(split + "/")), key=lambda n: (CLASSES.index(n.split("/")[1]), n))
    return [
        (np.asarray(Image.open(io.BytesIO(members[n])).convert("RGB")), CLASSES.index(n.split("/")[1])) for n in names
    ]


def prepare(data_dir, manual_dir):
    builder = make_builder("cifar10_local", str(data_dir), manual_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def split_examples(builder, split):
    return [(e["image"], int(e["label"])) for e in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))]


@pytest.fixture(scope="module")
def archive(tmp_path_factory):
    """(folder holding cifar10-jpeg.tar.gz, its members)."""
    members = cifar_members()
    folder = tmp_path_factory.mktemp("cifar")
    write_archive(folder / "cifar10-jpeg.tar.gz", members)
    return str(folder), members


def test_labels_splits_shapes_and_pixels_follow_the_archive(archive, tmp_path):
    folder, members = archive
    builder = prepare(tmp_path / "tfds", folder)
    info = builder.info
    assert info.features["label"].names == CLASSES  # the sorted folder names, CIFAR-10's label order
    assert info.features["image"].shape == (32, 32, 3) and info.features["image"].dtype == np.uint8
    assert info.supervised_keys == ("image", "label") and info.disable_shuffling
    assert {s: info.splits[s].num_examples for s in info.splits} == {"train": 30, "test": 20}  # README, ._ left out
    for split in ("train", "test"):
        found, wanted = split_examples(builder, split), expected(members, split)
        assert [label for _, label in found] == [label for _, label in wanted]  # by label, then file name
        assert [label for _, label in found] == sorted(label for _, label in found)
        for (image, _), (pixels, _) in zip(found, wanted):
            assert image.dtype == np.uint8 and image.shape == (32, 32, 3)
            np.testing.assert_array_equal(image, pixels)  # exactly the pixels PIL decodes
    # ...which are those of TensorFlow's decoder with the accurate IDCT (its default, the fast one, differs)
    first = members["test/airplane/0000.jpg"]
    accurate = tf.io.decode_jpeg(first, channels=3, dct_method="INTEGER_ACCURATE").numpy()
    np.testing.assert_array_equal(split_examples(builder, "test")[0][0], accurate)


def test_per_class_slices_are_ranges_of_the_train_split(archive, tmp_path):
    """Ordered by class, the last image of each class is one range per class, joined with '+'."""
    folder, members = archive
    builder = prepare(tmp_path / "tfds", folder)
    last = "+".join(f"train[{3 * c + 2}:{3 * c + 3}]" for c in range(10))
    found = split_examples(builder, last)
    assert [label for _, label in found] == list(range(10))
    for (image, _), c in zip(found, range(10)):
        np.testing.assert_array_equal(
            image, np.asarray(Image.open(io.BytesIO(members[f"train/{CLASSES[c]}/0002.jpg"])))
        )


def test_load_data_reads_it_as_the_recipes_do_and_says_one_line(archive, tmp_path, capfd):
    folder, members = archive
    config = RecipeConfig(dataset="cifar10_local", manual_dir=folder, data_dir=str(tmp_path / "tfds"))
    data = load_data(config)
    out, err = capfd.readouterr()
    assert out.splitlines() == [f"[data] preparing cifar10_local from {folder} once ..."]
    for noise in ("Downloading and preparing", "Generating", "Shuffling", "downloaded and prepared", "custom data"):
        assert noise not in out + err
    assert data.image_shape == (32, 32, 3) and data.num_classes == 10 and data.class_names == CLASSES
    assert data.num_train == 30 and data.train_labels.tolist() == [c for c in range(10) for _ in range(3)]
    wanted = expected(members, "test")
    np.testing.assert_array_equal(data.eval_inputs, np.stack([p for p, _ in wanted]))
    assert data.eval_labels.tolist() == [label for _, label in wanted]
    images, labels = next(iter(data.pretrain_dataset(lambda x, y: (x, y), batch_size=30, seed=0)))
    assert (
        images.shape == (30, 32, 32, 3)
        and images.dtype == tf.uint8
        and sorted(labels.numpy()) == sorted(data.train_labels)
    )
    # the archive itself as --manual_dir: the same archive, the same prepared copy, nothing to say
    again = load_data(
        RecipeConfig(
            dataset="cifar10_local",
            manual_dir=os.path.join(folder, "cifar10-jpeg.tar.gz"),
            data_dir=str(tmp_path / "tfds"),
        )
    )
    assert capfd.readouterr().out == ""
    np.testing.assert_array_equal(again.eval_inputs, data.eval_inputs)
    # a validation slice through the recipes' split flags: the last image of each class
    sliced = load_data(
        RecipeConfig(
            dataset="cifar10_local",
            manual_dir=folder,
            data_dir=str(tmp_path / "tfds"),
            train_split="+".join(f"train[{3 * c}:{3 * c + 2}]" for c in range(10)),
            eval_split="+".join(f"train[{3 * c + 2}:{3 * c + 3}]" for c in range(10)),
        )
    )
    assert sliced.num_train == 20 and sliced.eval_labels.tolist() == list(range(10))


def test_prepared_once_in_one_pass_and_keyed_on_the_archive(tmp_path, monkeypatch):
    decoded, passes = [], []
    read, stream = datasets.read_cifar10_jpeg, datasets._cifar10_members
    monkeypatch.setattr(
        datasets, "read_cifar10_jpeg", lambda data, member, where: decoded.append(member) or read(data, member, where)
    )
    monkeypatch.setattr(datasets, "_cifar10_members", lambda path, where: passes.append(path) or stream(path, where))
    folder, members = tmp_path / "cifar", cifar_members()
    write_archive(folder / "cifar10-jpeg.tar.gz", members)
    first = prepare(tmp_path / "tfds", str(folder))
    assert sorted(decoded) == sorted(members) and len(passes) == 1  # each JPEG once, the archive read once
    files = prepared_files(tmp_path / "tfds", "cifar10_local")
    assert files
    second = prepare(tmp_path / "tfds", str(folder / "cifar10-jpeg.tar.gz"))  # the file itself
    copy = prepare(tmp_path / "tfds", str(shutil.copytree(folder, tmp_path / "copy")))  # the same bytes elsewhere
    assert second.builder_config.name == copy.builder_config.name == first.builder_config.name
    assert (
        len(decoded) == 50 and len(passes) == 1 and prepared_files(tmp_path / "tfds", "cifar10_local") == files
    )  # read as they are
    np.testing.assert_array_equal(split_examples(copy, "test")[3][0], split_examples(first, "test")[3][0])

    other = cifar_members(seed=1)  # another archive in its place, of the same name and layout: another copy
    write_archive(folder / "cifar10-jpeg.tar.gz", other)
    changed = prepare(tmp_path / "tfds", str(folder))
    assert changed.builder_config.name != first.builder_config.name
    assert len(decoded) == 100 and len(passes) == 2
    np.testing.assert_array_equal(split_examples(changed, "test")[0][0], expected(other, "test")[0][0])
    assert not np.array_equal(split_examples(changed, "test")[0][0], split_examples(first, "test")[0][0])
    assert set(prepared_files(tmp_path / "tfds", "cifar10_local")) > set(files)  # the first copy is kept, untouched
    assert {p: t for p, t in prepared_files(tmp_path / "tfds", "cifar10_local").items() if p in files} == files


def _bad_input(tmp_path, case):
    """The --manual_dir of each bad case."""
    members = cifar_members(per_split={"train": 2, "test": 1})
    path = tmp_path / "src" / "cifar10-jpeg.tar.gz"
    if case == "no manual_dir":
        return ""
    if case == "no such path":
        return str(tmp_path / "cifar10-jpeg.tar.gz")
    if case == "folder without the archive":
        (tmp_path / "src").mkdir()
        return str(tmp_path / "src")
    if case == "folder with another archive":
        write_archive(tmp_path / "src" / "cifar-10.tar.gz", members)
        return str(tmp_path / "src")
    if case == "unpacked folder":
        (tmp_path / "src" / "train" / "cat").mkdir(parents=True)
        return str(tmp_path / "src")
    if case == "not gzip":
        path.parent.mkdir()
        path.write_bytes(b"PK\x03\x04 a zip file")
        return str(path)
    if case == "archive cut short":
        data = open(write_archive(path, members), "rb").read()
        path.write_bytes(data[: len(data) * 2 // 3])
        return str(path.parent)
    if case == "archive's end cut":  # after the last member: only the gzip stream's end is missing
        data = open(write_archive(path, members), "rb").read()
        path.write_bytes(data[:-4])
        return str(path.parent)
    if case == "truncated jpeg":
        members["test/ship/0000.jpg"] = members["test/ship/0000.jpg"][:-40]
    elif case == "not an image":
        members["test/truck/0000.jpg"] = b"<html>404 Not Found</html>"
    elif case == "corrupt header":
        data = bytearray(members["train/dog/0001.jpg"])
        data[20:60] = bytes(range(40))
        members["train/dog/0001.jpg"] = bytes(data)
    elif case == "another size":
        members["test/frog/0000.jpg"] = jpeg(np.zeros((64, 48, 3), np.uint8))
    elif case == "grey":
        members["train/bird/0000.jpg"] = jpeg(np.zeros((32, 32), np.uint8))
    elif case == "another class":
        members["train/kitten/0000.jpg"] = members.pop("train/cat/0000.jpg")
    elif case == "class missing":
        del members["test/horse/0000.jpg"]
    elif case == "nested":
        members = {f"cifar/{name}": data for name, data in members.items()}
    elif case == "deeper":
        members["train/cat/more/0000.jpg"] = members["train/cat/0000.jpg"]
    write_archive(path, members)
    return str(path.parent)


@pytest.mark.parametrize(
    "case, message",
    [
        ("no manual_dir", r"^--dataset=cifar10_local needs --manual_dir=DIR, a folder holding cifar10-jpeg\.tar\.gz, "),
        ("no such path", r"^--manual_dir=\S+cifar10-jpeg\.tar\.gz: no such file or directory; pass a folder holding"),
        ("folder without the archive", r"^--manual_dir=\S+: no cifar10-jpeg\.tar\.gz in this folder; pass a folder"),
        (
            "folder with another archive",
            r": no cifar10-jpeg\.tar\.gz in this folder; it holds cifar-10\.tar\.gz: pass ",
        ),
        ("unpacked folder", r": no cifar10-jpeg\.tar\.gz in this folder; an unpacked copy .* --dataset=image_folder$"),
        ("not gzip", r"^--manual_dir=\S+: not a gzip-compressed tar file; pass cifar10-jpeg\.tar\.gz as given"),
        ("archive cut short", r"^--manual_dir=\S+: the archive is unreadable (at|after) member '[^']+' \(\w+: .*copy "),
        ("archive's end cut", r"^--manual_dir=\S+: the archive is unreadable after member '[^']+' \(EOFError: Compr"),
        ("truncated jpeg", r": member 'test/ship/0000\.jpg' is not a readable image \(OSError: image file is trunc"),
        ("not an image", r": member 'test/truck/0000\.jpg' is not a readable image \(UnidentifiedImageError: not an"),
        ("corrupt header", r": member 'train/dog/0001\.jpg' is not a readable image \(OSError: .*copy cifar10-jpeg"),
        ("another size", r": member 'test/frog/0000\.jpg' is a 64x48 RGB image, not 32x32 RGB as every CIFAR-10 i"),
        ("grey", r": member 'train/bird/0000\.jpg' is a 32x32 L image, not 32x32 RGB"),
        ("another class", r": member 'train/kitten/0000\.jpg' is in 'kitten/', not a CIFAR-10 class \(airplane, "),
        ("class missing", r"^--manual_dir=\S+: no image in test/horse/; both splits need every CIFAR-10 class"),
        ("nested", r": no image in train/<class>/ or test/<class>/ at the archive's top; pass cifar10-jpeg"),
        ("deeper", r": member 'train/cat/more/0000\.jpg' is not at <split>/<class>/<file>; the archive holds"),
    ],
)
def test_bad_input_is_one_line_and_prepares_nothing(tmp_path, case, message, capfd):
    manual_dir, data_dir = _bad_input(tmp_path, case), tmp_path / "tfds"
    config = RecipeConfig(dataset="cifar10_local", manual_dir=manual_dir, data_dir=str(data_dir))
    with pytest.raises(ZooError, match=message) as e:
        load_data(config)
    assert "\n" not in str(e.value) and str(e.value).startswith("--")
    assert prepared_files(data_dir, "cifar10_local") == {}  # TFDS's incomplete copy is removed
    assert not any("incomplete" in folder for folder, _, _ in os.walk(data_dir))
    capfd.readouterr()
    # the same archive intact again is prepared as usual
    if case in ("truncated jpeg", "not an image", "grey"):
        write_archive(os.path.join(manual_dir, "cifar10-jpeg.tar.gz"), cifar_members(per_split={"train": 2, "test": 1}))
        assert load_data(config).num_train == 20
