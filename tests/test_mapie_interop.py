"""Our estimators inside MAPIE 1.x's conformal regressors (issue 14; the
``test`` extra installs ``mapie``)."""

import numpy as np
import pytest

from sktransfer import (
    DomainAdaptRegressor,
    ShiftConformalRegressor,
    TransferEnsemble,
    TransferRegressor,
)
from sktransfer.datasets import make_domain_shift

mapie_regression = pytest.importorskip("mapie.regression")

MLP = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0)


@pytest.fixture(scope="module")
def data():
    """Exchangeable train / calibration / test source rows, and unlabelled
    target rows for adaptation."""
    Xs, ys, Xt, _ = make_domain_shift(
        700, 100, n_features=4, shift="covariate", noise=0.3, random_state=0
    )
    parts = np.split(np.arange(700), [300, 500])
    return [(Xs[rows], ys[rows]) for rows in parts], Xt


def _check(points, intervals, y):
    n = len(y)
    assert points.shape == (n,) and intervals.shape == (n, 2, 1)
    lower, upper = intervals[:, 0, 0], intervals[:, 1, 0]
    assert (lower <= points).all() and (points <= upper).all()
    coverage = ((y >= lower) & (y <= upper)).mean()
    assert 0.8 <= coverage <= 0.98, coverage


def _conformalize_prefit(model, data):
    """MAPIE's split conformal around a fitted model, checked on the test rows."""
    _, (X_cal, y_cal), (X_test, y_test) = data[0]
    mapie = mapie_regression.SplitConformalRegressor(
        model, confidence_level=0.9, prefit=True
    ).conformalize(X_cal, y_cal)
    _check(*mapie.predict_interval(X_test), y_test)


@pytest.mark.parametrize(
    "make", [lambda: TransferRegressor("linear"), lambda: TransferRegressor(**MLP)]
)
def test_split_conformal_prefit_transfer_regressor(data, make):
    X_train, y_train = data[0][0]
    _conformalize_prefit(make().fit(X_train, y_train), data)


def test_split_conformal_prefit_domain_adapt_regressor(data):
    """Adapted with the NaN-marked target rows, conformalised on labelled rows."""
    X_train, y_train = data[0][0]
    X = np.vstack([X_train, data[1]])
    y = np.r_[y_train, np.full(len(data[1]), np.nan)]
    model = DomainAdaptRegressor(method="coral", **MLP).fit(X, y)
    assert model.method_ == "coral"
    _conformalize_prefit(model, data)


def test_split_conformal_fits_a_clone_when_not_prefit(data):
    (X_train, y_train), (X_cal, y_cal), (X_test, y_test) = data[0]
    estimator = TransferRegressor("linear")
    mapie = (
        mapie_regression.SplitConformalRegressor(
            estimator, confidence_level=0.9, prefit=False
        )
        .fit(X_train, y_train)
        .conformalize(X_cal, y_cal)
    )
    _check(*mapie.predict_interval(X_test), y_test)
    assert not hasattr(estimator, "net_")  # MAPIE fitted a clone


def test_cross_conformal_transfer_regressor(data):
    (X_train, y_train), (X_cal, y_cal), (X_test, y_test) = data[0]
    X, y = np.vstack([X_train, X_cal]), np.r_[y_train, y_cal]
    mapie = mapie_regression.CrossConformalRegressor(
        TransferRegressor("linear"), confidence_level=0.9, cv=3, random_state=0
    ).fit_conformalize(X, y)
    _check(*mapie.predict_interval(X_test), y_test)


def test_split_conformal_prefit_and_cross_conformal_transfer_ensemble(data):
    (X_train, y_train), (X_cal, y_cal), (X_test, y_test) = data[0]
    ensemble = TransferEnsemble(TransferRegressor(**MLP), n_members=2, random_state=0)
    _conformalize_prefit(ensemble.fit(X_train, y_train), data)
    X, y = np.vstack([X_train, X_cal]), np.r_[y_train, y_cal]
    mapie = mapie_regression.CrossConformalRegressor(
        TransferEnsemble(TransferRegressor("linear"), n_members=2, random_state=0),
        confidence_level=0.9,
        cv=3,
        random_state=0,
    ).fit_conformalize(X, y)
    _check(*mapie.predict_interval(X_test), y_test)


def test_our_conformal_wrapper_around_the_ensemble(data):
    (X_train, y_train), (X_cal, y_cal), (X_test, y_test) = data[0]
    X, y = np.vstack([X_train, X_cal]), np.r_[y_train, y_cal]
    model = ShiftConformalRegressor(
        TransferEnsemble(TransferRegressor("linear"), n_members=2, random_state=0),
        random_state=0,
    ).fit(X, y)
    points, intervals = model.predict_interval(X_test)
    assert points.shape == (len(y_test),) and intervals.shape == (len(y_test), 2)
    coverage = ((y_test >= intervals[:, 0]) & (y_test <= intervals[:, 1])).mean()
    assert 0.8 <= coverage <= 0.98, coverage
