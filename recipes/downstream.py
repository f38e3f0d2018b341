"""The transfer table: per label budget, the classifiers and the k-NN that say whether pretraining helped.

For each labelled draw: `frozen` (a head on the frozen pretrained encoder), `finetune` (then the
encoder unfrozen at a lower rate), `knn` (no training: weighted k-nearest neighbours on the frozen,
L2-normalised features), `scratch` (the encoder's architecture from random weights; a text encoder
keeps the pretrained vocabulary) and `reference` (what a user gets without pretraining at all: for
images the zoo's small CNN from scratch; for texts the strong classic baseline, TF-IDF of words and
word pairs, fitted on the unlabelled texts, plus logistic regression whose C is chosen by
cross-validation on the labelled draw).
"""

import keras
import numpy as np

import zoo
from recipes.data import labelled_dataset
from recipes.intervals import Accuracy, describe, gain_entry, word
from zoo.heads import AdaptImages, adaptation, classifier_on

KNN_TEMPERATURE = 0.07  # of the cosine votes, as Wu et al. (2018) and DINO's k-NN evaluation use it
PRETRAINED = ("frozen", "finetune", "knn")
TFIDF_CS = (0.1, 1.0, 10.0, 100.0, 1000.0)  # inverse regularisation strengths the text reference chooses from


def accuracy(model, images, labels, batch_size=1000):
    """Eval accuracy (an `Accuracy`: it keeps which examples were right), in eager batches
    (`predict` would trace anew for every classifier)."""
    correct = []
    for start in range(0, len(images), batch_size):
        logits = model(images[start : start + batch_size], training=False)
        correct.append(np.argmax(logits, axis=-1) == labels[start : start + batch_size])
    return Accuracy(np.concatenate(correct) if correct else [])


def walk_layers(model):
    """Every layer of `model`, nested models included."""
    for layer in model.layers:
        yield layer
        if hasattr(layer, "layers"):
            yield from walk_layers(layer)


def unfreeze_for_finetuning(encoder):
    """Make the encoder trainable, but keep BatchNorm frozen and in inference mode.

    With a few hundred labels, re-estimating BatchNorm statistics from small
    batches would undo what pretraining learned.
    """
    encoder.trainable = True
    for layer in walk_layers(encoder):
        if isinstance(layer, keras.layers.BatchNormalization):
            layer.trainable = False


def recalibrate_batchnorm(model, images, max_examples=2048, seed=0):
    """Re-estimate the statistics of the trainable BatchNorm layers on `images`.

    Trained for few steps, or from scratch on a few hundred labels, a BatchNorm
    network's weights move faster than its moving averages follow: measured on
    MNIST with 100 labels, the same weights scored 86% with batch statistics and
    36-55% with the moving ones. One training-mode pass with momentum 0 sets them to the
    statistics of the labelled set ("precise BN", Wu & Johnson 2021). Frozen
    layers (trainable=False) run in inference mode and are left untouched. Of more
    than `max_examples` images, a random sample (`seed`) is used, never the first
    ones: a split in file order (IMDB's, a folder's) holds one class, then the next.
    """
    norms = [l for l in walk_layers(model) if isinstance(l, keras.layers.BatchNormalization) and l.trainable]
    if not norms:
        return
    momenta = [l.momentum for l in norms]
    for layer in norms:
        layer.momentum = 0.0
    try:
        if len(images) > max_examples:
            images = images[np.sort(np.random.default_rng(seed).choice(len(images), max_examples, replace=False))]
        model(images, training=True)
    finally:
        for layer, momentum in zip(norms, momenta):
            layer.momentum = momentum


def knn_accuracy(
    train_features, train_labels, eval_features, eval_labels, num_classes, k=20, temperature=KNN_TEMPERATURE, chunk=1024
):
    """Eval accuracy (an `Accuracy`) of a weighted k-NN classifier on L2-normalised features: each of
    the k most cosine-similar training examples votes for its class with weight exp(similarity / temperature)."""

    def unit(x):
        x = np.asarray(x, np.float64)
        return x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)

    train, labels = unit(train_features), np.asarray(train_labels)
    k = min(k, len(train))
    correct = []
    for start in range(0, len(eval_features), chunk):
        similarity = unit(eval_features[start : start + chunk]) @ train.T
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        weights = np.exp(np.take_along_axis(similarity, nearest, axis=1) / temperature)
        votes = np.zeros((len(similarity), num_classes))
        np.add.at(votes, (np.arange(len(similarity))[:, None], labels[nearest]), weights)
        correct.append(np.argmax(votes, axis=1) == eval_labels[start : start + chunk])
    return Accuracy(np.concatenate(correct) if correct else [])


def features(encoder, images, batch_size=1000):
    """The encoder's features of uint8 `images` (adapted to its input shape first), in inference mode."""
    shape = tuple(encoder.input_shape[1:])
    adapt = AdaptImages(shape) if adaptation(images.shape[1:], shape) else None
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        out.append(np.asarray(encoder(adapt(x) if adapt else x, training=False)))
    return np.concatenate(out)


class Downstream:
    """Trains and scores the classifiers of one (budget, seed) cell of the table on `data`."""

    def __init__(self, config, data, strategy, twins=True):
        self.config, self.data, self.strategy = config, data, strategy
        self.twins = twins  # False: every classifier compiled for itself (see _fit)
        self._eval_features = None  # of the pretrained encoder: the same in every cell
        self._tfidf = None  # (vectorizer, eval features) of the text reference: the same in every cell
        self._twins = {}  # role -> (layout, compiled classifier, its optimizer's fresh state): see _fit

    @property
    def reference_model(self):
        """What the reference column is: --reference_model for images, "tfidf_logreg" for texts."""
        return "tfidf_logreg" if self.data.kind == "texts" else self.config.reference_model

    def _classifier(self, encoder):
        """The head on `encoder`, uncompiled: `_fit` trains it."""
        c = self.config
        with self.strategy.scope():
            return classifier_on(
                encoder,
                self.data.num_classes,
                hidden_units=c.head_units,
                dropout=c.head_dropout,
                normalize=c.head_norm,
                image_shape=self.data.image_shape,
            )

    def _compile(self, model, learning_rate, steps):
        # Cosine decay to zero: the weights settle at the end, so BatchNorm's moving
        # statistics catch up with them before the inference-mode evaluation.
        schedule = keras.optimizers.schedules.CosineDecay(learning_rate, decay_steps=steps)
        with self.strategy.scope():
            model.compile(
                optimizer=keras.optimizers.Adam(schedule),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                jit_compile=self.config.jit_compile,
            )

    def _train(self, model, images, labels, steps, seed):
        c = self.config
        ds = labelled_dataset(images, labels, c.transfer_batch_size, seed, augment=c.augment)
        model.fit(ds, steps_per_epoch=steps, epochs=1, shuffle=False, verbose=0)
        with self.strategy.scope():
            recalibrate_batchnorm(model, images)

    def _fit(self, role, model, build, learning_rate, steps, images, labels, seed):
        """Trains `model` (uncompiled) on one labelled draw, in the compiled twin kept for `role`.

        Keras traces a model's training step anew for every model it compiles, and a table trains
        three or four classifiers per cell: tracing took seconds each, as long as a smoke run's steps
        (benchmarks/README.md, "Fewer traces"). So each role (frozen, finetune, scratch, reference)
        compiles one twin, built by `build` the first time, and every cell sets the twin's weights,
        seed states and optimizer state to `model`'s and to fresh ones, trains it, and copies the
        weights back into `model`: the same training as compiling `model` itself, traced once per
        table. A twin is rebuilt when `model`'s layers, the learning rate or the steps differ.
        With `twins=False`, `model` itself is compiled and trained.
        """
        if not self.twins:
            self._compile(model, learning_rate, steps)
            self._train(model, images, labels, steps, seed)
            return model
        layout = _layout(model), learning_rate, steps
        kept = self._twins.get(role)
        if kept is None or kept[0] != layout:
            twin = build()
            if _layout(twin) != layout[0]:
                raise RuntimeError(f"the {role} classifier's twin has other layers than the classifier")
            self._compile(twin, learning_rate, steps)
            with self.strategy.scope():
                twin.optimizer.build(twin.trainable_variables)
            kept = self._twins[role] = (layout, twin, [np.asarray(v) for v in twin.optimizer.variables])
        _, twin, fresh_optimizer = kept
        with self.strategy.scope():
            _assign(twin.variables, model.variables)
            _assign(twin.optimizer.variables, fresh_optimizer)
        self._train(twin, images, labels, steps, seed)
        with self.strategy.scope():
            _assign(model.variables, twin.variables)
        return model

    def evaluate(self, model):
        return accuracy(model, self.data.eval_inputs, self.data.eval_labels)

    def knn(self, encoder, images, labels):
        if self._eval_features is None:
            self._eval_features = features(encoder, self.data.eval_inputs)
        return knn_accuracy(
            features(encoder, images),
            labels,
            self._eval_features,
            self.data.eval_labels,
            self.data.num_classes,
            k=self.config.knn_k,
        )

    def pretrained(self, images, labels, seed, load_pretrained, knn=True):
        """(accuracies, finetuned classifier) of the pretrained columns for one labelled draw: a head
        on the frozen encoder (frozen), then the encoder unfrozen at a lower rate (finetune), and
        with `knn` the k-NN on the frozen features."""
        c = self.config
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            encoder = load_pretrained()
        model = self._classifier(encoder)

        def twin(finetune):
            with self.strategy.scope():
                twin_encoder = load_pretrained()
            if finetune:
                unfreeze_for_finetuning(twin_encoder)
            return self._classifier(twin_encoder)

        self._fit("frozen", model, lambda: twin(False), c.probe_learning_rate, c.transfer_steps, images, labels, seed)
        scores = {"frozen": self.evaluate(model)}
        if knn:
            scores["knn"] = self.knn(encoder, images, labels)

        unfreeze_for_finetuning(encoder)
        rate = c.transfer_learning_rate * c.finetune_lr_factor
        self._fit("finetune", model, lambda: twin(True), rate, c.transfer_steps, images, labels, seed + 1)
        scores["finetune"] = self.evaluate(model)
        return scores, model

    def cell(self, images, labels, seed, load_pretrained, build_scratch):
        """(accuracies, finetuned classifier) for one labelled draw: accuracies of frozen, finetune,
        knn, scratch and (with --reference) reference on the eval split."""
        c = self.config
        scores, model = self.pretrained(images, labels, seed, load_pretrained)
        scores["scratch"] = self.scratch(images, labels, seed, build_scratch)
        if c.reference:
            scores["reference"] = self.reference(images, labels, seed)
        return {k: scores[k] for k in ("frozen", "finetune", "knn", "scratch", "reference") if k in scores}, model

    def reference(self, inputs, labels, seed):
        """Eval accuracy of the reference column on one labelled draw: TF-IDF + logistic regression
        for texts, the zoo's small CNN from scratch for images."""
        if self.data.kind == "texts":
            return self.tfidf_reference(inputs, labels, seed)
        return self.scratch(inputs, labels, seed, self.build_reference, role="reference")

    def build_reference(self):
        """The reference: the zoo's small CNN (--reference_model) for the target's own images."""
        return zoo.build_model(
            self.config.reference_model, image_shape=self.data.image_shape, num_classes=self.data.num_classes
        ).get_layer("encoder")

    def tfidf_reference(self, texts, labels, seed):
        """Eval accuracy of TF-IDF (words and word pairs, fitted on `data.pretrain_inputs()`: the texts
        pretraining reads, in a transfer job the target's train split, in a distillation job its
        train and unlabelled splits; labels never read) + logistic regression on the labelled
        `texts`, its C chosen by stratified cross-validation on them (never on the eval split)."""
        from sklearn.linear_model import LogisticRegression
        from sklearn.model_selection import StratifiedKFold, cross_val_score

        if self._tfidf is None:
            from sklearn.feature_extraction.text import TfidfVectorizer

            unlabelled = [t for batch in self.data.pretrain_inputs().as_numpy_iterator() for t in batch]
            vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, decode_error="replace")
            vectorizer.fit(unlabelled)
            self._tfidf = (vectorizer, vectorizer.transform(list(self.data.eval_inputs)))
        vectorizer, eval_features = self._tfidf
        features = vectorizer.transform(list(texts))
        folds = min(5, int(np.bincount(labels).min()))
        c = 10.0  # a class with one example leaves nothing to validate on
        if folds >= 2:
            split = StratifiedKFold(folds, shuffle=True, random_state=seed)
            scores = {
                c: cross_val_score(LogisticRegression(C=c, max_iter=2000), features, labels, cv=split).mean()
                for c in TFIDF_CS
            }
            c = max(scores, key=scores.get)
        model = LogisticRegression(C=c, max_iter=2000).fit(features, labels)
        return Accuracy(model.predict(eval_features) == self.data.eval_labels)

    def scratch(self, images, labels, seed, build_encoder, role="scratch"):
        """A randomly initialised encoder + the same head, trained end to end with the
        optimizer budget of frozen and finetune together."""
        keras.utils.set_random_seed(seed)
        with self.strategy.scope():
            encoder = build_encoder()
        model = self._classifier(encoder)

        def twin():
            with self.strategy.scope():
                return self._classifier(build_encoder())

        steps = 2 * self.config.transfer_steps
        self._fit(role, model, twin, self.config.transfer_learning_rate, steps, images, labels, seed)
        return self.evaluate(model)


def _layout(model):
    """What a compiled twin must share with `model`: its layers' kinds and trainability, and its
    variables' shapes and dtypes, in order."""
    layers = [(type(layer).__name__, layer.trainable) for layer in walk_layers(model)]
    return layers, [(tuple(v.shape), str(v.dtype)) for v in model.variables]


def _assign(targets, sources):
    """Sets each variable of `targets` to the value of the one at its place in `sources`."""
    targets, sources = list(targets), list(sources)
    assert len(targets) == len(sources), (len(targets), len(sources))
    for target, source in zip(targets, sources):
        target.assign(source.value if isinstance(source, keras.Variable) else source)


def summarise(budget, runs, pairs=None):
    """One row of the table: means, the spread when there are several seeds, and `gains`: each
    (better, worse) pair of `pairs` (by default every pretrained column over scratch and over the
    reference) with its paired 95% interval (`recipes.intervals`), in points."""
    kinds = [k for k in runs[0] if k != "seed"]
    row = {"labels": budget}
    row.update({k: float(np.mean([r[k] for r in runs])) for k in kinds})
    if len(runs) > 1:
        row["std"] = {k: float(np.std([r[k] for r in runs])) for k in kinds}
    if pairs is None:
        pairs = [(p, base) for p in PRETRAINED for base in ("scratch", "reference")]
    gains = {}
    for better, worse in pairs:
        if better in kinds and worse in kinds:
            entry = gain_entry([r[better] for r in runs], [r[worse] for r in runs])
            if entry is not None:
                gains[f"{better}_over_{worse}"] = entry
    if gains:
        row["gains"] = gains
    row["runs"] = runs
    return row


def best_pretrained(row):
    """The pretrained column (frozen, finetune or knn) with the highest mean in `row`."""
    return max((k for k in PRETRAINED if k in row), key=lambda k: row[k])


def verdict(row):
    """One line saying whether pretraining helped at this budget: the best pretrained column over the
    same network from scratch, and over the reference (the small CNN, or for texts TF-IDF) when the
    row has it, each gain with its 95% interval. "helped" only when the interval over scratch lies
    above 0, "hurt" when it lies below, else "no clear difference"."""
    shown = [k for k in ("frozen", "finetune", "knn", "scratch", "reference") if k in row]
    best = best_pretrained(row)
    gains = row.get("gains", {})
    versus = []
    for base in ("scratch", "reference"):
        if base not in row:
            continue
        name = base
        if base == "reference":
            name = "the TF-IDF reference" if row.get("reference_model") == "tfidf_logreg" else "the reference CNN"
        entry = gains.get(f"{best}_over_{base}")
        if entry is None:  # a table without per-example results (older metrics.json)
            versus.append(f"{100 * (row[best] - row[base]):+.1f} points over {name}, no interval")
        else:
            versus.append(describe(entry, name))
    scratch = gains.get(f"{best}_over_scratch")
    said = {"helped": "pretraining helped", "hurt": "pretraining hurt"}.get(word(scratch), "no clear difference")
    scores = ", ".join(f"{k} {row[k]:.1%}" for k in shown)
    return f"N={row['labels']}: {scores} -> {said} ({best} {'; '.join(versus)})"
