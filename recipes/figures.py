"""PNG figures a person would rather look at than read.

Figures are drawn with matplotlib's object API (`Figure`, not `pyplot`): no
display is needed, and importing this module leaves the caller's backend alone
(a notebook's inline plots keep working).
"""

import numpy as np
from matplotlib.figure import Figure

GAP = 2  # white pixels between the cells of an image grid


def _subplots(rows=1, columns=1, **kwargs):
    fig = Figure(figsize=kwargs.pop("figsize", None))
    return fig, fig.subplots(rows, columns, **kwargs)


def _save(fig, path):
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def training_curves(rows, path, title="Pretraining"):
    """One panel per metric, train and validation per epoch; `rows` are per-epoch dicts."""
    names = [k for k in rows[0] if k != "epoch" and not k.startswith("val_")] if rows else []
    fig, axes = _subplots(1, max(len(names), 1), figsize=(4 * max(len(names), 1), 3), squeeze=False)
    epochs = [r["epoch"] + 1 for r in rows]
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, [r[name] for r in rows], marker="o", label="train")
        if f"val_{name}" in rows[0]:
            ax.plot(epochs, [r[f"val_{name}"] for r in rows], marker="o", label="eval")
        ax.set(title=name, xlabel="epoch")
        ax.legend()
    fig.suptitle(title)
    _save(fig, path)


def mosaic(rows, gap=GAP):
    """The images of `rows` (arrays of N x H x W x C, uint8 or [0, 1] floats) as one float image in
    [0, 1]: one row of cells per array, as many columns as the shortest has images, cells `gap`
    white pixels apart; gray cells in a colour mosaic are repeated over the channels."""
    n = min(len(r) for r in rows)
    cells = [[np.asarray(images[c], dtype=np.float32) for c in range(n)] for images in rows]
    cells = [[image / 255.0 if image.max() > 1.0 else image for image in row] for row in cells]
    every = [image for row in cells for image in row]
    height, width = max(i.shape[0] for i in every), max(i.shape[1] for i in every)
    grid = np.ones((len(rows) * (height + gap) - gap, n * (width + gap) - gap, max(i.shape[-1] for i in every)))
    for r, row in enumerate(cells):
        for c, image in enumerate(row):
            top, left = r * (height + gap), c * (width + gap)
            grid[top : top + image.shape[0], left : left + image.shape[1]] = image
    return grid.astype(np.float32)


def image_rows(rows, path, labels=None):
    """A grid: one row per array of images (N x H x W x C, uint8 or [0, 1] floats), `labels` beside
    the rows. Drawn as one image (`mosaic`): one axes per image took matplotlib 0.5-0.8 s for a
    64-image grid, a cost the DCGAN paid each epoch."""
    grid = mosaic(rows)
    n = min(len(r) for r in rows)
    fig, ax = _subplots(figsize=(n * 0.9, len(rows) * 0.9))
    ax.imshow(grid[..., 0] if grid.shape[-1] == 1 else grid, cmap="gray", vmin=0, vmax=1, interpolation="nearest")
    ax.set_xticks([])
    pitch = (grid.shape[0] + GAP) / len(rows)  # a row of cells and the gap below it
    ax.set_yticks([r * pitch + (pitch - GAP - 1) / 2 for r in range(len(rows))] if labels else [])
    if labels:
        ax.set_yticklabels(labels)
        ax.tick_params(axis="y", length=0)
    for side in ax.spines.values():
        side.set_visible(False)
    _save(fig, path)


def interpolation(generate, ends, path, steps=10):
    """One row per pair of latent vectors in `ends` (2k x d): `generate` along the straight line between them."""
    t = np.linspace(0.0, 1.0, steps, dtype=np.float32)[:, None]
    ends = np.asarray(ends, np.float32)
    image_rows([np.asarray(generate((1 - t) * a + t * b)) for a, b in zip(ends[0::2], ends[1::2])], path)


def transfer_plot(table, path, title, kinds=("frozen", "finetune", "knn", "scratch", "reference")):
    """Eval accuracy against label budget, one line per column of the table in `kinds` (mean +- std)."""
    fig, ax = _subplots(figsize=(5, 3.5))
    budgets = [row["labels"] for row in table]
    for kind in [k for k in kinds if k in table[0]]:
        means = [row[kind] for row in table]
        stds = [row.get("std", {}).get(kind, 0.0) for row in table]
        ax.errorbar(budgets, means, yerr=stds, marker="o", capsize=3, label=kind)
    ax.set(xscale="log", xlabel="labelled examples", ylabel="eval accuracy", title=title)
    ax.legend()
    _save(fig, path)


def confusion_matrix(labels, predicted, names, path):
    """Counts of (true, predicted) pairs on the eval split."""
    k = len(names)
    counts = np.zeros((k, k), np.int64)
    np.add.at(counts, (labels, predicted), 1)
    fig, ax = _subplots(figsize=(0.5 * k + 2, 0.5 * k + 1.5))
    ax.imshow(counts, cmap="Blues")
    for (i, j), n in np.ndenumerate(counts):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7, color="white" if n > counts.max() / 2 else "black")
    ax.set(
        xticks=range(k),
        yticks=range(k),
        xticklabels=names,
        yticklabels=names,
        xlabel="predicted",
        ylabel="true",
        title=f"eval accuracy {np.trace(counts) / counts.sum():.1%}",
    )
    _save(fig, path)


def titled_images(images, titles, path, columns=8):
    """A grid of images, each with a title (e.g. 'true→predicted')."""
    n = max(len(images), 1)
    columns = min(columns, n)
    rows = (n + columns - 1) // columns
    fig, axes = _subplots(rows, columns, figsize=(max(columns * 1.1, 2.0), rows * 1.3), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, title in zip(axes.flat, images, titles):
        ax.imshow(image[..., 0] if image.shape[-1] == 1 else image, cmap="gray", vmin=0, vmax=255)
        ax.set_title(title, fontsize=8)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "no mistakes", ha="center")
    _save(fig, path)


def feature_scatter(features, labels, path, title="", seed=0):
    """Feature vectors coloured by label: as they are in 2-D, else their first two principal components."""
    features = np.asarray(features, np.float32)
    if features.shape[1] == 1:
        features = np.concatenate([features, np.zeros_like(features)], axis=1)
    if features.shape[1] == 2:
        latent_scatter(features, labels, path, ("z[0]", "z[1]"), title)
        return
    from sklearn.decomposition import PCA

    pca = PCA(n_components=2, random_state=seed).fit(features)
    axes = tuple(f"PC{i + 1} ({v:.0%} of variance)" for i, v in enumerate(pca.explained_variance_ratio_))
    latent_scatter(pca.transform(features), labels, path, axes, title)


def latent_scatter(points, labels, path, axes=("z[0]", "z[1]"), title=""):
    """2-D points coloured by label."""
    fig, ax = _subplots(figsize=(5, 4.5))
    scatter = ax.scatter(points[:, 0], points[:, 1], c=labels, cmap="tab10", s=6, alpha=0.8)
    ax.legend(*scatter.legend_elements(), title="label", fontsize=7, loc="best", markerscale=0.8)
    ax.set(xlabel=axes[0], ylabel=axes[1], title=title)
    _save(fig, path)


def text_table(rows, path, title="", columns=("word", "nearest words")):
    """A table of short texts as a figure: `rows` are tuples of strings, one per column."""
    fig, ax = _subplots(figsize=(10, 0.4 * len(rows) + 1))
    ax.axis("off")
    if rows:
        table = ax.table(cellText=[list(r) for r in rows], colLabels=list(columns), loc="center", cellLoc="left")
        table.auto_set_column_width(list(range(len(columns))))
        table.scale(1, 1.4)
    ax.set_title(title)
    _save(fig, path)
