"""DomainAdaptRegressor: the rows' domains, semi-supervised rows, the
adaptation parameters and their errors. Every method on its own is in
test_adaptation.py."""

import warnings

import numpy as np
import pytest
from conftest import TINY, rmse

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import make_domain_shift


def test_constant_ramp_and_explicit_weight(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(
        method="coral", da_weight=2.5, da_ramp="constant", **TINY
    ).fit(X, y)
    assert est.history_[:, "da_scale"] == [1.0] * est.n_iter_
    assert est.da_weight_ == 2.5
    zero = DomainAdaptRegressor(method="coral", da_weight=0, **TINY).fit(X, y)
    assert zero.da_weight_ == 0.0 and isinstance(zero.da_weight_, float)


def test_no_target_rows_warns_and_trains_on_source():
    Xs, ys, _, _ = make_domain_shift(80, 10, random_state=0)
    with pytest.warns(UserWarning, match="No target rows"):
        est = DomainAdaptRegressor(method="coral", **TINY).fit(Xs, ys)
    assert est.score(Xs, ys) > -1.0
    assert "train_da_loss" not in est.history_[-1]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        DomainAdaptRegressor(method="source_only", **TINY).fit(Xs, ys)


def test_the_warning_points_at_the_callers_line():
    Xs, ys, _, _ = make_domain_shift(40, 1, random_state=0)
    with pytest.warns(UserWarning, match="No target rows") as record:
        DomainAdaptRegressor(method="mmd", **TINY).fit(Xs, ys)
    assert len(record) == 1
    assert record[0].filename == __file__


def test_sample_domain_equals_nan_convention(uda):
    X, y, _, _ = uda
    domain = np.where(np.isnan(y), -1, 0)
    a = DomainAdaptRegressor(method="mmd", **TINY).fit(X, y)
    b = DomainAdaptRegressor(method="mmd", **TINY).fit(X, y, sample_domain=domain)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    # integral floats and lists are domains too
    c = DomainAdaptRegressor(method="mmd", **TINY).fit(
        X, y, sample_domain=domain.astype(float).tolist()
    )
    np.testing.assert_array_equal(a.predict(X), c.predict(X))


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
    assert rmse(ssda, Xt[100:], yt[100:]) < 0.95 * rmse(uda, Xt[100:], yt[100:])


def test_labelled_target_rows_weigh_as_much_as_the_source():
    # one labelled target row among many source rows: with S+T balancing it
    # pulls the prediction far more than one more source row would
    Xs, ys, Xt, _ = make_domain_shift(100, 20, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, 10.0, np.full(19, np.nan)]
    domain = np.r_[np.zeros(100, int), -np.ones(20, int)]
    kw = dict(method="source_only", **TINY)
    semi = DomainAdaptRegressor(**kw).fit(X, y, sample_domain=domain)
    # the same row marked as a source row is one row among 101
    as_source = np.r_[np.zeros(101, int), -np.ones(19, int)]
    plain = DomainAdaptRegressor(**kw).fit(X, y, sample_domain=as_source)
    assert abs(semi.predict(Xt[:1])[0] - 10) < abs(plain.predict(Xt[:1])[0] - 10)


def test_domain_norm_composes_with_a_loss(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="coral", domain_norm=True, **TINY).fit(X, y)
    assert set(est.domain_stats_) == {0, -1}
    assert "train_da_loss" in est.history_[-1]
    plain = DomainAdaptRegressor(method="coral", **TINY).fit(X, y)
    assert plain.domain_stats_ is None


def test_fitted_transfer_regressor_as_backbone(uda):
    X, y, _, _ = uda
    lab = ~np.isnan(y)
    src = TransferRegressor(**TINY).fit(X[lab], y[lab])
    est = DomainAdaptRegressor(src, method="coral", max_epochs=2, random_state=0)
    est.fit(X, y)
    assert est.predict(X[:3]).shape == (3,)
    assert est.n_backbone_features_ == src.n_backbone_features_
    # and a fitted DomainAdaptRegressor as the source of a fine-tuning
    tuned = TransferRegressor(est, max_epochs=2, random_state=0).fit(X[lab], y[lab])
    assert tuned.predict(X[:3]).shape == (3,)


def test_multi_output_with_missing_targets():
    Xs, ys, Xt, _ = make_domain_shift(100, 40, n_outputs=2, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.vstack([ys, np.full((40, 2), np.nan)])
    est = DomainAdaptRegressor(method="mmd", **TINY).fit(X, y)
    assert est.predict(Xt).shape == (40, 2)
    assert est.n_outputs_ == 2


def test_early_stopping_holds_out_labelled_rows(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(
        method="coral",
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=6,
        random_state=0,
        backbone_params={"hidden_sizes": (8,)},
    ).fit(X, y)
    valid = est.history_[:, "valid_loss"]
    assert np.isfinite(valid).all() and all(v > 0 for v in valid)


def test_bad_inputs_are_reported_clearly(uda):
    X, y, _, _ = uda
    with pytest.raises(ValueError, match="method"):
        DomainAdaptRegressor(method="magic").fit(X, y)
    with pytest.raises(ValueError, match="da_weight"):
        DomainAdaptRegressor(da_weight=-1.0).fit(X, y)
    with pytest.raises(ValueError, match="da_ramp"):
        DomainAdaptRegressor(da_ramp="cosine").fit(X, y)
    with pytest.raises(ValueError, match="sample_domain"):
        DomainAdaptRegressor(**TINY).fit(X, y, sample_domain=np.zeros(3, dtype=int))
    bad = np.zeros(len(y), dtype=int)  # NaN rows marked as source
    with pytest.raises(ValueError, match="source rows"):
        DomainAdaptRegressor(**TINY).fit(X, y, sample_domain=bad)
    with pytest.raises(ValueError, match="labelled"):
        DomainAdaptRegressor(**TINY).fit(X, np.full(len(y), np.nan))


def test_every_target_row_labelled_warns_that_they_train():
    # skada's dataset helpers return the target labels with sample_domain
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=60)
    domain = np.r_[np.zeros(40, int), -np.ones(20, int)]
    est = DomainAdaptRegressor(method="source_only", max_epochs=2, random_state=0)
    with pytest.warns(
        UserWarning, match=r"All 20 target rows .* y\[sample_domain < 0\] = np.nan"
    ):
        est.fit(X, y, sample_domain=domain)
    y_hidden = y.copy()
    y_hidden[45:] = np.nan  # some unlabelled: semi-supervised on purpose
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        est.fit(X, y_hidden, sample_domain=domain)


def test_score_leaves_out_unlabelled_rows(uda):
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_val_score

    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="source_only", **TINY)
    est.fit(X, y)
    lab = np.isfinite(y)
    assert est.score(X, y) == pytest.approx(r2_score(y[lab], est.predict(X[lab])))
    folds = KFold(3, shuffle=True, random_state=0)
    scores = cross_val_score(est, X, y, cv=folds)
    assert np.isfinite(scores).all()
    with pytest.raises(ValueError, match="no labelled rows"):
        est.score(X[~lab], y[~lab])


def test_predict_with_sample_domain_uses_each_domains_statistics(uda):
    X, y, _, _ = uda
    small = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0)
    adabn = DomainAdaptRegressor(method="adabn", **small).fit(X, y)
    plain = DomainAdaptRegressor(method="source_only", **small).fit(X, y)
    src, tgt = np.isfinite(y), np.isnan(y)
    # target rows: their statistics are the ones predict applies anyway
    n_tgt = int(tgt.sum())
    np.testing.assert_allclose(
        adabn.predict(X[tgt], sample_domain=-np.ones(n_tgt, int)),
        adabn.predict(X[tgt]),
        rtol=1e-5,
        atol=1e-6,
    )
    # source rows with the source statistics: without batch norm, adabn and
    # source_only trained the same network on the same standardised rows
    on_source = adabn.predict(X[src], sample_domain=np.zeros(int(src.sum()), int))
    np.testing.assert_allclose(on_source, plain.predict(X[src]), rtol=1e-4, atol=1e-5)
    assert not np.allclose(adabn.predict(X[src]), on_source, atol=1e-3)
    # without per-domain statistics sample_domain changes nothing
    np.testing.assert_array_equal(
        plain.predict(X[src], sample_domain=np.zeros(int(src.sum()), int)),
        plain.predict(X[src]),
    )
    with pytest.raises(ValueError, match=r"domain\(s\) \[3\] that fit did not see"):
        adabn.predict(X[:2], sample_domain=np.array([3, 3]))
    with pytest.raises(ValueError, match="one integer per row"):
        adabn.predict(X[:2], sample_domain=np.array([0]))


def test_score_and_predict_take_sample_domain_as_routing_asks():
    import sklearn
    from sklearn.metrics import r2_score
    from sklearn.model_selection import KFold, cross_validate
    from sklearn.pipeline import make_pipeline

    # two instruments (gain and offset): the source rows need their own
    # statistics, which only sample_domain names
    Xs, ys, Xt, yt = make_domain_shift(80, 60, random_state=0)
    X, y = np.vstack([Xs, Xt]), np.concatenate([ys, yt])
    domain = np.r_[np.zeros(80, int), -np.ones(60, int)]
    est = DomainAdaptRegressor("linear", method="adabn", random_state=0)
    est.fit(X, np.where(domain < 0, np.nan, y), sample_domain=domain)
    own = est.predict(X, sample_domain=domain)
    assert est.score(X, y, sample_domain=domain) == pytest.approx(r2_score(y, own))
    assert est.score(X, y, sample_domain=domain) > est.score(X, y) + 0.05
    y_hidden = np.where(domain < 0, np.nan, y)  # NaN rows leave, with their domain
    assert est.score(X, y_hidden, sample_domain=domain) == pytest.approx(
        r2_score(ys, own[:80])
    )
    with sklearn.config_context(enable_metadata_routing=True):
        # predict asks for sample_domain by default, score only on request:
        # cross_validate's params are for fit
        pipe = make_pipeline(DomainAdaptRegressor("linear", method="adabn"))
        pipe.fit(X, y_hidden, sample_domain=domain)
        np.testing.assert_array_equal(pipe.predict(X, sample_domain=domain), own)
        folds = KFold(2, shuffle=True, random_state=0)
        params = {"sample_domain": domain}
        kw = dict(cv=folds, params=params, return_estimator=True, return_indices=True)
        for asks in (False, True):
            est = DomainAdaptRegressor("linear", method="adabn")
            est.set_score_request(sample_domain=asks)
            out = cross_validate(est, X, y_hidden, **kw)
            for fitted, test, score in zip(
                out["estimator"], out["indices"]["test"], out["test_score"]
            ):
                rows = test[domain[test] >= 0]  # the labelled rows
                sd = domain[rows] if asks else None
                pred = fitted.predict(X[rows], sample_domain=sd)
                assert score == pytest.approx(r2_score(y[rows], pred))
