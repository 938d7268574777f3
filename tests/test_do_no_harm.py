"""Defaults and settings that did harm silently (issue 11, the bugs).

Each test failed before its fix: semi-supervised weights counted the labelled
target rows twice under balanced batches; ``source_only`` scaled its inputs
with the unlabelled target rows; an adaptation loss on a parameter-free
backbone did nothing, silently; parameters that cannot act were ignored
silently.
"""

import numpy as np
import pytest
import torch

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._batches import BalancedIterator, TensorData
from sktransfer.adaptation import get_method, list_methods
from sktransfer.data import domain_masks
from sktransfer.datasets import make_domain_shift

TINY = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=3, random_state=0)
WITH_LOSS = [m for m in list_methods() if get_method(m).has_loss]


def _semi_supervised(n_source=300, n_target=120, n_labelled=6, seed=0):
    Xs, ys, Xt, yt = make_domain_shift(n_source, n_target, random_state=seed)
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(n_target, np.nan)])
    y[n_source : n_source + n_labelled] = yt[:n_labelled]
    domain = np.r_[np.zeros(n_source, int), -np.ones(n_target, int)]
    return X, y, domain


@pytest.mark.parametrize("method", WITH_LOSS)
@pytest.mark.parametrize("batch_size", [16, 64])
def test_labelled_target_rows_weigh_as_much_as_the_source_over_an_epoch(
    method, batch_size
):
    """Weights times how often the batches draw each row: S+T counted once."""
    _, y, domain = _semi_supervised()
    est = DomainAdaptRegressor(method=method, batch_size=batch_size, **TINY)
    masks = domain_masks(y.reshape(-1, 1), domain)
    plan_weights = est._loss_weights(masks, None, _PlanWith(method))
    data = TensorData(
        torch.zeros(len(y), 1),
        torch.zeros(len(y), 1),
        torch.from_numpy(plan_weights),
        torch.from_numpy(masks.target),
    )
    total = {"source": 0.0, "target": 0.0}
    for batch in BalancedIterator(data, batch_size, torch.Generator().manual_seed(0)):
        w, n_source = batch.target.weight, batch.target.n_source
        total["source"] += float(w[:n_source].sum())
        total["target"] += float(w[n_source:].sum())
    assert total["target"] == pytest.approx(total["source"], rel=0.15)


class _PlanWith:
    def __init__(self, method):
        self.adaptation = get_method(method)


def test_source_only_is_the_source_only_model():
    X, y, _ = _semi_supervised(n_labelled=0)
    labelled = ~np.isnan(y)
    da = DomainAdaptRegressor(method="source_only", **TINY).fit(X, y)
    tr = TransferRegressor(**TINY).fit(X[labelled], y[labelled])
    np.testing.assert_allclose(da.input_mean_, tr.input_mean_)
    np.testing.assert_allclose(da.input_scale_, tr.input_scale_)
    np.testing.assert_allclose(da.predict(X), tr.predict(X), rtol=1e-4, atol=1e-5)


def test_with_an_adaptation_loss_the_statistics_still_use_every_row(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="coral", **TINY).fit(X, y)
    np.testing.assert_allclose(est.input_mean_, X.mean(axis=0), rtol=1e-6)


@pytest.mark.parametrize("method", WITH_LOSS)
def test_a_loss_on_a_parameter_free_backbone_warns_and_is_source_only(uda, method):
    X, y, _, _ = uda
    est = DomainAdaptRegressor("linear", method=method)
    with pytest.warns(UserWarning, match="cannot act") as record:
        est.fit(X, y)
    assert record[0].filename == __file__
    plain = DomainAdaptRegressor("linear", method="source_only").fit(X, y)
    np.testing.assert_allclose(est.predict(X), plain.predict(X))
    assert est.solver_ == "closed_form"


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(l2sp=0.1), r"l2sp=0\.1 has no effect: nothing is pretrained"),
        (dict(backbone_lr=0.5), r"backbone_lr=0\.5 has no effect"),
    ],
)
def test_fine_tuning_parameters_that_cannot_act_warn(shift_data, params, match):
    Xs, ys, _, _ = shift_data
    with pytest.warns(UserWarning, match=match):
        TransferRegressor("linear", **params).fit(Xs, ys)


def test_fine_tuning_parameters_that_act_do_not_warn(shift_data, source, recwarn):
    _, _, Xt, yt = shift_data
    TransferRegressor(source, l2sp=0.1, backbone_lr=0.5, max_epochs=2).fit(Xt, yt)
    assert not [w for w in recwarn if "has no effect" in str(w.message)]


@pytest.mark.parametrize(
    ("params", "match"),
    [
        (dict(da_weight=1.0), r"da_weight=1\.0 has no effect"),
        (dict(da_ramp="linear"), r"da_ramp='linear' has no effect"),
    ],
)
@pytest.mark.parametrize("method", ["source_only", "adabn"])
def test_adaptation_weights_without_a_loss_warn(uda, params, match, method):
    X, y, _, _ = uda
    with pytest.warns(UserWarning, match=match):
        DomainAdaptRegressor(method=method, **TINY, **params).fit(X, y)


# ------------------------------------------------------ out-of-range inputs
def _far_rows(n=200, seed=0):
    rng = np.random.RandomState(seed)
    X = rng.normal(size=(n, 3))
    y = np.sin(X[:, 0]) + X[:, 1]
    far = X[:20].copy()
    far[:, 0] += 8.0  # 8 standard deviations beyond anything seen in training
    return X, y, far


def test_predicting_far_outside_the_training_range_warns_naming_the_features():
    import pandas as pd

    X, y, far = _far_rows()
    frame = pd.DataFrame(X, columns=["temp", "flow", "load"])
    est = TransferRegressor(**TINY).fit(frame, y)
    with pytest.warns(
        UserWarning, match=r"far outside the training range.*temp \("
    ) as w:
        est.predict(pd.DataFrame(far, columns=frame.columns))
    assert w[0].filename == __file__
    assert "flow" not in str(w[0].message)


def test_inputs_within_the_range_do_not_warn(recwarn):
    X, y, _ = _far_rows()
    TransferRegressor(**TINY).fit(X, y).predict(X)
    assert not [w for w in recwarn if "training range" in str(w.message)]


def test_clip_inputs_bounds_what_the_network_sees():
    X, y, far = _far_rows()
    est = TransferRegressor(clip_inputs=True, **TINY).fit(X, y)
    edge = far.copy()
    _, high = est.input_range_
    edge[:, 0] = est.input_mean_[0] + high[0] * est.input_scale_[0]  # the max seen
    with pytest.warns(UserWarning, match="training range"):
        clipped = est.predict(far)
    np.testing.assert_allclose(clipped, est.predict(edge), rtol=1e-5, atol=1e-5)
    plain = TransferRegressor(**TINY).fit(X, y)
    assert not np.allclose(plain.predict(far), clipped)


def test_a_fine_tuned_model_knows_the_source_range_too(recwarn):
    X, y, _ = _far_rows()
    source = TransferRegressor(**TINY).fit(X, y)
    few = np.argsort(X[:, 0])[90:110]  # 20 rows from the middle of feature 0
    tuned = TransferRegressor(source, max_epochs=2).fit(X[few], y[few])
    low, high = tuned.input_range_
    assert (low <= source.input_range_[0]).all()
    assert (high >= source.input_range_[1]).all()
    tuned.predict(X)  # within the source's range: no warning
    assert not [w for w in recwarn if "training range" in str(w.message)]


# ------------------------------------------------- method="auto" does no harm
SMALL = {"backbone_params": {"hidden_sizes": (16,)}, "max_epochs": 15, "lr": 3e-3}


def _stack(Xs, ys, Xt, yt, n_labelled):
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, np.full(len(Xt), np.nan)]
    y[len(Xs) : len(Xs) + n_labelled] = yt[:n_labelled]
    domain = np.r_[np.zeros(len(Xs), int), -np.ones(len(Xt), int)]
    return X, y, domain


def test_auto_is_the_default_and_without_labels_trains_source_only(uda):
    X, y, _, _ = uda
    assert DomainAdaptRegressor().method == "auto"
    auto = DomainAdaptRegressor(random_state=0, **SMALL).fit(X, y)
    assert auto.method_ == "source_only" and auto.method_scores_ is None
    plain = DomainAdaptRegressor(method="source_only", random_state=0, **SMALL)
    np.testing.assert_array_equal(auto.predict(X), plain.fit(X, y).predict(X))


def test_auto_with_too_few_labels_trains_source_only():
    Xs, ys, Xt, yt = make_domain_shift(200, 100, random_state=0)
    X, y, domain = _stack(Xs, ys, Xt, yt, n_labelled=5)
    auto = DomainAdaptRegressor(random_state=0, **SMALL)
    auto.fit(X, y, sample_domain=domain)
    assert auto.method_ == "source_only" and auto.method_scores_ is None


def test_auto_chooses_per_domain_scaling_for_an_instrument_shift():
    # the target's inputs are the source's under a gain and an offset
    rng = np.random.RandomState(0)
    coef = rng.normal(size=6)
    Xs = rng.normal(size=(300, 6))
    Xt_clean = rng.normal(size=(200, 6))
    Xt = Xt_clean * 3.0 + 5.0
    ys, yt = Xs @ coef, Xt_clean @ coef
    X, y, domain = _stack(Xs, ys, Xt[:150], yt[:150], n_labelled=12)
    auto = DomainAdaptRegressor(random_state=0, **SMALL)
    auto.fit(X, y, sample_domain=domain)
    assert set(auto.method_scores_) == {"source_only", "adabn", "rsd"}
    assert auto.method_ == "adabn"
    named = DomainAdaptRegressor(method="adabn", random_state=0, **SMALL)
    named.fit(X, y, sample_domain=domain)
    np.testing.assert_allclose(auto.predict(Xt[150:]), named.predict(Xt[150:]))
    plain = DomainAdaptRegressor(method="source_only", random_state=0, **SMALL)
    plain.fit(X, y, sample_domain=domain)
    assert auto.score(Xt[150:], yt[150:]) > plain.score(Xt[150:], yt[150:]) + 0.2


def test_auto_rejects_per_domain_scaling_where_the_relation_holds_in_raw_units():
    # a climate shift: the target is warmer, y = tomorrow ~ today in raw units,
    # so standardising each domain on its own maps the target onto the source
    rng = np.random.RandomState(1)
    Xs = rng.normal(50.0, 5.0, size=(300, 3))
    Xt = rng.normal(75.0, 2.0, size=(200, 3))
    ys = Xs.mean(1) + rng.normal(0, 0.5, 300)
    yt = Xt.mean(1) + rng.normal(0, 0.5, 200)
    X, y, domain = _stack(Xs, ys, Xt[:150], yt[:150], n_labelled=10)
    linear = {"backbone": "linear"}
    auto = DomainAdaptRegressor(random_state=0, **linear).fit(
        X, y, sample_domain=domain
    )
    # a loss cannot act on the parameter-free linear backbone: not a candidate
    assert set(auto.method_scores_) == {"source_only", "adabn"}
    assert auto.method_scores_["adabn"] > auto.method_scores_["source_only"]
    assert auto.method_ != "adabn"
    adabn = DomainAdaptRegressor(method="adabn", **linear)
    adabn.fit(X, y, sample_domain=domain)
    assert auto.score(Xt[150:], yt[150:]) > adabn.score(Xt[150:], yt[150:])


def test_auto_leaves_the_estimator_unchanged_when_fit_fails():
    Xs, ys, Xt, yt = make_domain_shift(60, 40, random_state=0)
    X, y, domain = _stack(Xs, ys, Xt, yt, n_labelled=10)
    est = DomainAdaptRegressor(random_state=0, **SMALL)
    before = dict(est.__dict__)
    with pytest.raises(ValueError, match="sample_weight"):
        est.fit(X, y, sample_domain=domain, sample_weight=-np.ones(len(X)))
    assert est.__dict__ == before


# ---------------------------------------------- finetune="auto" does no harm
def _finetune_problem():
    Xs, ys, Xt, yt = make_domain_shift(200, 120, shift="concept", random_state=0)
    tiny = {"backbone_params": {"hidden_sizes": (8,)}, "max_epochs": 5}
    source = TransferRegressor(random_state=0, **tiny).fit(Xs, ys)
    return source, Xt, yt


def test_finetune_auto_with_few_rows_is_full_fine_tuning():
    source, Xt, yt = _finetune_problem()
    auto = TransferRegressor(source, finetune="auto", max_epochs=3, random_state=0)
    auto.fit(Xt[:9], yt[:9])
    assert auto.finetune_ == "full" and auto.finetune_scores_ is None
    full = TransferRegressor(source, max_epochs=3, random_state=0).fit(Xt[:9], yt[:9])
    np.testing.assert_array_equal(auto.predict(Xt), full.predict(Xt))
    assert full.finetune_ == "full" and full.finetune_scores_ is None


def test_finetune_auto_without_pretrained_parameters_does_not_cross_validate():
    X, y = make_domain_shift(60, 10, random_state=0)[:2]
    scratch = TransferRegressor(finetune="auto", max_epochs=2, random_state=0)
    assert scratch.fit(X, y).finetune_scores_ is None
    linear = TransferRegressor(TransferRegressor("linear").fit(X, y), finetune="auto")
    assert linear.fit(X, y).finetune_scores_ is None


@pytest.mark.parametrize("l2sp", ["auto", 0.5])
def test_finetune_auto_chooses_the_lowest_cross_validated_error(l2sp):
    source, Xt, yt = _finetune_problem()
    auto = TransferRegressor(
        source, finetune="auto", l2sp=l2sp, max_epochs=4, random_state=0
    ).fit(Xt[:30], yt[:30])
    scores = auto.finetune_scores_
    expected = (
        {"full, l2sp=0.1", "full, l2sp=1", "lp_ft, l2sp=0.1", "linear_probe, l2sp=0.1"}
        if l2sp == "auto"
        else {"full, l2sp=0.5", "lp_ft, l2sp=0.5", "linear_probe, l2sp=0.5"}
    )
    assert set(scores) == expected
    # the lowest score, or the baseline (the first candidate) when its
    # advantage is within one standard error (tests/test_choice.py)
    baseline = next(iter(scores))
    best = min(scores, key=scores.get)
    chosen_name = f"{auto.finetune_}, l2sp={auto.l2sp_:g}"
    assert chosen_name in (best, baseline)
    strategy, chosen = chosen_name.split(", l2sp=")
    assert auto.finetune_ == strategy and auto.l2sp_ == pytest.approx(float(chosen))
    named = TransferRegressor(
        source, finetune=strategy, l2sp=float(chosen), max_epochs=4, random_state=0
    ).fit(Xt[:30], yt[:30])
    np.testing.assert_array_equal(auto.predict(Xt), named.predict(Xt))
