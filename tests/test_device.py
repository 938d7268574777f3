"""Device, precision and random numbers (``sktransfer._device``)."""

import contextlib

import numpy as np
import pytest
import torch
from conftest import TINY, linear_problem

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._device import Seeds, autocast, resolve_device, seeded_torch
from sktransfer.datasets import make_domain_shift


# ------------------------------------------------------------ resolve_device
def test_resolve_device():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="not a valid torch device"):
        resolve_device("toaster")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_raises():
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device("cuda:0")
    X, y = linear_problem(n=30, n_features=4)
    with pytest.raises(ValueError, match="device"):
        TransferRegressor("linear", max_epochs=1, device="cuda").fit(X, y)


def test_device_auto_and_torch_device():
    X, y, _, _ = make_domain_shift(60, 10, random_state=0)
    est = TransferRegressor(device="auto", **TINY).fit(X, y)
    assert est.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    est = TransferRegressor(device=torch.device("cpu"), **TINY).fit(X, y)
    assert est.device_ == "cpu"
    assert est.predict(X[:2]).shape == (2,)


# ---------------------------------------------------------------- autocast
def test_autocast():
    assert isinstance(autocast("cpu", "fp32"), contextlib.nullcontext)
    with autocast("cpu", "bf16"):
        out = torch.nn.Linear(3, 2)(torch.ones(1, 3))
    assert out.dtype == torch.bfloat16
    with pytest.raises(KeyError):
        autocast("cpu", "fp8")


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_predicts(precision):
    Xs, ys, Xt, _ = make_domain_shift(400, 60, random_state=0)
    kw = dict(max_epochs=15, backbone_params={"hidden_sizes": (32,)}, random_state=0)
    ref = TransferRegressor(**kw).fit(Xs, ys)
    mixed = TransferRegressor(precision=precision, **kw).fit(Xs, ys)
    assert mixed.score(Xs, ys) > ref.score(Xs, ys) - 0.05
    assert mixed.predict(Xs[:3]).dtype == np.float64  # original units, float
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(60, np.nan)])
    da = DomainAdaptRegressor(method="coral", precision=precision, **kw).fit(X, y)
    assert np.isfinite(da.history_[:, "train_da_loss"]).all()
    assert np.isfinite(da.predict(Xt)).all()


# --------------------------------------------------------------------- seeds
def test_seeds_from_random_state():
    a, b = Seeds.from_random_state(0), Seeds.from_random_state(0)
    assert a == b
    assert len({a.init, a.shuffle, a.split}) == 3
    assert Seeds.from_random_state(1) != a
    rng = np.random.RandomState(5)
    first, second = Seeds.from_random_state(rng), Seeds.from_random_state(rng)
    assert first != second  # a RandomState moves on
    assert isinstance(Seeds.from_random_state(None).init, int)


def test_seeded_torch_restores_the_callers_generator():
    torch.manual_seed(7)
    expected = torch.rand(3)
    torch.manual_seed(7)
    with seeded_torch(123, "cpu"):
        inside = torch.rand(3)
    assert torch.equal(torch.rand(3), expected)
    with seeded_torch(123, "cpu"):
        assert torch.equal(torch.rand(3), inside)  # the seed fixes the draws


def test_random_state_reproducible_and_used():
    X, y = linear_problem(n=80, n_features=4)
    params = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=3)
    a = TransferRegressor(random_state=3, **params).fit(X, y).predict(X)
    b = TransferRegressor(random_state=3, **params).fit(X, y).predict(X)
    c = TransferRegressor(random_state=4, **params).fit(X, y).predict(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_global_rng_alone():
    X, y = linear_problem(n=80, n_features=4)
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (8,)},
        max_epochs=2,
        early_stopping=True,
        random_state=0,
    )
    # the legacy global numpy RNG is the state under test here
    torch.manual_seed(1234)
    np.random.seed(1234)  # noqa: NPY002
    ref_torch, ref_np = torch.rand(1), np.random.rand()  # noqa: NPY002
    torch.manual_seed(1234)
    np.random.seed(1234)  # noqa: NPY002
    est.fit(X, y)
    assert torch.equal(torch.rand(1), ref_torch)
    assert np.random.rand() == ref_np  # noqa: NPY002


def test_fit_and_predict_respect_a_threadpool_limit():
    # docs/performance.md, "Threads": threadpoolctl (a scikit-learn
    # dependency) limits torch's intra-op threads for a fit
    from threadpoolctl import threadpool_limits

    seen = []

    class Recorder(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(3, 4)

        def forward(self, x):
            seen.append(torch.get_num_threads())
            return self.lin(x)

    X = np.random.RandomState(0).normal(size=(40, 3))
    y = X[:, 0]
    with threadpool_limits(limits=1):
        est = TransferRegressor(Recorder(), max_epochs=2, random_state=0).fit(X, y)
        est.predict(X)
    assert seen and set(seen) == {1}


@pytest.mark.skipif(torch.cuda.is_available(), reason="simulates a CPU-only machine")
def test_a_model_fitted_on_a_gpu_predicts_on_a_cpu_only_machine():
    import pickle

    X, y = linear_problem(n=40, n_features=3)
    est = TransferRegressor(**TINY).fit(X, y)
    expected = est.predict(X)
    # as if fitted on a GPU: skorch maps the net to the CPU when it loads
    # without one; the estimator must follow it
    est.device_ = "cuda:0"
    est.net_.device = "cuda:0"
    with pytest.warns(UserWarning, match="fitted on 'cuda:0'.*predicts on 'cpu'"):
        loaded = pickle.loads(pickle.dumps(est))
    assert loaded.device_ == "cpu"
    np.testing.assert_allclose(loaded.predict(X), expected, rtol=1e-6)


def test_a_fitted_net_keeps_no_generator_on_the_training_device():
    # a torch.Generator pickles as "a generator on device X": one made on
    # cuda cannot be rebuilt where there is no CUDA, so the fitted net keeps
    # only its CPU shuffling generator
    from sktransfer.augmentation import GaussianJitter

    X, y = linear_problem(n=40, n_features=3)
    for augment in (None, GaussianJitter(0.01)):
        est = TransferRegressor(**TINY, augment=augment).fit(X, y)
        generators = [
            v for v in vars(est.net_).values() if isinstance(v, torch.Generator)
        ]
        assert [g.device.type for g in generators] == ["cpu"]
