"""Data for every recipe: any TFDS image or text classification dataset, checked, split and piped.

`load_data(config)` resolves the dataset, checks it has one input (an image, or a text) and a
class label feature, prepares it (TFDS downloads only datasets that need it), loads the eval split
and the train labels, and hands out tf.data pipelines. The inputs are what the dataset yields:
uint8 images, or texts as bytes.
"""

import contextlib
import dataclasses
import difflib
import logging

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

from recipes import datasets  # registers the offline builders
from zoo.errors import ZooError, first_line

AUTOTUNE = tf.data.AUTOTUNE
CACHE_LIMIT_BYTES = 2 << 30  # decoded train splits up to 2 GiB are cached in memory
IMAGE_FOLDER = "image_folder"  # datasets.ImageFolder: <manual_dir>/<split>/<class>/<image> or <class>/<image>
IMAGE_SUFFIXES = datasets.IMAGE_SUFFIXES
HOLDOUT_FRACTION = 0.2  # of each class, the eval split of an image folder without split folders
# The hold-out's seed, the same in every run (not --seed): a transfer or distillation run with another
# --seed on the same folder evaluates on the images the encoder's run held out, never on its training images.
HOLDOUT_SEED = 0


_NOTICES = ("Using custom data configuration", "Variant folder")  # TFDS's warnings that are not ours to show


def _drop_notices(record):
    """False for TFDS's warnings that a builder has a config of its own (every offline builder has one)
    and that a dataset is not prepared yet (what `is_prepared()` asks)."""
    return not str(record.msg).startswith(_NOTICES)


@contextlib.contextmanager
def _without_notices():
    """TFDS (absl logging) without the `_NOTICES`; other warnings stay."""
    absl_logger = logging.getLogger("absl")
    absl_logger.addFilter(_drop_notices)
    try:
        yield
    finally:
        absl_logger.removeFilter(_drop_notices)


def _quiet_builder(cls, **kwargs):
    """`cls(**kwargs)`, without TFDS's warning that the config is a custom one."""
    with _without_notices():
        return cls(**kwargs)


def _is_prepared(builder):
    with _without_notices():
        return builder.is_prepared()


def _prepare(builder, name, manual_dir, detail=""):
    """`builder.download_and_prepare()`. An offline builder (recipes.datasets) not yet prepared says one
    line of ours, "[data] preparing NAME from DIR once ...", in place of TFDS's "Downloading and
    preparing dataset Unknown size ..." and progress bars; TFDS's warnings stay. A dataset TFDS
    downloads keeps TFDS's own progress output."""
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir or None)
    if not isinstance(builder, datasets.OFFLINE_BUILDERS) or _is_prepared(builder):
        builder.download_and_prepare(download_config=download_config)
        return
    source = f" from {manual_dir}" if manual_dir else ""
    print(f"[data] preparing {name}{source} once{detail} ...", flush=True)
    from tensorflow_datasets.core.utils import tqdm_utils

    bars = getattr(tqdm_utils, "_active", True)
    tfds.display_progress_bar(False)
    builder._log_download_bytes = builder._log_download_done = lambda: None  # TFDS's two printed lines
    try:
        builder.download_and_prepare(download_config=download_config)
    finally:
        tfds.display_progress_bar(bars)


def make_builder(name, data_dir="", manual_dir="", prefix=""):
    """The TFDS builder for `name`, with a one-line error for unknown names."""
    data_dir = data_dir or None
    try:
        cls = tfds.builder_cls(name.split("/")[0].split(":")[0])
        if hasattr(cls, "config_for_manual_dir"):
            return _quiet_builder(cls, config=cls.config_for_manual_dir(manual_dir), data_dir=data_dir)
        return tfds.builder(name, data_dir=data_dir)
    except tfds.core.registered.DatasetNotFoundError:
        known = tfds.list_builders(with_community_datasets=False)
        close = difflib.get_close_matches(name, known, n=3)
        hint = f" Did you mean {' or '.join(close)}?" if close else ""
        raise ZooError(
            f"--{prefix}dataset={name}: no such TFDS dataset.{hint} (tfds.list_builders() lists them)"
        ) from None


def check_dataset(name, info, prefix="", image_size=()):
    """(input feature, image_shape or None for texts, num_classes, class_names) of a dataset: an
    'image' (Image) or exactly one Text feature, and a 'label' (ClassLabel); else a one-line error."""
    features = info.features
    items = dict(features.items()) if hasattr(features, "items") else {}
    label = items.get("label")
    texts = [k for k, v in items.items() if isinstance(v, tfds.features.Text)]
    image = items.get("image")
    if isinstance(label, tfds.features.ClassLabel) and isinstance(image, tfds.features.Image):
        return "image", _image_shape(name, image, prefix, image_size), label.num_classes, list(label.names)
    if isinstance(label, tfds.features.ClassLabel) and len(texts) == 1 and not isinstance(image, tfds.features.Image):
        return texts[0], None, label.num_classes, list(label.names)
    found = ", ".join(f"{k} ({type(v).__name__})" for k, v in items.items()) or type(features).__name__
    raise ZooError(
        f"--{prefix}dataset={name} has features {found}; recipes need one input, an 'image' (Image) or one "
        "text (Text), and a 'label' (ClassLabel): pick an image or text classification dataset such as "
        "mnist or imdb_reviews"
    )


def _image_shape(name, image, prefix, image_size):
    shape = tuple(image.shape)
    if image_size and shape[-1] is not None:
        shape = (*image_size, shape[-1])
    if any(d is None for d in shape):
        raise ZooError(f"--{prefix}dataset={name} has images of varying size {shape}; recipes need a fixed image shape")
    return shape


def balanced_sample(labels, n, num_classes, seed):
    """Indices of a class-balanced, seeded sample of `n` examples.

    Each class gets n // num_classes; the remainder goes to randomly chosen classes. A class with
    fewer examples than its share gives all it has and the others share the rest (as balanced as the
    labels allow); n of at least the number of labelled examples is every one of them. A label of -1
    (a class left out of the task, see `Data.restrict`) is never drawn.
    """
    labels = np.asarray(labels)
    if n >= np.sum(labels >= 0):
        return np.flatnonzero(labels >= 0)
    rng = np.random.default_rng(seed)
    quota = np.full(num_classes, n // num_classes)
    quota[rng.choice(num_classes, n % num_classes, replace=False)] += 1
    counts = np.bincount(labels[labels >= 0], minlength=num_classes)[:num_classes]
    if np.any(quota > counts):
        quota = _filled_quota(counts, n, rng)
    picks = [rng.choice(np.flatnonzero(labels == c), quota[c], replace=False) for c in range(num_classes)]
    return np.sort(np.concatenate(picks))


def _filled_quota(counts, n, rng):
    """Per-class counts summing to n, none above `counts`, as equal as they allow (water-filling);
    the remainder of an uneven share goes to randomly chosen classes."""
    quota = np.zeros_like(counts)
    while quota.sum() < n:
        open_ = np.flatnonzero(quota < counts)
        share = (n - quota.sum()) // len(open_)
        if share == 0:
            quota[rng.choice(open_, n - quota.sum(), replace=False)] += 1
            break
        quota[open_] = np.minimum(quota[open_] + share, counts[open_])
    return quota


def augmenter(seed):
    """Random translation, rotation and zoom: the same for every downstream classifier."""
    return keras.Sequential(
        [
            keras.layers.RandomTranslation(0.1, 0.1, fill_mode="constant", seed=seed),
            keras.layers.RandomRotation(0.05, fill_mode="constant", seed=seed + 1),
            keras.layers.RandomZoom(0.1, fill_mode="constant", seed=seed + 2),
        ],
        name="augment",
    )


def augment_uint8(aug):
    def apply(images, labels):
        x = aug(tf.cast(images, tf.float32), training=True)
        return tf.cast(tf.clip_by_value(tf.round(x), 0, 255), tf.uint8), labels

    return apply


def finish_pipeline(ds):
    """`ds` with the options every pipeline of the flow shares.

    - Split between the workers of a multi-worker strategy by element, not by file: every worker
      reads the whole pipeline and keeps its share of each global batch (a split of a TFDS dataset
      often is one file, fewer than the workers). One process is unaffected.
    - tf.data's autotuning off. Keras makes a new iterator every epoch (and every `fit`), and with
      autotuning on, deleting an iterator can wait for its tuning thread's next wake-up, up to
      10.24 s later: epochs of 5-10 s took 10.2 s, and the autoencoder's pretraining ran 1.3x slower
      (benchmarks/README.md, "Epoch ends and BatchNorm"). Without it, AUTOTUNE parallelism is the number of cores
      and prefetch buffers size themselves, which is all these cached, in-memory pipelines need.
    """
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    options.autotune.enabled = False
    return ds.with_options(options)


def labelled_dataset(images, labels, batch_size, seed, augment=False):
    """An endless, shuffled, batched pipeline over a small labelled set."""
    ds = tf.data.Dataset.from_tensor_slices((images, labels))
    ds = ds.shuffle(len(images), seed=seed, reshuffle_each_iteration=True).repeat()
    ds = ds.batch(min(batch_size, len(images)), drop_remainder=True)
    if augment:
        ds = ds.map(augment_uint8(augmenter(seed)), num_parallel_calls=AUTOTUNE)
    return finish_pipeline(ds.prefetch(AUTOTUNE))


@dataclasses.dataclass
class Data:
    """A prepared dataset: the eval split and train labels in memory, the train split streamed.

    `feature` names the input feature ("image", or the dataset's text feature); `image_shape` is
    None for a text dataset. Pretraining reads the train split and, when there is one, the
    `unlabelled_split` (labels -1, never read); labelled draws come from the train split only."""

    name: str
    builder: object
    train_split: str
    eval_split: str
    image_shape: tuple | None
    num_classes: int
    class_names: list
    train_labels: np.ndarray  # one per train-split example; -1 for classes left out by `restrict`
    eval_inputs: np.ndarray
    eval_labels: np.ndarray
    label_map: np.ndarray | None = None  # dataset label -> label here (-1: left out), after `restrict`
    feature: str = "image"
    unlabelled_split: str = ""  # read by pretraining only
    num_unlabelled: int = 0

    @property
    def kind(self):
        """What the inputs are: "images" or "texts"."""
        return "images" if self.image_shape is not None else "texts"

    def input_spec(self):
        """The TensorSpec of a batch of inputs as the dataset yields them: uint8 images or strings."""
        if self.image_shape is None:
            return tf.TensorSpec(shape=(None,), dtype=tf.string, name="texts")
        return tf.TensorSpec(shape=(None, *self.image_shape), dtype=tf.uint8, name="images")

    def input_manifest(self):
        """The manifest's "input": what the exported encoder takes."""
        if self.image_shape is None:
            return {"shape": [], "dtype": "string", "feature": self.feature}
        return {"shape": list(self.image_shape), "dtype": "uint8", "range": [0, 255]}

    def examples(self, split, **kwargs):
        """`builder.as_dataset(split)`."""
        return self.builder.as_dataset(split=split, **kwargs)

    @property
    def num_train(self):
        return int(np.sum(self.train_labels >= 0))

    @property
    def num_pretrain(self):
        """Examples pretraining reads: the train split's, and the unlabelled split's."""
        return self.num_train + self.num_unlabelled

    @property
    def pretrain_split(self):
        return f"{self.train_split}+{self.unlabelled_split}" if self.unlabelled_split else self.train_split

    def describe(self):
        described = {
            "name": self.name,
            "train_split": self.train_split,
            "eval_split": self.eval_split,
            "num_train": self.num_train,
            "num_eval": len(self.eval_labels),
            "num_classes": self.num_classes,
            "class_names": self.class_names,
        }
        if self.unlabelled_split:
            described.update(unlabelled_split=self.unlabelled_split, num_unlabelled=self.num_unlabelled)
        if self.label_map is not None:
            described["dataset_labels"] = [int(c) for c in np.flatnonzero(self.label_map >= 0)]
        return described

    def restrict(self, classes):
        """Only the examples of `classes` (dataset label ids), relabelled 0..k-1 in that order."""
        if self.label_map is not None or self.unlabelled_split:
            raise ValueError("restrict() applies to a whole dataset without an unlabelled split, once")
        label_map = np.full(self.num_classes, -1, np.int64)
        label_map[list(classes)] = np.arange(len(classes))
        keep = label_map[self.eval_labels] >= 0
        return dataclasses.replace(
            self,
            num_classes=len(classes),
            class_names=[self.class_names[c] for c in classes],
            train_labels=label_map[self.train_labels],
            label_map=label_map,
            eval_inputs=self.eval_inputs[keep],
            eval_labels=label_map[self.eval_labels[keep]],
        )

    def _relabel(self, ds):
        """(input, dataset label) -> (input, label here), dropping classes left out."""
        if self.label_map is None:
            return ds
        table = tf.constant(self.label_map)

        def kept(x, label):
            return table[label] >= 0

        def relabel(x, label):
            return x, table[label]

        return ds.filter(kept).map(relabel, num_parallel_calls=AUTOTUNE)

    def pretrain_dataset(self, transform, batch_size, seed, drop_remainder=False):
        """train (+ unlabelled) split -> (input, label) -> cache -> shuffle -> batch -> transform -> prefetch.

        `transform(inputs, labels)` runs on whole batches (one call per batch costs far less than one
        per example), so it must treat the leading axis as the batch: elementwise ops do."""
        ds = self.examples(
            self.pretrain_split,
            shuffle_files=not self.builder.info.disable_shuffling,
            read_config=tfds.ReadConfig(shuffle_seed=seed),
        )
        ds = self._relabel(ds.map(_input_and_label(self.feature), num_parallel_calls=AUTOTUNE))
        ds = ds.apply(tf.data.experimental.assert_cardinality(self.num_pretrain))  # known after a filter too
        if self.image_shape is None or self.num_pretrain * int(np.prod(self.image_shape)) <= CACHE_LIMIT_BYTES:
            ds = ds.cache()
        ds = ds.shuffle(min(self.num_pretrain, 20_000), seed=seed, reshuffle_each_iteration=True)
        ds = ds.batch(batch_size, drop_remainder=drop_remainder).map(transform, num_parallel_calls=AUTOTUNE)
        return finish_pipeline(ds.prefetch(AUTOTUNE))

    def pretrain_inputs(self, batch_size=1024):
        """The inputs pretraining reads, in the splits' order, batched, without labels (what a text
        model's vocabulary is fitted on)."""
        ds = self.examples(self.pretrain_split, shuffle_files=False)
        return ds.map(_input(self.feature), num_parallel_calls=AUTOTUNE).batch(batch_size)

    def train_arrays(self):
        """The whole train split as (inputs, labels) NumPy arrays, for code that wants arrays."""
        ds = self.examples(self.train_split, shuffle_files=False)
        return _to_numpy(self._relabel(ds.map(_input_and_label(self.feature))), f"--train_split={self.train_split}")

    def train_inputs(self):
        """The whole train split's inputs, in the split's order; its labels are never read
        (what a teacher labels). Only for a dataset not `restrict`ed to some classes."""
        if self.label_map is not None:
            raise ValueError("train_inputs() reads every input; a restricted dataset would need its labels")
        ds = self.examples(self.train_split, shuffle_files=False)
        return _to_numpy(ds.map(_input(self.feature)), f"--train_split={self.train_split}")

    def unlabelled_inputs(self):
        """The unlabelled split's inputs, in the split's order (what a teacher also labels)."""
        ds = self.examples(self.unlabelled_split, shuffle_files=False)
        return _to_numpy(ds.map(_input(self.feature)), f"--unlabelled_split={self.unlabelled_split}")

    def eval_dataset(self, transform, batch_size):
        ds = tf.data.Dataset.from_tensor_slices((self.eval_inputs, self.eval_labels))
        return finish_pipeline(ds.map(transform, num_parallel_calls=AUTOTUNE).batch(batch_size).prefetch(AUTOTUNE))

    def labelled_subsets(self, budgets, seeds):
        """{(n, seed): (inputs, labels)}: class-balanced draws from the train split, one pass to read."""
        draws = {(n, s): balanced_sample(self.train_labels, n, self.num_classes, s) for n in budgets for s in seeds}
        wanted = np.zeros(len(self.train_labels), dtype=bool)  # indices into the whole split
        for idx in draws.values():
            wanted[idx] = True
        keep = tf.constant(wanted)
        feature = self.feature

        def is_wanted(i, example):
            return keep[i]

        def index_and_input(i, example):
            return i, example[feature]

        ds = self.examples(self.train_split, shuffle_files=False)
        ds = ds.enumerate().filter(is_wanted).map(index_and_input)
        index, inputs = [], []
        for i, x in ds.batch(1024).as_numpy_iterator():
            index.append(i)
            inputs.append(x)
        position = {int(i): k for k, i in enumerate(np.concatenate(index))}
        inputs = np.concatenate(inputs)
        return {key: (inputs[[position[int(i)] for i in idx]], self.train_labels[idx]) for key, idx in draws.items()}


def _split_info(name, builder, flag, split):
    try:
        return builder.info.splits[split].num_examples
    except (KeyError, ValueError, AssertionError) as e:
        available = ", ".join(builder.info.splits.keys()) or "none"
        reason = str(e).splitlines()[0]
        raise ZooError(f"--{flag}={split}: not a split of {name} ({reason}); splits: {available}") from None


def _label(example):
    return example["label"]


def _input(feature):
    def get(example):
        return example[feature]

    return get


def _input_and_label(feature):
    def get(example):
        return example[feature], example["label"]

    return get


def _to_numpy(ds, split_flag, batch_size=4096):
    """A finite dataset as NumPy arrays, read in batches."""
    parts = list(ds.batch(batch_size).as_numpy_iterator())
    if not parts:
        raise ZooError(f"{split_flag} is empty: choose a split with examples")
    if isinstance(parts[0], tuple):
        return tuple(np.concatenate(p) for p in zip(*parts))
    return np.concatenate(parts)


def _unlabelled_split(config, builder, prefix):
    """The split pretraining also reads: --unlabelled_split, where the config has it ("auto": the
    dataset's 'unsupervised' split when it has one); "" for none."""
    name = getattr(config, "unlabelled_split", "")
    if name == "auto":
        return "unsupervised" if "unsupervised" in builder.info.splits else ""
    if name:
        _split_info(config.dataset, builder, prefix + "unlabelled_split", name)
    return name


def load_data(config, prepare=True, prefix="", reads=None, reader=""):
    """Resolve, check and prepare `config.dataset`; load eval split and train labels.

    `prefix` is what the flags are called in error messages ("target_" for a recipe's target data).
    `reads` ("images" or "texts"): what `reader` (a model, an encoder) reads; a dataset of the other
    kind is one line, before anything is prepared or downloaded.
    """
    image_size = tuple(config.image_size)
    detail = ""
    if config.dataset == IMAGE_FOLDER:
        folder = datasets.image_folder_plan(
            config.manual_dir,
            config.train_split,
            config.eval_split,
            image_size,
            seed=HOLDOUT_SEED,
            holdout_fraction=getattr(config, "holdout_fraction", HOLDOUT_FRACTION),
            prefix=prefix,
        )
        for line in folder.notes:
            print(line, flush=True)
        config = dataclasses.replace(config, eval_split=folder.eval_split)  # val/ in place of a missing test/
        image_size = folder.config.image_shape[:2]
        detail = f" ({folder.num_images} images)"

        def new_builder():
            return _quiet_builder(datasets.ImageFolder, config=folder.config, data_dir=config.data_dir or None)

    else:

        def new_builder():
            return make_builder(config.dataset, config.data_dir, config.manual_dir, prefix)

    builder = new_builder()
    feature, image_shape, num_classes, class_names = check_dataset(config.dataset, builder.info, prefix, image_size)
    kind = "texts" if image_shape is None else "images"
    if reads and kind != reads:
        example = (
            "mnist, cifar10_local or image_folder" if reads == "images" else "imdb_reviews, imdb_local or text_folder"
        )
        raise ZooError(
            f"--{prefix}dataset={config.dataset} holds {kind}, but {reader} reads {reads}: "
            f"give a dataset of {reads}, such as {example}"
        )
    if prepare or config.dataset == IMAGE_FOLDER:  # an image folder is only read from its prepared copy
        try:
            _prepare(builder, config.dataset, config.manual_dir, detail)
        except ZooError:
            raise
        except Exception as e:  # TFDS raises many kinds for a missing network or files
            # Another process (a worker of the same multi-worker run) may have prepared it meanwhile:
            # both wrote a copy, the first renamed it into place, the second's rename failed.
            builder = new_builder()
            if not (isinstance(e, FileExistsError) and _is_prepared(builder)):
                first = first_line(e)
                raise ZooError(
                    f"--{prefix}dataset={config.dataset}: could not prepare it ({type(e).__name__}: {first}); "
                    f"check the network, or point --{prefix}data_dir at prepared data"
                ) from None
    unlabelled = ""
    if builder.info.splits:  # empty only for mocked datasets (tfds.testing.mock_data)
        for flag in ("train_split", "eval_split"):
            _split_info(config.dataset, builder, prefix + flag, getattr(config, flag))
        unlabelled = _unlabelled_split(config, builder, prefix)

    data = Data(
        name=config.dataset,
        builder=builder,
        train_split=config.train_split,
        eval_split=config.eval_split,
        image_shape=image_shape,
        num_classes=num_classes,
        class_names=class_names,
        train_labels=np.zeros(0, np.int64),
        eval_inputs=np.zeros((0, *(image_shape or ())), np.uint8 if image_shape else object),
        eval_labels=np.zeros(0, np.int64),
        feature=feature,
        unlabelled_split=unlabelled,
    )
    skip = {"image": tfds.decode.SkipDecoding()} if feature == "image" else None
    train = builder.as_dataset(split=config.train_split, decoders=skip)
    train_labels = _to_numpy(train.map(_label), f"--{prefix}train_split={config.train_split}")
    num_unlabelled = 0
    if unlabelled:
        extra = builder.as_dataset(split=unlabelled, decoders=skip)
        num_unlabelled = len(_to_numpy(extra.map(_label), f"--{prefix}unlabelled_split={unlabelled}"))
    eval_inputs, eval_labels = _to_numpy(
        data.examples(config.eval_split).map(_input_and_label(feature)), f"--{prefix}eval_split={config.eval_split}"
    )
    return dataclasses.replace(
        data,
        train_labels=train_labels.astype(np.int64),
        eval_inputs=eval_inputs,
        eval_labels=eval_labels.astype(np.int64),
        num_unlabelled=num_unlabelled,
    )
