"""Input and target scaling (``sktransfer._scaling``): the Scaling object on its
own, and the ``standardize_X`` / ``standardize_y`` / per-domain behaviour of
the estimators."""

import numpy as np
import pytest
import torch
from conftest import TINY, linear_problem, network
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.metrics import r2_score

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._module import TransferModule
from sktransfer._scaling import Scaling, feature_stats, standardize_by_domain
from sktransfer.data import domain_masks
from sktransfer.datasets import make_domain_shift


def _labelled(n):
    return domain_masks(np.zeros(n))


# ------------------------------------------------------------- feature_stats
@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.integers(1, 5)),
        elements=st.floats(-1e3, 1e3),
    ),
    st.integers(1, 7),
    st.booleans(),
)
def test_feature_stats_is_the_weighted_mean_and_std_in_any_chunks(X, chunk, weighted):
    w = np.linspace(0.5, 2.0, len(X)) if weighted else None
    mean, std = feature_stats(X, w, chunk=chunk)
    assert mean.dtype == std.dtype == np.float64  # statistics stay in float64
    ref_mean = np.average(X, axis=0, weights=w)
    ref_std = np.sqrt(np.average((X - ref_mean) ** 2, axis=0, weights=w))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-5, atol=1e-3)
    varying = ref_std > 1e-6 * (1 + np.abs(ref_mean))
    np.testing.assert_allclose(std[varying], ref_std[varying], rtol=1e-4, atol=1e-3)
    assert (std > 0).all()  # constant features get scale 1, never 0


def test_feature_stats_of_constant_features():
    X = np.c_[np.full(5, 2.0), np.arange(5.0)]
    mean, std = feature_stats(X)
    assert std[0] == 1.0 and mean[0] == 2.0
    _, raw = feature_stats(X, constant_scale=None)
    assert raw[0] == 0.0
    _, nd = feature_stats(np.zeros((4, 2, 3)))
    assert nd.shape == (2, 3)  # per element of n-D samples


# ------------------------------------------------------------ Scaling alone
def test_scaling_per_feature_global_and_off():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 3)) * [1.0, 10.0, 100.0] + 5.0
    y = rng.normal(size=(50, 1))
    masks = _labelled(50)
    per = Scaling("per_feature", True)
    X_per, _ = per.fit_transform(X, y, masks)
    assert X_per.dtype == np.float32 and X_per is not X
    np.testing.assert_allclose(X_per.mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(X_per.std(0), 1, rtol=1e-5)
    glob = Scaling("global", True)
    X_glob, _ = glob.fit_transform(X, y, masks)
    np.testing.assert_allclose(X_glob.mean(0), 0, atol=1e-4)
    np.testing.assert_allclose(glob.input_scale_, np.sqrt(np.mean(X.std(0) ** 2)))
    # one scale for every feature: the relative sizes survive
    np.testing.assert_allclose(
        X_glob.std(0) / X_glob.std(0)[0], X.std(0) / X.std(0)[0], rtol=1e-5
    )
    off = Scaling("off", True)
    X_off, _ = off.fit_transform(X, y, masks)
    np.testing.assert_allclose(X_off, X.astype(np.float32))
    assert off.input_mean_ is None and off.input_scale_ is None
    assert off.domain_stats_ is None


def test_scaling_inherits_a_source_scaling():
    class Source:
        input_mean_ = np.array([1.0, 2.0], dtype=np.float32)
        input_scale_ = np.array([2.0, 4.0], dtype=np.float32)
        y_mean_, y_scale_ = np.array([10.0]), np.array([5.0])

    X, y = np.ones((4, 2)), np.full((4, 1), 20.0)
    scaling = Scaling("inherit", True, inherited=Source(), inherit_y=True)
    X_train, y_train = scaling.fit_transform(X, y, _labelled(4))
    np.testing.assert_allclose(X_train, [[0.0, -0.25]] * 4)
    np.testing.assert_allclose(y_train, 2.0)
    assert scaling.y_mean_.tolist() == [10.0]
    # a source without input scaling passes nothing on
    Source.input_mean_ = Source.input_scale_ = None
    scaling = Scaling("inherit", True, inherited=Source())
    X_train, y_train = scaling.fit_transform(X, y, _labelled(4))
    np.testing.assert_array_equal(X_train, X)
    assert scaling.input_mean_ is None
    # its own target scaling unless the head is inherited
    assert scaling.y_mean_.tolist() == [20.0]


def test_scaling_targets_over_labelled_rows():
    y = np.array([[1.0], [3.0], [np.nan], [100.0]])
    masks = domain_masks(y, [0, 0, -1, -1])
    X = np.zeros((4, 1))
    scaling = Scaling("off", True)
    _, y_train = scaling.fit_transform(X, y, masks)
    np.testing.assert_allclose(scaling.y_mean_, [np.mean([1, 3, 100])])
    assert y_train[2, 0] == 0.0 and y_train.dtype == np.float32
    assert scaling.y_mean_.dtype == scaling.y_scale_.dtype == np.float64
    weighted = Scaling("off", True)
    weighted.fit_transform(X, y, masks, np.array([1.0, 3.0, 1.0, 0.0]))
    np.testing.assert_allclose(weighted.y_mean_, [2.5])
    raw = Scaling("off", False)
    _, y_raw = raw.fit_transform(X, y, masks)
    assert raw.y_mean_.tolist() == [0.0] and raw.y_scale_.tolist() == [1.0]
    np.testing.assert_allclose(y_raw[[0, 1, 3], 0], [1.0, 3.0, 100.0])


def test_scaling_per_domain():
    rng = np.random.RandomState(0)
    X = np.vstack([rng.normal(size=(20, 2)), rng.normal(size=(10, 2)) * 3 + 5])
    X = np.vstack([X, rng.normal(size=(8, 2)) - 2])
    y = np.r_[np.zeros(20), np.full(18, np.nan)][:, None]
    domain = np.r_[np.zeros(20, int), -np.ones(10, int), -2 * np.ones(8, int)]
    scaling = Scaling("per_feature", True, per_domain=True)
    X_train, _ = scaling.fit_transform(X, y, domain_masks(y, domain))
    assert set(scaling.domain_stats_) == {0, -1, -2}
    for dom in (0, -1, -2):
        rows = domain == dom
        np.testing.assert_allclose(X_train[rows].mean(0), 0, atol=1e-5)
        np.testing.assert_allclose(X_train[rows].std(0), 1, rtol=1e-4)
    # prediction uses the target domain numbered closest to 0
    np.testing.assert_array_equal(scaling.input_mean_, scaling.domain_stats_[-1][0])


def test_scaling_configures_the_network_normaliser():
    module = TransferModule(torch.nn.Flatten(), torch.nn.Linear(2, 1), 2)
    off = Scaling("off", True)
    off.fit_transform(np.ones((2, 2)), np.zeros((2, 1)), _labelled(2))
    off.configure(module)
    assert not module.normalizer.active
    scaling = Scaling("per_feature", True)
    X = np.array([[0.0, 10.0], [2.0, 30.0]])
    X_train, _ = scaling.fit_transform(X, np.zeros((2, 1)), _labelled(2))
    scaling.configure(module)
    assert module.normalizer.active
    with torch.no_grad():
        out = module.normalizer(torch.as_tensor(X, dtype=torch.float32))
    np.testing.assert_allclose(out.numpy(), X_train, atol=1e-6)


# ------------------------------------------------------------ estimator level
def test_standardize_X_modes():
    X, y = linear_problem(n=80, n_features=4)
    X = X * np.array([0.01, 1.0, 10.0, 100.0]) + 5.0
    std = X.std(0)
    ols = {"weight_decay": 0.0}  # unpenalised: the scaling cannot matter
    per = TransferRegressor("linear", standardize_X=True, **ols).fit(X, y)
    np.testing.assert_allclose(per.input_mean_, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(per.input_scale_, std, rtol=1e-5)
    glob = TransferRegressor("linear", standardize_X="global", **ols).fit(X, y)
    np.testing.assert_allclose(glob.input_mean_, X.mean(0), rtol=1e-5)
    # one scale for every feature: the relative sizes of the features survive
    np.testing.assert_allclose(glob.input_scale_, np.sqrt(np.mean(std**2)), rtol=1e-5)
    off = TransferRegressor("linear", standardize_X=False).fit(X, y)
    assert off.input_mean_ is None and off.input_scale_ is None
    assert not network(off).normalizer.active
    # OLS does not care how the inputs are scaled
    np.testing.assert_allclose(per.predict(X), glob.predict(X), rtol=1e-4, atol=1e-4)
    # a transfer inherits the source's scaling
    child = TransferRegressor(glob, l2sp=1.0).fit(X[:10], y[:10])
    np.testing.assert_array_equal(child.input_scale_, glob.input_scale_)
    np.testing.assert_array_equal(child.input_mean_, glob.input_mean_)
    with pytest.raises(ValueError, match="standardize_X"):
        TransferRegressor("linear", standardize_X="per_sample").fit(X, y)


def test_auto_scaling_is_off_for_a_user_module():
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(torch.nn.Linear(4, 3), max_epochs=1).fit(X, y)
    assert est.input_mean_ is None
    forced = TransferRegressor(torch.nn.Linear(4, 3), standardize_X=True, max_epochs=1)
    assert forced.fit(X, y).input_mean_.shape == (4,)


def test_the_normaliser_applies_the_published_statistics():
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(**TINY).fit(X * 7 + 3, y)
    norm = network(est).normalizer
    # the layer holds them in float32; predict centres in float64 itself
    np.testing.assert_array_equal(norm.mean.numpy(), est.input_mean_.astype("f4"))
    np.testing.assert_array_equal(norm.scale.numpy(), est.input_scale_.astype("f4"))


def test_global_scale_ignores_constant_features():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 20)) * 1e-3
    X[:, 0] = 0.5  # a flat band
    y = X[:, 1] * 1e3
    est = TransferRegressor("linear", standardize_X="global").fit(X, y)
    expected = np.sqrt(np.mean(X[:, 1:].std(0) ** 2))
    np.testing.assert_allclose(est.input_scale_, expected, rtol=1e-4)
    const = TransferRegressor("linear", standardize_X="global").fit(
        np.ones((10, 3)), np.arange(10.0)
    )
    np.testing.assert_array_equal(const.input_scale_, 1.0)


def test_standardize_y_returns_original_units():
    X, y = linear_problem(n=120, n_features=4)
    est = TransferRegressor("linear", max_epochs=30, lr=3e-2, random_state=0)
    est.fit(X, 1e6 * y + 5e6)
    pred = est.predict(X)
    assert r2_score(1e6 * y + 5e6, pred) > 0.5
    assert abs(pred.mean() - 5e6) < 1e6
    assert est.y_mean_ == pytest.approx(np.mean(1e6 * y + 5e6))
    raw = TransferRegressor("linear", standardize_y=False).fit(X, y)
    assert raw.y_mean_.tolist() == [0.0] and raw.y_scale_.tolist() == [1.0]


def test_several_source_domains_and_per_domain_statistics():
    a = make_domain_shift(100, 60, shift="instrument", random_state=0)
    b = make_domain_shift(100, 60, shift="instrument", random_state=0, strength=0.5)
    X = np.vstack([a[0], b[2], a[2]])
    y = np.concatenate([a[1], b[3], np.full(60, np.nan)])
    domain = np.r_[np.zeros(100), np.ones(60), -np.ones(60)].astype(int)
    est = DomainAdaptRegressor(method="adabn", **TINY).fit(X, y, sample_domain=domain)
    assert set(est.domain_stats_) == {0, 1, -1}
    mean, scale = est.domain_stats_[-1]
    np.testing.assert_allclose(mean, a[2].mean(0), rtol=1e-4, atol=1e-4)
    # prediction standardises with the target statistics
    np.testing.assert_allclose(est.input_mean_, mean)
    np.testing.assert_allclose(est.input_scale_, scale)


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


def test_standardize_by_domain_uses_each_rows_own_statistics():
    rng = np.random.RandomState(0)
    flat = rng.normal(size=(6, 3))
    domains = np.array([0, -1, 0, 1, -1, 1])
    stats = {d: (rng.normal(size=3), rng.uniform(0.5, 2, size=3)) for d in (0, 1, -1)}
    before = flat.copy()
    out = standardize_by_domain(flat, domains, stats)
    for i, d in enumerate(domains):
        np.testing.assert_allclose(out[i], (flat[i] - stats[d][0]) / stats[d][1])
    np.testing.assert_array_equal(flat, before)  # a new array
