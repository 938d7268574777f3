"""Choosing settings without target labels (``sktransfer.model_selection``)."""

import numpy as np
import pytest
from conftest import TINY, rmse, uda_stack
from sklearn.base import clone
from sklearn.dummy import DummyRegressor
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import GridSearchCV

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift
from sktransfer.model_selection import (
    DomainAwareKFold,
    ImportanceWeightedScorer,
    ReverseValidationScorer,
)


# --------------------------------------------------------- DomainAwareKFold
def test_domain_aware_kfold_keeps_target_rows_in_every_training_fold(uda):
    X, y, _, _ = uda
    target = np.flatnonzero(np.isnan(y))
    cv = DomainAwareKFold(n_splits=3, random_state=0)
    assert cv.get_n_splits() == 3
    valid_source = []
    for train, valid in cv.split(X, y):
        assert np.isin(target, train).all()
        assert np.isin(target, valid).all()
        valid_source.append(np.setdiff1d(valid, target))
        assert not np.intersect1d(np.setdiff1d(train, target), valid).size
    all_source = np.sort(np.concatenate(valid_source))
    np.testing.assert_array_equal(all_source, np.flatnonzero(~np.isnan(y)))
    with pytest.raises(ValueError, match="needs y"):
        next(cv.split(X))


def test_domain_aware_kfold_with_sample_domain_and_labelled_target_rows():
    n = 12
    y = np.r_[np.ones(8), 5.0, 6.0, np.nan, np.nan]
    domain = np.r_[np.zeros(8, int), -np.ones(4, int)]
    folds = list(
        DomainAwareKFold(2, shuffle=False).split(np.zeros((n, 2)), y, None, domain)
    )
    assert len(folds) == 2
    for train, valid in folds:
        # labelled target rows train in every fold but are never validated on
        assert {8, 9} <= set(train) and not {8, 9} & set(valid)
        assert {10, 11} <= set(train) and {10, 11} <= set(valid)
    # without shuffling, the folds are the source rows in order
    assert list(folds[0][1][:4]) == [0, 1, 2, 3]
    # sample_domain alone (no y) is enough
    assert (
        len(list(DomainAwareKFold(2).split(np.zeros((n, 2)), None, None, domain))) == 2
    )
    with pytest.raises(ValueError, match="larger than the number of source rows"):
        next(DomainAwareKFold(11).split(np.zeros((n, 2)), y))


def test_domain_aware_kfold_is_reproducible():
    X, y, _, _ = uda_stack(n_source=30, n_target=10)
    a = [v.tolist() for _, v in DomainAwareKFold(3, random_state=1).split(X, y)]
    b = [v.tolist() for _, v in DomainAwareKFold(3, random_state=1).split(X, y)]
    c = [v.tolist() for _, v in DomainAwareKFold(3, random_state=2).split(X, y)]
    assert a == b and a != c


# ----------------------------------------------------------------- scorers
def test_scorers_without_target_rows_are_the_negative_mse():
    X = np.arange(10.0)[:, None]
    y = np.arange(10.0)
    est = DummyRegressor(constant=2.0, strategy="constant").fit(X, y)
    expected = -np.mean((y - 2.0) ** 2)
    assert ImportanceWeightedScorer()(est, X, y) == pytest.approx(expected)
    assert ReverseValidationScorer()(est, X, y) == pytest.approx(expected)


def test_importance_weights_favour_source_rows_that_look_like_the_target():
    rng = np.random.RandomState(0)
    Xs = rng.normal(size=(200, 2))
    Xt = rng.normal(size=(100, 2)) + np.array([2.0, 0.0])
    w = ImportanceWeightedScorer().weights(Xs, Xt)
    assert w.shape == (200,) and w.mean() == pytest.approx(1.0)
    assert (w >= 0).all()
    near = Xs[:, 0] > 1.0
    assert w[near].mean() > 2 * w[~near].mean()
    # clipping bounds the largest weights
    clipped = ImportanceWeightedScorer(clip_quantile=0.5).weights(Xs, Xt)
    assert clipped.max() / clipped.min() < w.max() / w.min()
    # any classifier with predict_proba
    own = ImportanceWeightedScorer(LogisticRegression(C=0.01)).weights(Xs, Xt)
    assert own.shape == (200,) and not np.allclose(own, w)


def test_importance_weighted_score_weights_the_source_errors():
    rng = np.random.RandomState(0)
    Xs = rng.normal(size=(100, 1))
    Xt = rng.normal(size=(50, 1)) + 2.0
    X = np.vstack([Xs, Xt])
    y = np.r_[np.where(Xs[:, 0] > 1, 10.0, 0.0), np.full(50, np.nan)]
    est = DummyRegressor(strategy="constant", constant=0.0).fit(X[:2], y[:2])
    plain = -np.mean(y[:100] ** 2)
    # the errors sit where the target lives: the weighted score is worse
    assert ImportanceWeightedScorer()(est, X, y) < plain


def test_reverse_validation_trains_a_reverse_model(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="source_only", **TINY).fit(X, y)
    score = ReverseValidationScorer()(est, X, y)
    assert np.isfinite(score) and score < 0
    # the score of the estimator's own settings, not of the fitted weights
    again = ReverseValidationScorer()(clone(est).fit(X, y), X, y)
    assert again == pytest.approx(score)


# ------------------------------------------------------------ model choice
def _selection_beats_random(shift, scorer, seeds):
    wins = 0
    for seed in seeds:
        X, y, X_test, y_test = uda_stack(shift, 300, 200, seed, n_test=200)
        base = DomainAdaptRegressor(
            backbone_params={"hidden_sizes": (32, 32)},
            max_epochs=15,
            lr=1e-2,
            random_state=0,
        )
        grid = {"method": ["source_only", "adabn", "mmd"]}
        errors = {
            m: rmse(clone(base).set_params(method=m).fit(X, y), X_test, y_test)
            for m in grid["method"]
        }
        search = GridSearchCV(
            base, grid, cv=DomainAwareKFold(2, random_state=0), scoring=scorer
        ).fit(X, y)
        wins += errors[search.best_params_["method"]] < np.mean(list(errors.values()))
    return wins


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_importance_weighted_validation_beats_random_pick_on_covariate_shift():
    assert (
        _selection_beats_random("covariate", ImportanceWeightedScorer(), [1, 2, 3]) >= 2
    )


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_reverse_validation_beats_random_pick_on_instrument_shift():
    assert (
        _selection_beats_random("instrument", ReverseValidationScorer(), [0, 1, 2]) >= 2
    )


# ------------------------------------------------ metadata routing
class _Recording(ImportanceWeightedScorer):
    seen = []

    def __call__(self, estimator, X, y, sample_domain=None):
        type(self).seen.append(sample_domain)
        return super().__call__(estimator, X, y, sample_domain=sample_domain)


class _RecordingKFold(DomainAwareKFold):
    seen = []

    def split(self, X, y=None, groups=None, sample_domain=None):
        type(self).seen.append(sample_domain)
        return super().split(X, y, groups, sample_domain=sample_domain)


def test_searches_route_sample_domain_to_the_splitter_and_the_scorers():
    import sklearn

    rng = np.random.RandomState(0)
    X = rng.normal(size=(90, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=90)  # every row has a finite y ...
    domain = np.r_[np.zeros(60, int), -np.ones(30, int)]  # ... some are target
    y[75:] = np.nan
    for scorer in (ImportanceWeightedScorer(), ReverseValidationScorer()):
        assert scorer.get_metadata_routing().score.requests == {"sample_domain": True}
    splits = _RecordingKFold(n_splits=3, random_state=0)
    assert splits.get_metadata_routing().split.requests["sample_domain"] is True
    _Recording.seen, _RecordingKFold.seen = [], []
    with sklearn.config_context(enable_metadata_routing=True):
        search = GridSearchCV(
            DomainAdaptRegressor(method="source_only", **TINY),
            {"lr": [1e-3, 1e-2]},
            cv=splits,
            scoring=_Recording(),
        )
        search.fit(X, y, sample_domain=domain)
    # the scorer saw each validation fold's domains, target rows included
    assert _Recording.seen and all(sd is not None for sd in _Recording.seen)
    assert all((np.asarray(sd) < 0).any() for sd in _Recording.seen)
    # the splitter got the domains too, so the labelled target rows (60-74)
    # join every training fold instead of being split as source rows
    assert _RecordingKFold.seen and all(sd is not None for sd in _RecordingKFold.seen)
    for train, _ in splits.split(X, y, sample_domain=domain):
        assert set(range(60, 90)) <= set(train)


def _iws_by_hand(est, X, y, *, own_statistics):
    """The importance-weighted score computed step by step."""
    src = np.isfinite(y)
    domain = np.where(src, 0, -1)
    view = np.asarray(X, dtype=float).copy()
    if own_statistics:
        for dom in (0, -1):
            mean, scale = est.domain_stats_[dom]
            view[domain == dom] = (X[domain == dom] - mean.ravel()) / scale.ravel()
        pred = est.predict(X[src], sample_domain=np.zeros(src.sum(), dtype=int))
    else:
        pred = est.predict(X[src])
    w = ImportanceWeightedScorer().weights(view[src], view[~src])
    err = (pred - y[src]) ** 2
    risk = np.average(err, weights=w)
    return -(risk + np.sqrt(np.sum(w**2 * (err - risk) ** 2)) / w.sum())


def test_importance_weighted_score_under_each_shift_assumption():
    # "covariate": source rows stand for target rows as they are, so they are
    # predicted as the target is (the target's statistics under adabn);
    # "per_domain": each row is standardised with its own domain's
    # statistics, for the prediction and for the density ratio
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import FunctionTransformer

    X, y, _, _ = uda_stack("instrument")
    params = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0)
    adabn = DomainAdaptRegressor(method="adabn", **params).fit(X, y)
    covariate = ImportanceWeightedScorer()(adabn, X, y)
    per_domain = ImportanceWeightedScorer(shift="per_domain")(adabn, X, y)
    assert covariate == pytest.approx(_iws_by_hand(adabn, X, y, own_statistics=False))
    assert per_domain == pytest.approx(_iws_by_hand(adabn, X, y, own_statistics=True))
    assert per_domain > covariate  # the gain and offset undone
    # the same through a pipeline
    pipe = make_pipeline(
        FunctionTransformer(), DomainAdaptRegressor("mlp", method="adabn", **params)
    ).fit(X, y)
    for shift in ("covariate", "per_domain"):
        scorer = ImportanceWeightedScorer(shift=shift)
        assert scorer(pipe, X, y) == pytest.approx(scorer(adabn, X, y), rel=1e-5)
    # n_se=0: the weighted estimate itself, always above the penalised one
    assert ImportanceWeightedScorer(n_se=0)(adabn, X, y) > covariate


def test_importance_weighted_score_per_domain_picks_adabn_on_an_instrument_shift():
    # source-row predictions of adabn and source_only are the same; seen as
    # each model sees the domains, adabn's estimate rests on every source row
    # and source_only's on the few at the edge of the target
    right = kept = 0
    for seed in range(6):
        Xs, ys, Xt, yt = make_domain_shift(
            300, 300, shift="instrument", random_state=seed
        )
        X = np.vstack([Xs, Xt[:150]])
        y = np.r_[ys, np.full(150, np.nan)]
        scores, covariate, errors = {}, {}, {}
        for method in ("source_only", "adabn"):
            est = DomainAdaptRegressor("linear", method=method).fit(X, y)
            scores[method] = ImportanceWeightedScorer(shift="per_domain")(est, X, y)
            covariate[method] = ImportanceWeightedScorer()(est, X, y)
            errors[method] = rmse(est, Xt[150:], yt[150:])
        assert errors["adabn"] < errors["source_only"]
        right += scores["adabn"] > scores["source_only"]
        kept += covariate["source_only"] > covariate["adabn"]
    assert right >= 5
    # under the covariate-shift assumption the same data keep source_only
    assert kept == 6
