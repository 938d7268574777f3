"""Domain masks and loss weights (``sktransfer.data``), property-tested."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sktransfer.data import DomainMasks, domain_masks, loss_weights

SETTINGS = settings(max_examples=50, deadline=None)


# ------------------------------------------------------------------ masks
@st.composite
def targets_and_domains(draw):
    n = draw(st.integers(1, 30))
    n_outputs = draw(st.sampled_from([None, 1, 2, 3]))
    shape = (n,) if n_outputs is None else (n, n_outputs)
    y = draw(
        arrays(
            np.float64,
            shape,
            elements=st.one_of(
                st.floats(-1e6, 1e6),
                st.just(np.nan),
                st.sampled_from([np.inf, -np.inf]),
            ),
        )
    )
    domain = draw(arrays(np.int64, (n,), elements=st.integers(-3, 3)))
    return y, domain


def _finite_rows(y):
    return np.isfinite(y.reshape(len(y), -1)).all(axis=1)


@SETTINGS
@given(targets_and_domains())
def test_domain_masks_with_sample_domain(case):
    y, domain = case
    finite = _finite_rows(y)
    if np.any((domain >= 0) & ~finite):
        with pytest.raises(ValueError, match="source rows"):
            domain_masks(y, domain)
        return
    masks = domain_masks(y, domain)
    np.testing.assert_array_equal(masks.target, domain < 0)
    np.testing.assert_array_equal(masks.source, domain >= 0)
    np.testing.assert_array_equal(masks.labelled, finite)
    np.testing.assert_array_equal(masks.domain, domain)
    assert masks.n_target == int((domain < 0).sum())
    assert masks.target.dtype == bool and masks.labelled.dtype == bool


@SETTINGS
@given(targets_and_domains())
def test_domain_masks_integral_floats_and_lists_accepted(case):
    y, domain = case
    domain = np.where(_finite_rows(y), domain, -1)  # no unlabelled source rows
    from_int = domain_masks(y, domain)
    from_float = domain_masks(y, domain.astype(np.float64))
    from_list = domain_masks(y, domain.tolist())
    for other in (from_float, from_list):
        np.testing.assert_array_equal(other.target, from_int.target)
        np.testing.assert_array_equal(other.labelled, from_int.labelled)
        np.testing.assert_array_equal(other.domain, from_int.domain)


@SETTINGS
@given(targets_and_domains())
def test_domain_masks_without_sample_domain(case):
    y, _ = case
    masks = domain_masks(y)
    finite = _finite_rows(y)
    np.testing.assert_array_equal(masks.labelled, finite)
    np.testing.assert_array_equal(masks.target, ~finite)
    np.testing.assert_array_equal(masks.domain, np.where(finite, 0, -1))


@SETTINGS
@given(targets_and_domains(), st.integers(-3, 3).filter(lambda d: d != 0))
def test_domain_masks_wrong_length(case, delta):
    y, domain = case
    n = len(y)
    wrong = np.resize(domain, max(n + delta, 0))
    if len(wrong) == n:
        return
    with pytest.raises(ValueError, match="sample_domain"):
        domain_masks(y, wrong)


@SETTINGS
@given(
    st.integers(1, 20),
    st.floats(-5, 5).filter(lambda v: v != np.round(v)),
    st.data(),
)
def test_domain_masks_non_integral_float(n, bad, data):
    y = np.zeros(n)
    domain = np.full(n, -1.0)
    domain[data.draw(st.integers(0, n - 1))] = bad
    with pytest.raises(ValueError, match="integers"):
        domain_masks(y, domain)


def test_domain_masks_rejects_non_numeric_and_nan():
    y = np.zeros(3)
    with pytest.raises(ValueError, match="integers"):
        domain_masks(y, np.array(["a", "b", "c"]))
    with pytest.raises(ValueError, match="integers"):
        domain_masks(y, np.array([0.0, np.nan, -1.0]))
    with pytest.raises(ValueError, match="sample_domain"):
        domain_masks(y, np.zeros((3, 1), dtype=int))


def test_domain_masks_properties():
    m = domain_masks(np.array([1.0, np.nan, 2.0]), [0, -2, 3])
    assert isinstance(m, DomainMasks)
    assert m.source.tolist() == [True, False, True] and m.n_target == 1
    assert m.domain.dtype == np.int64
    two = domain_masks(np.array([[1.0, np.nan], [1.0, 2.0]]))
    assert two.labelled.tolist() == [False, True]  # every output must be finite


# ------------------------------------------------------------- loss_weights
@st.composite
def weighted_rows(draw):
    """Masks of a fit (source rows labelled; target rows labelled or not) and
    valid sample weights: at least one labelled row weighs more than 0."""
    n = draw(st.integers(1, 30))
    target = np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    labelled = ~target | np.array(draw(st.lists(st.booleans(), min_size=n, max_size=n)))
    if not labelled.any():
        labelled[0] = True
        target[0] = False
    y = np.where(labelled, 1.0, np.nan)
    masks = domain_masks(y, np.where(target, -1, 0))
    sw = draw(
        st.one_of(
            st.none(),
            # zero or a weight a user would give (subnormal weights overflow
            # the S+T ratio of sums: not a case worth a guard)
            arrays(
                np.float64,
                (n,),
                elements=st.one_of(st.just(0.0), st.floats(1e-3, 10.0)),
            ),
        )
    )
    if sw is not None and not (sw[labelled] > 0).any():
        sw[np.flatnonzero(labelled)[0]] = 1.0
    return masks, sw


@SETTINGS
@given(weighted_rows())
def test_loss_weights_without_balancing(case):
    masks, sw = case
    w = loss_weights(masks, sw)
    if sw is None and masks.labelled.all():
        assert w is None  # every row weighs the same: no weighting at all
        return
    assert w.dtype == np.float32 and w.shape == masks.labelled.shape
    assert (w[~masks.labelled] == 0).all()  # unlabelled rows never weigh
    assert (w >= 0).all()
    assert w[masks.labelled].mean() == pytest.approx(1.0, rel=1e-5)
    ref = np.ones(len(w)) if sw is None else sw
    lab = masks.labelled
    # proportional to the sample weights on the labelled rows
    np.testing.assert_allclose(w[lab], ref[lab] / ref[lab].mean(), rtol=1e-5, atol=1e-6)


@SETTINGS
@given(weighted_rows())
def test_loss_weights_balance_labelled_target_rows_against_the_source(case):
    masks, sw = case
    lt = masks.target & masks.labelled
    ref = np.ones(len(masks.labelled)) if sw is None else sw
    if lt.any() and (ref[masks.source] > 0).any() and not (ref[lt] > 0).any():
        return  # see test_loss_weights_of_zero_weight_labelled_target_rows
    w = loss_weights(masks, sw, balance_target=True)
    if not lt.any():
        # nothing to balance: the same weights as without balancing
        expected = loss_weights(masks, sw)
        assert (w is None) == (expected is None)
        if w is not None:
            np.testing.assert_array_equal(w, expected)
        return
    assert w is not None and (w[~masks.labelled] == 0).all()
    assert w[masks.labelled].mean() == pytest.approx(1.0, rel=1e-5)
    src = masks.source
    if (ref[src] > 0).any():
        # "S+T": the labelled target rows weigh as much as all source rows
        assert w[lt].sum() == pytest.approx(w[src].sum(), rel=1e-4)
    # within each group, proportional to the sample weights
    for group in (src, lt):
        if ref[group].sum() > 0:
            np.testing.assert_allclose(
                w[group] / w[group].sum(),
                ref[group] / ref[group].sum(),
                rtol=1e-4,
                atol=1e-6,
            )


def test_loss_weights_of_zero_weight_labelled_target_rows():
    masks = domain_masks(np.array([1.0, 2.0, 3.0, np.nan]), [0, 0, -1, -1])
    with np.errstate(all="ignore"):
        w = loss_weights(masks, np.array([1.0, 1.0, 0.0, 1.0]), balance_target=True)
    # the labelled target row weighs 0, as asked; the source rows carry the
    # loss, and the weights have mean 1 over the labelled rows
    np.testing.assert_array_equal(w, [1.5, 1.5, 0.0, 0.0])


def test_loss_weights_examples():
    m = domain_masks(np.array([1.0, 2.0, np.nan]))
    assert loss_weights(m).tolist() == [1.0, 1.0, 0.0]
    m = domain_masks(np.array([1.0, 2.0, 3.0, 4.0]), [0, 0, 0, -1])
    # three source rows, one labelled target row weighing as much as all three
    np.testing.assert_allclose(
        loss_weights(m, balance_target=True), np.array([1, 1, 1, 3]) / 1.5
    )
    assert loss_weights(m) is None
