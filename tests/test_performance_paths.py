"""The fast paths keep their promises: same answers, no hidden copies.

Speed itself is measured in benchmarks/speed.py, not here.
"""

import tracemalloc

import numpy as np
import pytest
import torch

import sktransfer._base as base
from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import make_domain_shift

KW = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=3, random_state=0)


@pytest.fixture(scope="module")
def fitted():
    Xs, ys, _, _ = make_domain_shift(300, 10, random_state=0)
    return TransferRegressor(**KW).fit(Xs, ys), Xs


def test_single_row_small_and_chunked_paths_agree(fitted, monkeypatch):
    est, X = fitted
    full = est.predict(X)  # inference-mode path, one chunk
    rows = np.array([est.predict(X[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(rows, full[:5], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(est.predict(X[:10]), full[:10], rtol=1e-6, atol=1e-6)
    monkeypatch.setattr(base, "_PREDICT_CHUNK", 7)  # many chunks
    np.testing.assert_allclose(est.predict(X), full, rtol=1e-6, atol=1e-6)


def test_fast_path_checks_input(fitted):
    est, X = fitted
    bad = X[:2].copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.predict(bad)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:2, :3])
    read_only = X[:2].astype(np.float32)
    read_only.flags.writeable = False
    np.testing.assert_allclose(est.predict(read_only), est.predict(X[:2]), rtol=1e-6)


def test_predict_restores_grad_mode(fitted):
    est, X = fitted
    assert torch.is_grad_enabled()
    est.predict(X[:1])
    assert torch.is_grad_enabled()
    with torch.no_grad():
        est.predict(X[:1])
        assert not torch.is_grad_enabled()


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_trains_and_predicts(precision):
    Xs, ys, Xt, _ = make_domain_shift(400, 60, random_state=0)
    kw = dict(max_epochs=15, backbone_params={"hidden_sizes": (32,)}, random_state=0)
    ref = TransferRegressor(**kw).fit(Xs, ys)
    mixed = TransferRegressor(precision=precision, **kw).fit(Xs, ys)
    assert mixed.score(Xs, ys) > ref.score(Xs, ys) - 0.05
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(60, np.nan)])
    da = DomainAdaptRegressor(method="coral", precision=precision, **kw).fit(X, y)
    assert np.isfinite(da.history_[:, "train_da_loss"]).all()
    assert np.isfinite(da.predict(Xt)).all()


def test_device_auto_and_torch_device():
    X, y, _, _ = make_domain_shift(60, 10, random_state=0)
    est = TransferRegressor(device="auto", **KW).fit(X, y)
    assert est.device_ == ("cuda" if torch.cuda.is_available() else "cpu")
    est = TransferRegressor(device=torch.device("cpu"), **KW).fit(X, y)
    assert est.predict(X[:2]).shape == (2,)


def test_fit_makes_one_float32_copy_of_X():
    """numpy-side allocations during fit stay below one float64 copy of X:
    one float32 copy plus small chunks (torch's own buffers are not counted)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 32))
    y = X[:, 0].copy()
    est = TransferRegressor(max_epochs=1, batch_size=4096, **{"random_state": 0})
    tracemalloc.start()
    try:
        est.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes, (peak, X.nbytes)
    assert peak > X.nbytes // 2 * 0.9  # the float32 copy itself was seen
