"""Inputs larger than memory (``sktransfer._outofcore``): ``np.memmap``, h5py
datasets and zarr arrays are fitted and predicted without being read into
memory, with the predictions of the same rows in memory."""

import contextlib
import mmap
import os
import pickle
import tracemalloc
import warnings

import numpy as np
import pytest
from conftest import TINY
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sktransfer import DomainAdaptRegressor, TransferRegressor, _base
from sktransfer._outofcore import RowView, is_out_of_core, read_rows
from sktransfer._scaling import Moments, effective_weights, feature_stats

h5py = pytest.importorskip("h5py")
zarr = pytest.importorskip("zarr")

QUICK = dict(TINY, max_epochs=2, batch_size=32)


def _problem(n=240, d=5, seed=0):
    rng = np.random.default_rng(seed)
    X = (rng.normal(size=(n, d)) * 3 + 5).astype(np.float32)
    y = X @ rng.normal(size=d) + 0.1 * rng.normal(size=n)
    sd = np.where(np.arange(n) < 2 * n // 3, 0, -1)
    y_da = y.copy()
    y_da[sd < 0] = np.nan
    y_da[np.flatnonzero(sd < 0)[:8]] = y[sd < 0][:8]  # a few labelled target rows
    return X, y, y_da, sd


def _memmap(path, X, mode="r"):
    mm = np.memmap(path, dtype=X.dtype, mode="w+", shape=X.shape)
    mm[:] = X
    mm.flush()
    del mm
    return np.memmap(path, dtype=X.dtype, mode=mode, shape=X.shape)


@pytest.fixture
def data(tmp_path):
    X, y, y_da, sd = _problem()
    return X, _memmap(tmp_path / "X.dat", X), y, y_da, sd


def _fit_both(make, X, X_disk, y, **fit):
    ref = make().fit(X, y, **fit)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning the in-memory fit lacks
        est = make().fit(X_disk, y, **fit)
    return ref, est


# ---------------------------------------------- same predictions as in memory
@pytest.mark.parametrize(
    "make, da, fit",
    [
        (lambda: TransferRegressor(**QUICK), False, {}),
        (
            lambda: TransferRegressor(
                **QUICK, early_stopping=True, standardize_X="global"
            ),
            False,
            {"sample_weight": np.linspace(0.5, 2, 240)},
        ),
        (lambda: DomainAdaptRegressor(method="dann", **QUICK), True, {}),
        (lambda: DomainAdaptRegressor(method="adabn", **QUICK), True, {}),
    ],
    ids=["transfer", "transfer-early-stopping-weights", "dann", "adabn"],
)
def test_memmap_fit_and_predict_equal_in_memory(data, make, da, fit):
    X, X_disk, y, y_da, sd = data
    if da:
        fit = {"sample_domain": sd}
    ref, est = _fit_both(make, X, X_disk, y_da if da else y, **fit)
    np.testing.assert_array_equal(est.predict(X_disk), ref.predict(X))
    np.testing.assert_array_equal(est.input_range_[0], ref.input_range_[0])
    np.testing.assert_array_equal(est.input_range_[1], ref.input_range_[1])
    np.testing.assert_allclose(est.input_mean_, ref.input_mean_, rtol=1e-14)
    np.testing.assert_array_equal(est.input_scale_, ref.input_scale_)
    assert est.history_[-1]["train_loss"] == ref.history_[-1]["train_loss"]
    if da:  # per-domain statistics, and predict in each row's own domain
        np.testing.assert_array_equal(
            est.predict(X_disk, sample_domain=sd), ref.predict(X, sample_domain=sd)
        )


def test_memmap_score_and_auto_choice_equal_in_memory(data):
    # method="auto" cross-validates on row subsets (RowView, not copies), and
    # score leaves out the NaN rows through a RowView too
    X, X_disk, _, y_da, sd = data
    y = y_da.copy()
    y[np.flatnonzero(sd < 0)[:12]] = 1.0  # enough labels for the inner CV
    make = lambda: DomainAdaptRegressor(**dict(QUICK, max_epochs=1))  # noqa: E731
    ref, est = _fit_both(make, X, X_disk, y, sample_domain=sd)
    assert est.method_scores_ is not None  # the inner cross-validation ran
    assert est.method_ == ref.method_
    assert est.method_scores_ == ref.method_scores_
    assert est.score(X_disk, y) == ref.score(X, y)


@pytest.mark.parametrize("kind", ["h5py", "zarr"])
def test_chunked_inputs_equal_in_memory(tmp_path, kind):
    X, y, _, _ = _problem(n=150)
    if kind == "h5py":
        handle = h5py.File(tmp_path / "X.h5", "w")
        X_disk = handle.create_dataset("X", data=X, chunks=(16, X.shape[1]))
    else:
        X_disk = zarr.create_array(
            store=str(tmp_path / "X.zarr"),
            shape=X.shape,
            dtype="float32",
            chunks=(16, 5),
        )
        X_disk[:] = X
    assert is_out_of_core(X_disk)
    ref, est = _fit_both(lambda: TransferRegressor(**QUICK), X, X_disk, y)
    np.testing.assert_array_equal(est.predict(X_disk), ref.predict(X))
    assert est.n_features_in_ == 5


# --------------------------------------------------------------- no full copy
def test_fit_and_predict_never_copy_the_memmap(tmp_path):
    n, d = 40_000, 256  # 41 MB of float32
    rng = np.random.default_rng(0)
    X = np.memmap(tmp_path / "big.dat", dtype=np.float32, mode="w+", shape=(n, d))
    for start in range(0, n, 5000):
        X[start : start + 5000] = rng.normal(size=(5000, d))
    X.flush()
    X = np.memmap(tmp_path / "big.dat", dtype=np.float32, mode="r", shape=(n, d))
    y = rng.normal(size=n)
    params = dict(TINY, max_epochs=1, batch_size=512, early_stopping=True)
    # warm up: first calls import and build things tracemalloc would count
    TransferRegressor(**params).fit(np.asarray(X[:64]), y[:64]).predict(X[:64])
    tracemalloc.start()
    try:
        est = TransferRegressor(**params).fit(X, y)
        fit_peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        pred = est.predict(X)
        predict_peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert pred.shape == (n,)
    # the in-memory path makes a float32 copy of X (41 MB) in fit; reading on
    # demand stays near one chunk and one batch
    assert fit_peak < 0.3 * X.nbytes, fit_peak
    assert predict_peak < 0.3 * X.nbytes, predict_peak
    # and the fitted estimator holds no copy of the training rows
    assert len(pickle.dumps(est)) < 0.1 * X.nbytes


# ----------------------------------------------------- streaming statistics
@settings(max_examples=40, deadline=None)
@given(
    arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.integers(1, 4)),
        elements=st.floats(-1e6, 1e6, allow_nan=False, width=32),
    ),
    st.lists(st.integers(1, 15), min_size=1, max_size=40),
    st.booleans(),
    st.sampled_from([1.0, 1e-30, 1e200]),
)
def test_streaming_stats_equal_feature_stats_over_any_chunking(
    X, sizes, weighted, unit
):
    X = X * unit  # tiny and huge values: the running rescaling keeps them
    w = np.linspace(0.0, 3.0, len(X)) if weighted else None
    counted = effective_weights(w)  # what fit passes: zero-sum weights count 1
    moments = Moments(X.shape[1:])
    start, i = 0, 0
    while start < len(X):
        stop = min(start + sizes[i % len(sizes)], len(X))
        moments.update(X[start:stop], None if counted is None else counted[start:stop])
        start, i = stop, i + 1
    mean, std = moments.finish()
    ref_mean, ref_std = feature_stats(X, w)
    spread = np.maximum(ref_std, np.abs(ref_mean))
    np.testing.assert_allclose(mean, ref_mean, rtol=1e-9, atol=1e-9 * spread.max())
    np.testing.assert_allclose(std, ref_std, rtol=1e-6, atol=1e-9 * spread.max())


def test_read_rows_keeps_order_and_repeats(tmp_path):
    X = np.arange(40, dtype=np.float32).reshape(20, 2)
    X_disk = _memmap(tmp_path / "r.dat", X)
    rows = np.array([7, 3, 3, 19, 0])
    np.testing.assert_array_equal(read_rows(X_disk, rows), X[rows])
    view = RowView(RowView(X_disk, np.arange(5, 20)), [4, 1])
    np.testing.assert_array_equal(view[:], X[[9, 6]])
    assert view.shape == (2, 2)


# ------------------------------------------------------------------ errors
def test_bad_values_on_disk_are_refused_naming_x(tmp_path, data):
    X, X_disk, y, _, _ = data
    bad = X.copy()
    bad[200, 1] = np.nan
    with pytest.raises(ValueError, match="Input X contains NaN"):
        TransferRegressor(**QUICK).fit(_memmap(tmp_path / "bad.dat", bad), y)
    est = TransferRegressor(**QUICK).fit(X_disk, y)
    with pytest.raises(ValueError, match="Input X contains NaN"):
        est.predict(_memmap(tmp_path / "bad2.dat", bad))
    wide = _memmap(tmp_path / "wide.dat", np.zeros((4, 6), np.float32))
    with pytest.raises(ValueError, match="6 features"):
        est.predict(wide)
    text = _memmap(tmp_path / "c.dat", np.zeros((4, 5), np.complex64))
    with pytest.raises(ValueError, match="must hold numbers"):
        TransferRegressor(**QUICK).fit(text, y[:4])


def test_exact_solver_needs_memory(data):
    _, X_disk, y, _, _ = data
    with pytest.raises(ValueError, match="solver='closed_form' needs the training"):
        TransferRegressor("linear", solver="closed_form").fit(X_disk, y)
    with pytest.warns(UserWarning, match="trains by gradient"):
        est = TransferRegressor("linear", max_epochs=2, random_state=0).fit(X_disk, y)
    assert est.solver_ == "gradient"


# ------------------------------------------------------- read-ahead advice
def _vm_flags(path):
    """The VmFlags of this process's mapping of ``path`` (Linux smaps)."""
    lines = open("/proc/self/smaps").read().splitlines()
    inside = False
    for line in lines:
        if "-" in line.split(" ", 1)[0] and ":" not in line.split(" ", 1)[0]:
            inside = line.rstrip().endswith(str(path))
        elif inside and line.startswith("VmFlags:"):
            return line.split()[1:]
    raise AssertionError(f"{path} is not mapped")


@pytest.mark.skipif(
    not hasattr(mmap, "MADV_RANDOM") or not os.path.exists("/proc/self/smaps"),
    reason="madvise and /proc/self/smaps are Linux features",
)
def test_shuffled_training_reads_the_memmap_without_read_ahead(
    tmp_path, data, monkeypatch
):
    _, X_disk, y, _, _ = data
    path = tmp_path / "X.dat"
    seen = []
    real = _base.random_access

    @contextlib.contextmanager
    def spy(array):
        with real(array):
            seen.append("rr" in _vm_flags(path))  # MADV_RANDOM while training
            yield

    monkeypatch.setattr(_base, "random_access", spy)
    TransferRegressor(**QUICK).fit(X_disk, y)
    assert seen == [True]
    assert "rr" not in _vm_flags(path)  # the default advice is back


def test_a_memmap_joblib_makes_for_its_workers_fits_as_in_memory(tmp_path):
    """joblib hands large arrays to its workers as memmaps
    (TransferEnsemble(n_jobs=2), MultiOutputRegressor(n_jobs=2), ...): the
    caller's array was in memory, so a worker fits as the caller would --
    the exact solver, not the on-disk gradient loop."""
    from joblib import Parallel, delayed

    from sktransfer._outofcore import is_out_of_core

    rng = np.random.default_rng(0)
    X = rng.normal(size=(3000, 60)).astype(np.float32)  # 720 kB: above max_nbytes
    y = X[:, :3].sum(axis=1)
    fits = Parallel(n_jobs=2, max_nbytes="100K")(
        delayed(TransferRegressor(backbone="linear").fit)(X, y) for _ in range(2)
    )
    assert [f.solver_ for f in fits] == ["closed_form", "closed_form"]
    # the rule: a memmap in joblib's folder is the caller's in-memory array
    folder = tmp_path / "joblib_memmapping_folder_123_abc"
    folder.mkdir()
    for where, expected in ((folder, False), (tmp_path, True)):
        m = np.memmap(where / "x.mmap", dtype=np.float32, mode="w+", shape=(4, 2))
        assert is_out_of_core(m) is expected
