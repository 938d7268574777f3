"""Adaptation methods (``sktransfer.adaptation``): the registry, a new method
registered end to end, and every registered method."""

import numpy as np
import pytest
import torch
from conftest import TINY, network, rmse
from skorch.callbacks import Callback

from sktransfer import DomainAdaptRegressor
from sktransfer._callbacks import DAWeightSchedule
from sktransfer._module import TransferModule
from sktransfer.adaptation import (
    AdaptationMethod,
    get_method,
    list_methods,
    reestimate_batch_norm,
    register_method,
)
from sktransfer.backbones import MLPBackbone
from sktransfer.datasets import make_domain_shift

METHODS = list_methods()
WITH_LOSS = [m for m in METHODS if get_method(m).has_loss]


# ------------------------------------------------------------------ registry
def test_builtin_methods_are_registered_in_order():
    assert METHODS[:7] == [
        "source_only",
        "adabn",
        "dann",
        "coral",
        "mmd",
        "rsd",
        "daregram",
    ]


@pytest.mark.parametrize("name", METHODS)
def test_every_method_follows_the_protocol(name):
    method = get_method(name)
    assert isinstance(method, AdaptationMethod) and method.name == name
    assert isinstance(method.default_weight, float) and method.default_weight >= 0
    assert isinstance(method.per_domain_scaling, bool)
    modules = method.modules(6)
    assert isinstance(modules, dict)
    assert all(isinstance(m, torch.nn.Module) for m in modules.values())
    callbacks = method.callbacks(da_ramp="dann", max_epochs=5)
    assert all(isinstance(cb, Callback) for _, cb in callbacks)
    # a method with a loss ramps its weight; one without has nothing to ramp
    schedules = [cb for _, cb in callbacks if isinstance(cb, DAWeightSchedule)]
    assert len(schedules) == (1 if method.has_loss else 0)


def test_unknown_method_lists_the_registered_ones():
    with pytest.raises(ValueError, match="'nope' is not a registered") as info:
        get_method("nope")
    for name in list_methods():
        assert repr(name) in str(info.value)
    assert "register_method" in str(info.value)


def test_register_method_checks_its_argument(restore_registries):
    class Unnamed(AdaptationMethod):
        pass

    with pytest.raises(TypeError, match="AdaptationMethod"):
        register_method(Unnamed)
    with pytest.raises(TypeError, match="AdaptationMethod"):
        register_method(object())

    class Again(AdaptationMethod):
        name = "coral"

    with pytest.raises(ValueError, match="already registered"):
        register_method(Again)
    assert register_method(Again(), overwrite=True).name == "coral"
    assert isinstance(get_method("coral"), Again)
    assert not get_method("coral").has_loss  # it did not override loss


class _MeanGap(AdaptationMethod):
    """Match the batch means of the features through a trainable critic."""

    name = "test_mean_gap"
    default_weight = 1.0

    def modules(self, n_features):
        return {"critic": torch.nn.Linear(n_features, 1)}

    def loss(self, features_source, features_target, modules):
        critic = modules["critic"]
        gap = critic(features_source).mean() - critic(features_target).mean()
        return (
            gap.pow(2)
            + (features_source.mean(0) - features_target.mean(0)).pow(2).sum()
        )


def test_a_registered_method_works_end_to_end(restore_registries, uda):
    X, y, _, _ = uda
    assert register_method(_MeanGap) is _MeanGap
    assert "test_mean_gap" in list_methods()
    est = DomainAdaptRegressor(method="test_mean_gap", **TINY).fit(X, y)
    assert est.da_weight_ == 1.0
    assert np.isfinite(est.history_[:, "train_da_loss"]).all()
    # its module is a module of the net, trained with the network
    assert isinstance(est.net_.critic_, torch.nn.Linear)
    assert "critic" in est.net_.adaptation_modules
    frozen = DomainAdaptRegressor(method="test_mean_gap", da_weight=0.0, **TINY)
    frozen.fit(X, y)
    assert not torch.equal(est.net_.critic_.weight, frozen.net_.critic_.weight)
    base = DomainAdaptRegressor(method="source_only", **TINY).fit(X, y)
    assert not np.allclose(est.predict(X), base.predict(X))


def test_a_registered_per_domain_method(restore_registries, uda):
    X, y, _, _ = uda

    @register_method
    class PerDomainOnly(AdaptationMethod):
        name = "test_per_domain"
        per_domain_scaling = True

    est = DomainAdaptRegressor(method="test_per_domain", **TINY).fit(X, y)
    assert set(est.domain_stats_) == {0, -1}
    assert "train_da_loss" not in est.history_[-1]


# ------------------------------------------------------------ every method
@pytest.mark.parametrize("method", METHODS)
def test_every_method_fits_predicts_and_changes_the_model(uda, method):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method=method, **TINY).fit(X, y)
    pred = est.predict(X[-5:])
    assert pred.shape == (5,) and np.isfinite(pred).all()
    if method != "source_only":
        base = DomainAdaptRegressor(method="source_only", **TINY).fit(X, y)
        assert not np.allclose(base.predict(X), est.predict(X))


@pytest.mark.parametrize("method", METHODS)
def test_history_records_each_loss_term(uda, method):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method=method, da_ramp="dann", **TINY).fit(X, y)
    hist = est.history_
    assert est.da_weight_ == get_method(method).default_weight
    if not get_method(method).has_loss:
        assert "train_da_loss" not in hist[-1] and "da_scale" not in hist[-1]
        return
    task = hist[:, "train_task_loss"]
    da = hist[:, "train_da_loss"]
    assert len(task) == len(da) == est.n_iter_
    assert np.isfinite(task).all() and np.isfinite(da).all()
    assert all(v >= -1e-6 for v in da)
    assert hist[0, "da_scale"] == 0.0


@pytest.mark.parametrize("method", WITH_LOSS)
def test_every_loss_has_a_finite_nonzero_gradient(method):
    m = get_method(method)
    torch.manual_seed(0)
    modules = m.modules(6)
    fs = torch.randn(16, 6, requires_grad=True)
    ft = (torch.randn(12, 6) * 2 + 1).requires_grad_(True)
    loss = m.loss(fs, ft, modules)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    for grad in (fs.grad, ft.grad):
        assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    for module in modules.values():
        for p in module.parameters():
            assert p.grad is not None and torch.isfinite(p.grad).all()


@pytest.mark.parametrize("method", METHODS)
def test_every_method_takes_the_same_steps_per_epoch(uda, method):
    # methods without a loss skip the unlabelled rows, so an epoch is one pass
    # over the labelled rows for every method: equal max_epochs means equal
    # optimizer steps
    X, y, _, _ = uda
    n_labelled = int(np.isfinite(y).sum())
    est = DomainAdaptRegressor(
        method=method, batch_size=50, max_epochs=2, random_state=0
    ).fit(X, y)
    steps = [len(h["batches"]) for h in est.history_]
    assert steps == [-(-n_labelled // 50)] * 2


@pytest.mark.parametrize("method", METHODS)
def test_labelled_target_rows_reach_every_method(uda, method):
    X, y, _, _ = uda
    semi = y.copy()
    target = np.flatnonzero(np.isnan(y))
    semi[target[:20]] = 5.0  # labels far from the source's
    a = DomainAdaptRegressor(method=method, **TINY).fit(X, y)
    b = DomainAdaptRegressor(method=method, **TINY).fit(X, semi)
    err_a = np.abs(a.predict(X[target[:20]]) - 5.0).mean()
    err_b = np.abs(b.predict(X[target[:20]]) - 5.0).mean()
    assert err_b < err_a


@pytest.mark.parametrize("method", [m for m in METHODS if m != "source_only"])
def test_adaptation_beats_source_only_on_instrument_shift(method):
    """The instrument shift (per-feature gain and offset between sensors) is
    what feature alignment and per-domain normalisation are designed for."""
    Xs, ys, Xt, yt = make_domain_shift(600, 500, shift="instrument", random_state=0)
    X = np.vstack([Xs, Xt[:250]])
    y = np.concatenate([ys, np.full(250, np.nan)])
    kw = dict(backbone_params={"hidden_sizes": (64, 64)}, max_epochs=30, random_state=0)
    base = DomainAdaptRegressor(method="source_only", **kw).fit(X, y)
    adapted = DomainAdaptRegressor(method=method, **kw).fit(X, y)
    assert rmse(adapted, Xt[250:], yt[250:]) < 0.95 * rmse(base, Xt[250:], yt[250:])


# -------------------------------------------------------------------- DANN
def test_dann_discriminator_is_a_module_of_the_net_and_trains(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="dann", **TINY).fit(X, y)
    disc = est.net_.discriminator_
    assert est.net_.adaptation_modules == {"discriminator": disc}
    assert not any(disc is m for m in network(est).modules())
    # with a zero weight its loss has no gradient: it keeps its initial weights
    untrained = DomainAdaptRegressor(method="dann", da_weight=0.0, **TINY).fit(X, y)
    start = untrained.net_.discriminator_
    assert any(
        not torch.equal(p, q) for p, q in zip(disc.parameters(), start.parameters())
    )
    with torch.no_grad():
        source_rows = torch.as_tensor(X[np.isfinite(y)][:50], dtype=torch.float32)
        logits = disc(network(est).features(source_rows))
    assert logits.shape == (50,) and torch.isfinite(logits).all()


# ------------------------------------------------------------------- AdaBN
def _bn_module():
    torch.manual_seed(0)
    backbone = MLPBackbone(3, (4,), batch_norm=True)
    return TransferModule(backbone, torch.nn.Linear(4, 1), 4)


def test_reestimate_batch_norm_uses_the_target_rows():
    module = _bn_module().eval()
    bn = module.backbone.blocks[0][1]
    bn.momentum = 0.3
    X_target = torch.randn(50, 3) * 2 + 1
    reestimate_batch_norm(module, X_target, chunk=25)  # two equal chunks
    with torch.no_grad():
        pre = module.backbone.blocks[0][0](X_target)
    torch.testing.assert_close(bn.running_mean, pre.mean(0), atol=1e-5, rtol=1e-4)
    # settings restored: momentum, eval mode
    assert bn.momentum == 0.3 and not bn.training


def test_reestimate_batch_norm_uses_every_row_of_uneven_chunks():
    module = _bn_module()
    bn = module.backbone.blocks[0][1]
    X = torch.randn(9, 3)
    reestimate_batch_norm(module, X, chunk=4)  # 4 + 4 + 1 rows
    with torch.no_grad():
        pre_bn = module.backbone.blocks[0][0](X)
    torch.testing.assert_close(bn.running_mean, pre_bn.mean(0))
    torch.testing.assert_close(bn.running_var, pre_bn.var(0))
    one_row = bn.running_mean.clone()
    reestimate_batch_norm(module, X[:1])  # one row: nothing to estimate from
    torch.testing.assert_close(bn.running_mean, one_row)
    plain = TransferModule(torch.nn.Flatten(), torch.nn.Linear(3, 1), 3)
    reestimate_batch_norm(plain, torch.randn(5, 3))  # nothing to do


def test_adabn_reestimates_batch_norm_on_the_target(uda):
    X, y, _, _ = uda
    kw = dict(backbone_params={"hidden_sizes": (16,), "batch_norm": True})
    est = DomainAdaptRegressor(method="adabn", max_epochs=3, random_state=0, **kw)
    est.fit(X, y)
    net = network(est)
    bn = net.backbone.blocks[0][1]
    target = torch.as_tensor(X[np.isnan(y)], dtype=torch.float32)
    with torch.no_grad():
        pre_bn = net.backbone.blocks[0][0](net.normalizer(target))
    np.testing.assert_allclose(bn.running_mean.numpy(), pre_bn.mean(0), atol=1e-4)


def test_reestimate_batch_norm_over_several_chunks_is_the_statistic_of_all_rows():
    bn = torch.nn.BatchNorm1d(1, affine=False)
    module = TransferModule(bn, torch.nn.Linear(1, 1), 1)
    X_target = torch.cat([torch.zeros(1024, 1), torch.full((6, 1), 100.0)])
    reestimate_batch_norm(module, X_target)  # chunks of 1024 and 6 rows
    torch.testing.assert_close(bn.running_mean, X_target.mean(0))
    torch.testing.assert_close(bn.running_var, X_target.var(0))
