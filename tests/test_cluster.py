"""Searches on a cluster (issue 16): scikit-learn's searches over the
estimators through joblib's Dask backend and Ray's joblib backend.

One local Dask cluster (2 worker processes, 1 thread each) and one local Ray
instance (2 CPUs) serve the module's tests in each test process (module-scoped
fixtures), both on the loopback interface only.
Their workers start with 2 torch threads, as a worker whose environment gives
torch every core would: the fits inside them must run on 1, their allotment.

The custom backbone lives in a module written to a folder added to
``sys.path`` after the workers started: like a script on a laptop that the
machines of a real cluster cannot import.
"""

import importlib
import os
import sys
import textwrap

import cloudpickle
import joblib
import numpy as np
import pytest
import torch
from sklearn.experimental import enable_halving_search_cv  # noqa: F401
from sklearn.model_selection import (
    GridSearchCV,
    HalvingGridSearchCV,
    RandomizedSearchCV,
)

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.backbones import register_backbone
from sktransfer.backbones._registry import _REGISTRY
from sktransfer.datasets import make_domain_shift
from sktransfer.ensemble import TransferEnsemble
from sktransfer.model_selection import DomainAwareKFold, ImportanceWeightedScorer

#: the module the workers cannot import, and the backbone it registers
MODULE = "cluster_recording_backbone"
NAME = "recording_cluster"
#: torch threads the workers start with: more than their allotment of 1
WORKER_START_THREADS = 2

SOURCE_CODE = '''
"""A backbone that records torch's thread count while it trains."""
import torch


class Recording(torch.nn.Module):
    def __init__(self, n_in, width):
        super().__init__()
        self.layer = torch.nn.Linear(n_in, width)
        self.threads = -1

    def forward(self, x):
        if self.training:
            self.threads = torch.get_num_threads()
        return torch.tanh(self.layer(x.flatten(1)))


def recording(input_shape, width=8):
    n_in = 1
    for size in input_shape:
        n_in *= size
    return Recording(n_in, width)
'''

FIT = dict(max_epochs=3, batch_size=16, random_state=0)


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        n_workers=2,
        threads_per_worker=1,
        processes=True,
        host="127.0.0.1",
        dashboard_address=None,
    )
    client = distributed.Client(cluster)
    client.run(torch.set_num_threads, WORKER_START_THREADS)
    yield client
    client.close()
    cluster.close()


@pytest.fixture(scope="module")
def ray_instance():
    ray = pytest.importorskip("ray")
    from ray.util.joblib import register_ray

    ray.init(
        num_cpus=2,
        include_dashboard=False,
        _node_ip_address="127.0.0.1",
        object_store_memory=80 * 1024**2,
        log_to_driver=False,
        # the workers' torch starts on 2 threads
        runtime_env={"env_vars": {"OMP_NUM_THREADS": str(WORKER_START_THREADS)}},
    )
    register_ray()
    # Ray's workers do not get this process's sys.path: the scorer below must
    # travel by value, as any function of a module they cannot import; Ray
    # pickles with its own copy of cloudpickle (docs/scaling.md)
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield ray
    ray.cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
    ray.shutdown()


@pytest.fixture(scope="module")
def unimportable(tmp_path_factory):
    """The recording backbone, registered from a module the workers cannot
    import: its folder joins ``sys.path`` after they started, and only for
    the import (workers spawned later do not inherit it)."""
    folder = tmp_path_factory.mktemp("only_here")
    (folder / f"{MODULE}.py").write_text(textwrap.dedent(SOURCE_CODE))
    sys.path.insert(0, str(folder))
    try:
        module = importlib.import_module(MODULE)
    finally:
        sys.path.remove(str(folder))
    register_backbone(NAME, module.recording, overwrite=True)
    yield module
    _REGISTRY.entries.pop(NAME, None)
    sys.modules.pop(MODULE, None)


@pytest.fixture(scope="module")
def data():
    """60 labelled source rows, 40 target rows (20 labelled, 20 NaN)."""
    Xs, ys, Xt, yt = make_domain_shift(60, 40, n_features=4, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, yt[:20], np.full(20, np.nan)]
    return X, y, Xs, ys


@pytest.fixture(scope="module")
def source(data):
    """A model fitted on the source rows: the pretrained backbone."""
    _, _, Xs, ys = data
    return TransferRegressor(backbone_params={"hidden_sizes": (8,)}, **FIT).fit(Xs, ys)


# ------------------------------------------------------------------ helpers
def recorded_threads(estimator, X, y):
    """A scorer: the torch threads the recording backbone saw while it
    trained in this fit (-1 for another backbone)."""
    backbone = estimator.net_.module_.backbone
    return float(getattr(backbone, "threads", -1))


def _labelled(X, y):
    keep = np.isfinite(y)
    return X[keep], y[keep]


def _search(kind, backbone):
    """A small search of each kind over an estimator starting from
    ``backbone`` (a fitted source model or the custom backbone's name).

    A fitted model goes into the estimator, not into the grid: a search
    clones the values of its grid, and a clone of a fitted model is unfitted.
    """
    if kind == "grid":
        return GridSearchCV(
            TransferRegressor(backbone, **FIT),
            {"lr": [1e-3, 1e-2], "finetune": ["full", "lp_ft"]},
            cv=2,
            scoring={"r2": "r2", "threads": recorded_threads},
            refit="r2",
            error_score="raise",
        )
    if kind == "random":
        return RandomizedSearchCV(
            DomainAdaptRegressor(backbone, **FIT),
            {"method": ["source_only", "coral"], "lr": [1e-3, 3e-3, 1e-2]},
            n_iter=3,
            random_state=0,
            cv=DomainAwareKFold(2, random_state=0),
            scoring={"iw": ImportanceWeightedScorer(), "threads": recorded_threads},
            refit="iw",
            error_score="raise",
        )
    # refit=False: the final refit runs here, where a TransferEnsemble inside
    # the Dask context would send its members to the cluster, and a fitted
    # member whose backbone class workers cannot import cannot come back
    # (docs/scaling.md); in the workers the members fit one after the other
    return HalvingGridSearchCV(
        TransferEnsemble(
            TransferRegressor(backbone, **FIT), n_members=2, random_state=0
        ),
        {"estimator__lr": [1e-3, 3e-3, 1e-2]},
        cv=2,
        factor=2,
        random_state=0,
        refit=False,
        error_score="raise",
    )


def _fit(search, kind, data):
    X, y, _, _ = data
    if kind == "random":  # target rows with NaN y are for adaptation
        return search.fit(X, y)
    keep = np.isfinite(y)
    return search.fit(X[keep], y[keep])


def _assert_same_search(on_cluster, here):
    """Same candidates chosen and scored as under joblib's default backend."""
    assert on_cluster.best_index_ == here.best_index_
    assert len(here.cv_results_["params"]) >= 2
    assert on_cluster.best_params_ == here.best_params_
    keys = [k for k in here.cv_results_ if k.startswith(("mean_test_", "split"))]
    assert keys
    for key in keys:
        if "threads" not in key:
            np.testing.assert_allclose(
                on_cluster.cv_results_[key], here.cv_results_[key], rtol=0, atol=1e-6
            )


def _assert_one_thread_per_fit(search):
    # every fit trained on 1 torch thread, not on the 2 its worker started
    # with (the scorer reads what the backbone recorded during fit)
    threads = search.cv_results_["mean_test_threads"]
    np.testing.assert_array_equal(threads, 1.0)


# -------------------------------------------------------------------- tests
def test_workers_cannot_import_the_module_of_the_custom_backbone(
    dask_client, unimportable
):
    """The premise: pickled by reference (as cloudpickle and pickle do with a
    function of an importable module) the factory does not load on a worker."""
    by_reference = cloudpickle.dumps(unimportable.recording)
    with pytest.raises(ModuleNotFoundError, match=MODULE):
        dask_client.submit(cloudpickle.loads, by_reference).result()


@pytest.mark.parametrize(
    "kind, start",
    # each estimator once, each starting point twice (about 1 s a search)
    [
        ("grid", "source"),
        ("grid", "custom"),
        ("random", "source"),
        ("halving", "custom"),
    ],
)
def test_a_search_on_dask_equals_the_search_here(
    kind, start, dask_client, unimportable, data, source
):
    backbone = source if start == "source" else NAME
    here = _fit(_search(kind, backbone), kind, data)
    with joblib.parallel_backend("dask"):
        on_cluster = _fit(_search(kind, backbone).set_params(n_jobs=-1), kind, data)
    _assert_same_search(on_cluster, here)
    if start == "custom" and kind != "halving":  # halving takes one metric
        _assert_one_thread_per_fit(on_cluster)
        # and each worker has its own thread count back after the fits
        after = dask_client.run(torch.get_num_threads)
        assert set(after.values()) == {WORKER_START_THREADS}


def test_a_search_on_ray_equals_the_search_here(ray_instance, unimportable, data):
    # one small search: starting Ray and its worker processes takes seconds
    grid = {"lr": [1e-3, 1e-2], "finetune": ["full"]}
    here = _fit(_search("grid", NAME).set_params(param_grid=grid), "grid", data)
    with joblib.parallel_backend("ray"):
        search = _search("grid", NAME).set_params(param_grid=grid, n_jobs=-1)
        on_cluster = _fit(search, "grid", data)
    _assert_same_search(on_cluster, here)
    _assert_one_thread_per_fit(on_cluster)


def _set_environment(name, value):
    """Set (or, for None, remove) an environment variable where it runs."""
    if value is None:
        os.environ.pop(name, None)
    else:
        os.environ[name] = value


def test_the_environment_variable_replaces_the_rule_on_a_worker(dask_client):
    from sktransfer._workers import WORKER_THREADS_ENV, worker_threads

    assert worker_threads() is None  # not in a worker: torch's own setting
    assert dask_client.submit(worker_threads, pure=False).result() == 1
    try:
        dask_client.run(_set_environment, WORKER_THREADS_ENV, "3")
        assert dask_client.submit(worker_threads, pure=False).result() == 3
        dask_client.run(_set_environment, WORKER_THREADS_ENV, "zero")
        with pytest.raises(ValueError, match=f"{WORKER_THREADS_ENV}='zero'"):
            dask_client.submit(worker_threads, pure=False).result()
    finally:
        dask_client.run(_set_environment, WORKER_THREADS_ENV, None)


class _FakeRay:
    """What :func:`sktransfer._workers.worker_threads` asks of Ray: a task
    that was assigned ``cpus`` CPUs (starting a Ray task that asks for more
    than one CPU costs seconds; the real Ray search above covers the rest)."""

    def __init__(self, cpus):
        self.cpus = cpus

    def is_initialized(self):
        return True

    def get_runtime_context(self):
        return self

    def get_assigned_resources(self):
        return {} if self.cpus is None else {"CPU": self.cpus}


@pytest.mark.parametrize("cpus, threads", [(2.0, 2), (0.5, 1), (None, 1)])
def test_a_fit_on_ray_gets_the_cpus_of_its_task(monkeypatch, cpus, threads):
    from sktransfer._workers import worker_threads

    monkeypatch.setitem(sys.modules, "ray", _FakeRay(cpus))
    assert worker_threads() == threads


def test_a_registry_entry_from_another_module_is_written_by_value(tmp_path):
    from sktransfer._registry import dumps_entry

    name = "only_in_this_test_module"
    (tmp_path / f"{name}.py").write_text("def factory(input_shape):\n    return 1\n")
    sys.path.insert(0, str(tmp_path))
    try:
        factory = importlib.import_module(name).factory
        by_value, by_reference = dumps_entry(factory), cloudpickle.dumps(factory)
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop(name, None)
    with pytest.raises(ModuleNotFoundError):
        cloudpickle.loads(by_reference)
    assert cloudpickle.loads(by_value)((3,)) == 1
    # sktransfer's own entries still go by name: module and function, no code
    builtin = dumps_entry(_REGISTRY.entries["mlp"])
    assert b"sktransfer.backbones._zoo" in builtin and len(builtin) < 100


def test_a_newer_carried_entry_replaces_an_older_one_not_a_local_one():
    from sktransfer._registry import Registry, dumps_entry

    registry = Registry("backbone", "backbone", "register_backbone")

    def first(input_shape):
        return "first"

    def second(input_shape):
        return "second"

    registry.receive("net", dumps_entry(first))
    registry.receive("net", dumps_entry(second))  # the client re-registered
    assert registry.get("net")(()) == "second"
    registry.add("net", first, overwrite=True)  # this process's own entry
    registry.receive("net", dumps_entry(second))
    assert registry.get("net") is first
