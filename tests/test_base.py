"""The shared base (``sktransfer._base``): each fit stage on its own, the fit
coordinator, the fitted attributes and the predict paths."""

import inspect
import tracemalloc

import numpy as np
import pytest
import torch
from conftest import TINY, linear_problem, network, state, states_equal
from sklearn.exceptions import NotFittedError
from sklearn.metrics import r2_score

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._base import Shapes, TrainingPlan, _FitResult
from sktransfer._batches import TensorData, ValidFraction
from sktransfer._callbacks import LossTermRecorder
from sktransfer._device import Seeds
from sktransfer._module import TransferModule
from sktransfer._scaling import Scaling
from sktransfer.adaptation import get_method
from sktransfer.data import domain_masks, loss_weights
from sktransfer.datasets import make_domain_shift
from sktransfer.finetuning import parameter_groups
from sktransfer.heads import MLPHead


def _masks(n, n_target=0):
    y = np.r_[np.ones(n - n_target), np.full(n_target, np.nan)]
    return domain_masks(y)


def _network(n_features=4, backbone=None, head=None, n_outputs=1):
    backbone = torch.nn.Flatten() if backbone is None else backbone
    head = torch.nn.Linear(n_features, n_outputs) if head is None else head
    return TransferModule(backbone, head, n_features)


def _plan(network, **kwargs):
    groups, _ = parameter_groups(network, lr=1e-3, weight_decay=0.0)
    return TrainingPlan(param_groups=groups, **kwargs)


_plan_stub = TrainingPlan(param_groups=[])


# ------------------------------------------------------ stage: _check_params
def test_check_params_cross_parameter_rules():
    from sklearn.linear_model import Ridge

    with pytest.raises(ValueError, match=r"torch\.optim\.Optimizer"):
        TransferRegressor(optimizer=int)._check_params()
    TransferRegressor(optimizer=torch.optim.SGD)._check_params()
    with pytest.raises(ValueError, match="backbone_params only applies"):
        TransferRegressor(
            torch.nn.Linear(4, 3), backbone_params={"hidden_sizes": (4,)}
        )._check_params()
    with pytest.raises(TypeError, match="got Ridge"):
        TransferRegressor(Ridge())._check_params()
    with pytest.raises(ValueError, match="weights cannot be combined"):
        TransferRegressor(TransferRegressor(), weights={})._check_params()
    for bad in [(0, 3), (2, -1), (2.5,)]:
        with pytest.raises(ValueError, match="input_shape"):
            TransferRegressor(input_shape=bad)._check_params()
    with pytest.raises(ValueError, match="not a registered backbone"):
        TransferRegressor("nope")._check_params()
    with pytest.raises(ValueError, match="fine-tuning strategy"):
        TransferRegressor(finetune="nope")._check_params()
    with pytest.raises(ValueError, match="adaptation method"):
        DomainAdaptRegressor(method="nope")._check_params()


@pytest.mark.parametrize(
    "params, match",
    [
        ({"finetune": "bogus"}, "finetune"),
        ({"lr": -1}, "lr"),
        ({"max_epochs": 0}, "max_epochs"),
        ({"head": "bogus"}, "head"),
        ({"backbone": "mlp", "backbone_params": {"nope": 1}}, "backbone_params"),
        (
            {
                "backbone": torch.nn.Linear(4, 3),
                "backbone_params": {"hidden_sizes": (4,)},
            },
            "backbone_params",
        ),
        ({"input_shape": (0, 3)}, "input_shape"),
        ({"optimizer": int}, "optimizer"),
        ({"backbone_lr": -0.5}, "backbone_lr"),
        ({"l2sp": -1.0}, "l2sp"),
        ({"validation_fraction": 1.5}, "validation_fraction"),
        ({"standardize_X": "per_sample"}, "standardize_X"),
        ({"solver": "lbfgs"}, "solver"),
        ({"precision": "fp8"}, "precision"),
    ],
)
def test_bad_params_raise_on_fit(params, match):
    X, y = linear_problem(n=30, n_features=4)
    with pytest.raises((ValueError, TypeError), match=match):
        TransferRegressor(max_epochs=1).set_params(**params).fit(X, y)


# ----------------------------------------------------- stage: _validate_data
def test_validate_data_returns_2d_y_and_whether_it_was_1d():
    X, y = linear_problem(n=10, n_features=3)
    est = TransferRegressor()
    X_out, y_out, y_1d = est._validate_data(X, y)
    assert X_out.shape == (10, 3) and y_out.shape == (10, 1) and y_1d
    assert est.n_features_in_ == 3
    _, y_out, y_1d = est._validate_data(X, np.c_[y, y])
    assert y_out.shape == (10, 2) and not y_1d
    _, y_out, y_1d = est._validate_data(X, y[:, None])
    assert y_out.shape == (10, 1) and not y_1d
    X3, _, _ = est._validate_data(np.zeros((10, 2, 5)), y)
    assert X3.shape == (10, 2, 5)  # n-D X is accepted as it is
    X32, _, _ = est._validate_data(X.astype(np.float32), y)
    assert X32.dtype == np.float32  # float32 is kept, not upcast


def test_validate_data_rejects_bad_targets():
    X, y = linear_problem(n=10, n_features=3)
    est = TransferRegressor()
    with pytest.raises(ValueError, match="requires y"):
        est._validate_data(X, None)
    with pytest.raises(ValueError, match="dim 3"):
        est._validate_data(X, np.zeros((10, 2, 2)))
    with pytest.raises(ValueError, match="infinity"):
        est._validate_data(X, np.r_[y[:-1], np.inf])
    with pytest.raises(ValueError, match="inconsistent"):
        est._validate_data(X, y[:-1])
    with pytest.raises(ValueError, match="minimum of 2"):
        est._validate_data(X[:1], y[:1])
    # NaN marks an unlabelled row: only DomainAdaptRegressor accepts it
    y_nan = np.r_[y[:-1], np.nan]
    with pytest.raises(ValueError, match="NaN"):
        est._validate_data(X, y_nan)
    _, y_out, _ = DomainAdaptRegressor()._validate_data(X, y_nan)
    assert np.isnan(y_out[-1, 0])
    with pytest.raises(ValueError, match="infinity"):
        DomainAdaptRegressor()._validate_data(X, np.r_[y[:-1], -np.inf])


# ----------------------------------------------------------- stage: _domains
def test_domains_needs_labelled_rows():
    y = np.r_[np.ones(3), np.nan]
    masks = DomainAdaptRegressor()._domains(y[:, None], None)
    assert masks.n_target == 1 and masks.labelled.sum() == 3
    with pytest.raises(ValueError, match="no labelled rows"):
        DomainAdaptRegressor()._domains(np.full((4, 1), np.nan), None)
    one = np.r_[1.0, np.full(3, np.nan)][:, None]
    with pytest.raises(ValueError, match="at least 2 labelled rows"):
        DomainAdaptRegressor(early_stopping=True)._domains(one, None)
    # the closed form holds nothing out
    DomainAdaptRegressor(early_stopping=True, solver="closed_form")._domains(one, None)


# ---------------------------------------------- stage: _validate_sample_weight
def test_validate_sample_weight():
    X = np.zeros((4, 2))
    est = TransferRegressor()
    masks = _masks(4)
    assert est._validate_sample_weight(None, X, masks) is None
    # equal weights change nothing: no weighting at all
    assert est._validate_sample_weight(np.full(4, 3.0), X, masks) is None
    sw = est._validate_sample_weight([1, 2, 0, 1], X, masks)
    assert sw.dtype == np.float64
    np.testing.assert_array_equal(sw, [1.0, 2.0, 0.0, 1.0])
    with pytest.raises(ValueError, match=r"[Nn]egative"):
        est._validate_sample_weight(-np.ones(4), X, masks)
    with pytest.raises(ValueError, match="non-zero"):
        est._validate_sample_weight(np.zeros(4), X, masks)
    with pytest.raises(ValueError):
        est._validate_sample_weight(np.ones(3), X, masks)
    # weight on unlabelled rows only is no weight at all
    with pytest.raises(ValueError, match="zero on every labelled row"):
        est._validate_sample_weight(np.r_[0.0, 0.0, 1.0, 1.0], X, _masks(4, 2))


def test_bad_sample_weight_raises_on_fit():
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor("linear", max_epochs=1)
    with pytest.raises(ValueError, match=r"[Nn]egative"):
        est.fit(X, y, sample_weight=-np.ones(40))
    with pytest.raises(ValueError, match=r"[Ss]ample.weight"):
        est.fit(X, y, sample_weight=np.zeros(40))
    with pytest.raises(ValueError):
        est.fit(X, y, sample_weight=np.ones(39))


# ------------------------------------------------------- stage: _loss_weights
def test_loss_weights_stage_of_each_estimator():
    y = np.r_[np.ones(4), 2.0, np.nan]
    domain = np.r_[np.zeros(4, int), -1, -1]
    masks = domain_masks(y, domain)
    sw = np.r_[1.0, 2.0, 1.0, 1.0, 1.0, 1.0]
    plan = TrainingPlan(param_groups=[])
    np.testing.assert_array_equal(
        TransferRegressor()._loss_weights(masks, sw, plan), loss_weights(masks, sw)
    )
    # semi-supervised: the one labelled target row weighs as much as the source
    w = DomainAdaptRegressor()._loss_weights(masks, sw, plan)
    np.testing.assert_array_equal(w, loss_weights(masks, sw, balance_target=True))
    assert w[4] == pytest.approx(w[:4].sum()) and w[5] == 0
    # balanced batches of 2 source rows draw both target rows at each of the
    # 2 steps: twice per epoch for each source row's once, counted once
    coral = TrainingPlan(param_groups=[], adaptation=get_method("coral"))
    est = DomainAdaptRegressor(method="coral", batch_size=2)
    w = est._loss_weights(masks, sw, coral)
    assert w[4] == pytest.approx(w[:4].sum() / 2)


def test_zero_weight_rows_are_ignored():
    X, y = linear_problem(n=160, n_features=4)
    y_bad = y.copy()
    y_bad[80:] = 1000.0
    w = np.ones(160)
    w[80:] = 0.0
    params = dict(backbone="linear", max_epochs=40, lr=3e-2, random_state=0)
    weighted = TransferRegressor(**params).fit(X, y_bad, sample_weight=w)
    assert r2_score(y[:80], weighted.predict(X[:80])) > 0.5
    # without the weights the garbage rows ruin the fit (the check above is real)
    unweighted = TransferRegressor(**params).fit(X, y_bad)
    assert r2_score(y[:80], unweighted.predict(X[:80])) < 0.0


@pytest.mark.parametrize("seed", [0, 1])
def test_sample_weight_equals_repeated_rows(seed):
    """Integer weights = repeated rows, up to float32 rounding (one full
    batch, so both fits see the same gradient each step)."""
    rng = np.random.RandomState(seed)
    X = rng.rand(15, 6)
    y = rng.rand(15)
    sw = rng.randint(0, 4, size=15)
    kw = dict(
        backbone_params={"hidden_sizes": (16,)},
        batch_size=64,
        lr=1e-2,
        max_epochs=20,
        random_state=0,
    )
    repeated = TransferRegressor(**kw).fit(X.repeat(sw, 0), y.repeat(sw))
    weighted = TransferRegressor(**kw).fit(X, y, sample_weight=sw)
    np.testing.assert_allclose(weighted.predict(X), repeated.predict(X), rtol=1e-5)
    unweighted = TransferRegressor(**kw).fit(X, y)
    assert not np.allclose(unweighted.predict(X), repeated.predict(X), rtol=1e-3)


# ----------------------------------------------------- stage: _resolve_shapes
def test_resolve_shapes_of_2d_rows():
    X = np.zeros((5, 20))
    shapes = TransferRegressor()._resolve_shapes(X)
    assert shapes == Shapes((20,), (20,)) and shapes.reshape_to is None
    shapes = TransferRegressor(input_shape=(2, 10))._resolve_shapes(X)
    assert shapes == Shapes((20,), (2, 10)) and shapes.reshape_to == (2, 10)
    with pytest.raises(ValueError, match=r"input_shape=\(3, 10\) holds 30 values"):
        TransferRegressor(input_shape=(3, 10))._resolve_shapes(X)


def test_resolve_shapes_of_nd_samples():
    X3 = np.zeros((5, 2, 10))
    shapes = TransferRegressor()._resolve_shapes(X3)
    assert shapes == Shapes((2, 10), (2, 10)) and shapes.reshape_to is None
    assert TransferRegressor(input_shape=(2, 10))._resolve_shapes(X3).input == (2, 10)
    with pytest.raises(ValueError, match="does not match the per-sample shape"):
        TransferRegressor(input_shape=(4, 5))._resolve_shapes(X3)


def test_resolve_shapes_inherits_a_fitted_source_input_shape():
    rng = np.random.RandomState(0)
    X = rng.rand(40, 20)
    src = TransferRegressor(
        "cnn1d", backbone_params={"channels": (4,)}, input_shape=(2, 10), max_epochs=1
    ).fit(X, X[:, 0])
    assert TransferRegressor(src)._resolve_shapes(X) == Shapes((20,), (2, 10))
    # an explicit input_shape wins; other rows are not the source's
    assert TransferRegressor(src, input_shape=(4, 5))._resolve_shapes(X).input == (
        4,
        5,
    )
    assert TransferRegressor(src)._resolve_shapes(X[:, :10]).input == (10,)


@pytest.mark.parametrize(
    "name, params",
    [("cnn1d", {"channels": (4,), "kernel_size": 3}), ("gru", {"hidden_size": 6})],
)
def test_input_shape_2d_and_3d(name, params):
    rng = np.random.RandomState(0)
    X3 = rng.normal(size=(60, 2, 10)).astype(np.float32)
    y = X3[:, 0, :].mean(axis=1) - X3[:, 1, :].mean(axis=1)
    X2 = X3.reshape(60, 20)

    flat = TransferRegressor(
        name, backbone_params=params, input_shape=(2, 10), max_epochs=2, random_state=0
    ).fit(X2, y)
    assert flat.predict(X2).shape == (60,)
    assert (flat.sample_shape_, flat.input_shape_) == ((20,), (2, 10))

    nd = TransferRegressor(
        name, backbone_params=params, max_epochs=2, random_state=0
    ).fit(X3, y)
    pred = nd.predict(X3)
    assert pred.shape == (60,)
    assert np.isfinite(pred).all()
    assert nd.sample_shape_ == nd.input_shape_ == (2, 10)
    with pytest.raises(ValueError, match="20 features"):
        nd.predict(X2)

    with pytest.raises(ValueError, match="input_shape"):
        TransferRegressor(
            name, backbone_params=params, input_shape=(3, 10), max_epochs=1
        ).fit(X2, y)


def test_input_shape_mismatching_3d_raises():
    X3 = np.random.RandomState(0).normal(size=(30, 2, 10))
    with pytest.raises(ValueError, match="input_shape"):
        TransferRegressor("cnn1d", input_shape=(4, 5), max_epochs=1).fit(
            X3, X3[:, 0, 0]
        )


def test_fitted_backbone_passes_on_its_input_shape():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 20)
    y = X[:, :5].sum(1)
    kw = dict(backbone_params={"channels": (4,)}, max_epochs=2, random_state=0)
    src = TransferRegressor("cnn1d", input_shape=(2, 10), **kw).fit(X, y)
    tuned = TransferRegressor(src, max_epochs=2, random_state=0).fit(X, y)
    assert tuned.input_shape_ == (2, 10)
    assert tuned.predict(X[:3]).shape == (3,)


# ------------------------------------------------------ stage: _build_network
def test_build_network_from_a_registry_name():
    est = TransferRegressor(backbone_params={"hidden_sizes": (8, 6)})
    net, origin = est._build_network(Shapes((5,), (5,)), 2)
    assert isinstance(net, TransferModule)
    assert net.n_features == 6 and net.reshape_to is None
    assert type(net.head) is torch.nn.Linear and net.head.out_features == 2
    assert origin.source is None and not origin.head_pretrained
    # a freshly built backbone is pretrained only when weights are given
    assert not origin.backbone_pretrained
    _, origin = TransferRegressor("linear", weights={})._build_network(
        Shapes((5,), (5,)), 1
    )
    assert origin.backbone_pretrained
    net, _ = TransferRegressor("linear", head="mlp")._build_network(
        Shapes((6,), (2, 3)), 1
    )
    assert isinstance(net.head, MLPHead) and net.reshape_to == (2, 3)


def test_build_network_reports_bad_backbones_and_heads():
    shapes = Shapes((5,), (5,))
    with pytest.raises(TypeError, match="backbone_params"):
        TransferRegressor(backbone_params={"nope": 1})._build_network(shapes, 1)
    with pytest.raises(ValueError, match="could not process a batch"):
        TransferRegressor(torch.nn.Linear(7, 3))._build_network(shapes, 1)
    with pytest.raises(ValueError, match=r"shape \(n, d\)"):
        TransferRegressor(torch.nn.Flatten(0))._build_network(shapes, 1)
    head = torch.nn.Linear(5, 3)
    with pytest.raises(ValueError, match=r"to shape \(2, 3\), but y needs \(2, 1\)"):
        TransferRegressor("linear", head=head)._build_network(shapes, 1)


def test_build_network_from_a_fitted_source(source):
    shapes = Shapes(source.sample_shape_, source.input_shape_)
    net, origin = TransferRegressor(source)._build_network(shapes, 1)
    assert origin.source is source and origin.backbone_pretrained
    assert origin.head_pretrained  # one output, head="auto": the head is reused
    assert states_equal(net.head, network(source).head)
    assert net.head is not network(source).head
    _, origin = TransferRegressor(source, head="linear")._build_network(shapes, 1)
    assert not origin.head_pretrained
    net, origin = TransferRegressor(source)._build_network(shapes, 2)
    assert not origin.head_pretrained and net.head.out_features == 2


def test_module_backbone_is_copied_not_mutated():
    X, y = linear_problem(n=80, n_features=5)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU())
    before = state(module)
    est = TransferRegressor(module, max_epochs=5, lr=1e-2, random_state=0).fit(X, y)
    fitted_backbone = network(est).backbone
    assert fitted_backbone is not module
    assert states_equal(module, before)
    assert all(p.requires_grad for p in module.parameters())
    assert module.training
    own_ptrs = {p.data_ptr() for p in module.parameters()}
    assert not own_ptrs & {p.data_ptr() for p in fitted_backbone.parameters()}
    # training happened on the copy
    assert not states_equal(fitted_backbone, before)
    assert est.n_backbone_features_ == 8


# ------------------------------------------------------- stage: _make_scaling
@pytest.mark.parametrize(
    "backbone, standardize_X, expected",
    [
        ("mlp", "auto", "per_feature"),
        (torch.nn.Flatten(), "auto", "off"),
        ("mlp", True, "per_feature"),
        ("mlp", False, "off"),
        (torch.nn.Flatten(), True, "per_feature"),
        ("mlp", "global", "global"),
    ],
)
def test_make_scaling_resolves_standardize_X(backbone, standardize_X, expected):
    est = TransferRegressor(backbone, standardize_X=standardize_X)
    _, origin = est._build_network(Shapes((3,), (3,)), 1)
    scaling = est._make_scaling(origin, _masks(4), _plan_stub)
    assert scaling.inputs == expected and not scaling.per_domain


def test_make_scaling_inherits_from_a_source(source):
    est = TransferRegressor(source)
    _, origin = est._build_network(Shapes((8,), (8,)), 1)
    scaling = est._make_scaling(origin, _masks(4), _plan_stub)
    assert scaling.inputs == "inherit" and scaling.inherited is source
    assert scaling.inherit_y  # the head is reused, so is the target scaling


def test_make_scaling_per_domain_for_domain_adaptation():
    masks = _masks(6, n_target=2)
    # the hook of the base: no per-domain scaling; DomainAdaptRegressor answers it
    assert TransferRegressor()._per_domain_scaling(masks) is False
    assert DomainAdaptRegressor(method="adabn")._per_domain_scaling(masks)
    assert not DomainAdaptRegressor(method="mmd")._per_domain_scaling(masks)
    _, origin = DomainAdaptRegressor()._build_network(Shapes((3,), (3,)), 1)
    assert (
        DomainAdaptRegressor(method="adabn")
        ._make_scaling(origin, masks, _plan_stub)
        .per_domain
    )
    assert (
        not DomainAdaptRegressor(method="coral")
        ._make_scaling(origin, masks, _plan_stub)
        .per_domain
    )
    assert (
        DomainAdaptRegressor(method="coral", domain_norm=True)
        ._make_scaling(origin, masks, _plan_stub)
        .per_domain
    )
    # no target rows: nothing to normalise per domain
    assert (
        not DomainAdaptRegressor(method="adabn")
        ._make_scaling(origin, _masks(6), _plan_stub)
        .per_domain
    )


# ----------------------------------------------------------------- stage: _plan
def test_transfer_plan():
    est = TransferRegressor(backbone_params={"hidden_sizes": (4,)}, finetune="full")
    net, origin = est._build_network(Shapes((3,), (3,)), 1)
    plan = est._plan(net, origin, _masks(4))
    names = [n for g in plan.param_groups for n in g["params"]]
    assert sorted(names) == sorted(n for n, _ in net.named_parameters())
    assert plan.callbacks == [] and plan.adaptation is None
    assert not plan.frozen_backbone and plan.anchored == []
    probe = TransferRegressor(finetune="linear_probe", l2sp=0.5)
    plan = probe._plan(net, origin, _masks(4))
    assert plan.frozen_backbone and [n for n, _ in plan.callbacks] == ["unfreeze"]
    assert plan.l2sp == 0.5
    # a parameter-free backbone has nothing to freeze
    flat = _network(3)
    assert probe._plan(flat, origin, _masks(4)).callbacks == []


@pytest.mark.parametrize("method", ["coral", "adabn", "source_only"])
def test_domain_adapt_plan(method):
    est = DomainAdaptRegressor(method=method)
    net, origin = est._build_network(Shapes((3,), (3,)), 1)
    plan = est._plan(net, origin, _masks(6, n_target=2))
    m = get_method(method)
    assert plan.da_weight == m.default_weight
    assert (plan.adaptation is m) == m.has_loss
    assert [n for n, _ in plan.callbacks] == (["da_schedule"] if m.has_loss else [])
    assert (plan.after_training is not None) == m.per_domain_scaling
    explicit = DomainAdaptRegressor(method=method, da_weight=2.0)
    assert explicit._plan(net, origin, _masks(6, 2)).da_weight == 2.0


# ------------------------------------------------------------- stage: _dataset
def test_dataset_holds_the_training_tensors():
    masks = _masks(4, n_target=1)
    X, y = np.ones((4, 3), np.float32), np.zeros((4, 1), np.float32)
    w = np.r_[1.0, 1.0, 1.0, 0.0].astype(np.float32)
    data = TransferRegressor._dataset(X, y, w, masks, "cpu")
    assert isinstance(data, TensorData) and len(data) == 4
    assert data.X.dtype == torch.float32 and data.weight.tolist() == w.tolist()
    assert data.is_target.tolist() == [False, False, False, True]
    assert TransferRegressor._dataset(X, y, None, masks, "cpu").weight is None


# -------------------------------------------------------- stage: _choose_solver
def test_choose_solver():
    linear = _network(4)
    plan = _plan(linear)
    assert TransferRegressor()._choose_solver(linear, plan, 100) == "closed_form"
    assert TransferRegressor(solver="gradient")._choose_solver(linear, plan, 100) == (
        "gradient"
    )
    assert (
        TransferRegressor(early_stopping=True)._choose_solver(linear, plan, 100)
        == "gradient"
    )
    # an adaptation loss needs the gradient loop
    coral = _plan(linear, adaptation=get_method("coral"))
    assert TransferRegressor()._choose_solver(linear, coral, 100) == "gradient"
    with pytest.raises(ValueError, match="adaptation loss"):
        TransferRegressor(solver="closed_form")._choose_solver(linear, coral, 100)
    # a parameterised backbone: "auto" trains it by gradient even when frozen
    mlp = _network(4, backbone=torch.nn.Linear(4, 4))
    assert TransferRegressor()._choose_solver(mlp, _plan(mlp), 100) == "gradient"
    frozen = _plan(mlp, frozen_backbone=True)
    assert TransferRegressor()._choose_solver(mlp, frozen, 100) == "gradient"
    assert (
        TransferRegressor(solver="closed_form")._choose_solver(mlp, frozen, 100)
        == "closed_form"
    )
    with pytest.raises(ValueError, match="the strategy trains them"):
        TransferRegressor(solver="closed_form")._choose_solver(mlp, _plan(mlp), 100)


def test_choose_solver_picks_the_closed_form_while_one_system_is_small():
    from sktransfer._closed_form import AUTO_MAX_FEATURES

    big = AUTO_MAX_FEATURES + 1
    wide = _network(big)
    plan = _plan(wide)
    # many rows and many features: neither the primal nor the dual is cheap
    assert TransferRegressor()._choose_solver(wide, plan, big) == "gradient"
    assert (
        TransferRegressor(solver="closed_form")._choose_solver(wide, plan, big)
        == "closed_form"
    )
    # few rows: the dual (rows x rows) system is cheap
    assert TransferRegressor()._choose_solver(wide, plan, 8) == "closed_form"
    at_limit = _network(AUTO_MAX_FEATURES - 1)
    assert TransferRegressor()._choose_solver(at_limit, _plan(at_limit), big) == (
        "closed_form"
    )
    # a fit with 8 rows of 4097 features solves the dual
    X = np.random.RandomState(0).normal(size=(8, big))
    est = TransferRegressor("linear", max_epochs=1).fit(X, X[:, 0])
    assert est.solver_ == "closed_form" and est.n_iter_ == 0
    assert est.score(X, X[:, 0]) > 0.999


# -------------------------------------------------------- stage: _assemble_net
def test_assemble_net():
    net_module = _network(4)
    seeds = Seeds(1, 2, 3)
    net = TransferRegressor(optimizer="sgd")._assemble_net(
        net_module, _plan(net_module), seeds, "cpu", "gradient"
    )
    assert net.optimizer is torch.optim.SGD and net.train_split is None
    assert net.shuffle_seed == 2 and not net.balanced
    assert all(name != "loss_terms" for name, _ in net.callbacks)
    stopping = TransferRegressor(early_stopping=True, validation_fraction=0.3)
    net = stopping._assemble_net(
        net_module,
        _plan(net_module, anchored=["head.weight"], l2sp=1.0),
        seeds,
        "cpu",
        "gradient",
    )
    assert isinstance(net.train_split, ValidFraction)
    assert (net.train_split.fraction, net.train_split.seed) == (0.3, 3)
    callbacks = dict(net.callbacks)
    assert "early_stopping" in callbacks
    assert isinstance(callbacks["loss_terms"], LossTermRecorder)
    # the closed form holds nothing out
    net = stopping._assemble_net(
        net_module, _plan(net_module), seeds, "cpu", "closed_form"
    )
    assert net.train_split is None
    coral = _plan(net_module, adaptation=get_method("coral"), da_weight=2.0)
    net = DomainAdaptRegressor()._assemble_net(
        net_module, coral, seeds, "cpu", "gradient"
    )
    assert net.balanced and net.da_weight == 2.0
    assert "loss_terms" in dict(net.callbacks)


# --------------------------------------------------------------- stage: _train
def test_train_skips_rows_of_zero_weight_without_an_adaptation_loss():
    X, y = linear_problem(n=40, n_features=3)
    w = np.r_[np.zeros(20), np.ones(20)]
    kw = dict(batch_size=10, max_epochs=1, backbone_params=TINY["backbone_params"])
    est = TransferRegressor(**kw).fit(X, y, sample_weight=w)
    assert len(est.history_[0]["batches"]) == 2  # 20 rows of positive weight
    plain = TransferRegressor(**kw).fit(X, y)
    assert len(plain.history_[0]["batches"]) == 4
    # with an adaptation loss every row takes part (the target rows weigh 0)
    y_t = np.r_[y[:20], np.full(20, np.nan)]
    da = DomainAdaptRegressor(method="coral", **kw).fit(X, y_t)
    assert da.history_[0, "train_da_loss"] > 0


# ------------------------------------------------------------ stage: _publish
def _scaling_of(est):
    """A Scaling holding the statistics ``est`` was fitted with."""
    scaling = Scaling("per_feature", True)
    scaling.input_mean_, scaling.input_scale_ = est.input_mean_, est.input_scale_
    scaling.y_mean_, scaling.y_scale_ = est.y_mean_, est.y_scale_
    scaling.domain_stats_ = None
    return scaling


def test_publish_sets_every_fitted_attribute():
    X, y = linear_problem(n=40, n_features=4)
    fitted = TransferRegressor(**TINY).fit(X, y)
    est = TransferRegressor()
    shapes = Shapes((4,), (2, 2))
    est._publish(
        _FitResult(
            fitted.net_,
            "gradient",
            shapes,
            _scaling_of(fitted),
            TrainingPlan(param_groups=[], l2sp=0.3),
            True,
            "cpu",
            input_range=fitted.input_range_,
        )
    )
    assert est.net_ is fitted.net_ and est.history_ is fitted.net_.history
    assert est.n_iter_ == 4 and est.solver_ == "gradient"
    assert (est.sample_shape_, est.input_shape_) == ((4,), (2, 2))
    assert est.n_backbone_features_ == 16 and est.n_outputs_ == 1
    np.testing.assert_array_equal(est.input_mean_, fitted.input_mean_)
    np.testing.assert_array_equal(est.y_scale_, fitted.y_scale_)
    assert est.device_ == "cpu"
    assert est.weight_decay_ == 0.0 and est.l2sp_ == 0.3
    np.testing.assert_array_equal(est.predict(X), fitted.predict(X))


def test_fitted_attributes():
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(**TINY).fit(X, y)
    assert est.sample_shape_ == est.input_shape_ == (4,)
    assert est.n_backbone_features_ == 16 and est.n_outputs_ == 1
    assert est.input_mean_.shape == est.input_scale_.shape == (4,)
    assert est.y_mean_.shape == est.y_scale_.shape == (1,)
    assert est.solver_ == "gradient" and est.n_iter_ == len(est.history_) == 4
    assert est.device_ == "cpu" and est.n_features_in_ == 4
    off = TransferRegressor(torch.nn.Linear(4, 3), max_epochs=1).fit(X, y)
    assert off.input_mean_ is None and off.input_scale_ is None
    assert off.n_backbone_features_ == 3
    da = DomainAdaptRegressor(method="coral", **TINY).fit(
        np.vstack([X, X + 1]), np.r_[y, np.full(40, np.nan)]
    )
    assert da.da_weight_ == get_method("coral").default_weight
    assert da.domain_stats_ is None


# ------------------------------------------------------------ the coordinator
def test_fit_calls_each_stage_once_in_order():
    stages = [
        "_check_params",
        "_validate_data",
        "_domains",
        "_validate_sample_weight",
        "_resolve_shapes",
        "_build_network",
        "_plan",
        "_make_scaling",
        "_loss_weights",
        "_dataset",
        "_choose_solver",
        "_assemble_net",
        "_train",
        "_publish",
    ]
    calls = []

    def recording(name):
        def stage(self, *args, **kwargs):
            calls.append(name)
            original = inspect.getattr_static(TransferRegressor, name)
            return original.__get__(self, type(self))(*args, **kwargs)

        return stage

    Recorded = type("Recorded", (TransferRegressor,), {n: recording(n) for n in stages})
    X, y = linear_problem(n=20, n_features=3)
    Recorded("linear").fit(X, y)
    assert calls == stages


class _FailsInTraining(torch.nn.Module):
    """Passes the (eval-mode) dry run, fails in the training loop."""

    def __init__(self):
        super().__init__()
        self.lin = torch.nn.Linear(4, 3)

    def forward(self, x):
        if self.training:
            raise RuntimeError("boom in training")
        return self.lin(x)


def test_failed_fit_keeps_previous_model():
    X, y = linear_problem(n=60, n_features=4)
    est = TransferRegressor("linear", max_epochs=3, random_state=0).fit(X, y)
    pred = est.predict(X)
    n_iter = est.n_iter_
    with pytest.raises(ValueError, match="lr"):
        est.set_params(lr=-1).fit(X, y)
    np.testing.assert_array_equal(est.predict(X), pred)
    est.set_params(lr=1e-3)
    with pytest.raises(ValueError, match=r"[Ss]ample.weight"):
        est.fit(X, y + 100, sample_weight=np.zeros(len(y)))
    np.testing.assert_array_equal(est.predict(X), pred)
    assert est.n_iter_ == n_iter


def test_an_error_in_training_rolls_the_estimator_back():
    X, y = linear_problem(n=60, n_features=4)
    est = TransferRegressor("linear").fit(X, y)
    before = dict(vars(est))
    pred = est.predict(X)
    est.set_params(backbone=_FailsInTraining(), max_epochs=1)
    with pytest.raises(RuntimeError, match="boom in training"):
        est.fit(X[:, :4], y)
    assert {k for k in vars(est) if k.endswith("_")} == {
        k for k in before if k.endswith("_")
    }
    assert all(vars(est)[k] is v for k, v in before.items() if k.endswith("_"))
    np.testing.assert_array_equal(est.predict(X), pred)
    # an unfitted estimator stays unfitted, without n_features_in_
    fresh = TransferRegressor(_FailsInTraining(), max_epochs=1)
    with pytest.raises(RuntimeError):
        fresh.fit(X, y)
    assert not hasattr(fresh, "net_") and not hasattr(fresh, "n_features_in_")


# ------------------------------------------------------------ fit end to end
@pytest.mark.parametrize("y_shape", [(60,), (60, 1), (60, 3)])
def test_output_shapes(y_shape):
    X, y = linear_problem(n=60, n_features=4)
    Y = np.column_stack([y, 2 * y, -y])[:, : (y_shape[1] if len(y_shape) > 1 else 1)]
    Y = Y.reshape(y_shape)
    est = TransferRegressor("linear", max_epochs=30, lr=3e-2, random_state=0)
    est.fit(X, Y)
    pred = est.predict(X)
    assert pred.shape == y_shape
    assert est.n_outputs_ == (y_shape[1] if len(y_shape) > 1 else 1)
    assert est.score(X, Y) > 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_input_dtypes(dtype):
    X, y = linear_problem(n=60, n_features=4)
    Xd = (X * 10).astype(dtype)
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (8,)}, max_epochs=3, random_state=0
    ).fit(Xd, y)
    pred = est.predict(Xd)
    assert pred.dtype.kind == "f"
    assert np.isfinite(pred).all()
    # the caller's array is not modified (X is standardised internally)
    np.testing.assert_array_equal(Xd, (X * 10).astype(dtype))


def test_early_stopping_stops():
    X, y = linear_problem(n=100, n_features=4)
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (16,)},
        early_stopping=True,
        n_iter_no_change=2,
        max_epochs=200,
        lr=1e-2,
        random_state=0,
    ).fit(X, y)
    assert est.n_iter_ < 200
    valid = est.history_[:, "valid_loss"]
    assert len(valid) == est.n_iter_
    assert np.isfinite(valid).all()


def test_fit_makes_one_float32_copy_of_X():
    """numpy-side allocations during fit stay below one float64 copy of X:
    one float32 copy plus small chunks (torch's own buffers are not counted)."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40_000, 32))
    y = X[:, 0].copy()
    est = TransferRegressor(max_epochs=1, batch_size=4096, random_state=0)
    tracemalloc.start()
    try:
        est.fit(X, y)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < X.nbytes, (peak, X.nbytes)
    assert peak > X.nbytes // 2 * 0.9  # the float32 copy itself was seen


# ------------------------------------------------------------------ predict
@pytest.fixture(scope="module")
def fitted():
    Xs, ys, _, _ = make_domain_shift(300, 10, random_state=0)
    return TransferRegressor(**{**TINY, "max_epochs": 3}).fit(Xs, ys), Xs


def test_predict_before_fit_raises():
    with pytest.raises(NotFittedError, match="not fitted yet"):
        TransferRegressor().predict(np.zeros((2, 3)))


def test_validate_predict_fast_path_returns_the_array_itself(fitted):
    est, X = fitted
    small = np.ascontiguousarray(X[:5])
    assert est._validate_predict(small) is small
    # lists, other dtypes and wrong shapes go through full validation
    as_list = est._validate_predict(small.tolist())
    assert isinstance(as_list, np.ndarray) and as_list is not small
    with pytest.raises(ValueError, match="features"):
        est._validate_predict(small[:, :3])


def test_single_row_small_and_chunked_paths_agree(fitted):
    est, X = fitted
    full = est.predict(X)  # inference-mode path, one chunk
    rows = np.array([est.predict(X[i : i + 1])[0] for i in range(5)])
    np.testing.assert_allclose(rows, full[:5], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(est.predict(X[:10]), full[:10], rtol=1e-6, atol=1e-6)
    # more rows than one prediction chunk (8192): several chunks, same answers
    many = np.tile(X, (30, 1))
    np.testing.assert_allclose(est.predict(many), np.tile(full, 30), rtol=1e-6)


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
    est.predict(X)  # the inference-mode path
    assert torch.is_grad_enabled()


def test_predict_puts_a_network_left_in_training_mode_back_in_eval(fitted):
    est, X = fitted
    expected = est.predict(X[:3])
    network(est).train()
    np.testing.assert_array_equal(est.predict(X[:3]), expected)
    assert not network(est).training
