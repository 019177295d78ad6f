"""Issue 17 item 6: the robust scaling must not treat the rare values of sparse columns as outliers.

The scaling of the round before shrank the SD of MNIST's border pixels (rare nonzero values left out as
"gross outliers"), standardised values reached ~6,000 and nvae's generated digits lost their worth as
training data (0.94x -> 0.74x real). These tests guard the rule and the quality result.

``mnist_like_digits`` makes scikit-learn's 8x8 digits look like MNIST: upsampled to 16x16 (cubic, as
images are resampled), 8-bit grey levels 0-255, centred in a 24x24 canvas, 5 % of them displaced at
random, so that the canvas border holds rare strokes of faint and full values, as MNIST's does. Plain
``load_digits()`` does not show the bug: its pixels are not sparse enough.
"""

import logging

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from archetool.data.prepare import robust_standardisation


def mnist_like_digits(seed: int = 0, canvas: int = 24, displaced: float = 0.05):
    """(x (1797, canvas^2) float32 grey levels 0-255, y (1797,) str labels 'd0'..'d9')."""
    from scipy.ndimage import zoom
    from sklearn.datasets import load_digits

    digits = load_digits()
    images = np.round(np.stack([zoom(i, 2, order=3) for i in digits.images]).clip(0, 16) * 255 / 16)
    n, size = len(images), images.shape[1]
    rng = np.random.default_rng(seed)
    offsets = np.where(rng.random((n, 1)) < displaced, rng.integers(0, canvas - size + 1, size=(n, 2)), (canvas - size) // 2)
    x = np.zeros((n, canvas, canvas), np.float32)
    for i, (r, c) in enumerate(offsets):
        x[i, r : r + size, c : c + size] = images[i]
    return x.reshape(n, -1), np.array([f"d{t}" for t in digits.target])


def scaling(x):
    return robust_standardisation(x, 0, "t", np.arange(len(x)).astype(str), [f"p{j}" for j in range(x.shape[1])])


def plain(x):
    std = np.nanstd(x, axis=0)
    return np.nanmean(x, axis=0), np.where(std > 1e-8, std, 1.0)


# --- (b) the rule ---------------------------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_sparse_pixel_columns_keep_the_plain_sd_and_stay_within_sqrt_n(seed):
    x, _ = mnist_like_digits(seed)
    x = x[: 1347]  # the guard's training rows (the old rule shrank 54-81 border columns' SD to 0.002-0.008x)
    x = x[:, x.std(0) > 0]
    mean, std = scaling(x)
    np.testing.assert_array_equal(std, plain(x)[1])
    np.testing.assert_array_equal(mean, plain(x)[0])
    assert np.abs((x - mean) / std).max() <= np.sqrt(len(x))  # was 3,700-9,300


def test_mnist_border_column_is_not_an_outlier():
    """The mechanism on one column: 5,000 rows, 30 rare strokes (faint 1-3 and full 200-255)."""
    x = np.zeros((5000, 1), np.float32)
    x[:6, 0], x[6:30, 0] = [1, 2, 3, 1, 2, 3], np.linspace(200, 255, 24)
    mean, std = scaling(x)
    assert (mean[0], std[0]) == (x.mean(), x.std())
    assert np.abs((x - mean) / std).max() < np.sqrt(5000)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(20, 5000), seed=st.integers(0, 10_000), zero_fraction=st.floats(0.9, 0.999),
       scale=st.floats(1e-3, 1e3), ratio=st.floats(1.0, 255.0), faint=st.floats(0.0, 1.0), mode=st.floats(-100, 100))
def test_a_column_that_is_mostly_one_value_gets_the_plain_mean_and_sd(n, seed, zero_fraction, scale, ratio, faint, mode):
    """Rare values of ordinary size next to one repeated value: a share ``faint`` of them small (1-2x
    ``scale``), the others full (up to ``ratio`` x ``scale``), either sign, as the strokes at an image's border."""
    rng = np.random.default_rng(seed)
    x = np.full((n, 2), mode, np.float32)
    rare = rng.random(n) > zero_fraction
    rare[rng.integers(n)] = True
    size = np.where(rng.random(rare.sum()) < faint, rng.uniform(1, 2, rare.sum()), rng.uniform(0.8, 1, rare.sum()) * ratio)
    x[rare, 0] = (mode + rng.choice([-1, 1], rare.sum()) * scale * np.maximum(size, 1)).astype(np.float32)
    x[:, 1] = rng.normal(size=n)
    mean, std = scaling(x)
    want_mean, want_std = plain(x)
    np.testing.assert_array_equal(mean, want_mean)
    np.testing.assert_array_equal(std, want_std)
    assert np.abs((x - mean) / std).max() <= np.sqrt(n) * 1.001


@settings(max_examples=30, deadline=None)
@given(n=st.integers(50, 3000), seed=st.integers(0, 10_000), df=st.floats(1.5, 3.0))
def test_heavy_tails_are_data_not_outliers(n, seed, df):
    """Student-t columns (df 1.5-3) keep the plain mean and SD."""
    x = np.random.default_rng(seed).standard_t(df, size=(n, 1)).astype(np.float32)
    mean, std = scaling(x)
    assert (mean[0], std[0]) == (np.nanmean(x), np.nanstd(x))


def test_a_cluster_of_real_values_among_rounding_residues_keeps_the_plain_sd():
    """A resampled image column: 1e-17 residues where it is blank, 2 % real grey levels."""
    rng = np.random.default_rng(0)
    x = np.abs(rng.normal(size=(2000, 1)) * 1e-17).astype(np.float32)
    x[:40, 0] = rng.uniform(10, 255, 40)
    mean, std = scaling(x)
    assert (mean[0], std[0]) == (x.mean(), x.std())


def test_a_gross_value_in_a_sparse_column_is_still_left_out(caplog):
    rng = np.random.default_rng(3)
    x = np.zeros((1000, 1), np.float32)
    x[rng.choice(1000, 50, replace=False), 0] = rng.uniform(50, 255, 50)
    clean = x.copy()
    x[7, 0] = 1e25
    with caplog.at_level(logging.WARNING, logger="archetool"):
        mean, std = scaling(x)
    others = np.delete(clean, 7, axis=0).astype(np.float64)
    assert mean[0] == pytest.approx(others.mean(), rel=1e-6) and std[0] == pytest.approx(others.std(), rel=1e-6)
    assert "1 value lies more than 1e+06 robust standard deviations" in caplog.text and "'p0' at row '7'" in caplog.text


# --- (a) the quality guard ----------------------------------------------------------------------
def _logreg(x_train, y_train, x_test, y_test) -> float:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    clf = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(x_train, y_train)
    return float((clf.predict(x_test) == y_test).mean())


def test_nvae_generated_digits_train_a_classifier_nearly_as_well_as_real_ones(tmp_path):
    """nvae (defaults, 60 epochs) on MNIST-like digits: a logistic regression trained only on its samples
    reaches >= 0.9x the one trained on the real rows (held-out real rows). Measured: 0.94-0.97x over 6
    seeds of data, split and model; the code of main 848f634 gave 0.82x at this seed (0.77-0.93x)."""
    import pandas as pd
    import torch
    from sklearn.model_selection import train_test_split
    from threadpoolctl import threadpool_limits

    import archetool

    x, y = mnist_like_digits(0)
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.25, stratify=y, random_state=0)
    frame = pd.DataFrame(x_train, columns=[f"p{j}" for j in range(x.shape[1])])
    frame["label"] = y_train
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small model: one thread is fastest, and spares a busy machine (-n 2)
    try:
        with threadpool_limits(1):
            model = archetool.fit(frame, model="nvae", label="label", epochs=60, seed=0, device="cpu",
                                  out=tmp_path / "m", progress_bar=False)
            with torch.no_grad():
                generated, labels = model.module.sample(len(x_train), temperature=1.0,
                                                        generator=torch.Generator().manual_seed(0))
            gen_x = model.prep.unscale_x(generated.numpy())
            gen_y = np.asarray(model.prep.classes, dtype=object)[labels.numpy()].astype(str)
            real, fake = _logreg(x_train, y_train, x_test, y_test), _logreg(gen_x, gen_y, x_test, y_test)
    finally:
        torch.set_num_threads(threads)
    assert real > 0.9
    assert fake / real >= 0.9, f"generated {fake:.3f} vs real {real:.3f}"
