"""Label distillation: a teacher fine-tuned on N labels labels the whole train split (and the
unlabelled split, where the dataset has one), and a noisy student learns from those labels and the N
true ones (Hinton et al. 2015, "Distilling the knowledge in a neural network"; Xie et al. 2020,
"Self-training with Noisy Student").

    python -m recipes.distill --teacher_dir=runs/simclr --model_dir=runs/distill
    python -m recipes.distill --teacher_dir=runs/simclr --model_dir=runs/distill \\
        --teacher_views=4 --confidence=0.9 --rounds=2

For each label budget and seed:

1. the teacher: the encoder of --teacher_dir (the model_dir of any recipe's run, any family),
   fine-tuned on the N labelled examples exactly as the transfer table's finetune column is;
2. pseudo-labels: the teacher's predictions on every image of the train split and of
   --unlabelled_split (auto: the dataset's 'unsupervised' split, as IMDB's; their labels are never
   read), averaged over --teacher_views views (the clean image and augmented ones), only where its
   top probability is at least --confidence; soft (its distribution) or hard (its top class);
3. the student: --student (any registered zoo model; auto: cnn_classifier_flat for images, word2vec
   for texts) from random weights, trained on the pseudo-labelled pool and the N true labels by the
   distillation loss at --distill_temperature, with noise on the student only (augmentation of
   images, dropout); --rounds=K makes each student the next teacher.

Texts distil the same way: a text teacher (a word2vec or masked_lm run) on a text dataset labels the
train and unlabelled texts, and a text student, which tokenises with the teacher's vocabulary and
word weights, learns from them (one view, no augmentation); the reference column is TF-IDF +
logistic regression, as in the text transfer table:

    python -m recipes.distill --teacher_dir=runs/word2vec --dataset=imdb_local \
        --manual_dir=aclImdb_v1.tar.gz --model_dir=runs/distill-text

The table per budget: teacher, pseudo_labels (their accuracy on the train split: its true labels are
read for this figure only), student, scratch (the student's architecture trained the same way on the
N labels alone), reference (the zoo's small CNN, as in every transfer table; TF-IDF for texts) and
ceiling (the student's architecture trained on every true label of the train split).

The artifact is a zoo artifact like any recipe's: the student of the largest budget's first seed as
`encoder/` + `encoder.keras` (reloadable the three ways; an --encoder_dir for recipes.transfer) and
`model/` (endpoint `serve`: uint8 images in, logits out) + `model.keras`; manifest.json names the
teacher run; metrics.json, figures/distill.png, flags.txt.

From Python or a notebook:

    from recipes import distill
    metrics = distill.run(distill.Config(teacher_dir="runs/simclr", model_dir="runs/distill"))
"""

import dataclasses
import math
import os
import time

import keras
import numpy as np

import zoo
from recipes import figures, flow
from recipes.config import TransferConfig, new_default, option
from recipes.data import augment_uint8, augmenter, labelled_dataset
from recipes.downstream import Downstream, recalibrate_batchnorm, summarise
from recipes.intervals import describe, word
from recipes.transfer import from_saved_run
from zoo.errors import ZooError
from zoo.heads import classifier_on

MODULE = "recipes.distill"
COLUMNS = ("teacher", "pseudo_labels", "student", "scratch", "reference", "ceiling")
# The gains a row gives with their paired 95% intervals (recipes.intervals).
GAINS = (("student", "teacher"), ("student", "scratch"), ("student", "reference"), ("teacher", "scratch"))
# A hard label as logits: softmax(HARD_LOGIT * one_hot / T) is one-hot in float32 for any T <= 100.
HARD_LOGIT = 1e4


@dataclasses.dataclass
class Config(TransferConfig):
    teacher_dir: str = option(
        "",
        "model_dir of a finished run of any recipe: its encoder, fine-tuned on each budget's labels, is the teacher.",
        nonempty=True,
    )
    model_dir: str = new_default("model_dir", "runs/distill")
    student: str = option(
        "auto",
        "The student: a registered zoo model (zoo.list_models()) from random weights; a cnn_classifier "
        "model is used whole, any other's encoder gets a --head_units head. auto: cnn_classifier_flat for "
        "images, word2vec for texts.",
        nonempty=True,
    )
    distill_temperature: float = option(
        1.0,
        "Temperature of the distillation loss: teacher and student logits are divided by it "
        "(above 1: softer pseudo-labels), the loss scaled by its square.",
        positive=True,
        maximum=100,
    )
    pseudo_labels: str = option(
        "soft", "soft: the teacher's distribution; hard: its top class.", choices=("soft", "hard")
    )
    confidence: float = option(
        0.0, "Keep only pool images whose teacher probability of its top class is at least this.", minimum=0, below=1
    )
    teacher_views: int = option(
        1,
        "Average the teacher's probabilities over this many views: the clean image, then augmented ones (images only).",
        minimum=1,
    )
    rounds: int = option(1, "Rounds of distillation: each round's student is the next round's teacher.", minimum=1)
    unlabelled_split: str = option(
        "auto",
        "Split of unlabelled examples the teacher also labels for the students, beside --train_split "
        "(auto: the dataset's 'unsupervised' split when it has one, as imdb_reviews does; empty: none).",
    )
    student_epochs: int = option(20, "Epochs over the pool for each student.", minimum=1)
    student_batch_size: int = option(128, "Batch size of the students.", minimum=1)
    student_learning_rate: float = option(2e-3, "Adam learning rate of the students (cosine decay).", positive=True)
    student_augment: bool = option(
        True, "Random translation/rotation/zoom on the student's images (its noise); texts are not augmented."
    )
    ceiling: bool = option(
        True, "Also train the student's architecture on every true label of the train split (the ceiling column)."
    )


def distillation_loss(temperature):
    """loss(teacher_logits, student_logits): Hinton et al.'s KL divergence between the softmaxes of
    both at `temperature`, times its square, by Keras' `LogitsDistillation`.

    Keras' `Distiller` is not used: it runs the teacher on the student's own (augmented) batch at
    every step, while here the teacher labels each clean image once (averaged over views, filtered by
    confidence, scored for the table) and labelled and pseudo-labelled images share batches. The loss
    is given as a `KLDivergence` instance: the default string "kl_divergence" resolves to a function,
    which `LogitsDistillation` (Keras 3.15) applies to the logits without their softmax.
    """
    loss = keras.distillation.LogitsDistillation(temperature=temperature, loss=keras.losses.KLDivergence())

    def distillation(teacher_logits, student_logits):
        return loss.compute_loss(teacher_logits, student_logits)

    return distillation


def hard_logits(labels, num_classes):
    """Labels as teacher logits that are one-hot at any temperature."""
    return (HARD_LOGIT * np.eye(num_classes, dtype=np.float32)[labels]).astype(np.float32)


def teacher_log_probs(teacher, images, views=1, seed=0, batch_size=1000):
    """log of the teacher's class probabilities for each of `images`, averaged over `views` views:
    the clean image, then augmented ones. Only images are given: no label can leak in."""
    augment = [augment_uint8(augmenter(seed + 10 * v)) for v in range(1, views)]
    out = []
    for start in range(0, len(images), batch_size):
        x = images[start : start + batch_size]
        probs = keras.ops.softmax(teacher(x, training=False))
        for aug in augment:
            probs += keras.ops.softmax(teacher(aug(x, None)[0], training=False))
        out.append(np.asarray(probs, np.float64) / views)
    return np.log(np.maximum(np.concatenate(out), 1e-30)).astype(np.float32)


def pseudo_targets(log_probs, hard=False, confidence=0.0):
    """(targets as teacher logits, mask of the images kept) from the teacher's log-probabilities."""
    keep = np.exp(log_probs).max(axis=1) >= confidence
    if hard:
        return hard_logits(np.argmax(log_probs, axis=1), log_probs.shape[1]), keep
    return np.maximum(log_probs, -HARD_LOGIT), keep


def student_name(config, data):
    """--student with auto resolved: cnn_classifier_flat for images, word2vec (the mean of word vectors,
    fast to train from random weights) for texts."""
    if config.student != "auto":
        return config.student
    return "word2vec" if data.kind == "texts" else "cnn_classifier_flat"


def student_config(config, data, tokens=None):
    """The student builder's full keyword arguments for `data`; a text student's vocabulary size is
    that of the teacher's vocabulary (`tokens`: `flow.tokenisation` of the teacher), and a word2vec
    student holds as many word pairs as the teacher. An unknown
    --student, or one that reads the other kind of input, is one line."""
    name = student_name(config, data)
    try:
        entry = zoo.get_entry(name)
    except ZooError as e:
        raise ZooError(f"--student={name}: {e}") from None
    if entry.inputs != data.kind:
        raise ZooError(
            f"--student={name} reads {entry.inputs}, but --dataset={data.name} holds {data.kind}: "
            f"give a student of {data.kind}"
        )
    if data.kind == "texts":
        given = {"vocab_size": len(tokens["vocabulary"])} if tokens else {}
        if tokens and "word_pairs" in tokens and "pairs" in entry.config():
            given["pairs"] = len(tokens["word_pairs"])  # the teacher's word pairs, in the same places
        return entry.config(**given)
    given = {"num_classes": data.num_classes} if "num_classes" in entry.config() else {}
    return entry.config(image_shape=tuple(data.image_shape), **given)


def build_student(run):
    """The student classifier from random weights: a cnn_classifier model whole, any other model's
    encoder with a --head_units head (dropout --head_dropout); a text encoder tokenises with the
    teacher's vocabulary and word weights (`run.state["tokenisation"]`)."""
    c = run.config
    with run.strategy.scope():
        if "num_classes" in run.model_config:
            return zoo.build_model(student_name(c, run.target), **run.model_config)
        return classifier_on(
            flow.fresh_encoder(student_name(c, run.target), run.model_config, run.state.get("tokenisation")),
            run.target.num_classes,
            hidden_units=c.head_units,
            dropout=c.head_dropout,
            normalize=c.head_norm,
            name="student",
        )


def train_student(run, model, images, targets, steps, seed, temperature, callbacks=()):
    """Fit `model` to teacher logits `targets` by the distillation loss, `steps` steps over
    --student_epochs epochs with the student's augmentation (and Keras `callbacks`); returns its
    training images/s."""
    c = run.config
    epochs = min(c.student_epochs, steps)
    augment = c.student_augment and run.target.kind == "images"
    ds = labelled_dataset(images, targets, c.student_batch_size, seed, augment=augment)
    with run.strategy.scope():
        model.compile(
            optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(c.student_learning_rate, steps)),
            loss=distillation_loss(temperature),
            jit_compile=c.jit_compile,
        )
    per_epoch = math.ceil(steps / epochs)
    throughput = flow.Throughput(per_epoch * min(c.student_batch_size, len(images)))
    callbacks = [throughput, *callbacks]
    model.fit(ds, steps_per_epoch=per_epoch, epochs=epochs, shuffle=False, verbose=0, callbacks=callbacks)
    with run.strategy.scope():
        recalibrate_batchnorm(model, images)
    return throughput.images_per_second()


def student_steps(config, num_pool, budget):
    """The optimizer steps of every student of a budget: --student_epochs over the pool and the labels."""
    return config.student_epochs * math.ceil((num_pool + budget) / config.student_batch_size)


def fine_tuned_teacher(run, downstream, images, labels, seed):
    """(teacher classifier, its eval accuracy): --teacher_dir's encoder fine-tuned on one labelled draw
    as the transfer table's finetune column is."""
    scores, teacher = downstream.pretrained(
        images, labels, seed, lambda: zoo.load_encoder(run.config.teacher_dir, trainable=False), knn=False
    )
    flow.say(f"  N={len(labels)} seed={seed}: teacher (fine-tuned) {scores['finetune']:.1%}")
    return teacher, scores["finetune"]


def distill_cell(run, downstream, pool, images, labels, seed):
    """(accuracies, student of the last round) for one labelled draw: teacher, pseudo-labels, student
    (each round's too when there are several) and scratch."""
    c, data = run.config, run.target
    teacher, accuracy = fine_tuned_teacher(run, downstream, images, labels, seed)
    cell, student = students(run, downstream, teacher, pool, images, labels, seed)
    keras.utils.set_random_seed(seed)
    scratch = build_student(run)
    steps = student_steps(c, len(pool), len(labels))
    train_student(run, scratch, images, hard_logits(labels, data.num_classes), steps, seed, 1.0)
    cell = {"teacher": accuracy, **cell, "scratch": downstream.evaluate(scratch)}
    if c.reference:
        cell["reference"] = downstream.reference(images, labels, seed)
    return cell, student


def students(run, downstream, teacher, pool, images, labels, seed):
    """({pseudo_labels, student, ...}, the last student): --rounds rounds from `teacher`, each
    round's student teaching the next."""
    c, data = run.config, run.target
    n, steps = len(labels), student_steps(c, len(pool), len(labels))
    cell = {}
    for r in range(1, c.rounds + 1):
        log_probs = teacher_log_probs(teacher, pool, c.teacher_views, seed)
        targets, keep = pseudo_targets(log_probs, c.pseudo_labels == "hard", c.confidence)
        # The pool's true labels (of its train split part) are read here, after the pseudo-labels are
        # fixed, for the table only.
        labelled = len(data.train_labels)
        pseudo = float(np.mean(np.argmax(log_probs[:labelled], axis=1) == data.train_labels))
        keras.utils.set_random_seed(seed + r)
        student = build_student(run)
        speed = train_student(
            run,
            student,
            np.concatenate([pool[keep], images]),
            np.concatenate([targets[keep], hard_logits(labels, data.num_classes)]),
            steps,
            seed + r,
            c.distill_temperature,
        )
        accuracy = downstream.evaluate(student)
        flow.say(
            f"  N={n} seed={seed} round {r}: pseudo-labels {pseudo:.1%} right on the train split "
            f"({keep.mean():.0%} of the pool kept), student {accuracy:.1%} ({speed or 0:,.0f} examples/s)"
        )
        if r == 1:
            cell.update(pseudo_labels=pseudo, kept=float(keep.mean()), student_images_per_second=speed)
        if c.rounds > 1:
            cell.update({f"pseudo_labels_{r}": pseudo, f"student_{r}": accuracy})
        cell["student"], teacher = accuracy, student
    return cell, student


def ceiling(run, downstream, pool, pool_labels, seed):
    """The student's architecture trained on every true label of the train split, as a student is."""
    keras.utils.set_random_seed(seed)
    model = build_student(run)
    steps = student_steps(run.config, len(pool), 0)
    train_student(run, model, pool, hard_logits(pool_labels, run.target.num_classes), steps, seed, 1.0)
    return downstream.evaluate(model)


def distill_table(run, subsets, pool):
    """The table (one row per budget, mean and spread over seeds) and the kept student with its
    description: the largest budget's first seed."""
    c = run.config
    budgets, seeds = sorted({n for n, _ in subsets}), sorted({seed for _, seed in subsets})
    flow.say(f"  distillation: {len(budgets)} budgets x {len(seeds)} seeds x {c.rounds} round(s), pool {len(pool)}")
    downstream = Downstream(c, run.target, run.strategy)
    ceilings, table, kept = {}, [], None
    for n in budgets:
        runs = []
        for seed in seeds:
            images, labels = subsets[(n, seed)]
            cell, student = distill_cell(run, downstream, pool, images, labels, seed)
            if c.ceiling:
                if seed not in ceilings:  # the ceiling reads every true label of the split
                    train = pool[: len(run.target.train_labels)]
                    ceilings[seed] = ceiling(run, downstream, train, run.target.train_labels, seed)
                    flow.say(f"  seed={seed}: ceiling (every true label) {ceilings[seed]:.1%}")
                cell["ceiling"] = ceilings[seed]
            if n == max(budgets) and kept is None:
                kept = (student, {"labels": n, "seed": seed, "eval_accuracy": cell["student"], "rounds": c.rounds})
            runs.append({"seed": seed, **cell})
        row = summarise(n, runs, pairs=GAINS)
        if "reference" in row:
            row["reference_model"] = downstream.reference_model
        table.append(row)
    figures.transfer_plot(
        table, run.stage / "figures/distill.png", f"{c.student} taught by {c.teacher_dir}", kinds=COLUMNS
    )
    return table, kept


def gap_closed(row):
    """One line: the columns, whether the student beat its teacher (with the gain's 95% interval:
    "beat" only when it lies above 0, "fell below" when below 0, else "no clear difference from"),
    and how much of the gap between teacher and ceiling the student closed."""
    shown = ", ".join(f"{k} {row[k]:.1%}" for k in COLUMNS if k in row)
    line = f"N={row['labels']}: {shown}"
    entry = row.get("gains", {}).get("student_over_teacher")
    verdict = word(entry, above="beat", below="fell below", neither="showed no clear difference from")
    if entry is None:  # a table without per-example results (older metrics.json)
        gain = round(100 * (row["student"] - row["teacher"]), 1) + 0.0  # as shown (+ 0.0: never "-0.0")
        line += f" -> the student {verdict} its teacher ({gain:+.1f} points, no interval)"
    else:
        line += f" -> the student {verdict} its teacher ({describe(entry, 'the teacher')})"
    if "ceiling" in row:
        gap = row["ceiling"] - row["teacher"]
        if gap > 0:
            closed = round(100 * (row["student"] - row["teacher"]) / gap)  # an int: never "-0"
            line += f" and closed {closed}% of the gap to the ceiling"
        else:
            line += " (the teacher is at or above the ceiling)"
    return line


def pool_inputs(data):
    """What the teacher labels: the train split's inputs, then the unlabelled split's (if any), in
    the splits' order; no label is read."""
    pool = data.train_inputs()
    return np.concatenate([pool, data.unlabelled_inputs()]) if data.unlabelled_split else pool


def check_pool(config, data, largest):
    """Distillation needs examples beyond the `largest` budget's labelled ones (the unlabelled split's
    count); one line if there are none."""
    if data.num_train + (data.num_unlabelled if data.unlabelled_split else 0) <= largest:
        raise ZooError(
            f"--train_split={config.train_split} has {data.num_train} {data.kind}, no more than the {largest} "
            f"labelled ones: distillation needs unlabelled {data.kind}; use a larger split or a smaller --label_budgets"
        )


def run(config: Config) -> dict:
    """The distillation table of `config.teacher_dir`'s encoder on `config.dataset`, and the student
    artifact; returns metrics.json's content."""
    start = time.time()
    config.validate()
    config, strategy, manifest, encoder, data, adapted = from_saved_run(
        config, config.teacher_dir, "teacher_dir", "distill"
    )
    tokens = flow.tokenisation(encoder)  # a text teacher's: the students tokenise with it
    model_config = student_config(config, data, tokens)
    config = config.replace(student=student_name(config, data))
    if data.kind == "texts":
        if config.teacher_views > 1:
            raise ZooError(
                f"--teacher_views={config.teacher_views}: the extra views are augmented images, but "
                f"--dataset={data.name} holds texts; use --teacher_views=1"
            )
        flow.say(
            f"[distill] student: {config.student}, from random weights, with the teacher's vocabulary and word weights"
        )
    else:
        flow.say(f"[distill] student: {config.student}, from random weights")
    subsets = flow.labelled_draws(config, data, "distill")
    check_pool(config, data, max(n for n, _ in subsets))
    ctx = flow.Run(config, data, data, strategy, flow.resolve_precision(config.precision), model_config)
    ctx.state["tokenisation"] = tokens
    flow.say(f"[distill] precision {ctx.precision}{' (auto)' if config.precision == 'auto' else ''}")
    ctx.stage = flow.open_stage(ctx, MODULE)

    keras.utils.set_random_seed(config.seed)
    with flow.precision(ctx.precision):
        pool = pool_inputs(data)
        table, (student, kept) = distill_table(ctx, subsets, pool)
        flow.say(f"[distill] exporting the student (N={kept['labels']}, seed {kept['seed']}) to {config.model_dir}")
        flow.export_models(
            ctx.stage,
            student,
            student.get_layer("encoder"),
            data.input_spec(),
            {"serve": (lambda inputs: student(inputs, training=False), [data.input_spec()])},
        )
    flow.write_manifest(
        ctx,
        "distill",
        MODULE,
        data,
        model=config.student,
        model_config=model_config,
        teacher={
            "path": os.path.abspath(config.teacher_dir),
            "family": manifest["family"],
            "model": manifest["model"],
            "dataset": manifest["dataset"]["name"],
            "adapted": adapted,
        },
        student={**kept, "endpoint": "serve", "outputs": "logits"},
        encoder={
            "output_dim": int(student.get_layer("encoder").output_shape[-1]),
            "endpoint": "serve",
            "features": f"the {config.student} student's encoder features",
        },
    )
    return flow.finish(ctx, "distill", {"distill": table}, start, table="distill", line=gap_closed)


if __name__ == "__main__":
    flow.cli(run, Config)
