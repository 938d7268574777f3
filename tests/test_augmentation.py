"""Augmentation of training batches (``sktransfer.augmentation``, ``augment=``)."""

import pickle
import re
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY, uda_stack
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.base import clone
from sklearn.model_selection import GridSearchCV

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer import augmentation as aug_module
from sktransfer._augment import BatchAugmenter
from sktransfer._batches import Batch, Target
from sktransfer.adaptation import list_methods
from sktransfer.augmentation import (
    Augmentation,
    BaselineShift,
    ChemotoolsAugmentation,
    CMixup,
    GaussianJitter,
    Mixup,
    MultiplicativeScatter,
    RandomScaling,
    WavelengthShift,
    cmixup_probabilities,
)
from sktransfer.finetuning import list_strategies

BUILTIN = [
    GaussianJitter(std=0.1),
    RandomScaling(std=0.1),
    BaselineShift(std=0.1, slope_std=0.1),
    MultiplicativeScatter(),
    WavelengthShift(max_shift=1.5),
    Mixup(alpha=0.4),
    CMixup(alpha=2.0, bandwidth=0.5),
]
DEVICES = [
    "cpu",
    pytest.param(
        "cuda",
        marks=pytest.mark.skipif(
            not torch.cuda.is_available(), reason="CUDA is not available"
        ),
    ),
]
FAST = dict(TINY, max_epochs=2)
FAST_T = dict(max_epochs=4, random_state=0)


def _batch(shape, dtype=torch.float32, device="cpu", seed=0):
    g = torch.Generator().manual_seed(seed)
    X = torch.randn(shape, generator=g, dtype=torch.float64).to(device, dtype)
    y = torch.randn((shape[0], 1), generator=g, dtype=torch.float64).to(device, dtype)
    w = torch.rand(shape[0], generator=g, dtype=torch.float64).to(device, dtype)
    return X, y, w + 0.5


def _gen(seed=0, device="cpu"):
    return torch.Generator(device=device).manual_seed(seed)


class Spy(Augmentation):
    """Counts the rows it sees; changes nothing (a class attribute log)."""

    log = []

    def __call__(self, X, y, weight, generator):
        Spy.log.append(tuple(X.shape))
        return X, y, weight


class Wreck(Augmentation):
    """Would ruin any batch it touched."""

    def __call__(self, X, y, weight, generator):
        return X + 1e6, y, weight


class Reshaper(Augmentation):
    def __call__(self, X, y, weight, generator):
        return X[:, :1], y, weight


# ---------------------------------------------------- the augmentation objects
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("shape", [(9, 12), (9, 2, 12)])
@pytest.mark.parametrize("aug", BUILTIN, ids=repr)
def test_shapes_dtypes_and_devices_are_kept_and_inputs_untouched(
    aug, shape, dtype, device
):
    X, y, w = _batch(shape, dtype, device)
    before = [t.clone() for t in (X, y, w)]
    X2, y2, w2 = aug(X, y, w, _gen(device=device))
    for new, old in zip((X2, y2, w2), (X, y, w)):
        assert new.shape == old.shape and new.dtype == old.dtype
        assert new.device == old.device and torch.isfinite(new).all()
    assert all(torch.equal(a, b) for a, b in zip((X, y, w), before))
    assert not torch.equal(X2, X)
    if not aug.mixes_rows:
        assert y2 is y and w2 is w


@pytest.mark.parametrize("aug", BUILTIN, ids=repr)
def test_same_generator_seed_same_batch_other_seed_other_batch(aug):
    X, y, w = _batch((16, 10))
    first = aug(X, y, w, _gen(1))
    again = aug(X, y, w, _gen(1))
    other = aug(X, y, w, _gen(2))
    assert all(torch.equal(a, b) for a, b in zip(first, again))
    assert not torch.equal(first[0], other[0])


def test_mixup_makes_convex_combinations_of_inputs_targets_and_weights():
    v = torch.arange(10.0).reshape(10, 1)
    X, y, w = Mixup(alpha=1.0)(v.clone(), v.clone(), v.ravel() + 1, _gen())
    assert torch.allclose(X, y) and torch.allclose(w, y.ravel() + 1)
    assert ((y >= 0) & (y <= 9)).all() and not torch.equal(y, v)
    # none given: no weights come back
    assert Mixup()(v, v, None, _gen())[2] is None


def test_mixup_and_cmixup_leave_a_single_row_alone():
    X, y, w = _batch((1, 4))
    for aug in (Mixup(), CMixup()):
        assert all(a is b for a, b in zip(aug(X, y, w, _gen()), (X, y, w)))


def test_baseline_shift_and_scatter_act_per_spectrum_relative_to_its_spread():
    X = torch.linspace(0, 1, 50).repeat(200, 1) * 10.0
    spread = X.std(dim=1, correction=0)[0]
    out = BaselineShift(std=0.1)(X, None, None, _gen())[0] - X
    assert torch.allclose(out, out[:, :1].expand_as(out), atol=1e-5)
    assert float(out[:, 0].std()) == pytest.approx(0.1 * float(spread), rel=0.2)
    scattered = MultiplicativeScatter(std=0.05, offset_std=0.0)(X, None, None, _gen())
    ratio = scattered[0][:, 1:] / X[:, 1:]
    assert torch.allclose(ratio, ratio[:, :1].expand_as(ratio), atol=1e-5)


def test_wavelength_shift_interpolates_within_the_shift():
    X = torch.arange(20.0).repeat(50, 1)  # a ramp: a shift adds the shift
    out = WavelengthShift(max_shift=0.7)(X, None, None, _gen())[0]
    inner = (out - X)[:, 2:-2]
    assert torch.allclose(inner, inner[:, :1].expand_as(inner), atol=1e-5)
    assert inner.abs().max() <= 0.7 + 1e-6 and inner.abs().max() > 0.3
    assert torch.equal(WavelengthShift(0.0)(X, None, None, _gen())[0], X)


# ------------------------------------------------------------- C-Mixup's kernel
@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.floats(-5, 5), min_size=2, max_size=12),
    st.floats(0.05, 5.0),
)
def test_cmixup_probabilities_follow_the_label_kernel(labels, bandwidth):
    y = torch.tensor(labels, dtype=torch.float64).reshape(-1, 1)
    p = cmixup_probabilities(y, bandwidth)
    n = len(labels)
    assert torch.allclose(p.sum(1), torch.ones(n, dtype=p.dtype))
    assert (p.diagonal() == 0).all()
    d2 = (y - y.T) ** 2
    for i in range(n):
        others = [j for j in range(n) if j != i]
        expect = torch.exp(-(d2[i, others] - d2[i, others].min()) / (2 * bandwidth**2))
        assert torch.allclose(p[i, others], expect / expect.sum(), atol=1e-9)


def test_cmixup_probabilities_limits_uniform_and_nearest():
    y = torch.tensor([[0.0], [1.0], [3.0], [7.0]])
    wide = cmixup_probabilities(y, 1e6)
    off_diagonal = ~torch.eye(4, dtype=torch.bool)
    assert torch.allclose(
        wide[off_diagonal], torch.full((12,), 1 / 3, dtype=wide.dtype)
    )
    narrow = cmixup_probabilities(y, 1e-3)
    assert narrow.argmax(1).tolist() == [1, 0, 1, 2]
    assert torch.allclose(narrow.max(1).values, torch.ones(4, dtype=narrow.dtype))
    # so small that 2 * bandwidth**2 underflows: still the nearest label
    # (it was a softmax of -inf everywhere: NaN, and torch.multinomial raised)
    tiny = cmixup_probabilities(y, 1e-200)
    assert torch.equal(tiny, narrow.round())


@settings(max_examples=8, deadline=None)
@given(st.lists(st.floats(-3, 3), min_size=3, max_size=6), st.floats(0.2, 3.0))
def test_cmixup_partner_frequencies_follow_the_kernel(labels, bandwidth):
    y = torch.tensor(labels, dtype=torch.float32).reshape(-1, 1)
    aug, g, n = CMixup(bandwidth=bandwidth), _gen(3), len(labels)
    draws = torch.stack([aug._partners(y, g) for _ in range(1500)])
    freq = torch.stack([(draws == j).double().mean(0) for j in range(n)], dim=1)
    assert torch.allclose(freq, cmixup_probabilities(y, bandwidth), atol=0.05)


def test_cmixup_mixes_only_near_labels_mixup_any():
    y = torch.tensor([[0.0], [0.05], [10.0], [10.05]]).repeat(8, 1)
    X = y.clone()
    _, near, _ = CMixup(alpha=1.0, bandwidth=0.2)(X, y, None, _gen())
    assert ((near - y).abs() <= 0.05 + 1e-6).all()
    _, far, _ = Mixup(alpha=1.0)(X, y, None, _gen())
    assert ((far - y).abs() > 1).any()


# --------------------------------------------- how the net applies them to batches
def test_mixing_stays_within_labelled_rows_of_one_side():
    y = torch.cat([torch.rand(6, 1), 10 + torch.rand(6, 1)])  # source, target
    w = torch.ones(12)
    w[9:] = 0  # three unlabelled target rows
    X = y.repeat(1, 3)
    side = torch.arange(12) >= 6
    batch = Batch(X, Target(y, w, 6))
    X2, (y2, w2, n_source) = BatchAugmenter((Mixup(alpha=1.0),), _gen())(batch, side)
    assert n_source == 6
    assert ((y2[:6] >= 0) & (y2[:6] <= 1)).all()  # source with source only
    assert ((y2[6:9] >= 10) & (y2[6:9] <= 11)).all()
    assert torch.equal(X2[9:], X[9:]) and torch.equal(w2[9:], w[9:])
    assert not torch.equal(X2[:9], X[:9])


def test_raw_augmentations_see_original_units():
    raw = torch.linspace(100, 110, 8, dtype=torch.float64).repeat(5, 1)
    mean, scale = raw.mean(0), torch.full((8,), 3.0, dtype=torch.float64)
    scaled = ((raw - mean) / scale).float()
    augmenter = BatchAugmenter((BaselineShift(std=0.2),), _gen(), (mean, scale))
    X2 = augmenter(Batch(scaled, Target(torch.zeros(5, 1), None, None)))[0]
    shift = X2.double() * scale + mean - raw  # one offset per spectrum, raw units
    assert X2.dtype == torch.float32
    assert torch.allclose(shift, shift[:, :1].expand_as(shift), atol=1e-3)


def test_an_augmentation_that_changes_the_shape_is_an_error():
    X, y = _batch((4, 6))[:2]
    with pytest.raises(ValueError, match="must keep the shapes"):
        BatchAugmenter((Reshaper(),), _gen())(Batch(X, Target(y, None, None)))


# ------------------------------------------------------------------ estimators
@pytest.fixture(scope="module")
def data():
    rng = np.random.RandomState(0)
    X = rng.normal(size=(60, 6))
    return X, X @ rng.normal(size=6) + 0.1 * rng.normal(size=60)


def test_training_batches_only_never_validation_or_predict(data):
    X, y = data
    Spy.log = []
    est = TransferRegressor(augment=Spy(), early_stopping=True, batch_size=16, **FAST)
    est.fit(X, y)
    n_train = len(X) - int(np.ceil(0.1 * len(X)))
    assert sum(shape[0] for shape in Spy.log) == FAST["max_epochs"] * n_train
    seen = len(Spy.log)
    before = est.predict(X)
    est.net_.augment = (Wreck(),)  # would ruin any batch it saw
    assert np.array_equal(est.predict(X), before) and len(Spy.log) == seen
    est.score(X, y)
    assert len(Spy.log) == seen


def test_a_noop_augmentation_changes_nothing_else(data):
    X, y = data
    plain = TransferRegressor(**FAST).fit(X, y).predict(X)
    noop = TransferRegressor(augment=[GaussianJitter(0.0), Spy()], **FAST).fit(X, y)
    assert np.array_equal(noop.predict(X), plain)  # same batches, same dropout


def test_same_random_state_same_predictions_other_seed_other(data):
    X, y = data
    augs = [GaussianJitter(0.1), CMixup()]

    def fit(seed):
        return TransferRegressor(augment=augs, **dict(FAST, random_state=seed))

    a, b, c = fit(0).fit(X, y), fit(0).fit(X, y), fit(1).fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert not np.allclose(a.predict(X), c.predict(X))
    plain = TransferRegressor(**FAST).fit(X, y)
    assert not np.allclose(a.predict(X), plain.predict(X))


def test_inputs_with_input_shape_reach_the_augmentation_as_sequences(data):
    X, y = data
    Spy.log = []
    est = TransferRegressor(
        "cnn1d",
        input_shape=(2, 3),
        backbone_params={"channels": (2,), "dense": 4},
        augment=[Spy(), WavelengthShift(0.5), BaselineShift()],
        max_epochs=2,
        random_state=0,
    )
    est.fit(X, y)
    assert {shape[1:] for shape in Spy.log} == {(2, 3)}
    three_d = X.reshape(len(X), 2, 3)
    Spy.log = []
    est.set_params(input_shape=None).fit(three_d, y)
    assert {shape[1:] for shape in Spy.log} == {(2, 3)}
    assert est.predict(three_d).shape == (len(X),)


@pytest.mark.parametrize("strategy", list_strategies())
def test_composes_with_every_finetuning_strategy(strategy, shift_data, source):
    _, _, Xt, yt = shift_data
    augs = [GaussianJitter(0.1), Mixup()]
    tuned = TransferRegressor(source, finetune=strategy, augment=augs, **FAST_T)
    plain = TransferRegressor(source, finetune=strategy, **FAST_T)
    pred = tuned.fit(Xt[:30], yt[:30]).predict(Xt)
    assert np.isfinite(pred).all() and tuned.solver_ == "gradient"
    assert not np.allclose(pred, plain.fit(Xt[:30], yt[:30]).predict(Xt))


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("method", list_methods())
def test_composes_with_every_adaptation_method(method):
    X, y, Xt, _ = uda_stack(n_source=60, n_target=30, n_test=10)
    y[-5:] = 0.0  # five labelled target rows
    augs = [BaselineShift(), CMixup()]
    kw = dict(method=method, **FAST)
    est = DomainAdaptRegressor(augment=augs, **kw).fit(X, y)
    plain = DomainAdaptRegressor(**kw).fit(X, y)
    assert np.isfinite(est.predict(Xt)).all()
    assert not np.allclose(est.predict(Xt), plain.predict(Xt))


def test_sample_weights_with_mixup(data):
    X, y = data
    w = np.r_[np.full(30, 3.0), np.ones(30)]
    est = TransferRegressor(augment=CMixup(), **FAST).fit(X, y, sample_weight=w)
    again = TransferRegressor(augment=CMixup(), **FAST).fit(X, y, sample_weight=w)
    assert np.array_equal(est.predict(X), again.predict(X))


def test_the_closed_form_cannot_augment(data):
    X, y = data
    est = TransferRegressor("linear", augment=GaussianJitter(), random_state=0)
    assert est.fit(X, y).solver_ == "gradient"
    assert TransferRegressor("linear").fit(X, y).solver_ == "closed_form"
    with pytest.raises(ValueError, match=r"closed_form.*augment"):
        est.set_params(solver="closed_form").fit(X, y)


def test_clone_pickle_and_grid_search(data):
    X, y = data
    est = TransferRegressor(augment=GaussianJitter(std=0.2), **FAST)
    copy = clone(est)
    assert copy.augment is not est.augment and copy.augment.std == 0.2
    assert est.get_params()["augment__std"] == 0.2
    est.fit(X, y)
    assert est.augment.get_params() == {"std": 0.2}  # not changed by fit
    restored = pickle.loads(pickle.dumps(est))
    assert np.array_equal(restored.predict(X), est.predict(X))
    search = GridSearchCV(est, {"augment__std": [0.0, 0.3]}, cv=2).fit(X, y)
    assert search.best_params_["augment__std"] in (0.0, 0.3)
    lists = GridSearchCV(est, {"augment": [None, [Mixup(), GaussianJitter()]]}, cv=2)
    assert len(lists.fit(X, y).cv_results_["params"]) == 2


@pytest.mark.parametrize(
    "augment, error, match",
    [
        ("jitter", ValueError, "augment"),
        ([GaussianJitter(), "jitter"], TypeError, r"augment\[1\].*'jitter'"),
        ([GaussianJitter(), 3], TypeError, r"augment\[1\]"),
        (GaussianJitter(std=-1.0), ValueError, r"GaussianJitter\(std=-1.0\)"),
        (Mixup(alpha=0), ValueError, "alpha must be a positive"),
        (CMixup(bandwidth=float("nan")), ValueError, "bandwidth"),
        (ChemotoolsAugmentation(GaussianJitter()), TypeError, "random_state"),
    ],
)
def test_bad_augment_values_are_named(data, augment, error, match):
    X, y = data
    est = TransferRegressor(augment=augment, **FAST)
    with pytest.raises(error, match=match):
        est.fit(X, y)
    assert not hasattr(est, "net_")
    if not isinstance(augment, str):  # a str fails scikit-learn's constraints
        # at the start of fit, before anything is built or trained
        with pytest.raises(error, match=match):
            est._check_params()


@pytest.mark.parametrize("device", DEVICES)
def test_fit_on_the_device(data, device):
    X, y = data
    augs = [GaussianJitter(), WavelengthShift(), CMixup()]
    est = TransferRegressor(augment=augs, device=device, **FAST).fit(X, y)
    assert est.device_ == device and np.isfinite(est.predict(X)).all()


def test_chemotools_transformers_through_the_adapter(data):
    chemo = pytest.importorskip("chemotools.augmentation")
    X, y = data
    aug = ChemotoolsAugmentation(chemo.ScatterShift(order=1, additive_scale=0.1))
    out = aug(*_batch((5, 6), torch.float32), _gen())
    assert out[0].dtype == torch.float32 and out[0].shape == (5, 6)
    a = TransferRegressor(augment=aug, **FAST).fit(X, y)
    b = TransferRegressor(augment=aug, **FAST).fit(X, y)
    assert np.array_equal(a.predict(X), b.predict(X))
    assert aug.transformer.random_state is None  # cloned, never set


def test_api_page_lists_the_public_names():
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    row = next(line for line in page.splitlines() if "sktransfer.augmentation" in line)
    listed = set(re.findall(r"`(?:sktransfer\.augmentation\.)?(\w+)`", row))
    assert listed >= set(aug_module.__all__)
