"""Our estimators inside skada 0.6.0: ``make_da_pipeline``, its splitters,
scorers and reweighting adapters, and our own splitter and scorers inside
skada's pipelines. Skipped when skada is not installed (the ``test`` extra
installs it).

skada's conventions are ours (``sample_domain >= 0`` source, ``< 0`` target,
NaN ``y`` unlabelled); three habits of skada's matter here:

- ``import skada`` turns on scikit-learn's metadata routing for the whole
  process; this module sets it back as it was right after the import and
  runs each test inside ``config_context(enable_metadata_routing=True)``.
- its selectors (every step of ``make_da_pipeline``) write NaN into the target
  rows of the ``y`` passed to ``fit``, in place: the tests pass copies.
- without ``sample_domain`` they drop the NaN-marked rows before our
  estimator sees them, so pass ``sample_domain`` to every call.
"""

import warnings

import numpy as np
import pytest
import sklearn
from conftest import TINY
from sklearn.base import clone
from sklearn.metrics import mean_squared_error, r2_score
from sklearn.model_selection import GridSearchCV, cross_validate
from sklearn.neighbors import KernelDensity
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.model_selection import (
    DomainAwareKFold,
    ImportanceWeightedScorer,
    ReverseValidationScorer,
)

_ROUTING = sklearn.get_config()["enable_metadata_routing"]
skada = pytest.importorskip("skada", minversion="0.6")
sklearn.set_config(enable_metadata_routing=_ROUTING)  # skada's import set it
datasets = pytest.importorskip("skada.datasets")
metrics = pytest.importorskip("skada.metrics")
splits = pytest.importorskip("skada.model_selection")

# skada's own defaults trip its deprecation of return_X_y
pytestmark = pytest.mark.filterwarnings(
    "ignore:The `return_X_y` parameter is deprecated:DeprecationWarning"
)

# 5 epochs at a high learning rate learn skada's 2-D bump; 1e-5 learns nothing
LEARNS = dict(TINY, max_epochs=5, lr=5e-2, batch_size=32)


@pytest.fixture(autouse=True)
def _routing():
    """skada needs metadata routing; each test gets it, and leaves the
    setting as it found it."""
    with sklearn.config_context(enable_metadata_routing=True):
        yield
    assert sklearn.get_config()["enable_metadata_routing"] == _ROUTING


@pytest.fixture
def shifted():
    """skada's covariate-shift regression data: 120 source rows (domain 1),
    then 120 target rows (domain -2) *with their true labels*; ``ym`` hides
    them (NaN). Fresh arrays per test: skada's selectors write into ``y``."""
    X, y, sd = datasets.make_shifted_datasets(
        15, 15, shift="covariate_shift", label="regression", noise=0.3, random_state=0
    )
    ym = np.where(sd < 0, np.nan, y)
    return X, y, ym, sd


def _adabn():
    """Per-domain standardisation, least squares in closed form: fast, and
    ``sample_domain`` changes its predictions."""
    return DomainAdaptRegressor("linear", method="adabn", random_state=0)


def _da_pipeline(est):
    return skada.make_da_pipeline(StandardScaler(), est)


def _final(pipe):
    """Our fitted estimator inside a fitted skada pipeline."""
    return pipe[-1].base_estimator_


# ------------------------------------------------------- skada's data helpers
def test_skada_regression_data_warns_until_the_target_labels_are_hidden(shifted):
    X, y, ym, sd = shifted
    est = DomainAdaptRegressor(method="source_only", **TINY)
    with pytest.warns(UserWarning, match=r"All 120 target rows .* = np.nan"):
        est.fit(X, y, sample_domain=sd)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(X, ym, sample_domain=sd)
        # make_da_pipeline hides them itself (mask_target_labels=True) ...
        y_given = y.copy()
        _da_pipeline(clone(est)).fit(X, y_given, sample_domain=sd)
    # ... by writing NaN into the caller's array
    np.testing.assert_array_equal(np.isnan(y_given), sd < 0)
    unmasked = skada.make_da_pipeline(
        StandardScaler(), clone(est), mask_target_labels=False
    )
    with pytest.warns(UserWarning, match="All 120 target rows"):
        unmasked.fit(X, y.copy(), sample_domain=sd)


# ------------------------------------------------------------ make_da_pipeline
@pytest.mark.parametrize(
    "make",
    [_adabn, lambda: DomainAdaptRegressor(method="coral", **TINY)],
    ids=["adabn-linear", "coral-mlp"],
)
def test_make_da_pipeline_fits_as_a_scikit_learn_pipeline(shifted, make):
    X, y, ym, sd = shifted
    pipe = _da_pipeline(make()).fit(X, y.copy(), sample_domain=sd)
    plain = make_pipeline(StandardScaler(), make()).fit(X, ym, sample_domain=sd)
    pred = pipe.predict(X)
    assert pred.shape == (240,) and np.isfinite(pred).all()
    np.testing.assert_array_equal(pred, plain.predict(X))
    # sample_domain reaches predict through skada's selector
    np.testing.assert_array_equal(
        pipe.predict(X, sample_domain=sd), plain.predict(X, sample_domain=sd)
    )
    assert pipe.score(X, y, sample_domain=sd) == pytest.approx(r2_score(y, pred))


def test_sample_domain_reaches_predict_and_score_through_skada(shifted):
    X, y, _, sd = shifted
    pipe = _da_pipeline(_adabn()).fit(X, y.copy(), sample_domain=sd)
    est = _final(pipe)
    assert set(est.domain_stats_) == {1, -2}
    own = pipe.predict(X, sample_domain=sd)
    Xs = pipe[0].transform(X)
    np.testing.assert_array_equal(own, est.predict(Xs, sample_domain=sd))
    source = sd >= 0  # source rows through the source's statistics
    assert not np.allclose(own[source], pipe.predict(X)[source])
    np.testing.assert_array_equal(own[~source], pipe.predict(X)[~source])
    # score ignores sample_domain unless asked for it (set_score_request,
    # before fit: skada's selector reads the requests when it fits)
    assert pipe.score(X, y, sample_domain=sd) == pytest.approx(
        r2_score(y, pipe.predict(X))
    )
    asks = _da_pipeline(_adabn().set_score_request(sample_domain=True))
    asks.fit(X, y.copy(), sample_domain=sd)
    assert asks.score(X, y, sample_domain=sd) == pytest.approx(r2_score(y, own))


# ------------------------------------------------------------ skada's splitters
@pytest.mark.parametrize(
    "cv",
    [
        splits.SourceTargetShuffleSplit(n_splits=2, test_size=0.3, random_state=0),
        splits.DomainShuffleSplit(n_splits=2, test_size=0.3, random_state=0),
    ],
    ids=lambda cv: type(cv).__name__,
)
def test_skada_splitters_in_cross_validate(shifted, cv):
    X, y, ym, sd = shifted
    est = DomainAdaptRegressor(method="coral", **TINY)
    out = cross_validate(
        _da_pipeline(est),
        X,
        ym,
        cv=cv,
        params={"sample_domain": sd},
        return_estimator=True,
        return_indices=True,
        error_score="raise",
    )
    assert len(out["test_score"]) == 2
    for pipe, train, test, score in zip(
        out["estimator"],
        out["indices"]["train"],
        out["indices"]["test"],
        out["test_score"],
    ):
        assert (sd[train] < 0).any() and (sd[train] >= 0).any()
        # the target rows of the training fold fed the adaptation loss
        assert _final(pipe).history_[-1]["train_da_loss"] > 0
        # the score leaves out the NaN-marked target rows of the test fold
        rows = test[sd[test] >= 0]
        assert score == pytest.approx(r2_score(y[rows], pipe.predict(X[rows])))


def _lodo_data():
    """Three domains with their own gain and offset, packed for
    LeaveOneDomainOut: each domain once as a source (d) and once as a
    target (-d, labels hidden)."""
    rng = np.random.RandomState(0)
    ds = datasets.DomainAwareDataset()
    for i in range(3):
        Z = rng.normal(size=(40, 3))
        ds.add_domain(Z * (1 + i) + 2 * i, Z @ [1.0, 2.0, -1.0], f"d{i}")
    return ds.pack_lodo()


# through the target's statistics the source rows lie far outside the
# training range, and predict says so
@pytest.mark.filterwarnings("ignore:X has values far outside:UserWarning")
def test_leave_one_domain_out_with_per_domain_statistics():
    X, y, sd = _lodo_data()
    cv = splits.LeaveOneDomainOut(max_n_splits=3, test_size=0.3, random_state=0)
    scores = {}
    for own in (False, True):
        est = _adabn().set_score_request(sample_domain=own)
        out = cross_validate(
            skada.make_da_pipeline(est),
            X,
            y.copy(),
            cv=cv,
            params={"sample_domain": sd},
            return_estimator=True,
            error_score="raise",
        )
        seen = [sorted(_final(p).domain_stats_) for p in out["estimator"]]
        assert seen == [[-3, 1, 2], [-2, 1, 3], [-1, 2, 3]]
        scores[own] = out["test_score"]
    # the held-out source rows (the target rows are NaN) are scored through
    # their own domain's statistics only when score asks for sample_domain;
    # the target's statistics are the wrong ones for them
    assert scores[True].min() > 0.8
    assert np.all(scores[True] > scores[False] + 0.3)


# -------------------------------------------------------------- skada's scorers
def _search(scoring):
    est = DomainAdaptRegressor(method="source_only", **LEARNS)
    est.set_score_request(sample_weight=True)  # skada's ImportanceWeightedScorer
    return GridSearchCV(
        _da_pipeline(est),
        {"domainadaptregressor__lr": [1e-5, 5e-2]},
        cv=splits.SourceTargetShuffleSplit(n_splits=1, test_size=0.3, random_state=0),
        scoring=scoring,
        error_score="raise",
    )


def _held_out(search, X, sd):
    """The fitted best pipeline (refit on everything) and the rows of the
    single test fold."""
    _, test = next(search.cv.split(X, sample_domain=sd))
    return search.best_estimator_, test


def test_skada_supervised_scorer_scores_the_target_labels(shifted):
    X, y, ym, sd = shifted
    search = _search(metrics.SupervisedScorer())
    search.fit(X, ym.copy(), sample_domain=sd, target_labels=y)
    assert search.best_params_ == {"domainadaptregressor__lr": 5e-2}
    scores = search.cv_results_["mean_test_score"]
    assert scores[1] > 0.5 > scores[0]
    pipe, test = _held_out(search, X, sd)
    rows = test[sd[test] < 0]
    value = metrics.SupervisedScorer()(
        pipe, X[test], ym[test], sample_domain=sd[test], target_labels=y[test]
    )
    assert value == pytest.approx(r2_score(y[rows], pipe.predict(X[rows])))


def test_skada_importance_weighted_scorer_weights_our_score(shifted):
    X, y, ym, sd = shifted
    search = _search(metrics.ImportanceWeightedScorer())
    search.fit(X, ym.copy(), sample_domain=sd)
    assert search.best_params_ == {"domainadaptregressor__lr": 5e-2}
    pipe, test = _held_out(search, X, sd)
    value = metrics.ImportanceWeightedScorer()(
        pipe, X[test], ym[test], sample_domain=sd[test]
    )
    # skada's weights: a kernel density ratio, normalised to sum 1
    src, tgt = test[sd[test] >= 0], test[sd[test] < 0]
    log_ratio = KernelDensity().fit(X[tgt]).score_samples(X[src])
    log_ratio -= KernelDensity().fit(X[src]).score_samples(X[src])
    w = np.exp(log_ratio) / np.exp(log_ratio).sum()
    pred = pipe.predict(X[src])
    assert value == pytest.approx(r2_score(y[src], pred, sample_weight=w))
    assert value != pytest.approx(r2_score(y[src], pred))  # the weights count


def test_skada_circular_validation_refits_our_estimator_backwards(shifted):
    X, y, ym, sd = shifted
    scorer = metrics.CircularValidation(
        source_scorer=mean_squared_error, greater_is_better=False
    )
    search = _search(scorer).fit(X, ym.copy(), sample_domain=sd)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    # by hand: pseudo-label the target rows with their own statistics, train
    # backwards (the domains swapped), score on the source labels
    pipe = _da_pipeline(_adabn()).fit(X, ym.copy(), sample_domain=sd)
    source = sd >= 0
    est, Xs = _final(pipe), pipe[0].transform(X)
    back_y = np.where(source, np.nan, est.predict(Xs, sample_domain=sd))
    back = clone(pipe).fit(X, back_y, sample_domain=-sd)
    expected = mean_squared_error(
        y[source], back.predict(X[source], sample_domain=-sd[source])
    )
    assert scorer(pipe, X, ym, sample_domain=sd) == pytest.approx(-expected)


@pytest.mark.parametrize(
    "scorer, error",
    [
        ("PredictionEntropyScorer", "predict_proba"),
        ("SoftNeighborhoodDensity", "predict_proba"),
        ("DeepEmbeddedValidation", "predict_proba"),
        ("MaNoScorer", "predict_proba"),
        ("MixValScorer", "only supports classification"),
    ],
)
def test_skada_classification_scorers_refuse_a_regressor(shifted, scorer, error):
    # skada's limitation, not ours: these score predicted class probabilities
    # (built here, under routing: skada's scorers request sample_domain)
    X, _, ym, sd = shifted
    pipe = _da_pipeline(_adabn()).fit(X, ym.copy(), sample_domain=sd)
    with pytest.raises((AttributeError, ValueError), match=error):
        getattr(metrics, scorer)()(pipe, X, ym, sample_domain=sd)


def test_skada_stratified_splitter_is_for_classes(shifted):
    # skada's limitation: it stratifies by class, and every continuous y is
    # a class of its own
    X, y, _, sd = shifted
    cv = splits.StratifiedDomainShuffleSplit(n_splits=2, random_state=0)
    with pytest.raises(ValueError, match="least populated group has only 1"):
        list(cv.split(X, y, sd))


# ---------------------------------------------------- skada's reweighting
class _RecordingTransfer(TransferRegressor):
    def fit(self, X, y, sample_weight=None):
        self.received_ = dict(n=len(X), sample_weight=sample_weight)
        return super().fit(X, y, sample_weight=sample_weight)


class _RecordingAdapt(DomainAdaptRegressor):
    def fit(self, X, y, sample_domain=None, sample_weight=None):
        self.received_ = dict(n=len(X), sample_weight=sample_weight, sd=sample_domain)
        return super().fit(
            X, y, sample_domain=sample_domain, sample_weight=sample_weight
        )


ADAPTERS = [
    skada.DensityReweightAdapter(),
    skada.GaussianReweightAdapter(),
    skada.DiscriminatorReweightAdapter(),
    skada.KLIEPReweightAdapter(gamma=1.0, random_state=0),
    skada.KMMReweightAdapter(),
    skada.NearestNeighborReweightAdapter(),
]


@pytest.mark.filterwarnings("ignore:The number of unique classes:UserWarning")
@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda a: type(a).__name__)
@pytest.mark.parametrize("kind", ["transfer", "adapt"])
def test_reweighting_adapters_weight_our_fit(shifted, adapter, kind):
    X, y, _, sd = shifted
    if kind == "transfer":
        est = _RecordingTransfer("linear", random_state=0)
    else:
        est = _RecordingAdapt("linear", method="source_only", random_state=0)
    est.set_fit_request(sample_weight=True)  # what the adapter outputs
    pipe = skada.make_da_pipeline(clone(adapter), est)
    pipe.fit(X, y.copy(), sample_domain=sd)
    fitted = _final(pipe)
    got = fitted.received_
    weights = pipe[0].base_estimator_.compute_weights(X, sample_domain=sd)
    source = sd >= 0
    assert np.ptp(weights[source]) > 0  # not uniform
    if kind == "transfer":  # skada hands a plain regressor the source rows only
        rows = source
    else:  # ours takes every row, with its domain
        rows = np.ones(len(sd), bool)
        np.testing.assert_array_equal(got["sd"], sd)
    assert got["n"] == rows.sum()
    np.testing.assert_allclose(got["sample_weight"], weights[rows])
    # the weights changed the model: a fit without them predicts otherwise
    plain = skada.make_da_pipeline(clone(est)).fit(X, y.copy(), sample_domain=sd)
    assert not np.allclose(pipe.predict(X), plain.predict(X))


def test_negative_weights_from_an_adapter_are_refused_clearly(shifted):
    # skada's limitation: MMDTarS's solver can return round-off negative
    # weights (-4e-12 on this data); our fit refuses negative weights, as
    # scikit-learn's checks do, with a clear message (clip them at 0)
    X, y, _, sd = shifted
    adapter = skada.MMDTarSReweightAdapter(gamma=1.0, max_iter=50)
    _, out = adapter.fit_transform(X, y.copy(), sample_domain=sd)
    w, source = out["sample_weight"], sd >= 0
    est = TransferRegressor("linear", random_state=0)
    if (w[source] < 0).any():
        with pytest.raises(ValueError, match="Negative values in data passed to"):
            est.fit(X[source], y[source], sample_weight=w[source])
    est.fit(X[source], y[source], sample_weight=np.clip(w[source], 0, None))
    assert np.isfinite(est.predict(X)).all()


# ------------------------------------- our splitter and scorers in skada's pipes
def test_our_splitter_and_scorers_in_a_skada_pipeline(shifted):
    X, _, ym, sd = shifted
    kw = dict(
        cv=DomainAwareKFold(n_splits=3, random_state=0),
        scoring={
            "iw": ImportanceWeightedScorer(),
            "iw_pd": ImportanceWeightedScorer(shift="per_domain"),
            "rv": ReverseValidationScorer(),
        },
        params={"sample_domain": sd},
        error_score="raise",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # e.g. "No target rows"
        skada_out = cross_validate(_da_pipeline(_adabn()), X, ym.copy(), **kw)
    plain_out = cross_validate(make_pipeline(StandardScaler(), _adabn()), X, ym, **kw)
    # the same folds, fits and scores as in a scikit-learn pipeline: both
    # scorers see through skada's selector to the per-domain statistics, and
    # the reverse model gets its domains (skada would drop its NaN rows)
    for name in ("test_iw", "test_iw_pd", "test_rv"):
        assert np.isfinite(skada_out[name]).all()
        np.testing.assert_allclose(skada_out[name], plain_out[name])


def test_grid_search_with_our_splitter_and_scorer_in_a_skada_pipeline(shifted):
    X, _, ym, sd = shifted
    search = GridSearchCV(
        _da_pipeline(DomainAdaptRegressor(method="source_only", **LEARNS)),
        {"domainadaptregressor__lr": [1e-5, 5e-2]},
        cv=DomainAwareKFold(n_splits=2, random_state=0),
        scoring=ImportanceWeightedScorer(),
        error_score="raise",
    ).fit(X, ym.copy(), sample_domain=sd)
    assert search.best_params_ == {"domainadaptregressor__lr": 5e-2}
    scores = search.cv_results_["mean_test_score"]
    assert np.isfinite(scores).all() and scores[1] > scores[0]
    assert np.isfinite(search.predict(X)).all()
