"""The offline text builders: imdb_local (an aclImdb copy, folder or .tar.gz) and text_folder (your texts)."""

import gzip
import os
import shutil
import tarfile

import pytest
import tensorflow_datasets as tfds

from recipes.data import make_builder
from zoo.errors import ZooError

# A tiny aclImdb copy: texts with markup, non-ASCII, emoji and surrounding whitespace, kept as they are.
IMDB = {
    "train/neg": {"10_1.txt": "Dull.<br /><br />Two hours lost.", "2_3.txt": "Ça ne vaut rien — 退屈な映画."},
    "train/pos": {"0_9.txt": "Great fun!", "11_10.txt": "  Loved it, Ünïcode and all.\n"},
    "train/unsup": {"5_0.txt": "An unlabelled 🎬 review.", "3_0.txt": "Another one."},
    "test/neg": {"1_2.txt": "Bad.", "7_4.txt": "Meh\r\nreally."},
    "test/pos": {"4_8.txt": "Good 👍"},
}
# Beside the reviews, as in the real archive, or as macOS adds: all of it ignored.
IMDB_EXTRAS = {
    "README": b"Large Movie Review Dataset",
    "train/labeledBow.feat": b"0 0:1",
    "train/pos/._0_9.txt": b"\xff",
}

TEXTS = {  # text_folder: class folders not in sorted order on purpose
    "train": {"sports": {"b.txt": "Goal!", "a.txt": "Match löst 3:1 ✓"}, "politics": {"x.txt": "Vote.\n"}},
    "test": {"politics": {"y.txt": "政治"}, "sports": {"c.txt": "Tennis"}},
}


def write_tree(root, tree):
    """{'a/b': {'f.txt': text}} -> root/a/b/f.txt, written as UTF-8 bytes exactly."""
    for folder, files in tree.items():
        os.makedirs(os.path.join(root, folder), exist_ok=True)
        for name, text in files.items():
            with open(os.path.join(root, folder, name), "wb") as f:
                f.write(text.encode("utf-8") if isinstance(text, str) else text)
    return str(root)


def write_imdb(root, reviews=IMDB):
    """root/aclImdb/... with `reviews` and the extras; returns root/aclImdb."""
    acl = os.path.join(root, "aclImdb")
    write_tree(acl, reviews)
    for path, data in IMDB_EXTRAS.items():
        os.makedirs(os.path.dirname(os.path.join(acl, path)), exist_ok=True)
        with open(os.path.join(acl, path), "wb") as f:
            f.write(data)
    return acl


def write_tar(folder, path, arcname="aclImdb"):
    """A .tar.gz of `folder` as `arcname/...`, its files added in reverse order (the builder sorts)."""
    files = sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, fs in os.walk(folder) for f in fs)
    with tarfile.open(path, "w:gz") as tar:
        for rel in reversed(files):
            tar.add(os.path.join(folder, rel), arcname=f"{arcname}/{rel}")
    return str(path)


def write_texts(root, tree=TEXTS):
    for split, classes in tree.items():
        write_tree(os.path.join(root, split), classes)
    return str(root)


def prepare(name, data_dir, manual_dir):
    builder = make_builder(name, str(data_dir), manual_dir)
    builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual_dir))
    return builder


def examples(builder, split):
    """[(text, label)] of a split, in its order."""
    ds = tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))
    return [(e["text"].decode("utf-8"), int(e["label"])) for e in ds]


def imdb_expected(split):
    folders = {"train": ("train/neg", "train/pos"), "test": ("test/neg", "test/pos"), "unsupervised": ("train/unsup",)}
    label = {"neg": 0, "pos": 1, "unsup": -1}
    return [(IMDB[f][n], label[f.split("/")[1]]) for f in folders[split] for n in sorted(IMDB[f])]


def assert_nothing_prepared(data_dir):
    assert not os.path.exists(data_dir) or not any(files for _, _, files in os.walk(data_dir))


def test_imdb_local_has_imdb_reviews_splits_and_features_in_sorted_order(tmp_path):
    builder = prepare("imdb_local", tmp_path / "tfds", write_imdb(tmp_path / "src"))
    info = builder.info
    assert {s: info.splits[s].num_examples for s in info.splits} == {"train": 4, "test": 3, "unsupervised": 2}
    assert isinstance(info.features["text"], tfds.features.Text) and info.features["label"].names == ["neg", "pos"]
    assert info.supervised_keys == ("text", "label") and info.disable_shuffling
    for split in ("train", "test", "unsupervised"):  # texts byte for byte; neg then pos; unsup labels -1
        assert examples(builder, split) == imdb_expected(split)
    assert builder.builder_config.name.startswith("files_")


def test_imdb_local_folder_parent_and_tar_gz_give_the_same_examples(tmp_path):
    acl = write_imdb(tmp_path / "src")
    archive = write_tar(acl, tmp_path / "aclImdb_v1.tar.gz")
    from_folder = prepare("imdb_local", tmp_path / "tfds", acl)
    from_tar = prepare("imdb_local", tmp_path / "tfds", archive)
    assert from_tar.builder_config.name.startswith("tar_")  # keyed on the archive's bytes
    for split in ("train", "test", "unsupervised"):
        assert examples(from_tar, split) == examples(from_folder, split) == imdb_expected(split)
    # The folder holding aclImdb/ reads the same files: the same config, so the prepared copy is reused.
    assert make_builder("imdb_local", str(tmp_path / "tfds"), str(tmp_path / "src")).is_prepared()
    # An archive made with a ./ prefix reads the same.
    dotted = write_tar(acl, tmp_path / "dotted.tar.gz", arcname="./aclImdb")
    assert make_builder("imdb_local", "", dotted).builder_config.splits == ("train", "test", "unsupervised")


def test_imdb_local_without_unsup_has_train_and_test(tmp_path):
    reviews = {k: v for k, v in IMDB.items() if k != "train/unsup"}
    builder = prepare("imdb_local", tmp_path / "tfds", write_imdb(tmp_path / "src", reviews))
    assert set(builder.info.splits) == {"train", "test"}
    assert examples(builder, "test") == imdb_expected("test")


def test_a_changed_file_changes_the_config_name(tmp_path):
    acl = write_imdb(tmp_path / "imdb")
    texts = write_texts(tmp_path / "texts")

    def names():
        tar = write_tar(acl, tmp_path / "a.tar.gz")
        inputs = [("imdb_local", acl), ("imdb_local", tar), ("text_folder", texts)]
        return tuple(make_builder(name, "", d).builder_config.name for name, d in inputs)

    before = names()
    assert names() == before  # the same files, the same names
    copy = shutil.copytree(texts, tmp_path / "copy")  # elsewhere, same contents: same name
    assert make_builder("text_folder", "", str(copy)).builder_config.name == before[2]
    with open(os.path.join(acl, "test", "pos", "4_8.txt"), "a", encoding="utf-8") as f:
        f.write("!")
    with open(os.path.join(texts, "train", "sports", "a.txt"), "a", encoding="utf-8") as f:
        f.write("!")
    after = names()
    assert all(a != b for a, b in zip(after, before))
    os.rename(os.path.join(texts, "train", "sports", "a.txt"), os.path.join(texts, "train", "sports", "d.txt"))
    assert make_builder("text_folder", "", texts).builder_config.name != after[2]  # a renamed file too


def test_text_folder_reads_sorted_classes_and_texts(tmp_path):
    root = write_texts(tmp_path / "texts")
    write_tree(root, {"train/sports": {"notes.md": "not a text file", ".hidden.txt": b"\xff"}, "train/.cache": {}})
    builder = prepare("text_folder", tmp_path / "tfds", root)
    info = builder.info
    assert info.features["label"].names == ["politics", "sports"] and info.supervised_keys == ("text", "label")
    assert {s: info.splits[s].num_examples for s in info.splits} == {"train": 3, "test": 2}
    assert examples(builder, "train") == [("Vote.\n", 0), ("Match löst 3:1 ✓", 1), ("Goal!", 1)]
    assert examples(builder, "test") == [("政治", 0), ("Tennis", 1)]
    # Reloaded from data_dir, the class names come back with the config.
    again = make_builder("text_folder", str(tmp_path / "tfds"), root)
    assert again.is_prepared() and again.info.features["label"].names == ["politics", "sports"]


def _bad_text_folder(tmp_path, case):
    root = tmp_path / "texts"
    if case == "missing":
        return ""
    if case == "no such dir":
        return str(tmp_path / "nowhere")
    if case == "a file":
        (tmp_path / "f.txt").write_text("x")
        return str(tmp_path / "f.txt")
    if case == "empty":
        root.mkdir()
        return str(root)
    write_texts(root)
    if case == "no test":
        shutil.rmtree(root / "test")
    elif case == "no classes":
        shutil.rmtree(root / "train")
        (root / "train").mkdir()
        (root / "train" / "stray.txt").write_text("not in a class folder")
    elif case == "other classes":
        write_tree(
            root, {"test/weather": {"w.txt": "Rain"}, "train/arts": {"a.txt": "Art"}, "train/music": {"m.txt": "La"}}
        )
    elif case == "empty class":
        (root / "test" / "politics" / "y.txt").rename(root / "test" / "politics" / "y.md")
    elif case == "not utf-8":
        (root / "train" / "sports" / "latin1.txt").write_bytes("Olé".encode("latin-1"))
    return str(root)


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", r"^--dataset=text_folder needs --manual_dir=DIR, a folder with train/<class>/\*\.txt .*pass it$"),
        ("no such dir", r"^--manual_dir=\S+nowhere: no such directory; pass the folder that holds train/ and test/$"),
        ("a file", r"^--manual_dir=\S+f\.txt: not a directory; pass the folder"),
        ("empty", r"^--manual_dir=\S+: the folder is empty; put each class's texts in train/<class name>/\*\.txt"),
        ("no test", r"^--manual_dir=\S+: no test/ folder; put each class's texts in test/<class name>/\*\.txt$"),
        ("no classes", r"^--manual_dir=\S+: train/ has no class sub-folders; put each class's texts in train/<cl"),
        (
            "other classes",
            r"^--manual_dir=\S+: train/ and test/ have different classes \(only in train/: arts, music; "
            r"only in test/: weather\); give both the same class sub-folders$",
        ),
        ("empty class", r"^--manual_dir=\S+: class 'politics' of test/ has no \.txt file; add UTF-8 \.txt files or"),
        ("not utf-8", r"^--manual_dir=\S+: '\S+sports/latin1\.txt' is not UTF-8 text \(byte 0xe9 at offset 2\); save"),
    ],
)
def test_bad_text_folder_is_one_line_and_prepares_nothing(tmp_path, case, match):
    manual_dir, data_dir = _bad_text_folder(tmp_path, case), tmp_path / "tfds"
    with pytest.raises(ZooError, match=match) as e:
        prepare("text_folder", data_dir, manual_dir)
    assert "\n" not in str(e.value)
    assert_nothing_prepared(data_dir)


def _bad_imdb(tmp_path, case):
    if case == "missing":
        return ""
    if case == "no such path":
        return str(tmp_path / "aclImdb_v1.tar.gz")
    if case == "no layout":
        write_tree(tmp_path / "src", {"reviews": {"a.txt": "x"}})
        return str(tmp_path / "src")
    if case == "not gzip":
        (tmp_path / "notes.tar.gz").write_text("plain text")
        return str(tmp_path / "notes.tar.gz")
    if case == "truncated":
        data = open(write_tar(write_imdb(tmp_path / "src"), tmp_path / "a.tar.gz"), "rb").read()
        (tmp_path / "a.tar.gz").write_bytes(data[: len(data) // 2])
        return str(tmp_path / "a.tar.gz")
    if case == "gzip, not tar":
        (tmp_path / "a.tar.gz").write_bytes(gzip.compress(b"not a tar archive " * 40))
        return str(tmp_path / "a.tar.gz")
    if case == "tar without pos":
        acl = write_imdb(tmp_path / "src", {k: v for k, v in IMDB.items() if k != "train/pos"})
        return write_tar(acl, tmp_path / "a.tar.gz")
    if case == "tar of another folder":
        return write_tar(write_imdb(tmp_path / "src"), tmp_path / "a.tar.gz", arcname="imdb")
    if case == "folder without test/neg":
        return write_imdb(tmp_path / "src", {k: v for k, v in IMDB.items() if k != "test/neg"})
    if case == "not utf-8 in folder":
        acl = write_imdb(tmp_path / "src")
        write_tree(acl, {"test/pos": {"9_7.txt": b"caf\xe9"}})
        return acl
    if case == "not utf-8 in tar":
        acl = write_imdb(tmp_path / "src")
        write_tree(acl, {"train/unsup": {"9_0.txt": b"caf\xe9"}})
        return write_tar(acl, tmp_path / "a.tar.gz")


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", r"^--dataset=imdb_local needs --manual_dir=DIR, .*or use --dataset=imdb_reviews, which TFDS down"),
        ("no such path", r"^--manual_dir=\S+: no such file or directory; pass the aclImdb folder, a folder holding"),
        ("no layout", r"^--manual_dir=\S+: neither the aclImdb folder \(train/ and test/ inside\) nor a folder holdi"),
        ("not gzip", r"^--manual_dir=\S+: not a readable gzip-compressed tar file \(BadGzipFile: Not a gzipped file"),
        ("truncated", r"^--manual_dir=\S+: not a readable gzip-compressed tar file \("),
        ("gzip, not tar", r"^--manual_dir=\S+: not a readable gzip-compressed tar file \("),
        ("tar without pos", r"^--manual_dir=\S+: no review \(\.txt file\) in aclImdb/train/pos/; the train and test"),
        ("tar of another folder", r": no review \(\.txt file\) in aclImdb/train/neg/, aclImdb/train/pos/, aclImdb/t"),
        ("folder without test/neg", r"^--manual_dir=\S+aclImdb: no review \(\.txt file\) in aclImdb/test/neg/; the"),
        ("not utf-8 in folder", r"^--manual_dir=\S+: '\S+test/pos/9_7\.txt' is not UTF-8 text \(byte 0xe9 at offset 3"),
        ("not utf-8 in tar", r"^--manual_dir=\S+: 'aclImdb/train/unsup/9_0\.txt' is not UTF-8 text \(byte 0xe9 at"),
    ],
)
def test_bad_imdb_copy_is_one_line_and_prepares_nothing(tmp_path, case, match):
    manual_dir, data_dir = _bad_imdb(tmp_path, case), tmp_path / "tfds"
    with pytest.raises(ZooError, match=match) as e:
        prepare("imdb_local", data_dir, manual_dir)
    assert "\n" not in str(e.value)
    assert_nothing_prepared(data_dir)
