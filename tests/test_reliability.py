"""Faults end in a clear error or a sound model (issue 10, the core classes).

Each test here failed before the fix it names: interruption, divergence,
zero weights, no source rows, output shapes, precision and overflow, weights
and modules with non-finite values, threads, and what predict depends on.
"""

import threading
import warnings

import numpy as np
import pytest
import torch
from skorch.callbacks import Callback

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer import _base as base_module
from sktransfer.backbones import _registry as backbone_registry
from sktransfer.backbones import register_backbone
from sktransfer.datasets import make_domain_shift
from sktransfer.exceptions import TrainingDivergedError

TINY = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0)


@pytest.fixture(scope="module")
def shift():
    return make_domain_shift(200, 100, random_state=0)


def _state(est):
    return {k: v for k, v in vars(est).items() if k != "net_"}, est.predict


# ------------------------------------------------------------- interruption
class _InterruptAt(Callback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_epoch_end(self, net, **kwargs):
        if len(net.history) == self.epoch:
            raise KeyboardInterrupt


def test_ctrl_c_reraises_and_keeps_the_fitted_model(shift, monkeypatch):
    Xs, ys, Xt, _ = shift
    est = TransferRegressor(**TINY).fit(Xs, ys)
    before, n_iter = est.predict(Xt), est.n_iter_
    assemble = base_module.BaseTransferEstimator._assemble_net

    def with_interrupt(self, *args, **kwargs):
        net = assemble(self, *args, **kwargs)
        net.callbacks = [*net.callbacks, ("interrupt", _InterruptAt(3))]
        return net

    monkeypatch.setattr(
        base_module.BaseTransferEstimator, "_assemble_net", with_interrupt
    )
    with pytest.raises(KeyboardInterrupt, match="after 3 epoch"):
        est.set_params(max_epochs=20).fit(Xs, ys)
    assert est.n_iter_ == n_iter
    np.testing.assert_array_equal(est.predict(Xt), before)


# --------------------------------------------------------------- divergence
@pytest.mark.parametrize(
    "params",
    [
        dict(lr=1e6, optimizer="sgd"),
        dict(lr=1e6, optimizer="sgd", early_stopping=True),
        dict(lr=1e6, optimizer="sgd", standardize_y=False),
    ],
)
def test_diverging_training_stops_with_an_error_naming_epoch_and_remedies(
    shift, params
):
    Xs, ys, _, _ = shift
    with pytest.raises(TrainingDivergedError, match=r"epoch \d+.*lr.*grad_clip"):
        TransferRegressor(**{**TINY, **params}).fit(Xs, ys * 1e3)


@pytest.mark.parametrize("method", ["coral", "dann", "mmd"])
def test_diverging_adaptation_stops_too(shift, method):
    Xs, ys, Xt, _ = shift
    X, y = np.vstack([Xs, Xt]), np.concatenate([ys * 1e3, np.full(len(Xt), np.nan)])
    est = DomainAdaptRegressor(method=method, lr=1e6, optimizer="sgd", **TINY)
    with pytest.raises(TrainingDivergedError):
        est.fit(X, y)


def test_grad_clip_keeps_a_large_learning_rate_finite(shift):
    Xs, ys, Xt, _ = shift
    est = TransferRegressor(lr=1e3, optimizer="sgd", grad_clip=1.0, **TINY)
    assert np.isfinite(est.fit(Xs, ys).predict(Xt)).all()
    assert "grad_clip" in dict(est.net_.callbacks)


def test_grad_clip_is_validated():
    with pytest.raises(ValueError, match="grad_clip"):
        TransferRegressor(grad_clip=0.0).fit(np.zeros((4, 2)), np.arange(4.0))


# ------------------------------------------------------------- zero weights
def test_a_domain_with_zero_weights_gets_unweighted_statistics(shift):
    Xs, ys, Xt, _ = shift
    X, y = np.vstack([Xs, Xt]), np.concatenate([ys, np.full(len(Xt), np.nan)])
    sw = np.r_[np.ones(len(Xs)), np.zeros(len(Xt))]
    est = DomainAdaptRegressor(method="adabn", **TINY).fit(X, y, sample_weight=sw)
    assert np.isfinite(est.predict(Xt)).all()
    np.testing.assert_allclose(est.domain_stats_[-1][0], Xt.mean(axis=0), rtol=1e-6)


def test_zero_weight_on_every_labelled_target_row(shift):
    Xs, ys, Xt, yt = shift
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(len(Xt), np.nan)])
    y[len(Xs) : len(Xs) + 5] = yt[:5]
    sw = np.ones(len(X))
    sw[len(Xs) : len(Xs) + 5] = 0.0
    est = DomainAdaptRegressor(method="coral", **TINY).fit(X, y, sample_weight=sw)
    assert np.isfinite(est.predict(Xt)).all()


# ------------------------------------------------------------ no source rows
@pytest.mark.parametrize("method", ["coral", "dann", "mmd", "adabn"])
def test_no_source_rows_warns_and_trains_on_the_labelled_target_rows(shift, method):
    _, _, Xt, yt = shift
    est = DomainAdaptRegressor(method=method, **{**TINY, "max_epochs": 40})
    with pytest.warns(UserWarning, match="No source rows") as record:
        est.fit(Xt, yt, sample_domain=-np.ones(len(Xt), dtype=int))
    assert record[0].filename == __file__
    assert np.isfinite(est.history_[-1, "train_loss"])
    assert est.score(Xt, yt) > 0.0


# ------------------------------------------------------------- output shapes
class _ThreeDimHead(torch.nn.Module):
    def __init__(self, n_features):
        super().__init__()
        self.linear = torch.nn.Linear(n_features, 1)

    def forward(self, x):
        return self.linear(x)[:, :, None]  # (n, 1, 1) would broadcast in the loss


def test_a_head_of_the_wrong_output_shape_is_refused(shift):
    Xs, ys, _, _ = shift
    with pytest.raises(ValueError, match=r"head maps.*\(2, 1, 1\).*\(2, 1\)"):
        TransferRegressor(head=_ThreeDimHead(16), **TINY).fit(Xs, ys)


# ----------------------------------------------------- precision and overflow
def _offset_problem(offset, scale):
    rng = np.random.RandomState(0)
    Z = rng.normal(size=(300, 3))
    return Z * scale + offset, Z @ np.array([1.0, 2.0, 3.0])


@pytest.mark.parametrize(
    ("offset", "scale"), [(1e7, 1e-2), (1.7e9, 1.0), (1e39, 1e37), (-1e12, 1e-1)]
)
def test_large_offsets_keep_their_variation(offset, scale):
    X, y = _offset_problem(offset, scale)
    assert TransferRegressor("linear").fit(X, y).score(X, y) > 0.999


def test_values_beyond_float32_without_scaling_are_refused_naming_columns():
    X, y = _offset_problem(1e39, 1e37)
    with pytest.raises(ValueError, match=r"float32 range.*column\(s\) \[0, 1, 2\]"):
        TransferRegressor(torch.nn.Identity(), max_epochs=1).fit(X, y)


def test_predict_refuses_values_beyond_float32_too():
    X, y = _offset_problem(0.0, 1.0)
    est = TransferRegressor(torch.nn.Identity(), max_epochs=1).fit(X, y)
    bad = X.copy()
    bad[0, 1] = 1e300
    with pytest.raises(ValueError, match=r"column\(s\) \[1\]"):
        est.predict(bad)


def test_huge_targets_and_weights_do_not_overflow_the_statistics():
    X, y = _offset_problem(0.0, 1.0)
    est = TransferRegressor("linear").fit(X, y * 1e160)
    np.testing.assert_allclose(est.predict(X) / 1e160, y, atol=1e-5)
    w = np.full(len(X), 1e308) * np.linspace(0.5, 1.0, len(X))
    est = TransferRegressor("linear").fit(X, y, sample_weight=w)
    assert est.score(X, y) > 0.999


def test_a_tiny_but_varying_feature_is_not_constant():
    X, y = _offset_problem(0.0, 1e-14)
    est = TransferRegressor("linear").fit(X, y)
    assert est.score(X, y) > 0.999
    assert (est.input_scale_ < 1e-13).all()


# ------------------------------------------------------- modules and weights
def test_a_backbone_with_nan_parameters_is_refused(shift):
    Xs, ys, _, _ = shift
    bad = torch.nn.Linear(8, 4)
    with torch.no_grad():
        bad.weight[0, 0] = float("nan")
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in.*backbone\.weight"
    ):
        TransferRegressor(bad, max_epochs=1).fit(Xs, ys)


def test_a_lazy_backbone_takes_weights(shift):
    Xs, ys, _, _ = shift
    lazy = torch.nn.Sequential(torch.nn.LazyLinear(4), torch.nn.ReLU())
    ref = torch.nn.Sequential(torch.nn.Linear(8, 4), torch.nn.ReLU())
    est = TransferRegressor(lazy, weights=ref.state_dict(), max_epochs=1, lr=1e-12)
    est.fit(Xs, ys)
    trained = est.net_.module_.backbone[0].weight.detach()
    torch.testing.assert_close(trained, ref[0].weight, atol=1e-6, rtol=0)


@pytest.fixture
def clean_backbones():
    saved = dict(backbone_registry._REGISTRY.entries)
    yield
    backbone_registry._REGISTRY.entries.clear()
    backbone_registry._REGISTRY.entries.update(saved)


def _raises_inside(input_shape, width=3):
    raise TypeError("a bug inside the factory")


@pytest.mark.parametrize(
    ("factory", "params", "error", "match"),
    [
        (lambda input_shape: 3, None, TypeError, "returned a int, not a torch.nn"),
        (_raises_inside, None, TypeError, "could not be built.*bug inside"),
        (_raises_inside, {"depth": 2}, ValueError, "backbone_params=.*not accepted"),
    ],
)
def test_registry_factory_failures_are_blamed_correctly(
    clean_backbones, shift, factory, params, error, match
):
    Xs, ys, _, _ = shift
    register_backbone("custom_factory", factory)
    with pytest.raises(error, match=match):
        TransferRegressor("custom_factory", backbone_params=params).fit(Xs, ys)


@pytest.mark.parametrize("optimizer", [torch.optim.Optimizer, torch.optim.SparseAdam])
def test_optimizers_that_cannot_train_a_network_are_refused(shift, optimizer):
    Xs, ys, _, _ = shift
    with pytest.raises(ValueError, match=r"optimizer=.*dense gradients"):
        TransferRegressor(optimizer=optimizer, **TINY).fit(Xs, ys)


# ---------------------------------------------------------------- batch norm
BN = dict(backbone_params={"hidden_sizes": (8,), "batch_norm": True}, max_epochs=2)


def test_batch_norm_never_trains_on_a_final_batch_of_one_row(shift):
    Xs, ys, _, _ = shift
    est = TransferRegressor(batch_size=32, **BN).fit(Xs[:33], ys[:33])
    assert est.n_iter_ == 2


def test_batch_norm_with_too_few_training_rows_is_a_clear_error(shift):
    Xs, ys, _, _ = shift
    with pytest.raises(ValueError, match=r"batch-norm.*at least 2 training rows"):
        TransferRegressor(early_stopping=True, **BN).fit(Xs[:2], ys[:2])


# ------------------------------------------------- what predict depends on
def test_predict_uses_the_fitted_precision(shift):
    Xs, ys, Xt, _ = shift
    est = TransferRegressor(**TINY).fit(Xs, ys)
    before = est.predict(Xt)
    est.set_params(precision="bf16")
    np.testing.assert_array_equal(est.predict(Xt), before)
    est.set_params(precision="nope")
    np.testing.assert_array_equal(est.predict(Xt), before)


# ------------------------------------------------------------------ threads
def test_same_seed_fits_in_threads_equal_the_sequential_fit(shift):
    Xs, ys, Xt, _ = shift
    params = dict(backbone_params={"hidden_sizes": (16,), "dropout": 0.3})
    params.update(max_epochs=3, random_state=0)
    expected = TransferRegressor(**params).fit(Xs, ys).predict(Xt)
    results = [None] * 4

    def job(i):
        results[i] = TransferRegressor(**params).fit(Xs, ys).predict(Xt)

    threads = [threading.Thread(target=job, args=(i,)) for i in range(4)]
    with warnings.catch_warnings():
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    for result in results:
        np.testing.assert_array_equal(result, expected)


# --------------------------------------------------------------- closed form
def test_the_closed_form_solves_wide_problems_in_the_dual():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, 3000))
    y = X[:, :5].sum(axis=1)
    est = TransferRegressor("linear", solver="closed_form").fit(X, y)
    assert est.score(X, y) > 0.999999
    # minimum-norm interpolation, as numpy's least squares
    Xc, yc = (X - X.mean(0)) / X.std(0), (y - y.mean()) / y.std()
    coef = np.linalg.lstsq(np.c_[Xc, np.ones(40)], yc, rcond=None)[0]
    head = est.net_.module_.head
    np.testing.assert_allclose(head.weight.detach().numpy()[0], coef[:-1], atol=1e-5)
