"""Fine-tuning (``sktransfer.finetuning``): the strategy registry, every
registered strategy, backbone blocks, parameter groups and L2-SP."""

import numpy as np
import pytest
import torch
from conftest import (
    SMALL,
    distance,
    network,
    part,
    rmse,
    same_weights,
    states_equal,
    weight_distance,
)
from skorch.callbacks import Callback

from sktransfer import TransferRegressor
from sktransfer._module import TransferModule
from sktransfer.backbones import MLPBackbone, get_backbone_factory
from sktransfer.datasets import make_domain_shift
from sktransfer.finetuning import (
    FinetuneStrategy,
    backbone_blocks,
    get_strategy,
    l2sp_penalty,
    list_strategies,
    parameter_groups,
    register_strategy,
)


def _blocks(est):
    """The backbone blocks of a fitted estimator, input side first."""
    return backbone_blocks(part(est, "backbone"))


# ------------------------------------------------------------------ registry
def test_builtin_strategies_are_registered_in_order():
    assert list_strategies()[:4] == ["full", "linear_probe", "lp_ft", "gradual"]
    for name in list_strategies():
        strategy = get_strategy(name)
        assert isinstance(strategy, FinetuneStrategy) and strategy.name == name


def test_unknown_strategy_lists_the_registered_ones():
    with pytest.raises(ValueError, match="'nope' is not a registered") as info:
        get_strategy("nope")
    for name in list_strategies():
        assert repr(name) in str(info.value)
    assert "register_strategy" in str(info.value)
    with pytest.raises(ValueError, match="finetune"):
        TransferRegressor(finetune="nope", max_epochs=1).fit(
            np.ones((4, 2)), [1, 2, 3, 4]
        )


def test_register_strategy_checks_its_argument(restore_registries):
    class Unnamed(FinetuneStrategy):
        pass

    with pytest.raises(TypeError, match="FinetuneStrategy"):
        register_strategy(Unnamed)
    with pytest.raises(TypeError, match="FinetuneStrategy"):
        register_strategy(object())

    class Again(FinetuneStrategy):
        name = "full"

    with pytest.raises(ValueError, match="already registered"):
        register_strategy(Again)
    assert register_strategy(Again, overwrite=True) is Again
    assert isinstance(get_strategy("full"), Again)


class _Freeze(Callback):
    """Freeze ``block`` for the whole fit (a user's own skorch callback)."""

    def __init__(self, block):
        self.block = block

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.block.requires_grad_(False)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self.block.requires_grad_(True)


class _BottomFrozen(FinetuneStrategy):
    """Train everything but the bottom backbone block."""

    name = "test_bottom_frozen"

    def callbacks(self, network, max_epochs):
        return [("freeze_bottom", _Freeze(backbone_blocks(network.backbone)[0]))]


def test_a_registered_strategy_works_end_to_end(restore_registries, shift_data, source):
    _, _, Xt, yt = shift_data
    assert register_strategy(_BottomFrozen) is _BottomFrozen
    assert "test_bottom_frozen" in list_strategies()
    est = TransferRegressor(
        source, finetune="test_bottom_frozen", max_epochs=3, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    bottom, top = _blocks(est)
    src_bottom, src_top = _blocks(source)
    assert states_equal(bottom, src_bottom)
    assert distance(top, src_top) > 1e-4
    assert est.predict(Xt[:2]).shape == (2,)


# ------------------------------------------------------ every strategy
@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_fine_tunes_the_source(name, shift_data, source):
    _, _, Xt, yt = shift_data
    strategy = get_strategy(name)
    est = TransferRegressor(
        source, finetune=name, max_epochs=4, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    pred = est.predict(Xt)
    assert pred.shape == (len(Xt),) and np.isfinite(pred).all()
    assert est.solver_ == "gradient" and est.n_iter_ == 4
    # the head always trains; the backbone unless the strategy freezes it
    assert weight_distance(est, source, "head") > 1e-4
    same = same_weights(est, source)
    assert same == strategy.freezes_backbone
    # every parameter is trainable again after fit
    assert all(p.requires_grad for p in network(est).parameters())


@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_trains_a_model_from_scratch(name):
    X, y, _, _ = make_domain_shift(60, 1, random_state=0)
    est = TransferRegressor(finetune=name, **{**SMALL, "max_epochs": 2}).fit(X, y)
    assert np.isfinite(est.predict(X)).all()


@pytest.mark.parametrize("name", list_strategies())
def test_every_strategy_gives_skorch_callbacks(name):
    module = TransferModule(MLPBackbone(3, (4, 4)), torch.nn.Linear(4, 1), 4)
    callbacks = get_strategy(name).callbacks(module, 6)
    assert isinstance(callbacks, list)
    for cb_name, cb in callbacks:
        assert isinstance(cb_name, str) and isinstance(cb, Callback)


def test_builtin_strategy_schedules():
    module = TransferModule(MLPBackbone(3, (4, 4, 4)), torch.nn.Linear(4, 1), 4)
    assert get_strategy("full").callbacks(module, 10) == []
    [(_, probe)] = get_strategy("linear_probe").callbacks(module, 10)
    assert probe.phases == [[], [module.backbone]] and probe.epochs_per_phase is None
    [(_, lp_ft)] = get_strategy("lp_ft").callbacks(module, 10)
    assert lp_ft.epochs_per_phase == 5
    [(_, gradual)] = get_strategy("gradual").callbacks(module, 10)
    blocks = backbone_blocks(module.backbone)
    # the head, then the top block first
    assert gradual.phases == [[], [blocks[2]], [blocks[1]], [blocks[0]]]
    assert gradual.epochs_per_phase == 10 // 4
    [(_, short)] = get_strategy("gradual").callbacks(module, 2)
    assert short.epochs_per_phase == 1


# ------------------------------------------------------------- strategies
def test_linear_probe_freezes_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="linear_probe", max_epochs=5, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert same_weights(target, source)
    assert weight_distance(target, source, "head") > 1e-4


def test_linear_probe_keeps_batch_norm_statistics(shift_data):
    Xs, ys, Xt, yt = shift_data
    bn = TransferRegressor(
        backbone_params={"hidden_sizes": (8,), "batch_norm": True},
        max_epochs=2,
        random_state=0,
    ).fit(Xs, ys)
    probe = TransferRegressor(bn, finetune="linear_probe", max_epochs=2).fit(Xt, yt)
    # the running statistics are buffers of the state dict: bit-identical
    assert same_weights(probe, bn)
    full = TransferRegressor(bn, finetune="full", max_epochs=2).fit(Xt, yt)
    bn_layer = "blocks.0.1.running_mean"
    assert not torch.equal(
        part(full, "backbone").state_dict()[bn_layer],
        part(bn, "backbone").state_dict()[bn_layer],
    )


def test_lp_ft_changes_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="lp_ft", max_epochs=4, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert weight_distance(target, source) > 1e-4
    # one epoch: the probe phase only
    probe_only = TransferRegressor(
        source, finetune="lp_ft", max_epochs=1, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert same_weights(probe_only, source)


def test_gradual_unfreezes_from_the_top(shift_data, source):
    _, _, Xt, yt = shift_data
    src_blocks = _blocks(source)
    assert len(src_blocks) == 2
    # 2 epochs, 2 blocks: epoch 0 trains the head, epoch 1 the top block only
    short = TransferRegressor(
        source, finetune="gradual", max_epochs=2, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    bottom, top = _blocks(short)
    assert states_equal(bottom, src_blocks[0])
    assert distance(top, src_blocks[1]) > 1e-4

    full = TransferRegressor(
        source, finetune="gradual", max_epochs=6, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    losses = full.history_[:, "train_loss"]
    assert len(losses) == 6
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    for got, ref in zip(_blocks(full), src_blocks):
        assert distance(got, ref) > 1e-4
    # every parameter is trainable again after fit
    assert all(p.requires_grad for p in network(full).parameters())


def test_l2sp_keeps_backbone_close(shift_data, source):
    _, _, Xt, yt = shift_data
    common = dict(max_epochs=10, lr=1e-2, backbone_lr=1.0, random_state=0)
    free = TransferRegressor(source, l2sp=0.0, **common).fit(Xt, yt)
    tied = TransferRegressor(source, l2sp=100.0, **common).fit(Xt, yt)
    d_free = weight_distance(free, source)
    d_tied = weight_distance(tied, source)
    assert d_tied < 0.5 * d_free
    penalty = tied.history_[:, "train_l2sp_penalty"]
    assert len(penalty) == 10
    assert all(p >= 0 for p in penalty)
    assert "train_l2sp_penalty" not in free.history_[-1]
    # the anchors only serve training: nothing of them is kept
    assert tied.net_.anchors_ == []


def test_backbone_lr_zero_freezes_pretrained_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="full", backbone_lr=0.0, max_epochs=5, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert same_weights(target, source)
    assert weight_distance(target, source, "head") > 1e-4


def test_backbone_lr_does_not_slow_a_backbone_trained_from_scratch():
    X, y, _, _ = make_domain_shift(60, 1, random_state=0)
    kw = {**SMALL, "max_epochs": 2}
    a = TransferRegressor(backbone_lr=0.0, **kw).fit(X, y)
    b = TransferRegressor(backbone_lr=1.0, **kw).fit(X, y)
    np.testing.assert_array_equal(a.predict(X), b.predict(X))


def test_finetuning_beats_training_from_scratch():
    """Each strategy, fine-tuned on 40 target labels from a source model, beats
    the same network trained on the 40 labels alone (checked for seeds 0-4:
    ratio <= 0.63 for every strategy), and does no harm vs the source model."""
    seed = 0
    Xs, ys, Xt, yt = make_domain_shift(
        n_source=1500, n_target=340, shift="concept", strength=0.5, random_state=seed
    )
    X_lab, y_lab, X_test, y_test = Xt[:40], yt[:40], Xt[40:], yt[40:]
    net = {"backbone_params": {"hidden_sizes": (32, 32)}, "lr": 3e-3}
    source = TransferRegressor(
        "mlp", max_epochs=30, batch_size=64, random_state=seed, **net
    ).fit(Xs, ys)
    scratch = TransferRegressor(
        "mlp", max_epochs=50, batch_size=16, random_state=seed, **net
    ).fit(X_lab, y_lab)
    rmse_scratch, rmse_source = (
        rmse(scratch, X_test, y_test),
        rmse(source, X_test, y_test),
    )
    for strategy in list_strategies():
        tuned = TransferRegressor(
            source,
            finetune=strategy,
            max_epochs=50,
            batch_size=16,
            lr=3e-3,
            random_state=seed,
        ).fit(X_lab, y_lab)
        rmse_tuned = rmse(tuned, X_test, y_test)
        assert rmse_tuned <= 0.85 * rmse_scratch, (strategy, rmse_tuned, rmse_scratch)
        assert rmse_tuned <= 1.2 * rmse_source, (strategy, rmse_tuned, rmse_source)


# ---------------------------------------------------------- backbone_blocks
def test_backbone_blocks():
    blocks = backbone_blocks(MLPBackbone(4, hidden_sizes=(8, 8)))
    assert len(blocks) == 2
    assert all(isinstance(b, torch.nn.Sequential) for b in blocks)
    assert blocks[0][0].in_features == 4  # input side first
    lin = torch.nn.Linear(3, 2)
    assert backbone_blocks(lin) == [lin]
    assert backbone_blocks(torch.nn.Flatten()) == []
    # wrappers with one parameterised child are descended through
    wrapped = torch.nn.Sequential(torch.nn.Flatten(), MLPBackbone(4, (8, 8, 8)))
    assert len(backbone_blocks(wrapped)) == 3
    # a module holding parameters itself is one block
    gru = get_backbone_factory("gru")((2, 5), hidden_size=3)
    assert len(backbone_blocks(gru)) == 1
    cnn = get_backbone_factory("cnn1d")((2, 16), channels=(4, 4))
    assert len(backbone_blocks(cnn)) == 3  # two convolution blocks, the readout


# --------------------------------------------------------- parameter_groups
def _module():
    return TransferModule(MLPBackbone(3, (4,)), torch.nn.Linear(4, 1), 4)


def _names(group):
    return sorted(group["params"])


def test_parameter_groups_cover_every_parameter_once_by_name():
    module = _module()
    groups, anchored = parameter_groups(module, lr=0.1, weight_decay=0.01)
    assert anchored == []
    assert len(groups) == 1 and groups[0]["lr"] == 0.1
    assert groups[0]["weight_decay"] == 0.01
    assert _names(groups[0]) == sorted(n for n, _ in module.named_parameters())


def test_parameter_groups_discriminative_learning_rates():
    module = _module()
    groups, _ = parameter_groups(
        module, lr=0.1, weight_decay=0.0, backbone_lr=0.5, backbone_pretrained=True
    )
    by_lr = {g["lr"]: _names(g) for g in groups}
    assert by_lr[0.05] == ["backbone.blocks.0.0.bias", "backbone.blocks.0.0.weight"]
    assert by_lr[0.1] == ["head.bias", "head.weight"]
    # a backbone trained from scratch keeps the base learning rate
    groups, _ = parameter_groups(module, lr=0.1, weight_decay=0.0, backbone_lr=0.5)
    assert [g["lr"] for g in groups] == [0.1]


def test_parameter_groups_l2sp_anchors_pretrained_parameters_without_decay():
    module = _module()
    groups, anchored = parameter_groups(
        module,
        lr=0.1,
        weight_decay=0.01,
        l2sp=1.0,
        backbone_pretrained=True,
        head_pretrained=False,
    )
    backbone = sorted(n for n, _ in module.backbone.named_parameters())
    assert sorted(anchored) == [f"backbone.{n}" for n in backbone]
    by_decay = {g["weight_decay"]: _names(g) for g in groups}
    assert by_decay[0.0] == sorted(anchored)  # anchored: no pull toward zero
    assert by_decay[0.01] == ["head.bias", "head.weight"]
    _, anchored = parameter_groups(
        module,
        lr=0.1,
        weight_decay=0.0,
        l2sp=1.0,
        backbone_pretrained=True,
        head_pretrained=True,
    )
    assert sorted(anchored) == sorted(n for n, _ in module.named_parameters())
    # no L2-SP: nothing anchored
    _, anchored = parameter_groups(
        module, lr=0.1, weight_decay=0.0, backbone_pretrained=True
    )
    assert anchored == []


def test_parameter_groups_of_a_parameter_free_backbone():
    module = TransferModule(torch.nn.Flatten(), torch.nn.Linear(3, 1), 3)
    groups, _ = parameter_groups(module, lr=0.1, weight_decay=0.0)
    assert [_names(g) for g in groups] == [["head.bias", "head.weight"]]


def test_l2sp_penalty():
    p = torch.nn.Parameter(torch.tensor([1.0, 2.0]))
    q = torch.nn.Parameter(torch.tensor([[3.0]]))
    anchors = [(p, torch.tensor([0.0, 0.0])), (q, torch.tensor([[1.0]]))]
    penalty = l2sp_penalty(anchors)
    assert float(penalty.detach()) == pytest.approx(1 + 4 + 4)
    penalty.backward()
    assert p.grad.tolist() == [2.0, 4.0] and q.grad.tolist() == [[4.0]]
    assert l2sp_penalty([]) is None
    # anchored at their own values: no penalty
    assert float(l2sp_penalty([(p, p.detach().clone())]).detach()) == 0.0
