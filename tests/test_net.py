"""The skorch net (``sktransfer._net.TransferNet``): the loss, parameter groups
by name, the adaptation method's modules, iterators and training modes."""

import pickle

import numpy as np
import pytest
import torch
from conftest import TINY
from skorch.dataset import Dataset

from sktransfer import DomainAdaptRegressor
from sktransfer._batches import BalancedIterator, BatchIterator, Target, TensorData
from sktransfer._module import TransferModule
from sktransfer._net import TransferNet
from sktransfer.adaptation import get_method
from sktransfer.backbones import MLPBackbone


def _net(adaptation=None, param_groups=None, **kwargs):
    torch.manual_seed(0)
    module = TransferModule(MLPBackbone(3, (4,)), torch.nn.Linear(4, 1), 4)
    return TransferNet(
        module=module,
        criterion=torch.nn.MSELoss,
        optimizer=torch.optim.SGD,
        lr=0.1,
        max_epochs=1,
        train_split=None,
        param_groups=param_groups,
        adaptation=adaptation,
        **kwargs,
    ).initialize()


def _data(n=10, n_target=4):
    gen = torch.Generator().manual_seed(0)
    is_target = torch.zeros(n, dtype=torch.bool)
    is_target[n - n_target :] = True
    return TensorData(
        torch.randn(n, 3, generator=gen),
        torch.randn(n, 1, generator=gen),
        None,
        is_target,
    )


# ----------------------------------------------------------------- the loss
def test_loss_is_the_weighted_mean_squared_error():
    net = _net()
    pred = torch.tensor([[1.0], [2.0], [4.0]])
    y = torch.zeros(3, 1)
    assert float(net.get_loss(pred, Target(y, None, None))) == pytest.approx(7.0)
    w = torch.tensor([1.0, 0.0, 3.0])
    weighted = net.get_loss(pred, Target(y, w, None))
    assert float(weighted) == pytest.approx((1 + 3 * 16) / 4)
    # several outputs: the mean over outputs, then over rows
    pred2 = torch.tensor([[1.0, 3.0], [0.0, 2.0]])
    two = net.get_loss(pred2, Target(torch.zeros(2, 2), None, None))
    assert float(two) == pytest.approx(((1 + 9) / 2 + (0 + 4) / 2) / 2)
    # all-zero weights do not divide by zero
    zero = net.get_loss(pred, Target(y, torch.zeros(3), None))
    assert torch.isfinite(zero)


def test_training_loss_adds_l2sp_and_records_the_terms():
    module_names = ["head.weight", "head.bias"]
    net = _net(anchored=module_names, l2sp=2.0)
    params = dict(net.module_.named_parameters())
    assert len(net.anchors_) == 2
    assert all(p is params[n] for (p, _), n in zip(net.anchors_, module_names))
    with torch.no_grad():
        net.module_.head.weight.add_(1.0)  # 4 weights moved by 1
    pred, y = torch.ones(2, 1), torch.zeros(2, 1)
    net.loss_terms_ = {}
    loss = net.get_loss(pred, Target(y, None, None), training=True)
    assert float(loss.detach()) == pytest.approx(1.0 + 0.5 * 2.0 * 4)
    assert set(net.loss_terms_) == {"task_loss", "l2sp_penalty"}
    assert float(net.loss_terms_["l2sp_penalty"][0]) == pytest.approx(4.0)
    # evaluation: the task loss alone
    assert float(net.get_loss(pred, Target(y, None, None))) == pytest.approx(1.0)


def test_adaptation_loss_needs_source_and_target_rows_in_the_batch():
    net = _net(adaptation=get_method("coral"), da_weight=3.0)
    gen = torch.Generator().manual_seed(1)
    features = torch.randn(6, 4, generator=gen)
    pred, y = torch.zeros(6, 1), torch.zeros(6, 1)
    target = Target(y, None, 4)
    net.loss_terms_ = {}
    loss = net.get_loss((pred, features), target, training=True)
    da = get_method("coral").loss(features[:4], features[4:], {})
    assert float(loss) == pytest.approx(3.0 * float(da), rel=1e-5)
    assert float(net.loss_terms_["da_loss"][0]) == pytest.approx(float(da), rel=1e-5)
    net.da_scale_ = 0.5  # the ramp multiplies the weight
    half = net.get_loss((pred, features), target, training=True)
    assert float(half) == pytest.approx(1.5 * float(da), rel=1e-5)
    # batches of one domain, or unbalanced batches: no adaptation term
    for n_source in (None, 0, 6):
        plain = net.get_loss((pred, features), Target(y, None, n_source), training=True)
        assert float(plain) == 0.0


# --------------------------------------------------------- parameter groups
def test_param_groups_are_given_by_parameter_name():
    groups = [
        {
            "params": ["backbone.blocks.0.0.weight", "backbone.blocks.0.0.bias"],
            "lr": 0.01,
        },
        {"params": ["head.weight", "head.bias"], "lr": 0.1, "weight_decay": 0.5},
    ]
    net = _net(param_groups=groups)
    opt = net.optimizer_.param_groups
    params = dict(net.module_.named_parameters())
    assert [g["lr"] for g in opt] == [0.01, 0.1]
    assert opt[0]["params"][0] is params["backbone.blocks.0.0.weight"]
    assert opt[1]["weight_decay"] == 0.5
    # None: one group of every parameter at the net's lr
    single = _net().optimizer_.param_groups
    assert len(single) == 1 and single[0]["lr"] == 0.1
    assert len(single[0]["params"]) == len(list(params))


def test_adaptation_modules_are_skorch_modules_trained_like_the_head():
    groups = [
        {
            "params": ["backbone.blocks.0.0.weight", "backbone.blocks.0.0.bias"],
            "lr": 0.01,
        },
        {"params": ["head.weight", "head.bias"], "lr": 0.1, "weight_decay": 0.5},
    ]
    net = _net(adaptation=get_method("dann"), param_groups=groups)
    assert "discriminator" in net._modules
    assert set(net.adaptation_modules) == {"discriminator"}
    disc = net.discriminator_
    assert net.adaptation_modules["discriminator"] is disc
    assert not any(disc is m for m in net.module_.modules())  # not in the network
    extra = net.optimizer_.param_groups[-1]
    assert {id(p) for p in extra["params"]} == {id(p) for p in disc.parameters()}
    assert (extra["lr"], extra["weight_decay"]) == (0.1, 0.5)
    # the discriminator sees the features: its input is their width
    assert next(disc.parameters()).shape[1] == net.module_.n_features


def test_without_adaptation_there_are_no_extra_modules():
    net = _net()
    assert net.adaptation_modules == {}
    assert list(net._modules) == ["module"]


# ---------------------------------------------------------- training modes
def test_set_training_switches_every_module_but_keeps_frozen_ones_in_eval():
    net = _net(adaptation=get_method("dann"))
    frozen = net.module_.backbone
    net.frozen_modules_ = [frozen]
    net._set_training(True)
    assert net.module_.training and net.module_.head.training
    assert net.discriminator_.training
    assert not frozen.training
    net._set_training(False)
    assert not net.module_.training and not net.discriminator_.training


def test_infer_returns_features_only_with_an_adaptation_loss():
    x = torch.randn(5, 3)
    out = _net().infer(x)
    assert isinstance(out, torch.Tensor) and out.shape == (5, 1)
    out, features = _net(adaptation=get_method("mmd")).infer(x)
    assert out.shape == (5, 1) and features.shape == (5, 4)


def test_get_iterator():
    data = _data()
    plain = _net()
    assert isinstance(plain.get_iterator(data, training=True), BatchIterator)
    assert plain.get_iterator(data, training=True).shuffle
    assert not plain.get_iterator(data).shuffle
    balanced = _net(balanced=True)
    assert isinstance(balanced.get_iterator(data, training=True), BalancedIterator)
    assert isinstance(balanced.get_iterator(data), BatchIterator)  # validation
    # any other dataset is skorch's business
    other = Dataset(np.zeros((4, 3), np.float32), np.zeros((4, 1), np.float32))
    assert isinstance(plain.get_iterator(other), torch.utils.data.DataLoader)


def test_shuffle_seed_fixes_the_batch_order():
    data = _data(n=20, n_target=0)

    def order(seed):
        net = _net(shuffle_seed=seed, batch_size=5)
        return [b.X[:, 0].tolist() for b in net.get_iterator(data, training=True)]

    assert order(3) == order(3)
    assert order(3) != order(4)


# ------------------------------------------------------------ after fitting
def test_fitted_net_keeps_its_discriminator_and_pickles(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="dann", **TINY).fit(X, y)
    net = est.net_
    assert isinstance(net, TransferNet)
    assert isinstance(net.discriminator_, torch.nn.Module)
    assert net.anchors_ == []
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))
    for p, q in zip(
        again.net_.discriminator_.parameters(), net.discriminator_.parameters()
    ):
        assert torch.equal(p, q)


def test_verbose_nets_print_their_progress():
    names = [n for n, _ in _net(verbose=1).get_default_callbacks()]
    assert {"progress_bar", "solver_log"} <= set(names) and "print_log" not in names
    names = [n for n, _ in _net(verbose=2).get_default_callbacks()]
    assert {"print_log", "solver_log"} <= set(names) and "progress_bar" not in names
    quiet = [n for n, _ in _net(verbose=0).get_default_callbacks()]
    assert not {"print_log", "progress_bar", "solver_log"} & set(quiet)
