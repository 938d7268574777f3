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
from sktransfer.finetuning import backbone_blocks

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
    cnn = CNN1d(2, channels=(4, 6), kernel_size=3, length=16, pool=2)
    assert cnn.out_features == 128  # the dense layer's width
    assert cnn(torch.zeros(3, 2, 16)).shape == (3, 128)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in cnn.modules()) == 2
    # no pooling where the sequence is already too short
    short = CNN1d(1, channels=(4, 4), pool=2, length=5)
    assert sum(isinstance(m, torch.nn.MaxPool1d) for m in short.modules()) == 1
    plain = CNN1d(1, channels=(4,), batch_norm=False)
    assert not any(isinstance(m, torch.nn.BatchNorm1d) for m in plain.modules())


def _count(net, kind):
    return sum(isinstance(m, kind) for m in net.modules())


def test_cnn1d_auto_settings_follow_the_length():
    """A spectrum (length >= 32) is pooled and batch-normalised; a sensor
    window (length < 32) keeps every position, has no batch norm, and its raw
    values join the dense layer's input."""
    long = CNN1d(2, channels=(4, 6), length=32)
    assert _count(long, torch.nn.MaxPool1d) == _count(long, torch.nn.BatchNorm1d) == 2
    assert long.blocks[-1].join is None
    assert long.blocks[-1][2].in_features == 6 * 8
    window = CNN1d(9, channels=(4, 6), length=7)
    assert _count(window, torch.nn.MaxPool1d) == 0
    assert _count(window, torch.nn.BatchNorm1d) == 0
    assert window.blocks[-1][2].in_features == 6 * 7 + 9 * 7
    x = torch.randn(3, 9, 7)
    assert window(x).shape == (3, 128)
    # the shortcut really reads the input: the conv blocks can be zeroed
    for block in window.blocks[:-1]:
        torch.nn.init.zeros_(block[0].weight)
        torch.nn.init.zeros_(block[0].bias)
    with torch.no_grad():
        assert not torch.equal(window(x), window(torch.zeros_like(x)))
    unknown = CNN1d(1, channels=(4,))  # length unknown: the long settings
    assert _count(unknown, torch.nn.MaxPool1d) == 1
    explicit = CNN1d(
        9, channels=(4,), length=7, pool=2, batch_norm=True, shortcut=False
    )
    assert _count(explicit, torch.nn.MaxPool1d) == 1
    assert _count(explicit, torch.nn.BatchNorm1d) == 1
    assert explicit.blocks[-1][2].in_features == 4 * 3


class _CNN1dOld(torch.nn.Module):
    """The ``CNN1d`` of sktransfer 0.1.0 (global average of the last block)."""

    def __init__(self, in_channels, channels=(16, 32), kernel_size=5, length=20):
        super().__init__()
        blocks, width, current = [], in_channels, length
        for ch in channels:
            block = [
                torch.nn.Conv1d(width, ch, kernel_size, padding="same"),
                torch.nn.BatchNorm1d(ch),
                torch.nn.ReLU(),
            ]
            if current >= 4:
                block.append(torch.nn.MaxPool1d(2))
                current //= 2
            blocks.append(torch.nn.Sequential(*block))
            width = ch
        self.blocks = torch.nn.Sequential(*blocks)

    def forward(self, x):
        return self.blocks(x).mean(dim=-1)


def test_cnn1d_readout_keeps_position_by_default():
    cnn = CNN1d(2, channels=(4, 6), kernel_size=3, length=32)
    readout = cnn.blocks[-1]
    assert isinstance(readout[0], torch.nn.AdaptiveAvgPool1d)
    assert readout[0].output_size == 8  # 32 // 2 // 2 positions left, all kept
    assert readout[2].in_features == 6 * 8 and cnn.out_features == 128
    wide = CNN1d(1, channels=(4,), length=200, positions=10, dense=8)
    assert wide.blocks[-1][2].in_features == 40 and wide.out_features == 8
    flat = CNN1d(
        1,
        channels=(3,),
        length=10,
        pool=2,
        pooling="flatten",
        dense=None,
        shortcut=False,
    )
    assert flat.out_features == 15 and flat(torch.zeros(2, 1, 10)).shape == (2, 15)
    # with the shortcut, the features without a dense layer are readout + input
    wide_flat = CNN1d(1, channels=(3,), length=10, pooling="flatten", dense=None)
    assert wide_flat(torch.zeros(2, 1, 10)).shape == (2, 3 * 10 + 10)
    pooled = CNN1d(1, channels=(3,), length=10, pooling="global", dense=5)
    assert pooled(torch.zeros(2, 1, 10)).shape == (2, 5)
    # the readout is one block: gradual unfreezing sees conv blocks + readout
    assert len(backbone_blocks(cnn)) == 3


@pytest.mark.parametrize(
    "shape", [(8,), (1, 8), (3, 5), (9, 7), (2, 1), (1, 3), (1, 700)]
)
def test_cnn1d_takes_any_length_and_batch_size(shape):
    torch.manual_seed(0)
    cnn = get_backbone_factory("cnn1d")(shape)  # the defaults
    cnn.eval()
    with torch.no_grad():
        for n in (1, 5):
            seq = cnn(torch.randn(n, *_as_sequence(shape)))
            rows = cnn(torch.randn(n, int(np.prod(shape))))
            assert seq.shape == rows.shape == (n, 128)
    cnn.train()
    assert cnn(torch.randn(2, *_as_sequence(shape))).shape == (2, 128)


def _as_sequence(shape):
    return shape if len(shape) == 2 else (1, shape[0])


@pytest.mark.parametrize("shape", [(1, 8), (3, 5)])
def test_cnn1d_fits_3d_and_short_inputs_and_predicts_one_row(shape):
    rng = np.random.RandomState(0)
    X = rng.normal(size=(40, *shape)).astype(np.float32)
    y = X[:, 0, -1] - X[:, -1, 0]
    est = TransferRegressor("cnn1d", max_epochs=2, random_state=0).fit(X, y)
    assert est.input_shape_ == shape and est.n_backbone_features_ == 128
    assert est.predict(X[:1]).shape == (1,)
    flat = TransferRegressor("cnn1d", input_shape=shape, max_epochs=2, random_state=0)
    flat.fit(X.reshape(40, -1), y)
    assert np.isfinite(flat.predict(X[:1].reshape(1, -1))).all()


def _peak_positions(n, length=32, seed=0):
    """One unit spike per sequence, away from the edges; y is its position."""
    rng = np.random.RandomState(seed)
    where = rng.randint(8, length - 8, size=n)
    X = np.zeros((n, 1, length), dtype=np.float32)
    X[np.arange(n), 0, where] = 1.0
    return X, where.astype(float)


def test_cnn1d_default_knows_where_a_peak_is_global_pooling_does_not():
    """y = where along the sequence a spike sits: global average pooling
    sees the same features wherever it is (a constant is all it can fit);
    the default readout keeps position."""
    X, y = _peak_positions(256)
    X_test, y_test = _peak_positions(200, seed=1)
    kw = dict(max_epochs=60, lr=1e-2, random_state=0, standardize_X=False)
    small = {"channels": (4, 4), "kernel_size": 3}
    default = TransferRegressor("cnn1d", backbone_params=small, **kw).fit(X, y)
    pooled = TransferRegressor(
        "cnn1d", backbone_params={**small, "pooling": "global", "dense": None}, **kw
    ).fit(X, y)
    assert default.score(X_test, y_test) > 0.9
    assert pooled.score(X_test, y_test) < 0.2


def test_old_cnn1d_weights_load_into_global_pooling():
    """A state dict of the 0.1.0 network loads into
    ``pooling="global", dense=None`` (its other defaults were channels=(16, 32),
    kernel_size=5, pool=2, batch norm, no shortcut), and gives the same
    features."""
    torch.manual_seed(0)
    old = _CNN1dOld(2).eval()
    params = {
        "channels": (16, 32),
        "kernel_size": 5,
        "pool": 2,
        "batch_norm": True,
        "shortcut": False,
        "pooling": "global",
    }
    new = CNN1d(2, **params, dense=None, length=20).eval()
    new.load_state_dict(old.state_dict(), strict=True)
    x = torch.randn(3, 2, 20)
    with torch.no_grad():
        torch.testing.assert_close(new(x), old(x), rtol=0, atol=0)
    X = x.numpy().reshape(3, -1)
    est = TransferRegressor(
        "cnn1d",
        backbone_params={**params, "dense": None},
        # the registry's backbone wraps the network as "net"
        weights={f"net.{k}": v for k, v in old.state_dict().items()},
        input_shape=(2, 20),
        finetune="linear_probe",
        max_epochs=1,
        random_state=0,
    ).fit(X, X[:, 0])
    assert states_equal(part(est, "backbone").net, old)
    # the new default's weights round-trip too
    default = get_backbone_factory("cnn1d")((2, 20))
    again = TransferRegressor(
        "cnn1d",
        weights=state(default),
        input_shape=(2, 20),
        finetune="linear_probe",
        max_epochs=1,
        random_state=0,
    ).fit(X, X[:, 0])
    assert states_equal(part(again, "backbone"), state(default))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"pooling": "mean"}, ValueError, r"CNN1d: pooling='mean' is not supported"),
        ({"pooling": None}, TypeError, "CNN1d: pooling must be a str"),
        ({"positions": 0}, ValueError, "CNN1d: positions=0"),
        ({"positions": 2.5}, TypeError, "CNN1d: positions must be an int"),
        ({"dense": 0}, ValueError, "CNN1d: dense=0"),
        ({"dense": "64"}, TypeError, "CNN1d: dense must be an int"),
        ({"pooling": "flatten", "length": None}, ValueError, "needs the sequence"),
        ({"shortcut": True, "length": None}, ValueError, "shortcut=True needs"),
        ({"shortcut": "yes"}, TypeError, "CNN1d: shortcut must be True, False or"),
        ({"batch_norm": 1}, TypeError, "CNN1d: batch_norm must be True, False or"),
        ({"pool": "2"}, TypeError, r"CNN1d: pool must be an int >= 1 or 'auto'"),
        ({"pool": 0}, ValueError, "CNN1d: pool=0"),
    ],
    ids=[
        "pooling",
        "pooling-type",
        "positions",
        "positions-type",
        "dense",
        "dense-type",
        "flatten-length",
        "shortcut-length",
        "shortcut-type",
        "batch_norm-type",
        "pool-type",
        "pool",
    ],
)
def test_cnn1d_readout_parameters_are_checked(params, error, match):
    with pytest.raises(error, match=match):
        CNN1d(2, **{"length": 16, **params})
    if "length" not in params:  # and through the registry's backbone_params
        with pytest.raises(error, match=match):
            get_backbone_factory("cnn1d")((2, 16), **params)


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
