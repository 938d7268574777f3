"""Behaviour of TransferRegressor: backbones, weights, fine-tuning, data handling."""

import copy

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from sklearn.metrics import r2_score

from sktransfer import TransferRegressor
from sktransfer.backbones import (
    MLPBackbone,
    list_backbones,
    load_weights,
    register_backbone,
)
from sktransfer.backbones import _registry as registry_module
from sktransfer.datasets import make_domain_shift
from sktransfer.finetuning import backbone_blocks

SMALL = dict(
    backbone_params={"hidden_sizes": (16, 16)},
    max_epochs=10,
    lr=1e-2,
    batch_size=32,
    random_state=0,
)


@pytest.fixture(scope="module")
def shift_data():
    return make_domain_shift(300, 80, random_state=0)


@pytest.fixture(scope="module")
def source(shift_data):
    Xs, ys, _, _ = shift_data
    return TransferRegressor(**SMALL).fit(Xs, ys)


def _state(module):
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


def _states_equal(a, b):
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _distance(module_a, module_b):
    sa, sb = module_a.state_dict(), module_b.state_dict()
    return float(sum((sa[k].float() - sb[k].float()).pow(2).sum() for k in sa).sqrt())


def _linear_problem(n=120, n_features=5, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, n_features))
    y = X @ rng.normal(size=n_features) + 0.05 * rng.normal(size=n)
    return X, y


# --------------------------------------------------------------- backbones
@pytest.mark.parametrize(
    "name, params",
    [
        ("linear", None),
        ("mlp", {"hidden_sizes": (8,)}),
        ("cnn1d", {"channels": (4,), "kernel_size": 3}),
        ("gru", {"hidden_size": 6}),
    ],
)
def test_registry_backbones_fit_and_predict(name, params):
    X, y = _linear_problem(n=80, n_features=6)
    est = TransferRegressor(
        name, backbone_params=params, max_epochs=3, random_state=0
    ).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (80,)
    assert np.isfinite(pred).all()
    # a linear model is solved in closed form, the others train for 3 epochs
    assert est.n_iter_ == (0 if name == "linear" else 3)
    assert est.solver_ == ("closed_form" if name == "linear" else "gradient")
    assert name in list_backbones()


def test_module_backbone_is_copied_not_mutated():
    X, y = _linear_problem(n=80, n_features=5)
    torch.manual_seed(0)
    module = torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.ReLU())
    before = _state(module)
    est = TransferRegressor(module, max_epochs=5, lr=1e-2, random_state=0).fit(X, y)
    fitted_backbone = est.net_.module_.backbone
    assert fitted_backbone is not module
    assert _states_equal(_state(module), before)
    assert all(p.requires_grad for p in module.parameters())
    assert module.training
    own_ptrs = {p.data_ptr() for p in module.parameters()}
    assert not own_ptrs & {p.data_ptr() for p in fitted_backbone.parameters()}
    # training happened on the copy
    assert not _states_equal(_state(fitted_backbone), before)


def test_module_head_is_copied():
    X, y = _linear_problem(n=80, n_features=5)
    head = torch.nn.Linear(8, 1)
    before = _state(head)
    est = TransferRegressor(
        torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh()),
        head=head,
        max_epochs=3,
        random_state=0,
    ).fit(X, y)
    assert est.net_.module_.head is not head
    assert _states_equal(_state(head), before)
    with pytest.raises(ValueError, match="outputs"):
        TransferRegressor(
            torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh()),
            head=torch.nn.Linear(8, 3),
            max_epochs=1,
        ).fit(X, y)


def test_fitted_estimator_head_reused(shift_data, source):
    _, _, Xt, yt = shift_data
    src_pred = source.predict(Xt)
    src_state = _state(source.net_.module_)
    target = TransferRegressor(source, max_epochs=1, lr=1e-8, random_state=0)
    target.fit(Xt, yt)
    np.testing.assert_allclose(target.predict(Xt), src_pred, atol=1e-4)
    head, src_head = target.net_.module_.head, source.net_.module_.head
    assert head is not src_head
    for p, q in zip(head.parameters(), src_head.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # the source estimator is never changed by the transfer
    assert _states_equal(_state(source.net_.module_), src_state)
    np.testing.assert_array_equal(source.predict(Xt), src_pred)


def test_fitted_estimator_new_head_when_asked(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, head="linear", max_epochs=1, lr=1e-8, random_state=0
    ).fit(Xt, yt)
    # the backbone is the pretrained one ...
    for p, q in zip(
        target.net_.module_.backbone.parameters(),
        source.net_.module_.backbone.parameters(),
    ):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # ... but the head is new, so predictions differ from the source's
    assert not np.allclose(target.predict(Xt), source.predict(Xt), atol=1e-2)


def test_fitted_estimator_new_head_when_outputs_differ(shift_data, source):
    _, _, Xt, yt = shift_data
    y2 = np.column_stack([yt, -yt])
    target = TransferRegressor(source, max_epochs=3, random_state=0).fit(Xt, y2)
    assert target.net_.module_.head.out_features == 2
    assert target.predict(Xt).shape == (len(Xt), 2)
    assert target.n_outputs_ == 2
    for p, q in zip(
        target.net_.module_.backbone.parameters(),
        source.net_.module_.backbone.parameters(),
    ):
        assert p.shape == q.shape


def test_fitted_estimator_with_mlp_head_or_weights(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(source, head="mlp", max_epochs=2, random_state=0)
    target.fit(Xt, yt)
    assert type(target.net_.module_.head) is not type(source.net_.module_.head)
    assert target.predict(Xt).shape == (len(Xt),)
    state = _state(source.net_.module_.backbone)
    with pytest.raises(ValueError, match="weights"):
        TransferRegressor(source, weights=state, max_epochs=1).fit(Xt, yt)


def test_unfitted_estimator_as_backbone_raises(shift_data):
    _, _, Xt, yt = shift_data
    with pytest.raises(ValueError, match="unfitted"):
        TransferRegressor(TransferRegressor(), max_epochs=1).fit(Xt, yt)


def test_feature_mismatch_with_source_raises(shift_data, source):
    _, _, Xt, yt = shift_data
    with pytest.raises(ValueError, match="shape"):
        TransferRegressor(source, max_epochs=1).fit(Xt[:, :5], yt)


# ------------------------------------------------------------ input_shape
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
    assert flat.model_shape_ == (2, 10)

    nd = TransferRegressor(
        name, backbone_params=params, max_epochs=2, random_state=0
    ).fit(X3, y)
    pred = nd.predict(X3)
    assert pred.shape == (60,)
    assert np.isfinite(pred).all()
    assert nd.sample_shape_ == (2, 10)

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


# ---------------------------------------------------------------- weights
def _pretrained_mlp(n_features=5, hidden=(8, 8)):
    torch.manual_seed(123)
    return MLPBackbone(n_features, hidden_sizes=hidden)


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "mapping"])
def test_weights_loaded_into_backbone(tmp_path, fmt):
    X, y = _linear_problem(n=80, n_features=5)
    saved = _state(_pretrained_mlp())
    if fmt == "safetensors":
        weights = tmp_path / "x.safetensors"
        save_file(saved, str(weights))
    elif fmt == "pt":
        weights = tmp_path / "x.pt"
        torch.save(saved, weights)
    else:
        weights = dict(saved)
    params = {"hidden_sizes": (8, 8)}
    probe = TransferRegressor(
        "mlp",
        backbone_params=params,
        weights=weights,
        finetune="linear_probe",
        max_epochs=2,
        random_state=0,
    ).fit(X, y)
    assert _states_equal(_state(probe.net_.module_.backbone), saved)

    tiny = TransferRegressor(
        "mlp",
        backbone_params=params,
        weights=str(weights) if fmt != "mapping" else weights,
        max_epochs=1,
        lr=1e-9,
        random_state=0,
    ).fit(X, y)
    got = tiny.net_.module_.backbone.state_dict()
    for k, v in saved.items():
        torch.testing.assert_close(got[k], v, atol=1e-6, rtol=0)
    # a freshly initialised backbone (seed 0) would not match the saved one
    fresh = TransferRegressor(
        "mlp", backbone_params=params, max_epochs=1, lr=1e-9, random_state=0
    ).fit(X, y)
    assert not _states_equal(_state(fresh.net_.module_.backbone), saved)


def test_weights_key_mismatch_names_keys(tmp_path):
    X, y = _linear_problem(n=40, n_features=5)
    state = _state(_pretrained_mlp())
    state.pop("blocks.1.0.bias")
    state["extra_layer.weight"] = torch.zeros(2)
    path = tmp_path / "bad.safetensors"
    save_file(state, str(path))
    with pytest.raises(ValueError) as info:
        TransferRegressor(
            "mlp", backbone_params={"hidden_sizes": (8, 8)}, weights=path, max_epochs=1
        ).fit(X, y)
    assert "blocks.1.0.bias" in str(info.value)
    assert "extra_layer.weight" in str(info.value)


def test_weights_missing_file_raises(tmp_path):
    X, y = _linear_problem(n=40, n_features=5)
    with pytest.raises(ValueError, match="not an existing file"):
        TransferRegressor(
            "mlp", weights=tmp_path / "nothing_here.pt", max_epochs=1
        ).fit(X, y)


def test_load_weights_directly(tmp_path):
    torch.manual_seed(0)
    src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    path = tmp_path / "lin.pt"
    torch.save(src.state_dict(), path)
    out = load_weights(dst, path)
    assert out is dst
    assert torch.equal(dst.weight, src.weight)
    assert torch.equal(dst.bias, src.bias)

    # a common wrapper prefix is stripped
    other = torch.nn.Linear(3, 2)
    prefixed = {f"backbone.{k}": v + 1 for k, v in src.state_dict().items()}
    load_weights(other, prefixed)
    assert torch.equal(other.weight, src.weight + 1)

    with pytest.raises(ValueError, match="shape"):
        load_weights(torch.nn.Linear(4, 2), src.state_dict())
    with pytest.raises(ValueError, match="weight"):
        load_weights(torch.nn.Linear(3, 2), {"bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="not an existing file"):
        load_weights(dst, tmp_path / "missing.safetensors")


# ------------------------------------------------------------ fine-tuning
def test_backbone_blocks():
    blocks = backbone_blocks(MLPBackbone(4, hidden_sizes=(8, 8)))
    assert len(blocks) == 2
    assert all(isinstance(b, torch.nn.Sequential) for b in blocks)
    assert blocks[0][0].in_features == 4  # input side first
    lin = torch.nn.Linear(3, 2)
    assert backbone_blocks(lin) == [lin]
    assert backbone_blocks(torch.nn.Flatten()) == []


def test_linear_probe_freezes_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="linear_probe", max_epochs=5, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert _states_equal(
        _state(target.net_.module_.backbone), _state(source.net_.module_.backbone)
    )
    assert _distance(target.net_.module_.head, source.net_.module_.head) > 1e-4


def test_lp_ft_changes_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="lp_ft", max_epochs=4, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert _distance(target.net_.module_.backbone, source.net_.module_.backbone) > 1e-4


def test_gradual_unfreezes_from_the_top(shift_data, source):
    _, _, Xt, yt = shift_data
    src_blocks = backbone_blocks(source.net_.module_.backbone)
    assert len(src_blocks) == 2
    # 2 epochs, 2 blocks: epoch 0 trains the head, epoch 1 the top block only
    short = TransferRegressor(
        source, finetune="gradual", max_epochs=2, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    bottom, top = backbone_blocks(short.net_.module_.backbone)
    assert _states_equal(_state(bottom), _state(src_blocks[0]))
    assert _distance(top, src_blocks[1]) > 1e-4

    full = TransferRegressor(
        source, finetune="gradual", max_epochs=6, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    losses = full.history_[:, "train_loss"]
    assert len(losses) == 6
    assert np.isfinite(losses).all()
    assert losses[-1] < losses[0]
    for got, ref in zip(backbone_blocks(full.net_.module_.backbone), src_blocks):
        assert _distance(got, ref) > 1e-4
    # every parameter is trainable again after fit
    assert all(p.requires_grad for p in full.net_.module_.parameters())


def test_l2sp_keeps_backbone_close(shift_data, source):
    _, _, Xt, yt = shift_data
    common = dict(max_epochs=10, lr=1e-2, backbone_lr=1.0, random_state=0)
    free = TransferRegressor(source, l2sp=0.0, **common).fit(Xt, yt)
    tied = TransferRegressor(source, l2sp=100.0, **common).fit(Xt, yt)
    d_free = _distance(free.net_.module_.backbone, source.net_.module_.backbone)
    d_tied = _distance(tied.net_.module_.backbone, source.net_.module_.backbone)
    assert d_tied < 0.5 * d_free
    penalty = tied.history_[:, "train_l2sp_penalty"]
    assert len(penalty) == 10
    assert all(p >= 0 for p in penalty)
    assert "train_l2sp_penalty" not in free.history_[-1]


def test_backbone_lr_zero_freezes_pretrained_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, finetune="full", backbone_lr=0.0, max_epochs=5, lr=1e-2, random_state=0
    ).fit(Xt, yt)
    assert _states_equal(
        _state(target.net_.module_.backbone), _state(source.net_.module_.backbone)
    )
    assert _distance(target.net_.module_.head, source.net_.module_.head) > 1e-4


# ----------------------------------------------------------- sample_weight
def test_zero_weight_rows_are_ignored():
    X, y = _linear_problem(n=160, n_features=4)
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


def test_bad_sample_weight_raises():
    X, y = _linear_problem(n=40, n_features=4)
    est = TransferRegressor("linear", max_epochs=1)
    with pytest.raises(ValueError, match=r"[Nn]egative"):
        est.fit(X, y, sample_weight=-np.ones(40))
    with pytest.raises(ValueError, match=r"[Ss]ample.weight"):
        est.fit(X, y, sample_weight=np.zeros(40))
    with pytest.raises(ValueError):
        est.fit(X, y, sample_weight=np.ones(39))


# ------------------------------------------------------------ shapes/dtypes
@pytest.mark.parametrize("y_shape", [(60,), (60, 1), (60, 3)])
def test_output_shapes(y_shape):
    X, y = _linear_problem(n=60, n_features=4)
    Y = np.column_stack([y, 2 * y, -y])[:, : (y_shape[1] if len(y_shape) > 1 else 1)]
    Y = Y.reshape(y_shape)
    est = TransferRegressor("linear", max_epochs=30, lr=3e-2, random_state=0)
    est.fit(X, Y)
    pred = est.predict(X)
    assert pred.shape == y_shape
    assert est.score(X, Y) > 0.5


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_input_dtypes(dtype):
    X, y = _linear_problem(n=60, n_features=4)
    Xd = (X * 10).astype(dtype)
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (8,)}, max_epochs=3, random_state=0
    ).fit(Xd, y)
    pred = est.predict(Xd)
    assert pred.dtype.kind == "f"
    assert np.isfinite(pred).all()
    # the caller's array is not modified (X is standardised internally)
    np.testing.assert_array_equal(Xd, (X * 10).astype(dtype))


# ------------------------------------------------------------ random_state
def test_random_state_reproducible_and_used():
    X, y = _linear_problem(n=80, n_features=4)
    params = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=3)
    a = TransferRegressor(random_state=3, **params).fit(X, y).predict(X)
    b = TransferRegressor(random_state=3, **params).fit(X, y).predict(X)
    c = TransferRegressor(random_state=4, **params).fit(X, y).predict(X)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_fit_leaves_global_rng_alone():
    X, y = _linear_problem(n=80, n_features=4)
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (8,)},
        max_epochs=2,
        early_stopping=True,
        random_state=0,
    )
    # the legacy global numpy RNG is the state under test here
    torch.manual_seed(1234)
    np.random.seed(1234)  # noqa: NPY002
    ref_torch, ref_np = torch.rand(1), np.random.rand()  # noqa: NPY002
    torch.manual_seed(1234)
    np.random.seed(1234)  # noqa: NPY002
    est.fit(X, y)
    assert torch.equal(torch.rand(1), ref_torch)
    assert np.random.rand() == ref_np  # noqa: NPY002


# ---------------------------------------------------------------- verbose
def test_verbose(capsys):
    X, y = _linear_problem(n=40, n_features=4)
    TransferRegressor("linear", max_epochs=2, verbose=0).fit(X, y)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    TransferRegressor("linear", max_epochs=2, solver="gradient", verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert "train_loss" in out
    TransferRegressor("linear", verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert "closed form" in out


# --------------------------------------------------------- early stopping
def test_early_stopping_stops():
    X, y = _linear_problem(n=100, n_features=4)
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


def test_standardize_y_returns_original_units():
    X, y = _linear_problem(n=120, n_features=4)
    est = TransferRegressor("linear", max_epochs=30, lr=3e-2, random_state=0)
    est.fit(X, 1e6 * y + 5e6)
    pred = est.predict(X)
    assert r2_score(1e6 * y + 5e6, pred) > 0.5
    assert abs(pred.mean() - 5e6) < 1e6


# -------------------------------------------------------------- bad params
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
    ],
)
def test_bad_params_raise(params, match):
    X, y = _linear_problem(n=30, n_features=4)
    with pytest.raises((ValueError, TypeError), match=match):
        TransferRegressor(max_epochs=1).set_params(**params).fit(X, y)


def test_unknown_backbone_lists_registered_names():
    X, y = _linear_problem(n=30, n_features=4)
    with pytest.raises(ValueError, match="'nope'") as info:
        TransferRegressor("nope", max_epochs=1).fit(X, y)
    for name in ("cnn1d", "gru", "linear", "mlp"):
        assert f"'{name}'" in str(info.value)


@pytest.mark.skipif(torch.cuda.is_available(), reason="CUDA is available here")
def test_cuda_unavailable_raises():
    X, y = _linear_problem(n=30, n_features=4)
    with pytest.raises(ValueError, match="device"):
        TransferRegressor("linear", max_epochs=1, device="cuda").fit(X, y)


def test_failed_fit_keeps_previous_model():
    X, y = _linear_problem(n=60, n_features=4)
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


# ---------------------------------------------------------------- registry
def test_register_backbone(monkeypatch):
    monkeypatch.setattr(registry_module, "_REGISTRY", dict(registry_module._REGISTRY))

    def tiny(input_shape, width=4):
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(int(np.prod(input_shape)), width),
            torch.nn.Tanh(),
        )

    assert register_backbone("tiny_test_backbone", tiny) is tiny
    assert "tiny_test_backbone" in list_backbones()
    X, y = _linear_problem(n=40, n_features=4)
    est = TransferRegressor(
        "tiny_test_backbone", backbone_params={"width": 3}, max_epochs=2, random_state=0
    ).fit(X, y)
    assert est.net_.module_.backbone[1].out_features == 3
    assert est.predict(X).shape == (40,)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("tiny_test_backbone", tiny)
    register_backbone("tiny_test_backbone", copy.copy(tiny), overwrite=True)


# ----------------------------------------------------------- transfer value
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

    def rmse(est):
        return float(np.sqrt(np.mean((est.predict(X_test) - y_test) ** 2)))

    source = TransferRegressor(
        "mlp", max_epochs=30, batch_size=64, random_state=seed, **net
    ).fit(Xs, ys)
    scratch = TransferRegressor(
        "mlp", max_epochs=50, batch_size=16, random_state=seed, **net
    ).fit(X_lab, y_lab)
    rmse_scratch, rmse_source = rmse(scratch), rmse(source)
    for strategy in ("full", "linear_probe", "lp_ft", "gradual"):
        tuned = TransferRegressor(
            source,
            finetune=strategy,
            max_epochs=50,
            batch_size=16,
            lr=3e-3,
            random_state=seed,
        ).fit(X_lab, y_lab)
        rmse_tuned = rmse(tuned)
        assert rmse_tuned <= 0.85 * rmse_scratch, (strategy, rmse_tuned, rmse_scratch)
        assert rmse_tuned <= 1.2 * rmse_source, (strategy, rmse_tuned, rmse_source)


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


def test_fitted_backbone_passes_on_its_input_shape():
    rng = np.random.RandomState(0)
    X = rng.rand(60, 20)
    y = X[:, :5].sum(1)
    kw = dict(backbone_params={"channels": (4,)}, max_epochs=2, random_state=0)
    src = TransferRegressor("cnn1d", input_shape=(2, 10), **kw).fit(X, y)
    tuned = TransferRegressor(src, max_epochs=2, random_state=0).fit(X, y)
    assert tuned.model_shape_ == (2, 10)
    assert tuned.predict(X[:3]).shape == (3,)


# ------------------------------------------------------- closed-form solver
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("multi_output", [False, True])
def test_closed_form_linear_model_is_ridge(weight_decay, multi_output):
    # standardised X and y, penalty weight_decay/2 ||theta||^2 on the mean
    # squared error == Ridge(alpha=n * weight_decay / 2) on standardised X
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = _linear_problem(n=90, n_features=6)
    X = X * np.arange(1, 7) + 3.0
    if multi_output:
        y = np.c_[y, 2 * y + X[:, 0]]
    est = TransferRegressor("linear", weight_decay=weight_decay).fit(X, y)
    assert est.solver_ == "closed_form" and est.n_iter_ == 0
    n_out = 2 if multi_output else 1
    ridge = make_pipeline(
        StandardScaler(), Ridge(alpha=len(X) * weight_decay / 2 * n_out)
    )
    ys = (y - y.mean(0)) / y.std(0)
    ridge.fit(X, ys)
    expected = ridge.predict(X) * y.std(0) + y.mean(0)
    np.testing.assert_allclose(est.predict(X), expected, rtol=1e-5, atol=1e-5)


def test_closed_form_honours_sample_weight():
    from sklearn.linear_model import LinearRegression

    X, y = _linear_problem(n=60, n_features=4)
    y = y + (X[:, 0] > 0) * 2.0  # not linear: the weights matter
    w = np.random.RandomState(1).uniform(0.1, 3.0, size=len(X))
    est = TransferRegressor("linear").fit(X, y, sample_weight=w)
    ols = LinearRegression().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(est.predict(X), ols.predict(X), rtol=1e-5, atol=1e-5)


def test_closed_form_l2sp_is_the_point_gradient_descent_reaches():
    X, y = _linear_problem(n=200, n_features=6)
    source = TransferRegressor("linear").fit(X, y)
    Xt, yt = X[:12] + 0.5, y[:12] + 1.0
    exact = TransferRegressor(source, l2sp=0.5).fit(Xt, yt)
    assert exact.solver_ == "closed_form"
    sgd = TransferRegressor(
        source,
        l2sp=0.5,
        solver="gradient",
        optimizer="adam",
        lr=1e-2,
        max_epochs=1500,
        batch_size=12,
        random_state=0,
    ).fit(Xt, yt)
    assert sgd.solver_ == "gradient" and sgd.n_iter_ == 1500
    np.testing.assert_allclose(exact.predict(X), sgd.predict(X), atol=2e-3)
    # a strong pull keeps the source model; none fits the target rows
    stiff = TransferRegressor(source, l2sp=1e6).fit(Xt, yt)
    np.testing.assert_allclose(stiff.predict(X), source.predict(X), atol=1e-3)
    loose = TransferRegressor(source, l2sp=0.0).fit(Xt, yt)
    assert _rmse(loose, Xt, yt) < 0.5 * _rmse(source, Xt, yt)


def test_closed_form_with_fewer_rows_than_features_is_nearest_the_start():
    rng = np.random.RandomState(0)
    Xs, ys = rng.normal(size=(100, 30)), rng.normal(size=100)
    source = TransferRegressor("linear").fit(Xs, ys)
    Xt, yt = rng.normal(size=(6, 30)), rng.normal(size=6)
    est = TransferRegressor(source).fit(Xt, yt)
    # interpolates the 6 rows ...
    np.testing.assert_allclose(est.predict(Xt), yt, atol=1e-4)
    # ... with the smallest change to the source head (minimum-norm step)
    norm = source.net_.module_.normalizer
    F = (Xt - norm.mean.numpy()) / norm.scale.numpy()
    F = np.c_[F, np.ones(len(F))]
    head0, head1 = source.net_.module_.head, est.net_.module_.head
    theta0 = np.r_[head0.weight.detach().numpy().ravel(), head0.bias.item()]
    theta1 = np.r_[head1.weight.detach().numpy().ravel(), head1.bias.item()]
    r = (yt - source.y_mean_) / source.y_scale_ - F @ theta0
    expected = theta0 + np.linalg.pinv(F) @ r
    np.testing.assert_allclose(theta1, expected, atol=1e-4)


def test_closed_form_linear_probe_keeps_the_backbone_and_fits_the_head():
    from sklearn.linear_model import LinearRegression

    X, y = _linear_problem(n=150, n_features=5)
    source = TransferRegressor(
        backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0
    ).fit(X, y)
    y2 = np.tanh(X[:, 0]) + X[:, 1]
    auto = TransferRegressor(source, finetune="linear_probe", max_epochs=2)
    assert auto.fit(X, y2).solver_ == "gradient"  # "auto": linear models only
    est = TransferRegressor(source, finetune="linear_probe", solver="closed_form")
    est.fit(X, y2)
    assert est.solver_ == "closed_form"
    before = source.net_.module_.backbone.state_dict()
    after = est.net_.module_.backbone.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)
    with torch.no_grad():
        F = source.net_.module_.features(torch.as_tensor(X, dtype=torch.float32))
    ols = LinearRegression().fit(F.numpy().astype(np.float64), y2)
    np.testing.assert_allclose(
        est.predict(X), ols.predict(F.numpy().astype(np.float64)), atol=1e-3
    )


def test_solver_choice_and_errors():
    X, y = _linear_problem(n=60, n_features=4)
    mlp = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=2)
    assert TransferRegressor(**mlp).fit(X, y).solver_ == "gradient"
    assert TransferRegressor("linear", early_stopping=True).fit(X, y).solver_ == (
        "gradient"
    )
    est = TransferRegressor("linear", solver="gradient", max_epochs=2).fit(X, y)
    assert est.solver_ == "gradient" and est.n_iter_ == 2
    with pytest.raises(ValueError, match=r"solver='closed_form'.*finetune='full'"):
        TransferRegressor(solver="closed_form", **mlp).fit(X, y)
    with pytest.raises(ValueError, match=r"solver='closed_form'.*MLPHead"):
        TransferRegressor("linear", head="mlp", solver="closed_form").fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        TransferRegressor("linear", solver="lbfgs").fit(X, y)


def _rmse(est, X, y):
    return float(np.sqrt(np.mean((est.predict(X) - y) ** 2)))


# ------------------------------------------------------- input scaling modes
def test_standardize_X_modes():
    X, y = _linear_problem(n=80, n_features=4)
    X = X * np.array([0.01, 1.0, 10.0, 100.0]) + 5.0
    std = X.std(0)
    per = TransferRegressor("linear", standardize_X=True).fit(X, y)
    norm = per.net_.module_.normalizer
    np.testing.assert_allclose(norm.mean.numpy(), X.mean(0), rtol=1e-5)
    np.testing.assert_allclose(norm.scale.numpy(), std, rtol=1e-5)
    glob = TransferRegressor("linear", standardize_X="global").fit(X, y)
    norm = glob.net_.module_.normalizer
    np.testing.assert_allclose(norm.mean.numpy(), X.mean(0), rtol=1e-5)
    # one scale for every feature: the relative sizes of the features survive
    np.testing.assert_allclose(norm.scale.numpy(), np.sqrt(np.mean(std**2)), rtol=1e-5)
    off = TransferRegressor("linear", standardize_X=False).fit(X, y)
    assert off.net_.module_.normalizer.mean.numel() == 0
    # OLS does not care how the inputs are scaled
    np.testing.assert_allclose(per.predict(X), glob.predict(X), rtol=1e-4, atol=1e-4)
    # a transfer inherits the source's scaling
    child = TransferRegressor(glob, l2sp=1.0).fit(X[:10], y[:10])
    np.testing.assert_array_equal(
        child.net_.module_.normalizer.scale.numpy(), norm.scale.numpy()
    )
    with pytest.raises(ValueError, match="standardize_X"):
        TransferRegressor("linear", standardize_X="per_sample").fit(X, y)


def _reference_head(F, Y, w, theta0, strength, anchored, bias=True):
    """The regularised weighted normal equations, written out in numpy."""
    A = np.c_[F, np.ones(len(F))] if bias else F
    K = Y.shape[1]
    a = K * strength / 2
    G = A.T @ (w[:, None] * A) / w.sum()
    c = A.T @ (w[:, None] * Y) / w.sum()
    target = theta0 if anchored else 0 * theta0
    return np.linalg.solve(G + a * np.eye(len(G)), c + a * target)


def _head_theta(est):
    head = est.net_.module_.head
    W = head.weight.detach().numpy().astype(np.float64).T
    if head.bias is None:
        return W
    return np.vstack([W, head.bias.detach().numpy().astype(np.float64)[None]])


def test_closed_form_matches_the_normal_equations_uncentred_weighted_multioutput():
    # raw inputs and targets (no centring): a penalised bias matters here
    rng = np.random.RandomState(3)
    X = rng.normal(size=(40, 3)) + 4.0
    Y = np.c_[X @ [1.0, -2.0, 0.5] + 7.0, X[:, 0] - 3.0] + rng.normal(size=(40, 2))
    w = rng.uniform(0.5, 2.0, size=40)
    kw = dict(standardize_X=False, standardize_y=False)
    est = TransferRegressor("linear", weight_decay=0.4, **kw).fit(X, Y, sample_weight=w)
    theta = _reference_head(X, Y, w / w.mean(), np.zeros((4, 2)), 0.4, False)
    np.testing.assert_allclose(_head_theta(est), theta, rtol=1e-4, atol=1e-5)
    # transfer with L2-SP toward that head, two outputs, bias included
    Xt, Yt = X[:8] + 1.0, Y[:8] * 1.5
    child = TransferRegressor(est, l2sp=0.3, weight_decay=5.0).fit(Xt, Yt)
    theta_c = _reference_head(Xt, Yt, np.ones(8), _head_theta(est), 0.3, True)
    np.testing.assert_allclose(_head_theta(child), theta_c, rtol=1e-4, atol=1e-4)


def test_closed_form_head_without_bias():
    from sklearn.linear_model import LinearRegression

    X, y = _linear_problem(n=50, n_features=4)
    y = y + 3.0
    head = torch.nn.Linear(4, 1, bias=False)
    est = TransferRegressor(
        "linear", head=head, standardize_X=False, standardize_y=False
    ).fit(X, y)
    assert est.solver_ == "closed_form"
    ols = LinearRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(est.predict(X), ols.predict(X), rtol=1e-5, atol=1e-5)


def test_auto_solver_keeps_gradient_where_the_closed_form_would_differ():
    X, y = _linear_problem(n=60, n_features=5)
    # no parameters, but batch-norm statistics that move in training
    bn = torch.nn.Sequential(torch.nn.BatchNorm1d(5, affine=False))
    est = TransferRegressor(bn, max_epochs=2).fit(X, y)
    assert est.solver_ == "gradient"
    assert est.net_.module_.backbone[0].running_mean.abs().sum() > 0
    with pytest.raises(ValueError, match="batch-norm or dropout"):
        TransferRegressor(bn, solver="closed_form").fit(X, y)
    drop = torch.nn.Sequential(torch.nn.Dropout(0.5))
    assert TransferRegressor(drop, max_epochs=2).fit(X, y).solver_ == "gradient"
    # a frozen head parameter stays as it is
    head = torch.nn.Linear(5, 1)
    head.bias.requires_grad_(False)
    bias = head.bias.detach().clone()
    est = TransferRegressor("linear", head=head, max_epochs=2).fit(X, y + 5.0)
    assert est.solver_ == "gradient"
    assert torch.equal(est.net_.module_.head.bias.detach(), bias)
    with pytest.raises(ValueError, match="frozen"):
        TransferRegressor("linear", head=head, solver="closed_form").fit(X, y)


def test_auto_solver_falls_back_to_gradient_for_very_wide_inputs(monkeypatch):
    import sktransfer._base as base

    X, y = _linear_problem(n=30, n_features=6)
    monkeypatch.setattr(base, "AUTO_MAX_FEATURES", 5)
    assert TransferRegressor("linear", max_epochs=2).fit(X, y).solver_ == "gradient"
    est = TransferRegressor("linear", solver="closed_form").fit(X, y)
    assert est.solver_ == "closed_form"


def test_global_scale_ignores_constant_features():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(50, 20)) * 1e-3
    X[:, 0] = 0.5  # a flat band
    y = X[:, 1] * 1e3
    est = TransferRegressor("linear", standardize_X="global").fit(X, y)
    scale = est.net_.module_.normalizer.scale.numpy()
    expected = np.sqrt(np.mean(X[:, 1:].std(0) ** 2))
    np.testing.assert_allclose(scale, expected, rtol=1e-4)
    const = TransferRegressor("linear", standardize_X="global").fit(
        np.ones((10, 3)), np.arange(10.0)
    )
    np.testing.assert_array_equal(const.net_.module_.normalizer.scale.numpy(), 1.0)
