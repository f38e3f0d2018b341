"""Paired intervals for the difference between two classifiers scored on the same eval examples.

A verdict that reads "helped" whenever one mean beats another flips with the draw: on 360 eval
images one image is 0.3 points. Every accuracy of a table is therefore kept with which eval
examples it got right (`Accuracy`), and the gain of one column over another is given with a 95%
interval from a paired bootstrap: the eval examples are resampled (the same resample for both
columns, so what they get right together cancels), and with several seeds the seeds are resampled
too (a two-level bootstrap), so the interval holds the spread of the draws and of the examples.
"""

import numpy as np

LEVEL = 0.95
RESAMPLES = 2000
_CHUNK = 100  # resamples computed at once (a chunk holds chunk x examples indices)


class Accuracy(float):
    """An eval accuracy that remembers which eval examples were right (`correct`, booleans in the
    eval split's order), so two accuracies on the same examples compare pair by pair. It is a float
    everywhere else (arithmetic, formatting, JSON)."""

    def __new__(cls, correct):
        correct = np.array(correct, dtype=bool)  # a copy, read-only: the caller's array may change
        if correct.ndim != 1:
            raise TypeError(f"Accuracy takes one boolean per eval example, not an array of shape {correct.shape}")
        correct.setflags(write=False)
        value = super().__new__(cls, float(correct.mean()) if correct.size else 0.0)
        value.correct = correct
        return value

    def __reduce__(self):
        return (Accuracy, (self.correct,))


def paired_gain(better, worse, resamples=RESAMPLES, level=LEVEL, seed=0):
    """(gain, low, high) in points: the mean of `better` minus the mean of `worse` over seeds, and
    the `level` bootstrap percentile interval of that difference.

    Args:
      better, worse: one `Accuracy` per seed each, in the same seed order, every one scored on the
        same eval examples.
      resamples: bootstrap resamples; `seed` makes the interval reproducible.

    With one seed the eval examples are resampled; with several, the seeds and the examples (each
    resample draws seeds with replacement and one resample of the examples that every drawn seed
    shares). Returns None when an accuracy does not know its examples (a table read from JSON).
    """
    if not better or len(better) != len(worse):
        return None
    if not all(isinstance(a, Accuracy) for a in (*better, *worse)):
        return None
    sizes = {a.correct.size for a in (*better, *worse)}
    if len(sizes) != 1 or 0 in sizes:
        return None
    # (seeds, examples): +1 where only `better` is right, -1 where only `worse` is
    diff = np.stack([a.correct.astype(np.int8) - b.correct.astype(np.int8) for a, b in zip(better, worse)])
    seeds, examples = diff.shape
    rng = np.random.default_rng(seed)
    stats = []
    for start in range(0, resamples, _CHUNK):
        count = min(_CHUNK, resamples - start)
        picks = rng.integers(0, examples, (count, examples))
        per_seed = diff[:, picks].mean(axis=2, dtype=np.float64)  # (seeds, count)
        if seeds > 1:
            drawn = rng.integers(0, seeds, (count, seeds))
            stats.append(np.take_along_axis(per_seed.T, drawn, axis=1).mean(axis=1))
        else:
            stats.append(per_seed[0])
    stats = np.concatenate(stats)
    tail = 100 * (1 - level) / 2
    low, high = np.percentile(stats, [tail, 100 - tail])
    return 100 * float(diff.mean()), 100 * float(low), 100 * float(high)


def gain_entry(better, worse, **kwargs):
    """{"points", "ci95": [low, high]} of `paired_gain`, rounded to the tenth of a point the lines show
    (so a verdict never rests on a digit it does not print); None without one."""
    gain = paired_gain(better, worse, **kwargs)
    if gain is None:
        return None
    points, low, high = (round(v, 1) + 0.0 for v in gain)  # + 0.0: never -0.0
    return {"points": points, "ci95": [low, high]}


def word(entry, above="helped", below="hurt", neither="no clear difference"):
    """`above` when the interval lies above 0, `below` when below, else `neither` (also without one)."""
    if entry is None:
        return neither
    low, high = entry["ci95"]
    return above if low > 0 else below if high < 0 else neither


def describe(entry, versus):
    """'+3.1 points over scratch, 95% CI +1.2 to +5.0'."""
    low, high = entry["ci95"]
    return f"{entry['points']:+.1f} points over {versus}, 95% CI {low:+.1f} to {high:+.1f}"
