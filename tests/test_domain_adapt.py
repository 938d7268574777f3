"""DomainAdaptRegressor behaviour: conventions, methods, routing, evidence."""

import itertools
import pickle
import subprocess
import sys
import warnings

import numpy as np
import pytest
import torch
from sklearn import config_context
from sklearn.base import clone
from sklearn.ensemble import VotingRegressor
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._domain_adapt import DEFAULT_DA_WEIGHTS, METHODS
from sktransfer.datasets import make_domain_shift
from sktransfer.model_selection import (
    DomainAwareKFold,
    ImportanceWeightedScorer,
    ReverseValidationScorer,
)

SMALL = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=4, random_state=0)


def _rmse(est, X, y):
    return float(np.sqrt(np.mean((est.predict(X) - y) ** 2)))


def _uda(shift="instrument", n_source=200, n_target=120, seed=0, n_test=0):
    """Source rows labelled, target rows NaN; plus held-out labelled target."""
    Xs, ys, Xt, yt = make_domain_shift(
        n_source, n_target + n_test, shift=shift, random_state=seed
    )
    X = np.vstack([Xs, Xt[:n_target]])
    y = np.concatenate([ys, np.full(n_target, np.nan)])
    return X, y, Xt[n_target:], yt[n_target:]


@pytest.fixture(scope="module")
def uda():
    return _uda()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_predicts_and_changes_the_model(uda, method):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method=method, **SMALL).fit(X, y)
    pred = est.predict(X[-5:])
    assert pred.shape == (5,) and np.isfinite(pred).all()
    if method != "source_only":
        base = DomainAdaptRegressor(method="source_only", **SMALL).fit(X, y)
        assert not np.allclose(base.predict(X), est.predict(X))


@pytest.mark.parametrize("method", ["coral", "mmd", "dann", "rsd", "daregram"])
def test_history_records_each_loss_term(uda, method):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method=method, da_ramp="dann", **SMALL).fit(X, y)
    hist = est.history_
    task = hist[:, "train_task_loss"]
    da = hist[:, "train_da_loss"]
    assert len(task) == len(da) == est.n_iter_
    assert np.isfinite(task).all() and np.isfinite(da).all()
    assert all(v >= -1e-6 for v in da)
    scale = hist[:, "da_scale"]
    assert scale[0] == 0.0 and all(b > a for a, b in itertools.pairwise(scale))
    assert est.da_weight_ == DEFAULT_DA_WEIGHTS[method]


def test_constant_ramp_and_explicit_weight(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(
        method="coral", da_weight=2.5, da_ramp="constant", **SMALL
    ).fit(X, y)
    assert est.history_[:, "da_scale"] == [1.0] * est.n_iter_
    assert est.da_weight_ == 2.5


def test_dann_discriminator_is_training_only(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="dann", **SMALL).fit(X, y)
    assert not hasattr(est.net_.module_, "discriminator")
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_no_target_rows_warns_and_trains_on_source():
    Xs, ys, _, _ = make_domain_shift(80, 10, random_state=0)
    with pytest.warns(UserWarning, match="No target rows"):
        est = DomainAdaptRegressor(method="coral", **SMALL).fit(Xs, ys)
    assert est.score(Xs, ys) > -1.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DomainAdaptRegressor(method="source_only", **SMALL).fit(Xs, ys)


def test_sample_domain_equals_nan_convention(uda):
    X, y, _, _ = uda
    domain = np.where(np.isnan(y), -1, 0)
    a = DomainAdaptRegressor(method="mmd", **SMALL).fit(X, y)
    b = DomainAdaptRegressor(method="mmd", **SMALL).fit(X, y, sample_domain=domain)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_labelled_target_rows_join_the_supervised_loss():
    # a concept shift: the target labels carry information the source lacks
    Xs, ys, Xt, yt = make_domain_shift(
        300, 400, shift="concept", strength=1.0, random_state=0
    )
    X = np.vstack([Xs, Xt[:100]])
    unlabelled = np.concatenate([ys, np.full(100, np.nan)])
    semi = unlabelled.copy()
    semi[len(ys) : len(ys) + 60] = yt[:60]  # 60 labelled target rows
    domain = np.r_[np.zeros(len(ys)), -np.ones(100)].astype(int)
    kw = dict(
        method="source_only",
        backbone_params={"hidden_sizes": (32,)},
        max_epochs=100,
        random_state=0,
    )
    uda = DomainAdaptRegressor(**kw).fit(X, unlabelled, sample_domain=domain)
    ssda = DomainAdaptRegressor(**kw).fit(X, semi, sample_domain=domain)
    assert _rmse(ssda, Xt[100:], yt[100:]) < 0.95 * _rmse(uda, Xt[100:], yt[100:])


@pytest.mark.parametrize("method", ["mmd", "source_only", "adabn"])
def test_labelled_target_rows_reach_every_method(uda, method):
    X, y, _, _ = uda
    semi = y.copy()
    target = np.flatnonzero(np.isnan(y))
    semi[target[:20]] = 5.0  # labels far from the source's
    a = DomainAdaptRegressor(method=method, **SMALL).fit(X, y)
    b = DomainAdaptRegressor(method=method, **SMALL).fit(X, semi)
    err_a = np.abs(a.predict(X[target[:20]]) - 5.0).mean()
    err_b = np.abs(b.predict(X[target[:20]]) - 5.0).mean()
    assert err_b < err_a


def test_several_source_domains_and_per_domain_statistics():
    a = make_domain_shift(100, 60, shift="instrument", random_state=0)
    b = make_domain_shift(100, 60, shift="instrument", random_state=0, strength=0.5)
    X = np.vstack([a[0], b[2], a[2]])
    y = np.concatenate([a[1], b[3], np.full(60, np.nan)])
    domain = np.r_[np.zeros(100), np.ones(60), -np.ones(60)].astype(int)
    est = DomainAdaptRegressor(method="adabn", **SMALL).fit(X, y, sample_domain=domain)
    assert set(est.domain_stats_) == {0, 1, -1}
    mean, scale = est.domain_stats_[-1]
    np.testing.assert_allclose(mean, a[2].mean(0), rtol=1e-4, atol=1e-4)
    norm = est.net_.module_.normalizer
    np.testing.assert_allclose(norm.mean.numpy(), mean)
    np.testing.assert_allclose(norm.scale.numpy(), scale)


def test_adabn_reestimates_batch_norm_on_the_target(uda):
    X, y, _, _ = uda
    kw = dict(backbone_params={"hidden_sizes": (16,), "batch_norm": True})
    est = DomainAdaptRegressor(method="adabn", max_epochs=3, random_state=0, **kw)
    est.fit(X, y)
    bn = est.net_.module_.backbone.blocks[0][1]
    net = est.net_.module_
    target = torch.as_tensor(X[np.isnan(y)], dtype=torch.float32)
    with torch.no_grad():
        pre_bn = net.backbone.blocks[0][0](net.normalizer(target))
    np.testing.assert_allclose(bn.running_mean.numpy(), pre_bn.mean(0), atol=1e-4)


def test_domain_norm_composes_with_a_loss(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="coral", domain_norm=True, **SMALL).fit(X, y)
    assert set(est.domain_stats_) == {0, -1}
    assert "train_da_loss" in est.history_[-1]


def test_fitted_transfer_regressor_as_backbone(uda):
    X, y, _, _ = uda
    lab = ~np.isnan(y)
    src = TransferRegressor(**SMALL).fit(X[lab], y[lab])
    est = DomainAdaptRegressor(src, method="coral", max_epochs=2, random_state=0)
    est.fit(X, y)
    assert est.predict(X[:3]).shape == (3,)


def test_multi_output_with_missing_targets():
    Xs, ys, Xt, _ = make_domain_shift(100, 40, n_outputs=2, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.vstack([ys, np.full((40, 2), np.nan)])
    est = DomainAdaptRegressor(method="mmd", **SMALL).fit(X, y)
    assert est.predict(Xt).shape == (40, 2)


def test_bad_inputs_are_reported_clearly(uda):
    X, y, _, _ = uda
    with pytest.raises(ValueError, match="method"):
        DomainAdaptRegressor(method="magic").fit(X, y)
    with pytest.raises(ValueError, match="da_weight"):
        DomainAdaptRegressor(da_weight=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="sample_domain"):
        DomainAdaptRegressor(**SMALL).fit(X, y, sample_domain=np.zeros(3, dtype=int))
    bad = np.zeros(len(y), dtype=int)  # NaN rows marked as source
    with pytest.raises(ValueError, match="source rows"):
        DomainAdaptRegressor(**SMALL).fit(X, y, sample_domain=bad)
    with pytest.raises(ValueError, match="labelled"):
        DomainAdaptRegressor(**SMALL).fit(X, np.full(len(y), np.nan))


def test_importing_does_not_enable_routing():
    code = (
        "import sklearn, sktransfer; "
        "assert not sklearn.get_config()['enable_metadata_routing']"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_sample_domain_routed_through_pipeline_and_grid_search(uda):
    X, y, _, _ = uda
    # three domains, visible to the estimator only through sample_domain
    y_full = np.where(np.isnan(y), 0.0, y)
    domain = np.where(np.isnan(y), -1, 0)
    domain[:50] = 1
    expected = {-1, 0, 1}
    kw = dict(method="adabn", **SMALL)
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


def test_voting_cross_val_and_clone(uda):
    X, y, Xt, _ = uda
    lab = ~np.isnan(y)
    vote = VotingRegressor(
        [
            ("a", DomainAdaptRegressor(method="coral", **SMALL)),
            ("b", DomainAdaptRegressor(method="adabn", **SMALL)),
        ]
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        vote.fit(X[lab], y[lab])
        scores = cross_val_score(
            DomainAdaptRegressor(method="source_only", **SMALL), X[lab], y[lab], cv=3
        )
    assert vote.predict(Xt[:2]).shape == (2,) if len(Xt) else True
    assert np.isfinite(scores).all()
    est = DomainAdaptRegressor(method="mmd", **SMALL).fit(X, y)
    twin = clone(est).fit(X, y)
    np.testing.assert_array_equal(twin.predict(X), est.predict(X))
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


@pytest.mark.parametrize("method", ["adabn", "coral", "mmd", "dann", "rsd", "daregram"])
def test_adaptation_beats_source_only_on_instrument_shift(method):
    """The instrument shift (per-feature gain and offset between sensors) is
    what feature alignment and per-domain normalisation are designed for."""
    Xs, ys, Xt, yt = make_domain_shift(600, 500, shift="instrument", random_state=0)
    X = np.vstack([Xs, Xt[:250]])
    y = np.concatenate([ys, np.full(250, np.nan)])
    kw = dict(backbone_params={"hidden_sizes": (64, 64)}, max_epochs=30, random_state=0)
    base = DomainAdaptRegressor(method="source_only", **kw).fit(X, y)
    adapted = DomainAdaptRegressor(method=method, **kw).fit(X, y)
    assert _rmse(adapted, Xt[250:], yt[250:]) < 0.95 * _rmse(base, Xt[250:], yt[250:])


def _selection_beats_random(shift, scorer, seeds):
    wins = 0
    for seed in seeds:
        X, y, X_test, y_test = _uda(shift, 300, 200, seed, n_test=200)
        base = DomainAdaptRegressor(
            backbone_params={"hidden_sizes": (32, 32)},
            max_epochs=15,
            lr=1e-2,
            random_state=0,
        )
        grid = {"method": ["source_only", "adabn", "mmd"]}
        rmse = {
            m: _rmse(clone(base).set_params(method=m).fit(X, y), X_test, y_test)
            for m in grid["method"]
        }
        search = GridSearchCV(
            base, grid, cv=DomainAwareKFold(2, random_state=0), scoring=scorer
        ).fit(X, y)
        wins += rmse[search.best_params_["method"]] < np.mean(list(rmse.values()))
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


def test_domain_aware_kfold_keeps_target_rows_in_every_training_fold(uda):
    X, y, _, _ = uda
    target = np.flatnonzero(np.isnan(y))
    cv = DomainAwareKFold(n_splits=3, random_state=0)
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


def test_every_method_takes_the_same_steps_per_epoch(uda):
    # methods without a divergence skip the unlabelled rows, so an epoch is one
    # pass over the labelled rows for every method: equal max_epochs means
    # equal optimizer steps
    X, y, _, _ = uda
    n_labelled = int(np.isfinite(y).sum())
    steps = {}
    for method in ("source_only", "adabn", "coral", "dann"):
        est = DomainAdaptRegressor(
            method=method, batch_size=50, max_epochs=2, random_state=0
        ).fit(X, y)
        steps[method] = [len(h["batches"]) for h in est.history_]
    assert all(s == [-(-n_labelled // 50)] * 2 for s in steps.values()), steps


def test_linear_model_is_solved_in_closed_form_without_a_divergence(uda):
    X, y, _, _ = uda
    adabn = DomainAdaptRegressor("linear", method="adabn").fit(X, y)
    assert adabn.solver_ == "closed_form" and adabn.n_iter_ == 0
    # adabn's closed form is OLS on the per-domain standardised source rows
    from sklearn.linear_model import LinearRegression

    src = np.isfinite(y)
    mean, scale = adabn.domain_stats_[0]
    ols = LinearRegression().fit((X[src] - mean) / scale, y[src])
    t_mean, t_scale = adabn.domain_stats_[-1]
    np.testing.assert_allclose(
        adabn.predict(X[~src]),
        ols.predict((X[~src] - t_mean) / t_scale),
        rtol=1e-4,
        atol=1e-4,
    )
    coral = DomainAdaptRegressor("linear", method="coral", max_epochs=2).fit(X, y)
    assert coral.solver_ == "gradient"
    with pytest.raises(ValueError, match=r"solver='closed_form'.*adaptation loss"):
        DomainAdaptRegressor("linear", method="coral", solver="closed_form").fit(X, y)


def test_global_scaling_per_domain(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor("linear", method="adabn", standardize_X="global").fit(
        X, y
    )
    for dom, rows in ((0, np.isfinite(y)), (-1, np.isnan(y))):
        mean, scale = est.domain_stats_[dom]
        np.testing.assert_allclose(mean, X[rows].mean(0), rtol=1e-4, atol=1e-5)
        expected = np.sqrt(np.mean(X[rows].std(0) ** 2))
        np.testing.assert_allclose(scale, expected, rtol=1e-4)
