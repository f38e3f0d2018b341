import numpy as np

from recipes import figures


def test_mosaic_places_every_image_in_its_cell():
    gray = np.stack([np.full((3, 4, 1), 51 * i, np.uint8) for i in range(1, 4)])  # 3 uint8 images
    colour = np.random.default_rng(0).random((2, 3, 4, 3)).astype(np.float32)  # 2 [0, 1] images
    grid = figures.mosaic([gray, colour], gap=1)
    assert grid.shape == (2 * 3 + 1, 2 * 4 + 1, 3)  # two columns: the shorter row has two images
    for c in range(2):
        left = c * 5
        np.testing.assert_allclose(grid[0:3, left : left + 4], np.full((3, 4, 3), (c + 1) * 51 / 255.0), rtol=1e-6)
        np.testing.assert_allclose(grid[4:7, left : left + 4], colour[c])
    assert (grid[3] == 1.0).all() and (grid[:, 4] == 1.0).all()  # white gaps between the cells


def test_image_rows_draws_the_grid_at_its_size_with_its_labels(tmp_path):
    from matplotlib.image import imread

    images = np.random.default_rng(0).integers(0, 256, (16, 28, 28, 1), dtype=np.uint8)
    figures.image_rows([images[:8], images[8:]], str(tmp_path / "labelled.png"), ["eval", "decoded"])
    figures.image_rows([images[:8], images[8:]], str(tmp_path / "plain.png"))
    labelled, plain = imread(tmp_path / "labelled.png"), imread(tmp_path / "plain.png")
    assert labelled.shape[:2] == plain.shape[:2] == (180, 720)  # 0.9 inch a cell at 100 dpi
    assert plain[..., :3].min() < 0.1 and plain[..., :3].max() > 0.9  # the images are drawn
    assert not np.array_equal(labelled, plain)  # the labels are
