"""Image folders as users lay them out: split folders found, class folders held out, every image mode
read, the prepared copy decoded once and keyed on the folder, and preparation in one line of ours."""

import os
import re

import numpy as np
import pytest
from conftest import prepared_files
from PIL import Image

from recipes import datasets
from recipes.config import RecipeConfig
from recipes.data import load_data
from zoo.errors import ZooError


def _solid(path, value, size=(6, 5), mode="L"):
    """A one-colour image: `value` is the pixel (an int for grey modes, a tuple for colour)."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    if mode == "I;16":
        Image.fromarray(np.full(size, value, np.uint16)).save(path)
    else:
        Image.new(mode, (size[1], size[0]), value).save(path)
    return path


def _folder(root, splits=("train", "test"), classes=("ants", "bees"), per_class=(4, 2)):
    """<split>/<class>/<i>.png, each image grey with the value 10 * class + i (of its split)."""
    for split, n in zip(splits, per_class):
        for c, name in enumerate(classes):
            for i in range(n):
                _solid(os.path.join(root, split, name, f"{i}.png"), 10 * c + i)
    return str(root)


def _config(root, tmp_path, **changes):
    return RecipeConfig(dataset="image_folder", manual_dir=str(root), data_dir=str(tmp_path / "tfds"), **changes)


def test_val_folder_is_found_at_the_default_flags_and_the_split_flags_still_choose(tmp_path, capsys):
    root = _folder(tmp_path / "hymenoptera", splits=("train", "val"), per_class=(4, 2))
    data = load_data(_config(root, tmp_path))
    assert data.eval_split == "val" and (data.num_train, len(data.eval_labels)) == (8, 4)
    (line,) = [l for l in capsys.readouterr().out.splitlines() if "no test/" in l]
    assert (
        line
        == f"[data] --manual_dir={root} has val/ and no test/: evaluating on val/ (--eval_split names another split)"
    )
    # TFDS slicing names a split folder too, and an eval split given explicitly is read as given
    sliced = load_data(_config(root, tmp_path, train_split="train[:50%]", eval_split="train[50%:]"))
    assert (sliced.num_train, len(sliced.eval_labels)) == (4, 4) and sliced.eval_split == "train[50%:]"
    assert "no test/" not in capsys.readouterr().out
    os.rename(tmp_path / "hymenoptera" / "val", tmp_path / "hymenoptera" / "validation")
    assert load_data(_config(root, tmp_path)).eval_split == "validation"
    _folder(tmp_path / "hymenoptera", splits=("test",), per_class=(3,))  # test/ beside validation/: test/ wins
    assert len(load_data(_config(root, tmp_path)).eval_labels) == 6
    assert len(load_data(_config(root, tmp_path, eval_split="validation")).eval_labels) == 4


def test_class_folders_without_splits_hold_out_a_seeded_class_balanced_share(tmp_path, capsys):
    root = tmp_path / "photos"
    for c, (name, n) in enumerate((("cat", 10), ("dog", 5))):
        for i in range(n):
            _solid(root / name / f"{i:02d}.png", 100 * c + 10 * i)
    (root / "cat" / "Thumbs.db").write_bytes(b"\x00junk")
    (root / ".DS_Store").write_bytes(b"\x00junk")
    data = load_data(_config(root, tmp_path))
    assert data.class_names == ["cat", "dog"] and data.eval_split == "test"
    assert np.bincount(data.train_labels).tolist() == [8, 4] and np.bincount(data.eval_labels).tolist() == [2, 1]
    (line,) = [l for l in capsys.readouterr().out.splitlines() if "held out" in l]
    assert "held out 0.2 of each class (--holdout_fraction) as test: 12 train and 3 test images" in line
    held = sorted(data.eval_inputs[:, 0, 0, 0].tolist())  # each image's value names it
    train_values = data.train_arrays()[0][:, 0, 0, 0].tolist()
    assert not set(held) & set(train_values) and len(set(held) | set(train_values)) == 15
    again = load_data(_config(root, tmp_path))
    assert sorted(again.eval_inputs[:, 0, 0, 0].tolist()) == held  # seeded: the same hold-out
    others = [sorted(load_data(_config(root, tmp_path, seed=s)).eval_inputs[:, 0, 0, 0].tolist()) for s in (1, 2)]
    assert all(o == held for o in others)  # not the run's --seed: a transfer run holds out the same images
    half = load_data(_config(root, tmp_path, holdout_fraction=0.5))
    assert np.bincount(half.eval_labels).tolist() == [5, 3]  # 0.5 of 5 rounds half up, to 3
    assert "held out 0.5" in capsys.readouterr().out


@pytest.mark.parametrize(
    "value, why", [(0.0, "must be positive"), (1.0, "must be in \\(0, 1\\)"), (-0.2, "must be positive")]
)
def test_bad_holdout_fraction_is_one_line_naming_the_flag(value, why):
    with pytest.raises(ZooError, match=f"--holdout_fraction={value}: {why}") as err:
        RecipeConfig(holdout_fraction=value).validate()
    assert "\n" not in str(err.value)


def _modes_folder(root):
    """train/x/ holds one image of each mode, of different sizes; test/x/ one more."""
    x = os.path.join(root, "train", "x")
    _solid(os.path.join(x, "a_grey.png"), 77, size=(12, 10), mode="L")  # the first image: its size is kept
    _solid(os.path.join(x, "b_16bit.png"), 257 * 100, size=(7, 9), mode="I;16")
    _solid(os.path.join(x, "c_cmyk.jpg"), (0, 255, 255, 0), size=(20, 16), mode="CMYK")
    _solid(os.path.join(x, "d_rgba_red.png"), (255, 0, 0, 255), size=(5, 5), mode="RGBA")
    _solid(os.path.join(x, "e_rgba_clear.png"), (0, 0, 255, 0), size=(8, 8), mode="RGBA")
    palette = Image.new("P", (11, 13), 1)
    palette.putpalette([0, 0, 0, 0, 128, 0] + [0] * 762)
    palette.save(os.path.join(x, "f_palette.png"))
    _solid(os.path.join(x, "g_grey_alpha.png"), (50, 255), size=(3, 4), mode="LA")
    _solid(os.path.join(root, "test", "x", "0.png"), 30, size=(12, 10), mode="L")
    return str(root)


def test_every_image_mode_and_size_is_read(tmp_path):
    data = load_data(_config(_modes_folder(tmp_path / "modes"), tmp_path))
    assert data.image_shape == (12, 10, 3)  # the first image's size; colour, as some images are
    images, _ = data.train_arrays()
    assert images.shape == (7, 12, 10, 3) and images.dtype == np.uint8
    for image in images:  # one colour each, whatever the size it was read at
        assert (image == image[0, 0]).all()
    pixels = images[:, 0, 0].tolist()
    assert pixels[0] == [77, 77, 77]  # grey L, repeated
    assert pixels[1] == [100, 100, 100]  # 16-bit grey, scaled to 8 bits
    assert pixels[2][0] > 200 and max(pixels[2][1:]) < 60  # CMYK (0, 255, 255, 0) is red
    assert pixels[3] == [255, 0, 0]  # opaque RGBA
    assert pixels[4] == [255, 255, 255]  # transparent RGBA: on white
    assert pixels[5] == [0, 128, 0]  # palette
    assert pixels[6] == [50, 50, 50]  # grey with alpha


def test_a_folder_of_grey_images_stays_grey_at_the_size_asked(tmp_path):
    root = tmp_path / "grey"
    _solid(root / "train" / "x" / "a.png", 77, size=(12, 10), mode="L")
    _solid(root / "train" / "x" / "b.png", 257 * 100, size=(4, 4), mode="I;16")
    _solid(root / "train" / "y" / "c.png", (50, 0), size=(9, 9), mode="LA")
    _solid(root / "train" / "y" / "d.png", 1, size=(5, 7), mode="1")
    _solid(root / "test" / "x" / "e.jpg", 20, size=(30, 40), mode="L")
    data = load_data(_config(root, tmp_path, image_size=(6, 8)))
    assert data.image_shape == (6, 8, 1)
    images, labels = data.train_arrays()
    assert images[:, 0, 0, 0].tolist() == [77, 100, 255, 255] and labels.tolist() == [0, 0, 1, 1]


def test_prepared_copy_is_decoded_once_and_rebuilt_when_the_folder_or_size_changes(tmp_path, monkeypatch):
    decoded = []
    read = datasets.read_image
    monkeypatch.setattr(datasets, "read_image", lambda path, shape: decoded.append(path) or read(path, shape))
    root = _folder(tmp_path / "pets")
    first = load_data(_config(root, tmp_path))
    assert len(decoded) == 12 and len(set(decoded)) == 12  # every image once
    files = prepared_files(tmp_path / "tfds", "image_folder")
    assert files
    second = load_data(_config(root, tmp_path))
    assert (
        len(decoded) == 12 and prepared_files(tmp_path / "tfds", "image_folder") == files
    )  # TFDS's files, read as they are
    np.testing.assert_array_equal(second.eval_inputs, first.eval_inputs)

    _solid(os.path.join(root, "train", "bees", "9.png"), 99)  # a new image: a new copy
    changed = load_data(_config(root, tmp_path))
    assert len(decoded) == 12 + 13 and changed.num_train == 9
    _solid(os.path.join(root, "train", "bees", "9.png"), 98)  # the same file, other bytes
    assert load_data(_config(root, tmp_path)).num_train == 9 and len(decoded) == 12 + 13 + 13
    resized = load_data(_config(root, tmp_path, image_size=(3, 3)))  # another size: another copy
    assert resized.image_shape == (3, 3, 1) and len(decoded) == 12 + 13 * 3
    assert set(prepared_files(tmp_path / "tfds", "image_folder")) >= set(files)  # the older copies are not touched


def test_unreadable_image_is_one_line_and_leaves_nothing_while_other_files_are_ignored(tmp_path):
    root = _folder(tmp_path / "pets")
    for junk in (".DS_Store", "Thumbs.db", "README.txt", "._0.png"):  # ._0.png: macOS's copy of 0.png's metadata
        (tmp_path / "pets" / "train" / "ants" / junk).write_bytes(b"\x00\x05\x16\x07 not an image")
    assert load_data(_config(root, tmp_path / "ok")).num_train == 8

    jpeg = tmp_path / "pets" / "train" / "bees" / "5.jpg"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), np.uint8)).save(jpeg, quality=95)
    jpeg.write_bytes(jpeg.read_bytes()[:1500])  # cut short: its header reads, its pixels do not
    message = f"--manual_dir={re.escape(root)}: cannot read image '{re.escape(str(jpeg))}' .*remove or replace it"
    with pytest.raises(ZooError, match=message) as e:
        load_data(_config(root, tmp_path))
    assert "\n" not in str(e.value) and prepared_files(tmp_path / "tfds", "image_folder") == {}

    jpeg.unlink()
    text = tmp_path / "pets" / "test" / "ants" / "notes.png"
    text.write_text("not a png")
    with pytest.raises(ZooError, match=f"cannot read image '{re.escape(str(text))}' \\(UnidentifiedImageError\\)"):
        load_data(_config(root, tmp_path))
    assert prepared_files(tmp_path / "tfds", "image_folder") == {}


@pytest.mark.parametrize(
    "layout, changes, message",
    [
        ("one image", {}, "class 'dog' has 1 image; holding out a share of each class"),
        ("loose images", {}, "holds images but no class sub-folders"),
        (
            "train and test",
            {"eval_split": "val"},
            "no val/ folder for --eval_split=val; it holds test/, train/",
        ),
        ("nested", {}, "class 'training' has no image .*name it with --train_split"),
    ],
)
def test_layouts_that_cannot_be_read_are_one_line(layout, changes, message, tmp_path):
    root = tmp_path / "folder"
    if layout == "one image":
        for i in range(3):
            _solid(root / "cat" / f"{i}.png", i)
        _solid(root / "dog" / "0.png", 9)
    elif layout == "loose images":
        _solid(root / "0.png", 1)
    elif layout == "train and test":
        _folder(root)
    else:
        _folder(root / "training")
    with pytest.raises(ZooError, match=message) as err:
        load_data(_config(root, tmp_path, **changes))
    assert "\n" not in str(err.value) and prepared_files(tmp_path / "tfds", "image_folder") == {}


def test_preparation_says_one_line_of_ours(tmp_path, idx_dir, capfd):
    root = _folder(tmp_path / "pets")
    load_data(_config(root, tmp_path))
    load_data(RecipeConfig(dataset="mnist_idx", manual_dir=idx_dir, data_dir=str(tmp_path / "tfds")))
    out, err = capfd.readouterr()
    assert out.splitlines() == [
        f"[data] preparing image_folder from {root} once (12 images) ...",
        f"[data] preparing mnist_idx from {idx_dir} once ...",
    ]
    for noise in ("Downloading and preparing", "Generating", "Shuffling", "downloaded and prepared", "custom data"):
        assert noise not in out + err
    load_data(_config(root, tmp_path))  # prepared: nothing to say
    assert capfd.readouterr().out == ""
