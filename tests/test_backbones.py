"""Backbones (``sktransfer.backbones``): the registry, the built-in zoo and
safe weight loading."""

import numpy as np
import pytest
import torch
from conftest import linear_problem, part, state, states_equal
from safetensors.torch import save_file

from sktransfer import TransferRegressor
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

#: small settings for the built-in backbones (others use their defaults)
TINY_PARAMS = {
    "linear": None,
    "mlp": {"hidden_sizes": (8,)},
    "cnn1d": {"channels": (4,), "kernel_size": 3},
    "gru": {"hidden_size": 6},
}


# ------------------------------------------------------------------ registry
@pytest.mark.parametrize("name", list_backbones())
def test_registry_backbones_fit_and_predict(name):
    X, y = linear_problem(n=80, n_features=6)
    est = TransferRegressor(
        name, backbone_params=TINY_PARAMS.get(name), max_epochs=3, random_state=0
    ).fit(X, y)
    pred = est.predict(X)
    assert pred.shape == (80,)
    assert np.isfinite(pred).all()
    backbone = get_backbone_factory(name)((6,), **(TINY_PARAMS.get(name) or {}))
    parameter_free = not any(True for _ in backbone.parameters())
    # a linear model is solved in closed form, the others train for 3 epochs
    assert est.solver_ == ("closed_form" if parameter_free else "gradient")
    assert est.n_iter_ == (0 if parameter_free else 3)


@pytest.mark.parametrize("name", list_backbones())
@pytest.mark.parametrize("input_shape", [(6,), (2, 3)])
def test_every_factory_maps_samples_to_flat_features(name, input_shape):
    backbone = get_backbone_factory(name)(input_shape, **(TINY_PARAMS.get(name) or {}))
    assert isinstance(backbone, torch.nn.Module)
    backbone.eval()
    with torch.no_grad():
        out = backbone(torch.zeros((3, *input_shape)))
    assert out.dim() == 2 and out.shape[0] == 3


def test_list_backbones_is_sorted_and_holds_the_zoo():
    names = list_backbones()
    assert names == sorted(names)
    assert {"linear", "mlp", "cnn1d", "gru"} <= set(names)


def test_register_backbone(restore_registries):
    def tiny(input_shape, width=4):
        return torch.nn.Sequential(
            torch.nn.Flatten(),
            torch.nn.Linear(int(np.prod(input_shape)), width),
            torch.nn.Tanh(),
        )

    assert register_backbone("tiny_test_backbone", tiny) is tiny
    assert "tiny_test_backbone" in list_backbones()
    assert get_backbone_factory("tiny_test_backbone") is tiny
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(
        "tiny_test_backbone", backbone_params={"width": 3}, max_epochs=2, random_state=0
    ).fit(X, y)
    assert est.n_backbone_features_ == 3
    assert est.predict(X).shape == (40,)
    with pytest.raises(ValueError, match="already registered"):
        register_backbone("tiny_test_backbone", tiny)
    other = register_backbone(
        "tiny_test_backbone", lambda s: tiny(s, 2), overwrite=True
    )
    assert get_backbone_factory("tiny_test_backbone") is other


def test_register_backbone_checks_its_arguments(restore_registries):
    with pytest.raises(TypeError, match="non-empty str"):
        register_backbone("", lambda s: torch.nn.Flatten())
    with pytest.raises(TypeError, match="non-empty str"):
        register_backbone(3, lambda s: torch.nn.Flatten())
    with pytest.raises(TypeError, match="callable"):
        register_backbone("not_callable", "a string")
    assert "not_callable" not in list_backbones()


def test_unknown_backbone_lists_registered_names():
    X, y = linear_problem(n=30, n_features=4)
    with pytest.raises(ValueError, match="'nope'") as info:
        TransferRegressor("nope", max_epochs=1).fit(X, y)
    for name in list_backbones():
        assert f"'{name}'" in str(info.value)
    assert "register_backbone" in str(info.value)


# ----------------------------------------------------------------------- zoo
def test_mlp_backbone():
    mlp = MLPBackbone(6, hidden_sizes=(8, 5), activation="tanh", dropout=0.2)
    assert mlp.out_features == 5 and len(mlp.blocks) == 2
    assert any(isinstance(m, torch.nn.Dropout) for m in mlp.modules())
    assert any(isinstance(m, torch.nn.Tanh) for m in mlp.modules())
    assert mlp(torch.zeros(3, 2, 3)).shape == (3, 5)  # other shapes are flattened
    bn = MLPBackbone(6, hidden_sizes=(8,), batch_norm=True)
    assert any(isinstance(m, torch.nn.BatchNorm1d) for m in bn.modules())
    with pytest.raises(ValueError, match="activation='swish'"):
        MLPBackbone(6, activation="swish")


def test_cnn1d_backbone():
    cnn = CNN1d(2, channels=(4, 6), kernel_size=3, length=16)
    assert cnn.out_features == 6
    assert cnn(torch.zeros(3, 2, 16)).shape == (3, 6)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in cnn.modules()) == 2
    # no pooling where the sequence is already too short
    short = CNN1d(1, channels=(4, 4), pool=2, length=5)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in short.modules()) == 1
    plain = CNN1d(1, channels=(4,), batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())


def test_gru_backbone():
    gru = GRUBackbone(2, hidden_size=5)
    assert gru.out_features == 5 and gru(torch.zeros(3, 2, 7)).shape == (3, 5)
    both = GRUBackbone(2, hidden_size=5, num_layers=2, bidirectional=True)
    assert both.out_features == 10 and both(torch.zeros(3, 2, 7)).shape == (3, 10)


@pytest.mark.parametrize("name", ["cnn1d", "gru"])
def test_sequence_backbones_take_flat_rows_and_reject_nd_shapes(name):
    factory = get_backbone_factory(name)
    flat = factory((10,), **TINY_PARAMS[name])  # one channel of length 10
    assert flat(torch.zeros(3, 10)).shape[0] == 3
    seq = factory((2, 5), **TINY_PARAMS[name])
    assert seq(torch.zeros(3, 10)).shape == seq(torch.zeros(3, 2, 5)).shape
    with pytest.raises(ValueError, match="channels, length"):
        factory((2, 3, 4))


# ------------------------------------------------------------------- weights
def _pretrained_mlp(n_features=5, hidden=(8, 8)):
    torch.manual_seed(123)
    return MLPBackbone(n_features, hidden_sizes=hidden)


@pytest.mark.parametrize("fmt", ["safetensors", "pt", "mapping"])
def test_weights_loaded_into_backbone(tmp_path, fmt):
    X, y = linear_problem(n=80, n_features=5)
    saved = state(_pretrained_mlp())
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
    assert states_equal(part(probe, "backbone"), saved)

    tiny = TransferRegressor(
        "mlp",
        backbone_params=params,
        weights=str(weights) if fmt != "mapping" else weights,
        max_epochs=1,
        lr=1e-9,
        random_state=0,
    ).fit(X, y)
    got = part(tiny, "backbone").state_dict()
    for k, v in saved.items():
        torch.testing.assert_close(got[k], v, atol=1e-6, rtol=0)
    # a freshly initialised backbone (seed 0) would not match the saved one
    fresh = TransferRegressor(
        "mlp", backbone_params=params, max_epochs=1, lr=1e-9, random_state=0
    ).fit(X, y)
    assert not states_equal(part(fresh, "backbone"), saved)


def test_weights_key_mismatch_names_keys(tmp_path):
    X, y = linear_problem(n=40, n_features=5)
    weights = state(_pretrained_mlp())
    weights.pop("blocks.1.0.bias")
    weights["extra_layer.weight"] = torch.zeros(2)
    path = tmp_path / "bad.safetensors"
    save_file(weights, str(path))
    with pytest.raises(ValueError) as info:
        TransferRegressor(
            "mlp", backbone_params={"hidden_sizes": (8, 8)}, weights=path, max_epochs=1
        ).fit(X, y)
    assert "blocks.1.0.bias" in str(info.value)
    assert "extra_layer.weight" in str(info.value)


def test_weights_missing_file_raises(tmp_path):
    X, y = linear_problem(n=40, n_features=5)
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
    for prefix in ("backbone.", "module.", "net_.module_.backbone."):
        other = torch.nn.Linear(3, 2)
        prefixed = {f"{prefix}{k}": v + 1 for k, v in src.state_dict().items()}
        load_weights(other, prefixed)
        assert torch.equal(other.weight, src.weight + 1)

    with pytest.raises(ValueError, match="shape"):
        load_weights(torch.nn.Linear(4, 2), src.state_dict())
    with pytest.raises(ValueError, match="weight"):
        load_weights(torch.nn.Linear(3, 2), {"bias": torch.zeros(2)})
    with pytest.raises(ValueError, match="not an existing file"):
        load_weights(dst, tmp_path / "missing.safetensors")


def test_read_state_dict_never_unpickles_code(tmp_path):
    lin = torch.nn.Linear(2, 1)
    nested = tmp_path / "nested.pt"
    torch.save({"state_dict": lin.state_dict(), "epoch": 3}, nested)
    assert set(read_state_dict(nested)) == {"weight", "bias"}
    # a pickled module is refused by torch.load(weights_only=True)
    whole = tmp_path / "module.pt"
    torch.save(lin, whole)
    with pytest.raises(ValueError, match="weights_only=True"):
        read_state_dict(whole)
    listed = tmp_path / "list.pt"
    torch.save([lin.weight.detach()], listed)
    with pytest.raises(ValueError, match="not a state dict"):
        read_state_dict(listed)
    with pytest.raises(ValueError, match="not tensors"):
        read_state_dict({"weight": [1.0, 2.0]})
    with pytest.raises(TypeError, match="weights must be None"):
        read_state_dict(42)
