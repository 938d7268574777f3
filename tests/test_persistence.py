"""sktransfer.persistence: save and load without pickle."""

import json
import pickle
import zipfile

import cloudpickle
import numpy as np
import pytest
import torch
from conftest import states_equal

from sktransfer import DomainAdaptRegressor, TransferEnsemble, TransferRegressor
from sktransfer._base import SourceNotSaved
from sktransfer.augmentation import GaussianJitter
from sktransfer.backbones import register_backbone
from sktransfer.backbones._registry import _REGISTRY
from sktransfer.datasets import make_domain_shift
from sktransfer.persistence import FORMAT_VERSION, load, save

FAST = dict(max_epochs=2, batch_size=16, random_state=0)


@pytest.fixture(scope="module")
def data():
    Xs, ys, Xt, yt = make_domain_shift(48, 24, n_features=6, random_state=0)
    return Xs, ys, Xt, yt


@pytest.fixture(scope="module")
def fitted(data):
    Xs, ys, _, _ = data
    return TransferRegressor(backbone_params={"hidden_sizes": (8,)}, **FAST).fit(Xs, ys)


@pytest.fixture(scope="module")
def saved(fitted, tmp_path_factory):
    return save(fitted, tmp_path_factory.mktemp("saved") / "model.skt")


def _round_trip(est, tmp_path, name="model.skt"):
    return load(save(est, tmp_path / name))


def _same_fit(a, b, X):
    """``b`` predicts, scores and describes itself as ``a`` does."""
    np.testing.assert_array_equal(a.predict(X), b.predict(X))
    assert a.score(X, a.predict(X) + 1.0) == b.score(X, b.predict(X) + 1.0)
    assert repr(a.get_params(deep=False)) == repr(b.get_params(deep=False)) or (
        isinstance(b.backbone, SourceNotSaved)
    )
    for name in ("n_features_in_", "sample_shape_", "input_shape_", "solver_"):
        assert getattr(a, name) == getattr(b, name)
    for name in ("input_mean_", "input_scale_", "y_mean_", "y_scale_"):
        left, right = getattr(a, name), getattr(b, name)
        assert (left is None and right is None) or np.array_equal(left, right)
        assert right is None or right.dtype == left.dtype
    assert [row["train_loss"] for row in a.history_] == [
        row["train_loss"] for row in b.history_
    ]
    assert states_equal(a.net_.module_, b.net_.module_)


# ---------------------------------------------------------------- round trips
@pytest.mark.parametrize(
    "backbone, params, input_shape, head",
    [
        ("linear", None, None, "auto"),
        ("mlp", {"hidden_sizes": (8,)}, None, "mlp"),
        ("cnn1d", {"channels": (2,), "kernel_size": 3}, (1, 6), "gaussian"),
        ("gru", {"hidden_size": 4}, (2, 3), "linear"),
    ],
)
def test_round_trip_every_registry_backbone(
    data, tmp_path, backbone, params, input_shape, head
):
    Xs, ys, Xt, _ = data
    est = TransferRegressor(
        backbone,
        backbone_params=params,
        input_shape=input_shape,
        head=head,
        **FAST,
    ).fit(Xs, ys)
    loaded = _round_trip(est, tmp_path)
    assert type(loaded) is TransferRegressor
    _same_fit(est, loaded, Xt)
    if head == "gaussian":
        for a, b in zip(est.predict(Xt, return_std=True), loaded.predict(Xt, True)):
            np.testing.assert_array_equal(a, b)
    if backbone == "linear":  # a linear model is solved exactly
        assert loaded.solver_ == "closed_form"


@pytest.mark.parametrize("method", ["adabn", "dann", "coral"])
def test_round_trip_domain_adapt(data, fitted, tmp_path, method):
    Xs, ys, Xt, _ = data
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(len(Xt), np.nan)])
    est = DomainAdaptRegressor(fitted, method=method, **FAST).fit(X, y)
    loaded = _round_trip(est, tmp_path)
    _same_fit(est, loaded, Xt)
    assert loaded.method_ == method and loaded.da_weight_ == est.da_weight_
    if method == "adabn":  # per-domain statistics, used at predict time
        assert sorted(loaded.domain_stats_) == [-1, 0]
        source_rows = np.zeros(len(Xs), dtype=int)
        np.testing.assert_array_equal(
            est.predict(Xs, sample_domain=source_rows),
            loaded.predict(Xs, sample_domain=source_rows),
        )


def test_round_trip_keeps_parameters_of_every_kind(data, tmp_path):
    Xs, ys, Xt, _ = data
    est = TransferRegressor(
        backbone_params={"hidden_sizes": (8, 4)},
        optimizer=torch.optim.RMSprop,
        device=torch.device("cpu"),
        augment=[GaussianJitter(0.01)],
        lr=float("1e-3"),
        **FAST,
    ).fit(Xs, ys)
    loaded = _round_trip(est, tmp_path)
    assert loaded.optimizer is torch.optim.RMSprop
    assert loaded.backbone_params == {"hidden_sizes": (8, 4)}  # tuples stay tuples
    assert isinstance(loaded.device, torch.device)
    assert type(loaded.augment[0]) is GaussianJitter
    assert loaded.augment[0].get_params() == est.augment[0].get_params()
    _same_fit(est, loaded, Xt)


def test_feature_names_survive(data, tmp_path):
    pd = pytest.importorskip("pandas")
    Xs, ys, Xt, _ = data
    columns = [f"x{i}" for i in range(Xs.shape[1])]
    est = TransferRegressor("linear", **FAST).fit(pd.DataFrame(Xs, columns=columns), ys)
    loaded = _round_trip(est, tmp_path)
    np.testing.assert_array_equal(loaded.feature_names_in_, est.feature_names_in_)
    assert loaded.feature_names_in_.dtype == object
    frame = pd.DataFrame(Xt, columns=columns)
    np.testing.assert_array_equal(loaded.predict(frame), est.predict(frame))


def test_round_trip_ensemble(data, fitted, tmp_path):
    _, _, Xt, yt = data
    est = TransferEnsemble(
        TransferRegressor(fitted, **FAST),
        n_members=2,
        member_params=[{"finetune": "full"}, {"finetune": "linear_probe"}],
        random_state=0,
    ).fit(Xt, yt)
    loaded = _round_trip(est, tmp_path)
    for a, b in zip(est.predict(Xt, return_std=True), loaded.predict(Xt, True)):
        np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(loaded.seeds_, est.seeds_)
    assert [m.finetune for m in loaded.estimators_] == ["full", "linear_probe"]
    # the source is left out, as in a pickle
    assert isinstance(loaded.estimator.backbone, SourceNotSaved)


# --------------------------------------------------- what a loaded model can do
def test_loaded_model_transfers_as_the_original(data, fitted, saved):
    _, _, Xt, yt = data
    loaded = load(saved)
    from_original = TransferRegressor(fitted, **FAST).fit(Xt, yt)
    from_loaded = TransferRegressor(loaded, **FAST).fit(Xt, yt)
    np.testing.assert_array_equal(from_original.predict(Xt), from_loaded.predict(Xt))
    # and it fits again from its registry backbone, as the original does
    np.testing.assert_array_equal(
        loaded.fit(Xt, yt).predict(Xt),
        TransferRegressor(**fitted.get_params()).fit(Xt, yt).predict(Xt),
    )


def test_a_transferred_model_saves_again_after_load_and_pickle(data, fitted, tmp_path):
    _, _, Xt, yt = data
    est = TransferRegressor(fitted, **FAST).fit(Xt, yt)
    loaded = _round_trip(est, tmp_path, "first.skt")
    assert isinstance(loaded.backbone, SourceNotSaved)
    again = _round_trip(loaded, tmp_path, "second.skt")
    np.testing.assert_array_equal(again.predict(Xt), est.predict(Xt))
    unpickled = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(
        _round_trip(unpickled, tmp_path, "third.skt").predict(Xt), est.predict(Xt)
    )
    with pytest.raises(ValueError, match="set_params\\(backbone=source\\)"):
        loaded.fit(Xt, yt)  # as after a pickle: the source was left out
    refit = loaded.set_params(backbone=fitted).fit(Xt, yt)
    np.testing.assert_array_equal(refit.predict(Xt), est.predict(Xt))


def test_keep_source_saves_the_source_along(data, fitted, tmp_path):
    _, _, Xt, yt = data
    est = TransferRegressor(fitted, keep_source=True, **FAST).fit(Xt, yt)
    loaded = _round_trip(est, tmp_path)
    assert type(loaded.backbone) is TransferRegressor
    np.testing.assert_array_equal(loaded.backbone.predict(Xt), fitted.predict(Xt))
    np.testing.assert_array_equal(loaded.predict(Xt), est.predict(Xt))
    refit = TransferRegressor(fitted, keep_source=True, **FAST).fit(Xt, yt)
    np.testing.assert_array_equal(loaded.fit(Xt, yt).predict(Xt), refit.predict(Xt))


# ---------------------------------------------------------------- no pickle
def test_load_runs_no_unpickler(saved, fitted, data, monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("load unpickled something")

    for owner, name in [
        (pickle, "loads"),
        (pickle, "load"),
        (pickle, "Unpickler"),
        (cloudpickle, "loads"),
        (torch, "load"),
    ]:
        monkeypatch.setattr(owner, name, refuse)
    loaded = load(saved)
    np.testing.assert_array_equal(loaded.predict(data[2]), fitted.predict(data[2]))


def test_file_is_json_and_safetensors_only(saved):
    with zipfile.ZipFile(saved) as archive:
        assert sorted(archive.namelist()) == ["estimator.json", "model.safetensors"]
        document = json.loads(archive.read("estimator.json"))
        blob = archive.read("model.safetensors")
    assert document["version"] == FORMAT_VERSION
    assert document["estimator"]["class"] == "TransferRegressor"
    # safetensors: an 8-byte header length, then a JSON header
    header = json.loads(blob[8 : 8 + int.from_bytes(blob[:8], "little")])
    assert all(v["dtype"] in ("F32", "F64") for k, v in header.items() if k[0] != "_")
    for data in (json.dumps(document).encode(), blob):
        assert b"\x80\x04\x95" not in data and b"\x80\x05\x95" not in data


# --------------------------------------------------------------- bad files
def _rewrite(path, out, edit=None, tensors=None, members=None):
    with zipfile.ZipFile(path) as archive:
        document = json.loads(archive.read("estimator.json"))
        blob = archive.read("model.safetensors")
    if edit is not None:
        edit(document)
    if tensors is not None:
        blob = tensors(blob)
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("estimator.json", json.dumps(document))
        archive.writestr("model.safetensors", blob)
        for name, content in (members or {}).items():
            archive.writestr(name, content)
    return out


def _set(*keys, value):
    def edit(document):
        target = document
        for key in keys[:-1]:
            target = target[key]
        target[keys[-1]] = value

    return edit


def _extra_tensor(blob):
    from safetensors.torch import load as read
    from safetensors.torch import save as write

    tensors = read(blob)
    tensors["array/999"] = torch.zeros(1)
    return write(tensors)


def _wrong_shape(blob):
    from safetensors.torch import load as read
    from safetensors.torch import save as write

    tensors = read(blob)
    key = next(k for k in tensors if k.endswith("head.weight"))
    tensors[key] = torch.zeros(3, 3)
    return write(tensors)


def _drop_tensor(blob):
    from safetensors.torch import load as read
    from safetensors.torch import save as write

    tensors = read(blob)
    del tensors[next(k for k in tensors if k.endswith("head.bias"))]
    return write(tensors)


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(edit=_set("estimator", "class", value="os.system")), "not one of"),
        (dict(edit=_set("format", value="pickle")), "format"),
        (dict(edit=_set("version", value="1")), "version"),
        (dict(edit=_set("estimator", "params", "evil", value=1)), "no parameters"),
        (dict(edit=_set("estimator", "params", "lr", value=-1.0)), "invalid"),
        (
            dict(edit=_set("estimator", "params", "lr", value={"$": "os.system"})),
            "unknown",
        ),
        (
            dict(
                edit=_set(
                    "estimator",
                    "params",
                    "optimizer",
                    value={"$": "optimizer", "name": "eval"},
                )
            ),
            "not allowed",
        ),
        (dict(edit=_set("estimator", "fitted", "predict", value=1)), "fitted attr"),
        (dict(edit=_set("estimator", "fitted", "__class__", value=1)), "fitted attr"),
        (
            dict(edit=_set("estimator", "network", "head", value={"kind": "eval"})),
            "head",
        ),
        (dict(tensors=_extra_tensor), "belong to nothing"),
        (dict(tensors=_drop_tensor), "missing from the file"),
        (dict(tensors=_wrong_shape), "do not fit"),
        (dict(tensors=lambda blob: b"not safetensors"), "safetensors"),
        (dict(members={"payload.pkl": b"\x80\x04"}), "archive holds"),
    ],
)
def test_tampered_file_is_a_value_error(saved, tmp_path, change, message):
    bad = _rewrite(saved, tmp_path / "bad.skt", **change)
    with pytest.raises(ValueError, match=message):
        load(bad)


def test_not_a_file_of_ours(tmp_path):
    path = tmp_path / "model.skt"
    path.write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a file written by"):
        load(path)
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("estimator.json", "{not json")
        archive.writestr("model.safetensors", b"")
    with pytest.raises(ValueError, match="not valid JSON"):
        load(path)


def test_newer_format_version_says_upgrade(saved, tmp_path):
    bad = _rewrite(
        saved, tmp_path / "new.skt", _set("version", value=FORMAT_VERSION + 1)
    )
    with pytest.raises(ValueError, match="Upgrade sktransfer"):
        load(bad)


# ---------------------------------------------------------- user backbones
def _tiny(input_shape, width=3):
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(6, width))


def _other(input_shape, width=3):
    return torch.nn.Sequential(torch.nn.Linear(6, width), torch.nn.Tanh())


@pytest.mark.usefixtures("restore_registries")
def test_user_backbone_loads_where_registered(data, tmp_path):
    Xs, ys, Xt, _ = data
    register_backbone("tiny_persist", _tiny)
    est = TransferRegressor("tiny_persist", **FAST).fit(Xs, ys)
    path = save(est, tmp_path / "model.skt")
    del _REGISTRY.entries["tiny_persist"]
    with pytest.raises(ValueError, match=r"'tiny_persist'.*register_backbone"):
        load(path)
    register_backbone("tiny_persist", _other)  # the same name, another network
    with pytest.raises(ValueError, match="not the one the model was built with"):
        load(path)
    register_backbone("tiny_persist", _tiny, overwrite=True)
    np.testing.assert_array_equal(load(path).predict(Xt), est.predict(Xt))


# ------------------------------------------------------ refused on save
class _MyAdam(torch.optim.Adam):
    pass


@pytest.mark.parametrize(
    "params, message",
    [
        (dict(optimizer=_MyAdam), "only the optimizers of torch.optim"),
        (dict(head=torch.nn.Linear(8, 1)), "head"),
        (dict(random_state=np.random.RandomState(0)), "RandomState"),
        (dict(backbone=torch.nn.Linear(6, 8)), "register_backbone"),
    ],
)
def test_unsupported_parameter_is_refused_and_nothing_changes(
    data, tmp_path, params, message
):
    Xs, ys, Xt, _ = data
    settings = {**FAST, "backbone_params": {"hidden_sizes": (8,)}, **params}
    if "backbone" in params:
        settings.pop("backbone_params")
    est = TransferRegressor(**settings).fit(Xs, ys)
    before = dict(vars(est))
    prediction = est.predict(Xt)
    path = tmp_path / "model.skt"
    with pytest.raises(TypeError, match=message):
        save(est, path)
    assert not path.exists() and not list(tmp_path.iterdir())
    assert vars(est).keys() == before.keys()
    assert all(vars(est)[k] is v for k, v in before.items())
    np.testing.assert_array_equal(est.predict(Xt), prediction)


def test_unfitted_or_foreign_estimator_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        save(TransferRegressor(), tmp_path / "model.skt")
    from sklearn.linear_model import Ridge

    with pytest.raises(TypeError, match="TransferRegressor"):
        save(Ridge(), tmp_path / "model.skt")


def test_a_model_transferred_from_a_pretrainer_round_trips(data, tmp_path):
    from sktransfer import SelfSupervisedPretrainer

    Xs, _, Xt, yt = data
    pre = SelfSupervisedPretrainer(
        backbone_params={"hidden_sizes": (8,)}, max_epochs=2, random_state=0
    ).fit(Xs)
    est = TransferRegressor(pre, **FAST).fit(Xt, yt)
    loaded = _round_trip(est, tmp_path)
    assert isinstance(loaded.backbone, SourceNotSaved)
    _same_fit(est, loaded, Xt)
    # a pre-trainer cannot travel along (it has its own save)
    kept = TransferRegressor(pre, keep_source=True, **FAST).fit(Xt, yt)
    with pytest.raises(TypeError, match="set keep_source=False"):
        save(kept, tmp_path / "kept.skt")


def test_an_augmentation_outside_the_allow_list_is_refused(fitted, tmp_path):
    from sklearn.preprocessing import FunctionTransformer

    from sktransfer.augmentation import ChemotoolsAugmentation

    est = TransferRegressor(**fitted.get_params())
    est.__dict__.update(vars(fitted))  # fitted, then given another augment
    est.augment = ChemotoolsAugmentation(FunctionTransformer())
    with pytest.raises(TypeError, match="ChemotoolsAugmentation"):
        save(est, tmp_path / "model.skt")
    assert not list(tmp_path.iterdir())


def test_the_user_guide_section_runs(tmp_path, monkeypatch):
    import re
    from pathlib import Path

    page = (Path(__file__).resolve().parents[1] / "docs" / "user_guide.md").read_text()
    section = page.split("## 9. Saving and loading without pickle")[1]
    block = re.findall(r"```python\n(.*?)```", section, flags=re.S)[0]
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "docs/user_guide.md", "exec"), namespace)
    assert (tmp_path / "target.skt").exists()
    assert namespace["next_model"].n_iter_ == 5


def test_a_model_from_a_missing_device_predicts_on_the_cpu(
    saved, data, fitted, tmp_path
):
    bad = _rewrite(
        saved,
        tmp_path / "gpu.skt",
        _set("estimator", "fitted", "device_", value="cuda:7"),
    )
    with pytest.warns(UserWarning, match="'cuda:7'"):
        loaded = load(bad)
    assert loaded.device_ == "cpu"
    np.testing.assert_array_equal(loaded.predict(data[2]), fitted.predict(data[2]))


def test_a_source_shared_by_members_is_saved_once(data, fitted, tmp_path):
    _, _, Xt, yt = data
    est = TransferEnsemble(
        TransferRegressor(fitted, keep_source=True, **FAST), n_members=2, random_state=0
    ).fit(Xt, yt)
    path = save(est, tmp_path / "model.skt")
    with zipfile.ZipFile(path) as archive:
        text = archive.read("estimator.json").decode()
    assert text.count('"$": "ref"') == 2  # the 2 members refer to the template's
    loaded = load(path)
    source = loaded.estimator.backbone
    assert type(source) is TransferRegressor
    assert all(member.backbone is source for member in loaded.estimators_)
    np.testing.assert_array_equal(source.predict(Xt), fitted.predict(Xt))
    np.testing.assert_array_equal(loaded.predict(Xt), est.predict(Xt))
