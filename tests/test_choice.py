"""The cross-validated choice behind method="auto" and finetune="auto"."""

import numpy as np
import pytest
from sklearn.base import BaseEstimator, RegressorMixin

from sktransfer._choice import choose, n_folds


class Shifted(RegressorMixin, BaseEstimator):
    """Predicts the training mean plus ``shift``."""

    def __init__(self, shift=0.0, random_state=None):
        self.shift = shift
        self.random_state = random_state

    def fit(self, X, y, sample_weight=None):
        self.mean_ = float(np.nanmean(y))
        return self

    def predict(self, X):
        return np.full(len(X), self.mean_ + self.shift)


def _choose(candidates, n=60, seed=0):
    rng = np.random.RandomState(seed)
    X, y = rng.normal(size=(n, 2)), rng.normal(size=n)
    return choose(
        Shifted(random_state=0),
        {name: {"shift": s} for name, s in candidates.items()},
        X,
        y,
        np.arange(n),
        unlabel=False,
        sample_weight=None,
        fit_params={},
    )


def test_a_clearly_better_candidate_replaces_the_baseline():
    best, scores = _choose({"baseline": 2.0, "better": 0.0})
    assert best == "better" and scores["better"] < scores["baseline"]


def test_a_worse_candidate_never_does():
    best, _ = _choose({"baseline": 0.0, "worse": 3.0})
    assert best == "baseline"


def test_a_gain_within_one_standard_error_keeps_the_baseline():
    best, scores = _choose({"baseline": 0.05, "lucky": 0.0})
    assert scores["lucky"] < scores["baseline"]  # lower, but within the noise
    assert best == "baseline"


def test_the_score_is_the_squared_error_of_each_row_held_out_once():
    from sklearn.model_selection import KFold
    from sklearn.utils import check_random_state

    _, scores = _choose({"baseline": 0.0}, n=30)
    rng = np.random.RandomState(0)
    rng.normal(size=(30, 2))
    y = rng.normal(size=30)
    seed = check_random_state(0).randint(2**31 - 1)
    expected = 0.0
    for train, held in KFold(3, shuffle=True, random_state=seed).split(y):
        expected += np.sum((y[held] - y[train].mean()) ** 2)
    np.testing.assert_allclose(scores["baseline"], expected, rtol=1e-12)


class CountingFits(Shifted):
    """Records the number of rows each fit saw."""

    seen = []

    def fit(self, X, y, sample_weight=None):
        CountingFits.seen.append(len(y))
        return super().fit(X, y, sample_weight)


@pytest.mark.parametrize(
    ("n", "folds"), [(6, 3), (40, 3), (60, 3), (100, 5), (200, 10), (1000, 10)]
)
def test_folds_grow_with_the_labels(n, folds):
    # a k-fold score describes a model trained on (k-1)/k of the labels:
    # with many labels, more folds (3 folds preferred rsd on synthetic-concept
    # with 200 labels, where source_only generalises better)
    assert n_folds(n) == folds
    CountingFits.seen = []
    rng = np.random.RandomState(0)
    choose(
        CountingFits(random_state=0),
        {"only": {}},
        rng.normal(size=(n, 2)),
        rng.normal(size=n),
        np.arange(n),
        unlabel=False,
        sample_weight=None,
        fit_params={},
    )
    assert len(CountingFits.seen) == folds
    assert sum(n - s for s in CountingFits.seen) == n  # each row held out once
