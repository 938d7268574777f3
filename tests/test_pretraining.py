"""Self-supervised pre-training (``sktransfer.pretraining``, issue 13)."""

import json
import math
import os
import pickle

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.frozen import FrozenEstimator
from sklearn.linear_model import Ridge
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline

from sktransfer import DomainAdaptRegressor, SelfSupervisedPretrainer, TransferRegressor
from sktransfer.backbones import load_spec
from sktransfer.datasets import make_domain_shift
from sktransfer.losses import nt_xent_loss
from sktransfer.pretraining import N_SEGMENTS, corrupt, crop_resize, random_mask

MLP = {"hidden_sizes": (16,)}
FAST = dict(backbone_params=MLP, max_epochs=3, random_state=0)
FIT = dict(max_epochs=3, random_state=0)


def low_rank(n=200, seed=0):
    """10 features driven by 3 factors: reconstructable from the others."""
    rng = np.random.RandomState(seed)
    z = rng.normal(size=(n, 3))
    return np.hstack([z, z @ rng.normal(size=(3, 7))]) + 0.05 * rng.normal(size=(n, 10))


def sequences(n=120, channels=2, length=16, seed=0):
    return np.random.RandomState(seed).normal(size=(n, channels, length)).cumsum(-1)


@pytest.fixture(scope="module")
def domains():
    Xs, ys, Xt, yt = make_domain_shift(n_source=200, n_target=60, random_state=0)
    pre = SelfSupervisedPretrainer(**FAST).fit(np.vstack([Xs, Xt]))
    return Xs, ys, Xt, yt, pre


def state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


# ------------------------------------------------------------- fit, transform
CASES = {
    "mlp": (dict(backbone="mlp", backbone_params=MLP), low_rank(), "tabular"),
    "cnn1d": (
        dict(backbone="cnn1d", backbone_params={"channels": (4,), "dense": 8}),
        sequences(),
        "sequence",
    ),
    "gru": (
        dict(backbone="gru", backbone_params={"hidden_size": 8}, input_shape=(2, 16)),
        sequences().reshape(120, -1),
        "sequence",
    ),
}


@pytest.mark.parametrize("objective", ["masked", "contrastive"])
@pytest.mark.parametrize("case", list(CASES))
def test_each_objective_pretrains_each_backbone(objective, case):
    params, X, kind = CASES[case]
    pre = SelfSupervisedPretrainer(objective=objective, max_epochs=2, **params)
    Xt = pre.fit(X).transform(X)
    assert pre.input_kind_ == kind
    assert Xt.shape == (len(X), pre.n_features_out_) and Xt.dtype == np.float32
    assert np.isfinite(Xt).all() and len(pre.loss_curve_) == 2
    assert next(pre.backbone_.parameters()).device.type == "cpu"
    assert not pre.backbone_.training
    names = pre.get_feature_names_out()
    assert len(names) == pre.n_features_out_


@pytest.mark.parametrize(
    "objective, extra",
    [("masked", {}), ("masked", {"mask_estimation": True}), ("contrastive", {})],
)
def test_the_objective_decreases_on_structured_data(objective, extra):
    pre = SelfSupervisedPretrainer(
        objective=objective,
        backbone_params=MLP,
        max_epochs=15,
        lr=3e-3,
        random_state=0,
        **extra,
    ).fit(low_rank(), None)
    first, last = pre.loss_curve_[0], pre.loss_curve_[-1]
    assert last < (0.85 if objective == "masked" else 0.99) * first


def test_same_seed_same_backbone_and_the_callers_rng_is_untouched():
    X = low_rank()
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    a = SelfSupervisedPretrainer(objective="contrastive", **FAST).fit(X)
    assert torch.equal(torch.rand(3), expected)
    b = SelfSupervisedPretrainer(objective="contrastive", **FAST).fit(X)
    other = SelfSupervisedPretrainer(**{**FAST, "random_state": 1}).fit(X)
    np.testing.assert_array_equal(a.transform(X), b.transform(X))
    assert not np.array_equal(a.transform(X), other.transform(X))


def test_inputs_are_standardised_with_the_fit_rows_and_never_mutated():
    X = low_rank() * 100 + 7
    before = X.copy()
    pre = SelfSupervisedPretrainer(**FAST).fit(X)
    np.testing.assert_array_equal(X, before)
    np.testing.assert_allclose(pre.input_mean_, X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(pre.input_scale_, X.std(0), rtol=1e-5)
    off = SelfSupervisedPretrainer(standardize_X=False, **FAST).fit(X)
    assert off.input_mean_ is None and off.input_scale_ is None


def test_clone_pickle_and_grid_search_over_pretraining_parameters():
    X = low_rank(150)
    y = X[:, 0] - X[:, 4]
    pre = SelfSupervisedPretrainer(**FAST).fit(X)
    again = pickle.loads(pickle.dumps(pre))
    np.testing.assert_array_equal(again.transform(X), pre.transform(X))
    assert not hasattr(clone(pre), "backbone_")
    grid = GridSearchCV(
        make_pipeline(SelfSupervisedPretrainer(**FAST), Ridge()),
        {"selfsupervisedpretrainer__mask_ratio": [0.2, 0.5]},
        cv=2,
    ).fit(X, y)
    assert grid.best_params_["selfsupervisedpretrainer__mask_ratio"] in (0.2, 0.5)


# ---------------------------------------------------- as the estimators' backbone
def test_two_step_the_pretrained_backbone_and_its_scaling_are_reused(domains):
    _, _, Xt, yt, pre = domains
    before = state(pre.backbone_)
    probe = TransferRegressor(pre, finetune="linear_probe", **FIT).fit(Xt[:10], yt[:10])
    for key, value in state(probe.net_.module_.backbone).items():
        assert torch.equal(value, before[key]), key  # frozen: the pretrained one
    assert probe.input_mean_ is pre.input_mean_
    full = TransferRegressor(pre, pretraining="use", **FIT).fit(Xt[:10], yt[:10])
    assert full.l2sp_ > 0  # pretrained: L2-SP anchors the backbone
    assert full.predict(Xt[10:]).shape == (50,)
    for key, value in state(pre.backbone_).items():
        assert torch.equal(value, before[key]), key  # never changed


def test_three_step_pretrain_then_source_then_target(domains):
    Xs, ys, Xt, yt, pre = domains
    source = TransferRegressor(pre, pretraining="use", **FIT).fit(Xs, ys)
    target = TransferRegressor(source, **FIT).fit(Xt[:10], yt[:10])
    assert target.predict(Xt[10:]).shape == (50,)
    assert target.input_mean_ is pre.input_mean_


def test_reinit_is_the_same_network_with_fresh_weights_and_its_own_scaling(domains):
    Xs, ys, _, _, pre = domains
    fresh = TransferRegressor(pre, pretraining="reinit", **FIT).fit(Xs, ys)
    used = TransferRegressor(pre, pretraining="use", **FIT).fit(Xs, ys)
    assert (fresh.pretraining_, used.pretraining_) == ("reinit", "use")
    assert fresh.pretraining_scores_ is None
    # the model without pre-training: its own rows' statistics, not the
    # pre-trainer's (used: the pre-trainer's)
    np.testing.assert_allclose(fresh.input_mean_, Xs.mean(axis=0), atol=1e-6)
    assert used.input_mean_ is pre.input_mean_
    # nothing pretrained: the backbone learns at lr (pretrained: backbone_lr x)
    lrs = [{g["lr"] for g in m.net_.optimizer_.param_groups} for m in (fresh, used)]
    assert lrs == [{1e-3}, {1e-3, 1e-4}]
    start = state(pre.backbone_)
    trained = state(fresh.net_.module_.backbone)
    assert start.keys() == trained.keys()
    assert all(not torch.allclose(trained[k], start[k]) for k in start if "weight" in k)
    again = TransferRegressor(pre, pretraining="reinit", **FIT).fit(Xs, ys)
    np.testing.assert_array_equal(again.predict(Xs), fresh.predict(Xs))  # seeded


def test_auto_keeps_pretrained_weights_only_when_they_beat_fresh_ones(domains):
    Xs, ys, Xt, _, pre = domains
    broken = clone(pre).fit(np.vstack([Xs, Xt]))
    with torch.no_grad():  # saturate every hidden unit: useless features
        for p in broken.backbone_.parameters():
            p.mul_(1e3)
    auto = TransferRegressor(broken, **FIT).fit(Xs, ys)
    assert auto.pretraining_ == "reinit"
    scores = auto.pretraining_scores_
    assert set(scores) == {"reinit", "use"} and scores["use"] > scores["reinit"]
    explicit = TransferRegressor(broken, pretraining="reinit", **FIT).fit(Xs, ys)
    np.testing.assert_array_equal(auto.predict(Xt), explicit.predict(Xt))
    # too few rows to tell: the weights asked for are used
    few = TransferRegressor(broken, **FIT).fit(Xs[:9], ys[:9])
    assert (few.pretraining_, few.pretraining_scores_) == ("use", None)
    # other backbones: nothing to choose
    assert TransferRegressor(**FIT).fit(Xs, ys).pretraining_ is None


def test_auto_pretraining_and_auto_finetune_choose_once_each(domains, monkeypatch):
    import sktransfer._transfer as transfer

    Xs, ys, _, _, pre = domains
    calls = []
    real = transfer.choose

    def spy(estimator, candidates, *args, **kwargs):
        calls.append({k: dict(v) for k, v in candidates.items()})
        return real(estimator, candidates, *args, **kwargs)

    monkeypatch.setattr(transfer, "choose", spy)
    model = TransferRegressor(pre, finetune="auto", pretraining="auto", **FIT)
    model.fit(Xs[:30], ys[:30])
    # one choice of pre-training (the strategy fixed), then, when the
    # pretrained weights were kept, one of the strategy (pre-training fixed)
    assert all(c["finetune"] == "full" for c in calls[0].values())
    assert [c["pretraining"] for c in calls[0].values()] == ["reinit", "use"]
    if model.pretraining_ == "use":
        assert len(calls) == 2
        assert all(c["pretraining"] == "use" for c in calls[1].values())
    else:
        assert len(calls) == 1 and model.finetune_scores_ is None


def test_pretraining_acts_on_a_frozen_pretrainer_too(domains):
    Xs, ys, _, _, pre = domains
    fresh = TransferRegressor(FrozenEstimator(pre), pretraining="reinit", **FIT)
    fresh.fit(Xs, ys)
    assert fresh.pretraining_ == "reinit"
    assert fresh.input_mean_ is not pre.input_mean_  # its own rows' statistics
    plain = TransferRegressor(pre, pretraining="reinit", **FIT).fit(Xs, ys)
    np.testing.assert_array_equal(fresh.predict(Xs), plain.predict(Xs))


def test_reinit_refuses_a_backbone_it_cannot_reset(domains):
    class Scaled(torch.nn.Module):
        def __init__(self, d):
            super().__init__()
            self.scale = torch.nn.Parameter(torch.ones(d))

        def forward(self, x):
            return x * self.scale

    Xs, ys, _, _, _ = domains
    pre = SelfSupervisedPretrainer(backbone=Scaled(Xs.shape[1]), max_epochs=2).fit(Xs)
    with pytest.raises(ValueError, match=r"pretraining='reinit'.*reset_parameters"):
        TransferRegressor(pre, pretraining="reinit", **FIT).fit(Xs, ys)
    auto = TransferRegressor(pre, **FIT).fit(Xs, ys)  # cannot compare: uses them
    assert (auto.pretraining_, auto.pretraining_scores_) == ("use", None)


def test_domain_adaptation_and_frozen_pretrainers_are_accepted(domains):
    Xs, ys, Xt, yt, pre = domains
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(len(Xt), np.nan)])
    da = DomainAdaptRegressor(pre, method="coral", **FIT).fit(X, y)
    assert np.isfinite(da.predict(Xt)).all()
    frozen = TransferRegressor(FrozenEstimator(pre), **FIT).fit(Xt[:10], yt[:10])
    assert clone(TransferRegressor(pre)).backbone is pre  # shared, not refitted
    assert frozen.n_backbone_features_ == pre.n_features_out_


def test_unfitted_or_mismatched_pretrainers_are_refused(domains):
    _, _, Xt, yt, pre = domains
    with pytest.raises(ValueError, match="unfitted SelfSupervisedPretrainer"):
        TransferRegressor(SelfSupervisedPretrainer()).fit(Xt, yt)
    with pytest.raises(ValueError, match="samples of shape"):
        TransferRegressor(pre, **FIT).fit(Xt[:, :4], yt)


# ----------------------------------------------------------- save and load
def test_saved_backbone_loads_by_spec_and_by_load_with_identical_features(
    domains, tmp_path
):
    _, _, Xt, yt, pre = domains
    spec_path = pre.save(tmp_path)
    spec = json.loads(open(spec_path).read())
    assert spec["backbone"] == "mlp" and spec["backbone_params"] == {
        "hidden_sizes": [16]
    }
    assert (tmp_path / "backbone.safetensors").is_file()
    loaded = SelfSupervisedPretrainer.load(tmp_path)
    np.testing.assert_array_equal(loaded.transform(Xt), pre.transform(Xt))
    kwargs = load_spec(tmp_path)
    probe = TransferRegressor(**kwargs, finetune="linear_probe", **FIT)
    probe.fit(Xt[:10], yt[:10])
    x = torch.from_numpy(((Xt - pre.input_mean_) / pre.input_scale_).astype(np.float32))
    with torch.no_grad():
        assert torch.equal(probe.net_.module_.backbone(x), pre.backbone_(x))
    TransferRegressor(loaded, **FIT).fit(Xt[:10], yt[:10])


def test_the_spec_keeps_the_kind_of_scaling_the_backbone_was_trained_on(tmp_path):
    # a backbone pre-trained on raw inputs must not be fine-tuned on
    # standardised ones (load_spec used to leave standardize_X at "auto")
    X = low_rank(60) * 50 + 100
    pre = SelfSupervisedPretrainer(standardize_X=False, **FAST).fit(X)
    pre.save(tmp_path)
    kwargs = load_spec(tmp_path)
    assert kwargs["standardize_X"] is False
    model = TransferRegressor(**kwargs, finetune="linear_probe", **FIT)
    assert model.fit(X, X[:, 0]).input_mean_ is None


def test_a_failed_save_leaves_the_saved_backbone_as_it_was(tmp_path):
    X = low_rank(60)
    pre = SelfSupervisedPretrainer(**FAST).fit(X)
    pre.save(tmp_path)
    before = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    other = SelfSupervisedPretrainer(**{**FAST, "random_state": 1}).fit(X)
    other.backbone_params = {"hidden_sizes": (16,), "bad": object()}  # not JSON
    with pytest.raises(TypeError):
        other.save(tmp_path)
    after = {f: (tmp_path / f).read_bytes() for f in os.listdir(tmp_path)}
    assert after == before
    loaded = SelfSupervisedPretrainer.load(tmp_path)
    np.testing.assert_array_equal(loaded.transform(X), pre.transform(X))


def test_a_user_module_is_saved_as_weights_only(tmp_path):
    X = low_rank(60)
    module = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Tanh())
    pre = SelfSupervisedPretrainer(module, max_epochs=2, random_state=0).fit(X)
    pre.save(tmp_path)
    with pytest.raises(ValueError, match="user module"):
        load_spec(tmp_path)
    with pytest.raises(ValueError, match="pass a module"):
        SelfSupervisedPretrainer.load(tmp_path)
    blank = torch.nn.Sequential(torch.nn.Linear(10, 6), torch.nn.Tanh())
    loaded = SelfSupervisedPretrainer.load(tmp_path, backbone=blank)
    np.testing.assert_array_equal(loaded.transform(X), pre.transform(X))


# ----------------------------------------------------------- bad input
@pytest.mark.parametrize(
    "params, match",
    [
        ({"objective": "mae"}, "'objective' parameter"),
        ({"mask_ratio": 1.5}, "'mask_ratio' parameter"),
        ({"mask_ratio": 0.0}, "'mask_ratio' parameter"),
        ({"batch_size": 1}, "'batch_size' parameter"),
        ({"temperature": 0}, "'temperature' parameter"),
        ({"backbone": "nope"}, "nope"),
        ({"input_shape": (2, 0)}, "input_shape"),
        ({"input_shape": (3, 3)}, "input_shape=\\(3, 3\\) holds 9"),
    ],
)
def test_bad_parameters_name_the_parameter_and_value(params, match):
    with pytest.raises(ValueError, match=match):
        SelfSupervisedPretrainer(**{**FAST, **params}).fit(low_rank(20))


def test_bad_data_and_mismatched_options_are_explained():
    module = torch.nn.Linear(10, 4)
    with pytest.raises(ValueError, match="backbone_params only applies"):
        SelfSupervisedPretrainer(module, backbone_params=MLP).fit(low_rank(20))
    with pytest.warns(UserWarning, match="mask_estimation=True has no effect"):
        SelfSupervisedPretrainer(
            objective="contrastive", mask_estimation=True, **FAST
        ).fit(low_rank(20))
    pre = SelfSupervisedPretrainer(**FAST).fit(low_rank(20))
    with pytest.raises(ValueError, match="10 features"):
        pre.transform(low_rank(5)[:, :4])
    before = dict(pre.__dict__)
    with pytest.raises(ValueError):
        pre.fit(np.full((5, 10), np.nan))
    assert pre.__dict__.keys() == before.keys()  # a failed fit changes nothing


# ----------------------------------------------------------- properties
@settings(max_examples=30, deadline=None)
@given(
    ratio=st.floats(0.05, 0.95),
    n=st.integers(1, 40),
    channels=st.integers(1, 3),
    length=st.integers(1, 70),
)
def test_masks_have_the_shape_and_the_rate_asked_for(ratio, n, channels, length):
    torch.manual_seed(0)
    flat = random_mask((n, channels * length), ratio, "tabular")
    seq = random_mask((n, channels, length), ratio, "sequence")
    assert flat.shape == (n, channels * length) and flat.dtype == torch.bool
    assert seq.shape == (n, channels, length) and seq.dtype == torch.bool
    # a segment mask is the same on every channel and within each block
    assert bool((seq == seq[:, :1]).all())
    blocks = torch.arange(length) * min(N_SEGMENTS, length) // length
    for b in blocks.unique():
        cols = seq[:, 0, blocks == b]
        assert bool((cols == cols[:, :1]).all())
    # the rate, over many draws
    big = random_mask((4000, 25), ratio, "tabular").float().mean()
    many = random_mask((4000, 1, 32), ratio, "sequence").float().mean()
    assert abs(float(big) - ratio) < 0.02 and abs(float(many) - ratio) < 0.03


@settings(max_examples=25, deadline=None)
@given(n=st.integers(2, 20), d=st.integers(1, 8), ratio=st.floats(0.1, 0.9))
def test_corruption_keeps_unmasked_entries_and_draws_from_the_column(n, d, ratio):
    torch.manual_seed(1)
    x = torch.randn(n, d)
    mask = random_mask(x.shape, ratio, "tabular")
    out = corrupt(x, mask, "tabular")
    assert torch.equal(out[~mask], x[~mask])
    for j in range(d):  # a column's marginal: its values, permuted
        assert bool(torch.isin(out[:, j], x[:, j]).all())
    assert bool((corrupt(x, mask, "tabular", "zeros")[mask] == 0).all())
    seq = torch.randn(n, 2, 10)
    smask = random_mask(seq.shape, ratio, "sequence")
    assert torch.equal(corrupt(seq, smask, "sequence")[~smask], seq[~smask])
    assert torch.allclose(crop_resize(seq, 1.0), seq, atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(
    n=st.integers(1, 12),
    d=st.integers(1, 6),
    temperature=st.floats(0.05, 5.0),
    seed=st.integers(0, 1000),
)
def test_nt_xent_is_symmetric_invariant_and_at_log_2n_minus_1_when_uninformative(
    n, d, temperature, seed
):
    gen = torch.Generator().manual_seed(seed)
    z1, z2 = torch.randn(n, d, generator=gen), torch.randn(n, d, generator=gen)
    loss = nt_xent_loss(z1, z2, temperature)
    assert torch.allclose(loss, nt_xent_loss(z2, z1, temperature), atol=1e-5)
    perm = torch.randperm(n, generator=gen)
    assert torch.allclose(
        loss, nt_xent_loss(z1[perm], z2[perm], temperature), atol=1e-5
    )
    assert torch.allclose(
        loss, nt_xent_loss(3.0 * z1, 0.5 * z2, temperature), atol=1e-4
    )
    same = torch.ones(n, d)
    expected = math.log(2 * n - 1)
    assert abs(float(nt_xent_loss(same, same, temperature)) - expected) < 1e-4
