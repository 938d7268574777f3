"""Conformal intervals under covariate shift (``sktransfer.conformal``, issue 14)."""

import math
import pickle
import re
import warnings
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import PolynomialFeatures, StandardScaler

from sktransfer import (
    DomainAdaptRegressor,
    ShiftConformalRegressor,
    TransferRegressor,
    conformal,
)
from sktransfer.conformal import min_calibration_rows, weighted_conformal_quantile
from sktransfer.datasets import make_domain_shift
from sktransfer.model_selection import ImportanceWeightedScorer

LEVEL = 0.9


def _covered(y, intervals):
    return (y >= intervals[:, 0]) & (y <= intervals[:, 1])


def _uda(seed, n_source=400, n_target=300, shift="covariate", n_labelled=0):
    """Source and target rows (the first ``n_labelled`` target rows labelled;
    ``sample_domain`` says which are target rows), the target inputs and truth."""
    Xs, ys, Xt, yt = make_domain_shift(
        n_source, n_target, n_features=4, shift=shift, random_state=seed
    )
    y_t = np.full(len(yt), np.nan)
    y_t[:n_labelled] = yt[:n_labelled]
    domain = np.r_[np.zeros(n_source, int), np.full(n_target, -1)]
    return np.vstack([Xs, Xt]), np.r_[ys, y_t], domain, Xt, yt


# ------------------------------------------------------- the weighted quantile
def _brute_force(scores, weights, w_test, level):
    """The level-quantile of sum_i p_i delta_{V_i} + p_{n+1} delta_inf, from
    its definition: the smallest support point whose cumulative mass reaches
    the level."""
    total = sum(weights) + w_test
    support = [*sorted(set(scores)), math.inf]
    for v in support:
        mass = sum(w for s, w in zip(scores, weights) if s <= v)
        mass += w_test if v == math.inf else 0.0
        if mass >= level * total * (1 - 1e-10):
            return v
    return math.inf  # pragma: no cover - the point at infinity always reaches it


@settings(max_examples=60, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.integers(0, 20).map(float),  # ties on purpose
            st.floats(0.01, 10.0),
        ),
        min_size=1,
        max_size=25,
    ),
    w_test=st.lists(st.floats(0.0, 10.0), min_size=1, max_size=4),
    level=st.sampled_from([0.5, 0.8, 0.9, 0.95]),
)
def test_weighted_quantile_matches_its_definition(data, w_test, level):
    scores, weights = [s for s, _ in data], [w for _, w in data]
    got = weighted_conformal_quantile(scores, weights, w_test, level)
    want = [_brute_force(scores, weights, w, level) for w in w_test]
    assert got.tolist() == want


@pytest.mark.parametrize("level", [0.8, 0.9, 0.95])
@pytest.mark.parametrize("n", [1, 8, 9, 10, 19, 20, 57])
def test_equal_weights_give_the_split_conformal_quantile(level, n):
    scores = np.random.default_rng(n).exponential(size=n)
    k = math.ceil(Fraction(str(level)) * (n + 1))  # exact decimal level
    want = np.inf if k > n else np.sort(scores)[k - 1]
    for w in (1.0, 0.37):
        got = weighted_conformal_quantile(scores, np.full(n, w), w, level)
        assert got[0] == want
    assert (n >= min_calibration_rows(level)) == np.isfinite(want)


def test_min_calibration_rows_is_the_fewest_for_a_finite_quantile():
    assert min_calibration_rows(0.9) == 9
    assert min_calibration_rows(0.95) == 19
    assert min_calibration_rows(0.8) == 4
    assert min_calibration_rows(0.5) == 1


def test_weighted_quantile_refuses_bad_weights():
    with pytest.raises(ValueError, match="same length"):
        weighted_conformal_quantile([1.0, 2.0], [1.0], 1.0, 0.9)
    with pytest.raises(ValueError, match="finite and >= 0"):
        weighted_conformal_quantile([1.0], [-1.0], 1.0, 0.9)
    with pytest.raises(ValueError, match="all 0"):
        weighted_conformal_quantile([1.0], [0.0], 1.0, 0.9)


# ---------------------------------------------------------------- coverage
def test_coverage_is_nominal_on_an_exchangeable_problem():
    """Split conformal (Lei et al. 2018): over 20 seeds the mean coverage of
    fresh rows is 1 - alpha (within the spread of 20 small calibration sets)."""
    coverage = []
    for seed in range(20):
        rng = np.random.default_rng(seed)
        X = rng.normal(size=(300, 3))
        y = X @ [1.0, -2.0, 0.5] + rng.standard_t(4, size=300)
        model = ShiftConformalRegressor(Ridge(), random_state=seed).fit(
            X[:100], y[:100]
        )
        assert model.mode_ == "source"
        _, intervals = model.predict_interval(X[100:])
        coverage.append(_covered(y[100:], intervals).mean())
    assert abs(np.mean(coverage) - LEVEL) < 0.05


def test_weighted_conformal_covers_closer_to_nominal_under_covariate_shift():
    """The target's inputs are shifted and widened: residuals of a linear fit
    grow there, source calibration undercovers, and the density ratio (a
    quadratic log-ratio between Gaussians) brings coverage back towards
    nominal (Tibshirani et al. 2019)."""
    quadratic = make_pipeline(
        StandardScaler(), PolynomialFeatures(2), LogisticRegression(max_iter=500)
    )
    coverage = {"source": [], "weighted": []}
    for seed in range(6):
        X, y, _sd, Xt, yt = _uda(seed)
        for mode in coverage:
            model = ShiftConformalRegressor(
                LinearRegression(),
                mode=mode,
                domain_classifier=quadratic,
                random_state=seed,
            ).fit(X, y)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # infinite ones
                _, intervals = model.predict_interval(Xt)
            coverage[mode].append(_covered(yt, intervals).mean())
    source, weighted = np.mean(coverage["source"]), np.mean(coverage["weighted"])
    assert source < LEVEL - 0.03
    assert abs(weighted - LEVEL) < abs(source - LEVEL)


def test_target_labels_calibrate_when_there_are_enough():
    X, y, sd, Xt, _yt = _uda(0, n_labelled=40)
    model = ShiftConformalRegressor(random_state=0).fit(X, y, sample_domain=sd)
    assert model.mode_ == "target"
    # max(9, ceil(0.3 * 40)) target rows calibrate
    assert len(model.conformity_scores_) == 12
    assert (model.calibration_indices_ >= 400).all()
    assert np.array_equal(model.calibration_weights_, np.ones(12))
    _, intervals = model.predict_interval(Xt[40:])
    widths = intervals[:, 1] - intervals[:, 0]
    assert np.allclose(widths, widths[0]) and np.isfinite(widths).all()


@pytest.mark.parametrize(
    ("n_labelled", "mode"), [(0, "weighted"), (8, "weighted"), (9, "target")]
)
def test_the_mode_switches_at_ceil_one_over_alpha_minus_one(n_labelled, mode):
    X, y, sd, _, _ = _uda(1, n_source=100, n_target=60, n_labelled=n_labelled)
    model = ShiftConformalRegressor(Ridge(), random_state=0).fit(X, y, sd)
    assert model.mode_ == mode
    if mode == "target":  # all 9 calibrate, the source rows train
        assert len(model.conformity_scores_) == 9


def test_without_target_rows_it_is_plain_split_conformal():
    X, y, _sd, _, _ = _uda(2, n_source=100, n_target=10)
    model = ShiftConformalRegressor(Ridge(), random_state=0).fit(X[:100], y[:100])
    assert model.mode_ == "source" and model.density_ratio_ is None
    assert len(model.conformity_scores_) == 30


def test_weights_are_the_scorers_density_ratios():
    """One density-ratio implementation: the wrapper's calibration weights are
    ImportanceWeightedScorer's, up to its normalisation (mean 1) and clip."""
    X, y, _sd, Xt, _ = _uda(3, n_source=200, n_target=100)
    model = ShiftConformalRegressor(Ridge(), random_state=0).fit(X, y)
    source = X[:200]
    scorer = ImportanceWeightedScorer(clip_quantile=1.0)
    w = scorer.weights(source, Xt)
    mine = model.density_ratio_(source)
    assert np.allclose(mine / mine.mean(), w)
    assert np.allclose(
        model.calibration_weights_, model.density_ratio_(X[model.calibration_indices_])
    )


def test_clip_quantile_caps_calibration_and_test_weights():
    X, y, _sd, Xt, _ = _uda(4, n_source=200, n_target=100)
    base = ShiftConformalRegressor(Ridge(), random_state=0)
    free = clone(base).fit(X, y)
    capped = clone(base).set_params(clip_quantile=0.5).fit(X, y)
    assert capped.weight_cap_ == pytest.approx(np.median(free.calibration_weights_))
    assert capped.calibration_weights_.max() <= capped.weight_cap_
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        n_inf_free = np.isinf(free.predict_interval(Xt)[1]).sum()
        n_inf_capped = np.isinf(capped.predict_interval(Xt)[1]).sum()
    assert n_inf_capped <= n_inf_free


def test_infinite_intervals_are_warned_about():
    X, y, _sd, Xt, _ = _uda(5, n_source=60, n_target=100)
    model = ShiftConformalRegressor(Ridge(), random_state=0).fit(X, y)
    far = Xt + 20 * np.sign(Xt.mean(axis=0) - X[:60].mean(axis=0))
    with pytest.warns(UserWarning, match="infinite intervals"):
        _, intervals = model.predict_interval(far)
    assert np.isinf(intervals).any()


# -------------------------------------------------- estimators and prefit
def test_prefit_calibrates_on_every_labelled_row_and_keeps_the_estimator():
    X, y, _sd, Xt, _ = _uda(6, n_source=200, n_target=80)
    fitted = Ridge().fit(X[:100], y[:100])
    labelled_source = np.r_[np.zeros(100, bool), np.ones(100, bool)]
    Xc = np.vstack([X[:200][labelled_source], Xt])
    yc = np.r_[y[:200][labelled_source], np.full(80, np.nan)]
    model = ShiftConformalRegressor(fitted, prefit=True).fit(Xc, yc)
    assert model.estimator_ is fitted and len(model.conformity_scores_) == 100
    assert np.array_equal(model.predict(Xt), fitted.predict(Xt))
    with pytest.raises(Exception, match="not fitted"):
        ShiftConformalRegressor(Ridge(), prefit=True).fit(Xc, yc)


def test_domain_adapt_regressor_sees_the_target_rows_without_calibration_labels():
    X, y, sd, Xt, _yt = _uda(7, n_source=150, n_target=80, n_labelled=20)
    da = DomainAdaptRegressor(
        method="coral", backbone_params={"hidden_sizes": (8,)}, max_epochs=3
    )
    model = ShiftConformalRegressor(da, random_state=0).fit(X, y, sd)
    assert model.mode_ == "target" and model.estimator_.method_ == "coral"
    y_pred, intervals = model.predict(Xt[20:], return_interval=True)
    assert intervals.shape == (60, 2) and np.isfinite(intervals).all()
    assert np.allclose(intervals.mean(axis=1), y_pred)


def test_transfer_regressor_default_and_no_input_mutation():
    X, y, _sd, Xt, _ = _uda(8, n_source=100, n_target=40)
    X0, y0 = X.copy(), y.copy()
    model = ShiftConformalRegressor(random_state=0).fit(X, y)
    assert isinstance(model.estimator_, TransferRegressor)
    assert model.estimator is None
    assert np.array_equal(X, X0) and np.array_equal(y, y0, equal_nan=True)
    assert model.predict(Xt).shape == (40,)


def test_same_seed_same_intervals_and_pickle_round_trip():
    X, y, _sd, Xt, _ = _uda(9, n_source=100, n_target=40)
    a = ShiftConformalRegressor(Ridge(), random_state=3).fit(X, y)
    b = ShiftConformalRegressor(Ridge(), random_state=3).fit(X, y)
    c = pickle.loads(pickle.dumps(a))
    for other in (b, c):
        assert np.array_equal(a.predict_interval(Xt)[1], other.predict_interval(Xt)[1])


def test_grid_search_over_the_wrapper():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = X @ [1.0, 2.0, 0.0] + 0.1 * rng.normal(size=120)
    search = GridSearchCV(
        ShiftConformalRegressor(Ridge(), random_state=0),
        {"estimator__alpha": [0.1, 10.0]},
        cv=3,
    ).fit(X, y)
    assert search.best_params_["estimator__alpha"] == 0.1
    assert search.best_estimator_.mode_ == "source"


# -------------------------------------------------------------- bad input
@pytest.mark.parametrize("level", [0.0, 1.0, 1.5, -0.1])
def test_confidence_level_out_of_range_is_named(level):
    X, y, _sd, _, _ = _uda(0, n_source=40, n_target=10)
    with pytest.raises(ValueError, match="confidence_level"):
        ShiftConformalRegressor(Ridge(), confidence_level=level).fit(X, y)


def test_bad_input_errors_say_what_to_do():
    X, y, sd, _, _ = _uda(0, n_source=40, n_target=10, n_labelled=3)
    with pytest.raises(ValueError, match="one output only"):
        ShiftConformalRegressor(Ridge()).fit(X[:40], np.c_[y[:40], y[:40]])
    with pytest.raises(ValueError, match="mode='target' needs at least 9"):
        ShiftConformalRegressor(Ridge(), mode="target").fit(X, y, sd)
    with pytest.raises(ValueError, match="mode='weighted' needs target rows"):
        ShiftConformalRegressor(Ridge(), mode="weighted").fit(X[:40], y[:40])
    with pytest.raises(ValueError, match="no labelled row"):
        ShiftConformalRegressor(Ridge()).fit(X[40:43], np.full(3, np.nan))
    with pytest.raises(ValueError, match="calibration_size"):
        ShiftConformalRegressor(Ridge(), calibration_size=1.0).fit(X, y)
    with pytest.raises(ValueError, match="mode"):
        ShiftConformalRegressor(Ridge(), mode="mapie").fit(X, y)
    # 9 target labels and no source labels: one must train, 8 cannot calibrate
    rng = np.random.default_rng(0)
    with pytest.raises(ValueError, match="too few"):
        ShiftConformalRegressor(Ridge()).fit(
            rng.normal(size=(9, 2)), rng.normal(size=9), sample_domain=np.full(9, -1)
        )


def test_api_page_lists_the_public_names():
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    rows = [line for line in page.splitlines() if "sktransfer.conformal" in line]
    listed = set()
    for row in rows:
        listed |= set(re.findall(r"`(?:sktransfer\.(?:conformal\.)?)?(\w+)`", row))
    assert listed >= set(conformal.__all__)


class _Spy(Ridge):
    """A Ridge whose ``fit`` takes ``sample_domain`` (as DomainAdaptRegressor's
    does) and records what it was given; NaN-marked rows are dropped."""

    def fit(self, X, y, sample_domain=None):
        self.seen_ = (X.copy(), y.copy(), np.asarray(sample_domain).copy())
        keep = np.isfinite(y)
        return super().fit(X[keep], y[keep])


@pytest.mark.parametrize("n_labelled", [0, 30])
def test_calibration_labels_never_reach_the_estimator(n_labelled):
    X, y, sd, _, _ = _uda(10, n_source=100, n_target=60, n_labelled=n_labelled)
    model = ShiftConformalRegressor(_Spy(), random_state=0).fit(X, y, sd)
    X_seen, y_seen, sd_seen = model.estimator_.seen_
    calibration = X[model.calibration_indices_]
    seen = {row.tobytes(): value for row, value in zip(X_seen, y_seen)}
    for row in calibration:  # absent (source) or present with its label hidden
        assert np.isnan(seen.get(row.tobytes(), np.nan))
    # every target row is passed, with its domain, for adaptation
    assert (sd_seen < 0).sum() == 60


def test_a_frozen_prefit_estimator_survives_clone_and_search():
    from sklearn.frozen import FrozenEstimator

    X, y, _sd, Xt, _ = _uda(11, n_source=200, n_target=60)
    fitted = Ridge().fit(X[:100], y[:100])
    model = ShiftConformalRegressor(FrozenEstimator(fitted), prefit=True)
    twin = clone(model).fit(X[100:], y[100:])  # calibrates the same model
    assert np.array_equal(twin.predict(Xt), fitted.predict(Xt))
    assert twin.mode_ == "weighted" and len(twin.conformity_scores_) == 100
