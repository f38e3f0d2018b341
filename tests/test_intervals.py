"""The verdicts' paired intervals: calibrated, paired, over seeds, and what the lines say."""

import json
import pickle

import numpy as np
import pytest

from recipes import distill
from recipes.downstream import summarise, verdict
from recipes.intervals import Accuracy, gain_entry, paired_gain, word


def _scores(rng, p, n):
    return rng.random(n) < p


def test_an_accuracy_is_a_float_that_keeps_its_examples():
    a = Accuracy([True, False, True, True])
    assert a == 0.75 and f"{a:.1%}" == "75.0%" and json.loads(json.dumps({"a": a})) == {"a": 0.75}
    assert a.correct.tolist() == [True, False, True, True]
    again = pickle.loads(pickle.dumps(a))
    assert again == 0.75 and again.correct.tolist() == a.correct.tolist()


def test_a_clear_gain_lies_above_zero_and_noise_does_not():
    rng = np.random.default_rng(0)
    truth = _scores(rng, 0.80, 2000)
    better = truth | _scores(rng, 0.5, 2000)  # right wherever the other is, and on half of the rest
    gain, low, high = paired_gain([Accuracy(better)], [Accuracy(truth)])
    assert gain == pytest.approx(100 * (better.mean() - truth.mean())) and 0 < low < gain < high
    # three images of 360 apart: inside the noise
    worse = np.ones(360, bool)
    worse[:60] = False
    noisy = worse.copy()
    noisy[:3] = True
    entry = gain_entry([Accuracy(noisy)], [Accuracy(worse)])
    assert entry["points"] == round(100 * 3 / 360, 1)  # to the tenth of a point the lines show
    assert entry["ci95"][0] <= 0 and word(entry) == "no clear difference"
    assert word({"points": -2.0, "ci95": [-3.0, -1.0]}) == "hurt"
    assert paired_gain([Accuracy(worse)], [0.5]) is None  # a plain float keeps no examples


def test_the_pairing_narrows_the_interval():
    """Two classifiers that are right on the same hard examples differ by little: paired, the
    interval is a fraction of what two independent samples would give."""
    rng = np.random.default_rng(1)
    a = _scores(rng, 0.7, 1000)
    b = a.copy()
    flip = rng.choice(1000, 20, replace=False)
    b[flip[:15]] = True
    b[flip[15:]] = False
    _, low, high = paired_gain([Accuracy(b)], [Accuracy(a)])
    unpaired = 2 * 1.96 * 100 * np.sqrt(2 * 0.7 * 0.3 / 1000)  # width of an unpaired 95% interval
    assert high - low < unpaired / 3


def test_the_interval_covers_no_difference_about_95_times_in_100():
    """Two classifiers of the same true accuracy: the interval holds 0 in about 95% of the draws."""
    rng = np.random.default_rng(2)
    held = [
        paired_gain([Accuracy(_scores(rng, 0.8, 400))], [Accuracy(_scores(rng, 0.8, 400))], resamples=400, seed=i)
        for i in range(200)
    ]
    coverage = np.mean([low <= 0 <= high for _, low, high in held])
    assert 0.90 <= coverage <= 0.99, coverage


def test_with_several_seeds_the_seeds_spread_widens_the_interval():
    """Seeds that disagree (one draw +6 points, another -6) give no clear difference, although each
    seed alone is clear on its examples."""
    rng = np.random.default_rng(3)
    base = [_scores(rng, 0.8, 1500) for _ in range(3)]
    better, worse = [], []
    for k, sign in enumerate((+1, -1, +1)):
        a, b = base[k].copy(), base[k].copy()
        wrong = np.flatnonzero(~b)[:90] if sign > 0 else np.flatnonzero(~a)[:90]
        (a if sign > 0 else b)[wrong] = True
        better.append(Accuracy(a))
        worse.append(Accuracy(b))
    assert paired_gain(better[:1], worse[:1])[1] > 0 and paired_gain(better[1:2], worse[1:2])[2] < 0
    _, low, high = paired_gain(better, worse)
    assert low < 0 < high


def _row(finetune_right, scratch_right, reference_right, n=400, seeds=1):
    runs = []
    for s in range(seeds):
        cell = {}
        for name, right in (("frozen", 0), ("finetune", finetune_right), ("scratch", scratch_right)):
            correct = np.zeros(n, bool)
            correct[:right] = True
            cell[name] = Accuracy(correct)
        correct = np.zeros(n, bool)
        correct[n - reference_right :] = True  # right on other examples than the rest
        cell["reference"] = Accuracy(correct)
        runs.append({"seed": s, **cell})
    return summarise(100, runs)


def test_the_verdict_says_helped_only_when_the_interval_lies_above_zero():
    helped = _row(finetune_right=360, scratch_right=300, reference_right=350)
    line = verdict(helped)
    assert "-> pretraining helped (finetune +15.0 points over scratch, 95% CI +" in line, line
    assert "; +2.5 points over the reference CNN, 95% CI -" in line, line
    assert helped["gains"]["finetune_over_scratch"]["ci95"][0] > 0
    assert set(helped["gains"]) == {f"{p}_over_{b}" for p in ("frozen", "finetune") for b in ("scratch", "reference")}
    # the same line from the row as metrics.json holds it
    assert verdict(json.loads(json.dumps(helped))) == line

    tie = verdict(_row(finetune_right=302, scratch_right=300, reference_right=300))
    assert "-> no clear difference (finetune +0.5 points over scratch, 95% CI +0.0 to +1.2" in tie, tie
    hurt = verdict(_row(finetune_right=250, scratch_right=300, reference_right=300))
    assert "-> pretraining hurt (finetune -12.5 points over scratch" in hurt, hurt


def test_a_row_without_examples_gives_no_interval_and_no_claim():
    row = {"labels": 100, "frozen": 0.5, "finetune": 0.9, "scratch": 0.6}
    assert verdict(row).endswith("-> no clear difference (finetune +30.0 points over scratch, no interval)")


def test_the_students_line_gives_its_interval():
    n = 400
    runs = []
    for s in range(2):
        teacher, student = np.zeros(n, bool), np.zeros(n, bool)
        teacher[:300], student[:340] = True, True
        runs.append(
            {"seed": s, "teacher": Accuracy(teacher), "student": Accuracy(student), "scratch": Accuracy(teacher)}
        )
    row = summarise(100, runs, pairs=distill.GAINS)
    assert set(row["gains"]) == {"student_over_teacher", "student_over_scratch", "teacher_over_scratch"}
    line = distill.gap_closed(row)
    assert "-> the student beat its teacher (+10.0 points over the teacher, 95% CI +" in line, line
