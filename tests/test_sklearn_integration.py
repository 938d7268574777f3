"""The estimators inside scikit-learn's tools: pipelines, searches, ensembles,
cloning, pickling, metadata routing of ``sample_domain``."""

import copy
import pickle
import subprocess
import sys
import warnings

import joblib
import numpy as np
import pandas as pd
import pytest
from conftest import SMALL, TINY
from sklearn import config_context
from sklearn.base import clone
from sklearn.compose import TransformedTargetRegressor
from sklearn.ensemble import StackingRegressor, VotingRegressor
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferRegressor


def _small(**kwargs):
    return TransferRegressor(**{**SMALL, "max_epochs": 15, **kwargs})


@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(120, 5)) * [1, 10, 100, 0.1, 1] + [0, 5, -50, 0, 1]
    coef = np.array([1.0, 0.1, 0.01, 10.0, -1.0])
    y = X @ coef + 0.05 * rng.normal(size=120)
    return X, y


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return _small().fit(X, y)


def test_pipeline(data):
    X, y = data
    pipe = Pipeline([("scale", StandardScaler()), ("reg", _small())]).fit(X, y)
    pred = pipe.predict(X)
    assert pred.shape == (120,)
    assert pipe.score(X, y) > 0.8
    assert pipe.named_steps["reg"].n_features_in_ == 5


def test_grid_search_parallel(data):
    X, y = data
    search = GridSearchCV(
        _small(max_epochs=5),
        {"lr": [1e-4, 3e-2]},
        cv=2,
        n_jobs=2,
        error_score="raise",
    ).fit(X, y)
    assert search.best_params_ == {"lr": 3e-2}
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.predict(X).shape == (120,)


def test_cross_val_score(data):
    X, y = data
    scores = cross_val_score(_small(), X, y, cv=3, error_score="raise")
    assert scores.shape == (3,)
    assert np.all(scores > 0.5)


def test_voting_regressor(data):
    X, y = data
    a = _small(random_state=1)
    b = _small(backbone="linear", backbone_params=None, random_state=2)
    vote = VotingRegressor([("a", a), ("b", b)]).fit(X, y)
    pred = vote.predict(X)
    expected = np.mean([e.predict(X) for e in vote.estimators_], axis=0)
    np.testing.assert_allclose(pred, expected, rtol=1e-6)
    assert vote.score(X, y) > 0.5


def test_stacking_regressor(data):
    X, y = data
    stack = StackingRegressor(
        [("a", _small(random_state=1)), ("b", _small(random_state=2))],
        final_estimator=Ridge(),
        cv=2,
    ).fit(X, y)
    assert stack.predict(X).shape == (120,)
    assert stack.score(X, y) > 0.5


def test_transformed_target_regressor(data):
    X, y = data
    y_pos = np.exp(y / np.abs(y).max())  # positive targets
    ttr = TransformedTargetRegressor(
        regressor=_small(), func=np.log1p, inverse_func=np.expm1
    ).fit(X, y_pos)
    pred = ttr.predict(X)
    assert pred.shape == (120,)
    assert np.all(pred > -1)
    assert ttr.score(X, y_pos) > 0.5


def test_clone(data, fitted):
    X, _ = data
    unfitted = _small(lr=0.02)
    c = clone(unfitted)
    assert c is not unfitted
    assert c.get_params() == unfitted.get_params()

    c = clone(fitted)
    assert not hasattr(c, "net_")
    with pytest.raises(NotFittedError):
        c.predict(X)
    assert c.get_params() == fitted.get_params()
    # cloning a fitted estimator leaves it fitted
    assert hasattr(fitted, "net_")


def test_clone_keeps_pretrained_backbone(data, fitted):
    """A fitted estimator used as ``backbone`` must survive ``clone``, which every
    scikit-learn meta-estimator (GridSearchCV, cross_val_score, ...) applies."""
    X, y = data
    target = TransferRegressor(fitted, max_epochs=2, random_state=0)
    c = clone(target)
    c.fit(X, y)  # fails if clone handed over an unfitted copy of the source
    assert c.predict(X).shape == (120,)


def test_cross_val_score_with_pretrained_backbone(data, fitted):
    X, y = data
    scores = cross_val_score(
        TransferRegressor(fitted, max_epochs=2, random_state=0),
        X,
        y,
        cv=2,
        error_score="raise",
    )
    assert np.all(np.isfinite(scores))


def test_pickle_and_joblib_round_trip(tmp_path, data, fitted):
    X, _ = data
    pred = fitted.predict(X)
    restored = pickle.loads(pickle.dumps(fitted))
    assert np.array_equal(restored.predict(X), pred)

    path = tmp_path / "model.joblib"
    joblib.dump(fitted, path)
    loaded = joblib.load(path)
    assert np.array_equal(loaded.predict(X), pred)
    assert loaded.get_params() == fitted.get_params()


def test_dataframe_feature_names(data):
    X, y = data
    columns = [f"sensor_{i}" for i in range(X.shape[1])]
    df = pd.DataFrame(X, columns=columns)
    est = _small(max_epochs=3).fit(df, pd.Series(y))
    assert list(est.feature_names_in_) == columns
    pred_df = est.predict(df)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.predict(df)  # no warning with matching names
    with pytest.warns(UserWarning, match="feature names"):
        pred_np = est.predict(X)
    np.testing.assert_allclose(pred_np, pred_df)
    with pytest.raises(ValueError, match="feature names"):
        est.predict(df[columns[::-1]])


# -------------------------------------------------------- DomainAdaptRegressor
def test_importing_does_not_enable_routing():
    code = (
        "import sklearn, sktransfer; "
        "assert not sklearn.get_config()['enable_metadata_routing']"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.filterwarnings("ignore:No target rows:UserWarning")  # a CV fold
def test_sample_domain_routed_through_pipeline_and_grid_search(uda):
    X, y, _, _ = uda
    # three domains, visible to the estimator only through sample_domain
    y_full = np.where(np.isnan(y), 0.0, y)
    domain = np.where(np.isnan(y), -1, 0)
    domain[:50] = 1
    expected = {-1, 0, 1}
    kw = dict(method="adabn", **TINY)
    with config_context(enable_metadata_routing=True):
        pipe = make_pipeline(StandardScaler(), DomainAdaptRegressor(**kw))
        pipe.fit(X, y_full, sample_domain=domain)
        assert set(pipe[-1].domain_stats_) == expected
        search = GridSearchCV(
            DomainAdaptRegressor(**kw), {"lr": [1e-3, 1e-2]}, cv=2
        ).fit(X, y_full, sample_domain=domain)
        assert set(search.best_estimator_.domain_stats_) == expected
    # without routing, Pipeline passes it by step name
    pipe = make_pipeline(StandardScaler(), DomainAdaptRegressor(**kw))
    pipe.fit(X, y_full, domainadaptregressor__sample_domain=domain)
    assert set(pipe[-1].domain_stats_) == expected


def test_domain_adapt_voting_cross_val_clone_and_pickle(uda):
    X, y, _, _ = uda
    lab = ~np.isnan(y)
    vote = VotingRegressor(
        [
            ("a", DomainAdaptRegressor(method="coral", **TINY)),
            ("b", DomainAdaptRegressor(method="adabn", **TINY)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        vote.fit(X[lab], y[lab])
        scores = cross_val_score(
            DomainAdaptRegressor(method="source_only", **TINY), X[lab], y[lab], cv=3
        )
    assert vote.predict(X[:2]).shape == (2,)
    assert np.isfinite(scores).all()
    est = DomainAdaptRegressor(method="mmd", **TINY).fit(X, y)
    twin = clone(est).fit(X, y)
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    assert again.da_weight_ == est.da_weight_


# ------------------------------------------- clone keeps metadata requests
def test_clone_keeps_metadata_requests():
    import sklearn
    from sklearn.base import clone

    from sktransfer import DomainAdaptRegressor

    with sklearn.config_context(enable_metadata_routing=True):
        da = DomainAdaptRegressor().set_fit_request(sample_domain=False)
        copy = clone(da)
        routing = copy.get_metadata_routing()
        assert routing.fit.requests["sample_domain"] is False
        tr = TransferRegressor().set_fit_request(sample_weight=True)
        assert clone(tr).get_metadata_routing().fit.requests["sample_weight"] is True
        # a fitted source stays shared, and the requests still travel
        X, y = np.random.RandomState(0).normal(size=(30, 3)), np.arange(30.0)
        source = TransferRegressor("linear").fit(X, y)
        child = TransferRegressor(source).set_fit_request(sample_weight=True)
        copied = clone(child)
        assert copied.backbone is source
        assert copied.get_metadata_routing().fit.requests["sample_weight"] is True


def test_cross_validate_routes_sample_weight_to_a_pipeline_step():
    import sklearn
    from sklearn.model_selection import cross_validate
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([1.0, -2.0, 0.5]) + 0.1 * rng.normal(size=60)
    w = rng.uniform(0.5, 2.0, size=60)
    with sklearn.config_context(enable_metadata_routing=True):
        est = TransferRegressor("linear").set_fit_request(sample_weight=True)
        est.set_score_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = make_pipeline(scaler, est)
        out = cross_validate(pipe, X, y, cv=3, params={"sample_weight": w})
    assert np.all(out["test_score"] > 0.9)


class _RecordingAdapt(DomainAdaptRegressor):
    """Records the metadata each fit receives; the list is the class's, so
    every clone a search makes adds to it."""

    calls = []

    def fit(self, X, y, sample_domain=None, sample_weight=None):
        type(self).calls.append((np.copy(sample_weight), np.copy(sample_domain)))
        return super().fit(
            X, y, sample_domain=sample_domain, sample_weight=sample_weight
        )


def test_sample_weight_and_sample_domain_reach_fit_through_nested_routing():
    import sklearn
    from sklearn.model_selection import KFold, cross_validate

    n = 60
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    domain = np.where(np.arange(n) % 3 == 0, -1, np.arange(n) % 2)  # 0, 1, -1
    y[domain < 0] = np.nan
    w = 1.0 + np.arange(n) / n  # distinct weights name the rows
    _RecordingAdapt.calls = []
    outer, inner = KFold(3), KFold(2)
    with sklearn.config_context(enable_metadata_routing=True):
        est = _RecordingAdapt("linear", method="adabn", random_state=0)
        est.set_fit_request(sample_weight=True).set_score_request(sample_weight=True)
        scaler = StandardScaler().set_fit_request(sample_weight=False)
        pipe = Pipeline([("scale", scaler), ("inner", Pipeline([("da", est)]))])
        grid = {"inner__da__standardize_y": [True, False]}
        search = GridSearchCV(pipe, grid, cv=inner)
        params = {"sample_weight": w, "sample_domain": domain}
        out = cross_validate(
            search, X, y, cv=outer, params=params, return_estimator=True
        )
        assert np.isfinite(out["test_score"]).all()
        # predict takes sample_domain through both pipelines (a search's
        # predict takes no metadata)
        fitted = out["estimator"][0].best_estimator_
        own = fitted.predict(X, sample_domain=domain)
        np.testing.assert_array_equal(
            own, fitted[-1][-1].predict(fitted[0].transform(X), sample_domain=domain)
        )
        assert not np.allclose(own, fitted.predict(X))  # the source rows moved
    # every fit: 2 candidates x 2 inner folds, then the refit, per outer fold
    expected = []
    for train, _ in outer.split(X):
        inner_rows = [train[part] for part, _ in inner.split(train)]
        expected += 2 * inner_rows + [train]
    assert len(_RecordingAdapt.calls) == len(expected) == 15
    received = []
    for weights, domains in _RecordingAdapt.calls:
        rows = np.rint((weights - 1.0) * n).astype(int)
        np.testing.assert_array_equal(weights, w[rows])  # unaltered
        np.testing.assert_array_equal(domains, domain[rows])
        received.append(tuple(rows))
    assert sorted(received) == sorted(tuple(r) for r in expected)


def test_meta_estimators_with_unlabelled_rows_as_documented():
    # docs/user_guide.md: VotingRegressor takes NaN-marked target rows;
    # StackingRegressor and TransformedTargetRegressor refuse them
    from sklearn.compose import TransformedTargetRegressor
    from sklearn.ensemble import StackingRegressor, VotingRegressor

    from sktransfer import DomainAdaptRegressor

    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=50)
    y[40:] = np.nan
    small = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=2, random_state=0)
    members = [
        ("plain", DomainAdaptRegressor(method="source_only", **small)),
        ("adabn", DomainAdaptRegressor(method="adabn", **small)),
    ]
    vote = VotingRegressor(members).fit(X, y)
    assert np.isfinite(vote.predict(X)).all()
    for meta in (
        StackingRegressor(members),
        TransformedTargetRegressor(DomainAdaptRegressor(**small)),
    ):
        with pytest.raises(ValueError, match="NaN"):
            meta.fit(X, y)


# ------------------------------------- registered names in other processes
def _forget(registry, name):
    registry.entries.pop(name, None)


def test_a_registered_backbone_travels_with_the_pickle():
    import pickle

    from sktransfer.backbones import register_backbone
    from sktransfer.backbones._registry import _REGISTRY

    def tiny(input_shape, width=4):  # local: only this process knows it
        import torch

        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), width)
        )

    register_backbone("carried_tiny", tiny, overwrite=True)
    try:
        est = TransferRegressor("carried_tiny", max_epochs=2, random_state=0)
        blob = pickle.dumps(est)
        _forget(_REGISTRY, "carried_tiny")  # a fresh process: the name is unknown
        loaded = pickle.loads(blob)
        assert "carried_tiny" in _REGISTRY.entries
        assert "_sktransfer_registry_entries" not in loaded.__dict__
        X = np.random.RandomState(0).normal(size=(20, 3))
        assert loaded.fit(X, X[:, 0]).n_backbone_features_ == 4
    finally:
        _forget(_REGISTRY, "carried_tiny")


def test_grid_search_with_a_registered_backbone_in_worker_processes():
    from sklearn.model_selection import GridSearchCV

    from sktransfer.backbones import register_backbone
    from sktransfer.backbones._registry import _REGISTRY

    def narrow(input_shape, width=4):  # defined here, unknown to the workers
        import torch

        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(int(np.prod(input_shape)), width)
        )

    register_backbone("worker_narrow", narrow, overwrite=True)
    try:
        X = np.random.RandomState(0).normal(size=(40, 3))
        search = GridSearchCV(
            TransferRegressor("worker_narrow", max_epochs=2, random_state=0),
            {"lr": [1e-3, 1e-2]},
            cv=2,
            n_jobs=2,
            error_score="raise",
        )
        search.fit(X, X[:, 0])
        assert np.isfinite(search.best_score_)
    finally:
        _forget(_REGISTRY, "worker_narrow")


def test_a_registered_method_and_strategy_travel_with_the_pickle():
    import pickle

    from sktransfer import DomainAdaptRegressor
    from sktransfer.adaptation import CORAL, register_method
    from sktransfer.adaptation._method import _METHODS
    from sktransfer.finetuning import _STRATEGIES, Full, register_strategy

    class MyCoral(CORAL):
        name = "carried_coral"

    class MyFull(Full):
        name = "carried_full"

    register_method(MyCoral, overwrite=True)
    register_strategy(MyFull, overwrite=True)
    try:
        da = pickle.dumps(DomainAdaptRegressor(method="carried_coral"))
        tr = pickle.dumps(TransferRegressor(finetune="carried_full"))
        _forget(_METHODS, "carried_coral")
        _forget(_STRATEGIES, "carried_full")
        assert pickle.loads(da).method == "carried_coral"
        assert pickle.loads(tr).finetune == "carried_full"
        assert "carried_coral" in _METHODS.entries
        assert "carried_full" in _STRATEGIES.entries
    finally:
        _forget(_METHODS, "carried_coral")
        _forget(_STRATEGIES, "carried_full")


# ------------------------------------ a fitted model leaves its source out
#: training settings of a fine-tuning step (its backbone is a fitted model)
STEP = {k: v for k, v in SMALL.items() if k != "backbone_params"} | {"max_epochs": 2}


@pytest.mark.parametrize("Est", [TransferRegressor, DomainAdaptRegressor])
def test_fine_tuning_in_steps_does_not_grow_the_pickle(data, Est):
    # each step used to pickle the source it started from, and that one its
    # own: 299 KB -> 595 -> 890 -> 1186 over four steps
    X, y = data
    model = _small(max_epochs=2).fit(X, y)
    sizes = [len(pickle.dumps(model))]
    for _ in range(3):
        model = Est(model, **STEP).fit(X[:40], y[:40])
        sizes.append(len(pickle.dumps(model)))
    assert max(sizes) < 1.05 * sizes[0], sizes
    loaded = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    assert repr(loaded.get_params()["backbone"]) == (
        f"SourceNotSaved(estimator='{Est.__name__}')"
    )
    # asked for, the source travels
    kept = Est(model, keep_source=True, **STEP).fit(X, y)
    source = pickle.loads(pickle.dumps(kept)).backbone
    assert isinstance(source, TransferRegressor | DomainAdaptRegressor)
    np.testing.assert_array_equal(source.predict(X), model.predict(X))


def test_refitting_without_the_source_says_how_to_pass_it_back(data, fitted):
    X, y = data
    model = TransferRegressor(fitted, **STEP).fit(X, y)
    copied = copy.deepcopy(model)
    before = copied.predict(X)
    with pytest.raises(ValueError, match=r"set_params\(backbone=source\)"):
        copied.fit(X, y)
    np.testing.assert_array_equal(copied.predict(X), before)  # left as it was
    copied.set_params(backbone=fitted).fit(X, y)  # the fix works
    np.testing.assert_allclose(copied.predict(X), model.predict(X), rtol=1e-5)


def test_an_unfitted_model_keeps_its_source_in_the_pickle(data, fitted):
    # GridSearchCV(n_jobs=2) sends unfitted clones to workers: fit needs it
    X, _ = data
    loaded = pickle.loads(pickle.dumps(TransferRegressor(fitted)))
    assert isinstance(loaded.backbone, TransferRegressor)
    np.testing.assert_array_equal(loaded.backbone.predict(X), fitted.predict(X))
