"""Test-session settings, shared estimator settings, data fixtures and helpers.

Named settings (import them with ``from conftest import TINY``):

- ``TINY``: a one-layer network trained for a few epochs; enough to check
  that something runs, changes or is recorded.
- ``SMALL``: two hidden layers (two backbone blocks, for ``gradual``), ten
  epochs at a high learning rate; enough to learn the synthetic shifts.
- ``CHECKS``: what scikit-learn's estimator checks need to pass their
  accuracy checks (``check_regressors_train``).
"""

import numpy as np
import pytest
import torch
from sklearn.metrics import root_mean_squared_error

from sktransfer import TransferRegressor
from sktransfer.adaptation import _method as adaptation_registry
from sktransfer.backbones import _registry as backbone_registry
from sktransfer.datasets import make_domain_shift
from sktransfer.finetuning import _STRATEGIES

TINY = dict(backbone_params={"hidden_sizes": (16,)}, max_epochs=4, random_state=0)
SMALL = dict(
    backbone_params={"hidden_sizes": (16, 16)},
    max_epochs=10,
    lr=1e-2,
    batch_size=32,
    random_state=0,
)
CHECKS = dict(
    backbone_params={"hidden_sizes": (32,)},
    max_epochs=20,
    batch_size=32,
    lr=1e-2,
    random_state=0,
)


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    """pytest -n 2 runs two workers on two cores: one torch thread each avoids
    oversubscription, which makes small fits many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


# ------------------------------------------------------------------ helpers
def rmse(est, X, y):
    """Root mean squared error of ``est``'s predictions on ``(X, y)``."""
    return float(root_mean_squared_error(y, est.predict(X)))


def linear_problem(n=120, n_features=5, seed=0, noise=0.05):
    """``y = X @ w + noise`` with standard normal ``X``."""
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    y = X @ rng.normal(size=n_features) + noise * rng.normal(size=n)
    return X, y


def uda_stack(shift="instrument", n_source=200, n_target=120, seed=0, n_test=0):
    """Source rows labelled, then target rows with a NaN ``y``; plus
    ``n_test`` held-out labelled target rows ``(X_test, y_test)``."""
    Xs, ys, Xt, yt = make_domain_shift(
        n_source, n_target + n_test, shift=shift, random_state=seed
    )
    X = np.vstack([Xs, Xt[:n_target]])
    y = np.concatenate([ys, np.full(n_target, np.nan)])
    return X, y, Xt[n_target:], yt[n_target:]


def state(module):
    """A detached copy of ``module``'s state dict."""
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def states_equal(a, b):
    """Two state dicts (or modules) hold bit-identical tensors."""
    a = a.state_dict() if isinstance(a, torch.nn.Module) else a
    b = b.state_dict() if isinstance(b, torch.nn.Module) else b
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def distance(a, b):
    """Euclidean distance between the state dicts of two modules."""
    sa, sb = a.state_dict(), b.state_dict()
    return float(sum((sa[k].float() - sb[k].float()).pow(2).sum() for k in sa).sqrt())


def network(est):
    """The fitted network (``net_.module_``), for tests that inspect weights."""
    return est.net_.module_


def part(est, name):
    """``"backbone"`` or ``"head"`` of a fitted estimator's network."""
    return getattr(network(est), name)


def same_weights(a, b, name="backbone"):
    """Part ``name`` of fitted estimators ``a`` and ``b`` is bit-identical
    (parameters and buffers, such as batch-norm statistics)."""
    return states_equal(part(a, name), part(b, name))


def weight_distance(a, b, name="backbone"):
    """How far part ``name`` of fitted estimator ``a`` moved from ``b``'s."""
    return distance(part(a, name), part(b, name))


def _read_only(*arrays):
    for a in arrays:
        a.flags.writeable = False
    return arrays


# ----------------------------------------------------------------- fixtures
@pytest.fixture(scope="session")
def shift_data():
    """``(Xs, ys, Xt, yt)``: 300 source and 80 target rows, instrument shift.
    Read-only: shared by every test of a worker."""
    return _read_only(*make_domain_shift(300, 80, random_state=0))


@pytest.fixture(scope="session")
def source(shift_data):
    """A TransferRegressor fitted on the source rows of ``shift_data``
    (``SMALL``: two backbone blocks). Transfer from it never changes it."""
    Xs, ys, _, _ = shift_data
    return TransferRegressor(**SMALL).fit(Xs, ys)


@pytest.fixture(scope="session")
def uda():
    """``(X, y, X_test, y_test)``: 200 labelled source rows then 120 unlabelled
    target rows (NaN ``y``); no held-out rows. Read-only."""
    X, y, X_test, y_test = uda_stack()
    return _read_only(X, y, X_test, y_test)


@pytest.fixture
def restore_registries():
    """Leave the backbone, strategy and method registries as they were, so a
    test may register its own entries with the public functions."""
    live = [
        backbone_registry._REGISTRY.entries,
        adaptation_registry._METHODS.entries,
        _STRATEGIES.entries,
    ]
    saved = [dict(entries) for entries in live]
    yield
    for entries, contents in zip(live, saved):
        entries.clear()
        entries.update(contents)
