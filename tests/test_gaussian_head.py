"""``head="gaussian"``: a mean and a variance per output, trained by the
Gaussian negative log-likelihood; ``predict(X, return_std=True)``; the
ensemble's mixture (Lakshminarayanan et al., NeurIPS 2017)."""

import pickle

import numpy as np
import pytest
import torch
from conftest import SMALL, linear_problem, network, uda_stack
from scipy.stats import spearmanr
from sklearn import config_context
from sklearn.base import clone
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferEnsemble, TransferRegressor
from sktransfer._net import _row_loss
from sktransfer.ensemble import _mixture
from sktransfer.heads import GaussianHead, make_head, predicts_variance

GAUSS = dict(SMALL, head="gaussian")


def _heteroscedastic(n=200, seed=0):
    """``y = sin(3x) + noise`` whose standard deviation grows with ``x``."""
    rng = np.random.default_rng(seed)
    X = rng.uniform(-1, 1, size=(n, 1))
    noise_std = 0.05 + 0.5 * (X[:, 0] + 1)
    y = np.sin(3 * X[:, 0]) + noise_std * rng.normal(size=n)
    return X, y, noise_std


@pytest.fixture(scope="module")
def data():
    return linear_problem(n=120, n_features=4)


@pytest.fixture(scope="module")
def fitted(data):
    X, y = data
    return TransferRegressor(**GAUSS).fit(X, y)


def test_gaussian_head_outputs_means_then_positive_variances():
    head = make_head("gaussian", 6, 2)
    assert isinstance(head, GaussianHead) and predicts_variance(head)
    assert (head.linear.in_features, head.linear.out_features) == (6, 4)
    with torch.no_grad():
        head.linear.bias[2:] = -50.0  # softplus underflows: the floor remains
        x = torch.randn(5, 6)
        out, raw = head(x), head.linear(x)
    assert out.shape == (5, 4)
    assert torch.allclose(out[:, :2], raw[:, :2])
    assert torch.allclose(out[:, 2:], torch.nn.functional.softplus(raw[:, 2:]) + 1e-6)
    assert (out[:, 2:] >= 1e-6).all()
    assert not predicts_variance(torch.nn.Linear(6, 2))


def test_row_loss_is_the_gaussian_nll_without_its_constant():
    y = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    pred = torch.tensor([[0.5, 2.0, 0.25, 4.0], [0.0, 0.0, 1.0, 0.5]])
    mean, var = pred[:, :2], pred[:, 2:]
    expected = (0.5 * (var.log() + (y - mean) ** 2 / var)).mean(dim=1)
    assert torch.allclose(_row_loss(pred, y, gaussian=True), expected)
    assert torch.allclose(
        _row_loss(pred[:, :2], y, gaussian=False), ((pred[:, :2] - y) ** 2).mean(1)
    )


@pytest.mark.parametrize("n_outputs", [1, 3])
def test_shapes_and_positive_std(data, n_outputs):
    X, y = data
    Y = y if n_outputs == 1 else np.column_stack([y * (k + 1) for k in range(3)])
    est = TransferRegressor(**GAUSS).fit(X, Y)
    assert est.n_outputs_ == n_outputs and est.solver_ == "gradient"
    mean, std = est.predict(X[:7], return_std=True)
    shape = (7,) if n_outputs == 1 else (7, 3)
    assert mean.shape == std.shape == shape
    assert (std > 0).all() and np.isfinite(std).all()
    np.testing.assert_array_equal(est.predict(X[:7]), mean)


def test_std_is_in_original_units(data):
    X, y = data
    small = TransferRegressor(**GAUSS).fit(X, y)
    large = TransferRegressor(**GAUSS).fit(X, 1000 * y + 5)
    mean_s, std_s = small.predict(X[:10], return_std=True)
    mean_l, std_l = large.predict(X[:10], return_std=True)
    np.testing.assert_allclose(std_l, 1000 * std_s, rtol=1e-4)
    np.testing.assert_allclose(mean_l, 1000 * mean_s + 5, rtol=1e-4, atol=1e-3)


def test_predicted_std_follows_heteroscedastic_noise_and_nll_decreases():
    X, y, _ = _heteroscedastic()
    est = TransferRegressor(
        head="gaussian",
        backbone_params={"hidden_sizes": (16,)},
        max_epochs=30,
        lr=1e-2,
        random_state=0,
    ).fit(X, y)
    grid = np.linspace(-1, 1, 100)[:, None]
    _, std = est.predict(grid, return_std=True)
    assert spearmanr(std, 0.05 + 0.5 * (grid[:, 0] + 1))[0] > 0.5
    losses = est.history_[:, "train_loss"]
    assert losses[-1] < losses[0] - 0.2
    assert np.mean(losses[-5:]) < np.mean(losses[:5])


def test_return_std_without_gaussian_head_says_how(data):
    X, y = data
    est = TransferRegressor(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="head='gaussian'"):
        est.predict(X, return_std=True)
    pred = est.predict(X)
    np.testing.assert_array_equal(est.predict(X, return_std=False), pred)


def test_closed_form_is_refused_and_auto_trains_by_gradient(data):
    X, y = data
    with pytest.raises(ValueError, match=r"solver='closed_form'.*head='gaussian'"):
        TransferRegressor("linear", head="gaussian", solver="closed_form").fit(X, y)
    est = TransferRegressor("linear", head="gaussian", max_epochs=3).fit(X, y)
    assert est.solver_ == "gradient" and est.n_iter_ == 3


def test_module_head_that_predicts_variance_needs_two_columns_per_output(data):
    X, y = data
    backbone = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh())
    est = TransferRegressor(backbone, head=GaussianHead(8, 1), max_epochs=2)
    assert est.fit(X, y).predict(X[:3], return_std=True)[1].shape == (3,)

    class Wrong(torch.nn.Linear):
        predicts_variance = True

    with pytest.raises(ValueError, match=r"y needs \(2, 2\)"):
        TransferRegressor(backbone, head=Wrong(8, 1), max_epochs=1).fit(X, y)


def test_domain_adapt_with_coral_and_sample_domain():
    X, y, X_test, _ = uda_stack(n_source=120, n_target=60, n_test=20)
    est = DomainAdaptRegressor(method="coral", **GAUSS).fit(X, y)
    mean, std = est.predict(X_test, return_std=True)
    assert mean.shape == std.shape == (20,) and (std > 0).all()
    np.testing.assert_array_equal(est.predict(X_test), mean)
    domain = np.full(len(X_test), -1)
    again = est.predict(X_test, sample_domain=domain, return_std=True)
    np.testing.assert_array_equal(again[1], std)
    with pytest.raises(ValueError, match="head='gaussian'"):
        DomainAdaptRegressor(method="source_only", **SMALL).fit(X, y).predict(
            X_test, return_std=True
        )


def test_fine_tuning_keeps_a_gaussian_source_head_under_auto(data, fitted):
    X, y = data
    target = TransferRegressor(fitted, max_epochs=3, random_state=0).fit(X, y)
    head = network(target).head
    assert isinstance(head, GaussianHead) and head is not network(fitted).head
    assert target.predict(X[:4], return_std=True)[1].shape == (4,)
    # L2-SP anchors and parameter groups name the head's parameters
    assert "head.linear.weight" in target.net_.anchored
    linear = TransferRegressor(fitted, head="linear", max_epochs=2).fit(X, y)
    assert type(network(linear).head) is torch.nn.Linear
    source = TransferRegressor(**SMALL).fit(X, y)
    new = TransferRegressor(source, head="gaussian", max_epochs=2).fit(X, y)
    assert isinstance(network(new).head, GaussianHead)
    probe = TransferRegressor(fitted, finetune="linear_probe", max_epochs=2)
    assert probe.fit(X, y).solver_ == "gradient"


def test_ensemble_mixture_against_a_hand_computation():
    means = np.array([[1.0, 2.0], [3.0, 2.0], [2.0, 5.0]])
    stds = np.array([[1.0, 0.0], [2.0, 1.0], [0.5, 1.0]])
    mean, std = _mixture(means, stds)
    m = means.mean(0)
    var = ((stds**2 + means**2).mean(0)) - m**2  # the paper's formula
    np.testing.assert_allclose(mean, m)
    np.testing.assert_allclose(std, np.sqrt(var))
    np.testing.assert_allclose(_mixture(means, 0 * stds)[1], means.std(0))


def test_ensemble_of_gaussian_members_returns_the_mixture(data):
    X, y = data
    ensemble = TransferEnsemble(
        TransferRegressor(**GAUSS), n_members=3, random_state=0
    ).fit(X, y)
    mean, std = ensemble.predict(X[:6], return_std=True)
    parts = [m.predict(X[:6], return_std=True) for m in ensemble.estimators_]
    means = np.stack([p[0] for p in parts])
    variances = np.stack([p[1] ** 2 for p in parts])
    expected = (variances + means**2).mean(0) - means.mean(0) ** 2
    np.testing.assert_allclose(mean, means.mean(0))
    np.testing.assert_allclose(std, np.sqrt(expected), rtol=1e-6)
    assert (std > means.std(0)).all()  # the members' noise counts too
    np.testing.assert_array_equal(ensemble.predict(X[:6]), mean)


def test_clone_pickle_and_pipeline(data, fitted):
    X, y = data
    assert clone(fitted).head == "gaussian"
    loaded = pickle.loads(pickle.dumps(fitted))
    for a, b in zip(loaded.predict(X, return_std=True), fitted.predict(X, True)):
        np.testing.assert_array_equal(a, b)
    pipe = make_pipeline(StandardScaler(), TransferRegressor(**GAUSS)).fit(X, y)
    mean, std = pipe.predict(X[:5], return_std=True)
    assert mean.shape == std.shape == (5,)
    # under metadata routing return_std is requested as for a Gaussian process
    with config_context(enable_metadata_routing=True):
        est = TransferRegressor(**GAUSS).set_predict_request(return_std=True)
        pipe = make_pipeline(StandardScaler(), est).fit(X, y)
        assert pipe.predict(X[:5], return_std=True)[1].shape == (5,)
        assert pipe.predict(X[:5]).shape == (5,)


def test_sample_weights_act_on_the_nll_as_repeated_rows(data):
    # one batch holds every row (repeated or not): the same gradient steps
    X, y = data[0][:30], data[1][:30]
    weight = np.random.default_rng(0).integers(0, 3, size=len(y))
    repeated = np.repeat(np.arange(len(y)), weight)
    settings = dict(GAUSS, batch_size=128)
    weighted = TransferRegressor(**settings).fit(X, y, sample_weight=weight)
    duplicated = TransferRegressor(**settings).fit(X[repeated], y[repeated])
    for a, b in zip(
        weighted.predict(X, return_std=True), duplicated.predict(X, return_std=True)
    ):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5)


def test_early_stopping_on_the_nll_and_mixed_precision(data):
    X, y = data
    est = TransferRegressor(early_stopping=True, n_iter_no_change=3, **GAUSS)
    est.set_params(max_epochs=200).fit(X, y)
    stopper = dict(est.net_.callbacks)["early_stopping"]
    assert stopper.threshold_mode == "abs" and est.n_iter_ < 200
    assert np.isfinite(est.history_[:, "valid_loss"]).all()
    bf16 = TransferRegressor(precision="bf16", **GAUSS).fit(X, y)
    assert (bf16.predict(X[:5], return_std=True)[1] > 0).all()
