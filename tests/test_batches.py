"""In-memory training data and batch iterators (``sktransfer._batches``),
property-tested."""

from collections import Counter

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from sktransfer._batches import (
    BalancedIterator,
    Batch,
    BatchIterator,
    Target,
    TensorData,
    ValidFraction,
    validation_split,
)

SETTINGS = settings(max_examples=50, deadline=None)


# ------------------------------------------------------------- iterators
def _tensor_data(n, n_outputs=1, with_weight=True, is_target=None):
    """Row i holds X = i (and a second column 10 * i), y = -i, weight = i + 1."""
    rows = torch.arange(n, dtype=torch.float32)
    X = torch.stack([rows, 10 * rows], dim=1)
    y = -rows[:, None].repeat(1, n_outputs)
    weight = rows + 1 if with_weight else None
    return TensorData(X, y, weight, is_target)


def _check_aligned(X, y, w):
    ids = X[:, 0]
    assert torch.equal(X[:, 1], 10 * ids)
    assert torch.equal(y, -ids[:, None].expand_as(y))
    if w is not None:
        assert torch.equal(w, ids + 1)


@SETTINGS
@given(
    n=st.integers(1, 60),
    batch_size=st.integers(1, 25),
    shuffle=st.booleans(),
    with_weight=st.booleans(),
    n_outputs=st.integers(1, 3),
    seed=st.integers(0, 2**31 - 1),
)
def test_batch_iterator_covers_rows_once(
    n, batch_size, shuffle, with_weight, n_outputs, seed
):
    data = _tensor_data(n, n_outputs, with_weight)
    it = BatchIterator(
        data, batch_size, shuffle=shuffle, generator=torch.Generator().manual_seed(seed)
    )
    for _ in range(2):  # two epochs, each complete
        seen, sizes = [], []
        for X, (y, w, n_source) in it:
            assert n_source is None
            assert X.shape[1:] == (2,) and y.shape[1:] == (n_outputs,)
            assert len(X) == len(y)
            assert (w is None) == (not with_weight)
            _check_aligned(X, y, w)
            seen.extend(X[:, 0].long().tolist())
            sizes.append(len(X))
        assert sorted(seen) == list(range(n))
        assert len(sizes) == len(it) == -(-n // batch_size)
        assert all(s == batch_size for s in sizes[:-1])
        assert 1 <= sizes[-1] <= batch_size
        if not shuffle:
            assert seen == list(range(n))


@SETTINGS
@given(
    n=st.integers(2, 60),
    batch_size=st.integers(1, 25),
    shuffle=st.booleans(),
    data=st.data(),
)
def test_batch_iterator_on_subset_view(n, batch_size, shuffle, data):
    base = _tensor_data(n)
    chosen = data.draw(
        st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True)
    )
    view = base.subset(chosen)
    assert len(view) == len(chosen)
    it = BatchIterator(view, batch_size, shuffle=shuffle, generator=torch.Generator())
    seen = []
    for X, (y, w, _) in it:
        _check_aligned(X, y, w)
        seen.extend(X[:, 0].long().tolist())
    assert sorted(seen) == sorted(chosen)
    if not shuffle:
        assert seen == chosen
    # a view of a view indexes positions within the view
    inner = view.subset([0])
    assert inner.row_indices().tolist() == [chosen[0]]


@st.composite
def domain_data(draw):
    n_source = draw(st.integers(1, 40))
    n_target = draw(st.integers(0, 40))
    order = draw(st.permutations(range(n_source + n_target)))
    is_target = torch.zeros(n_source + n_target, dtype=torch.bool)
    is_target[list(order[:n_target])] = True
    return n_source, n_target, is_target


@SETTINGS
@given(
    case=domain_data(),
    batch_size=st.integers(1, 16),
    seed=st.integers(0, 2**31 - 1),
)
def test_balanced_iterator(case, batch_size, seed):
    n_source, n_target, is_target = case
    n = n_source + n_target
    data = _tensor_data(n, is_target=is_target)
    it = BalancedIterator(data, batch_size, torch.Generator().manual_seed(seed))
    for _ in range(2):
        src_seen, tgt_seen, steps = [], [], 0
        for X, (y, w, n_src) in it:
            steps += 1
            _check_aligned(X, y, w)
            ids = X[:, 0].long()
            assert isinstance(n_src, int) and 1 <= n_src <= batch_size
            assert not is_target[ids[:n_src]].any()  # source rows first
            assert is_target[ids[n_src:]].all()  # then target rows only
            n_tgt = len(ids) - n_src
            assert n_tgt == min(batch_size, n_target)
            if n_target:
                assert n_tgt > 0
            src_seen.extend(ids[:n_src].tolist())
            tgt_seen.extend(ids[n_src:].tolist())
        assert steps == len(it) == -(-n_source // batch_size)
        source_rows = torch.nonzero(~is_target).flatten().tolist()
        assert sorted(src_seen) == source_rows
        if n_target:
            counts = Counter(tgt_seen)
            target_rows = torch.nonzero(is_target).flatten().tolist()
            assert set(counts) <= set(target_rows)
            # target rows are cycled evenly: counts differ by at most one
            full = [counts.get(r, 0) for r in target_rows]
            assert max(full) - min(full) <= 1


@SETTINGS
@given(case=domain_data(), batch_size=st.integers(1, 16), data=st.data())
def test_balanced_iterator_on_subset_view(case, batch_size, data):
    n_source, n_target, is_target = case
    n = n_source + n_target
    source_rows = torch.nonzero(~is_target).flatten().tolist()
    keep = data.draw(
        st.lists(st.integers(0, n - 1), min_size=1, max_size=n, unique=True).filter(
            lambda rows: any(r in source_rows for r in rows)
        )
    )
    view = _tensor_data(n, is_target=is_target).subset(keep)
    it = BalancedIterator(view, batch_size, torch.Generator().manual_seed(0))
    src_seen, tgt_seen = [], []
    for X, (_, _, n_src) in it:
        ids = X[:, 0].long().tolist()
        src_seen.extend(ids[:n_src])
        tgt_seen.extend(ids[n_src:])
    assert sorted(src_seen) == sorted(r for r in keep if r in source_rows)
    assert set(tgt_seen) <= {r for r in keep if r not in source_rows}


@SETTINGS
@given(
    n=st.integers(1, 60),
    fraction=st.floats(0.01, 0.99),
    seed=st.integers(0, 2**31 - 1),
    data=st.data(),
)
def test_validation_split(n, fraction, seed, data):
    dataset = _tensor_data(n)
    eligible = data.draw(st.one_of(st.none(), arrays(np.bool_, (n,))))
    pool = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    gen = torch.Generator().manual_seed(seed)
    if len(pool) < 2:
        with pytest.raises(ValueError, match="early_stopping"):
            validation_split(dataset, fraction, gen, eligible)
        return
    train, valid = validation_split(dataset, fraction, gen, eligible)
    tr, va = set(train.row_indices().tolist()), set(valid.row_indices().tolist())
    assert not tr & va
    assert tr | va == set(range(n))
    assert len(tr) + len(va) == n
    assert va <= set(pool.tolist())
    expected = min(max(int(np.ceil(fraction * len(pool))), 1), len(pool) - 1)
    assert len(va) == expected
    assert len(valid) == expected and len(train) == n - expected
    # views share the data: no copy
    assert train.X is dataset.X and valid.X is dataset.X
    # same generator seed, same split
    _, again = validation_split(
        dataset, fraction, torch.Generator().manual_seed(seed), eligible
    )
    assert again.row_indices().tolist() == valid.row_indices().tolist()


# ------------------------------------------------------------ data and batches
def test_take_gathers_rows_into_a_batch():
    data = _tensor_data(6)
    batch = data.take(torch.tensor([4, 1]), n_source=1)
    assert isinstance(batch, Batch) and isinstance(batch.target, Target)
    assert batch.X[:, 0].tolist() == [4.0, 1.0]
    assert batch.target.y[:, 0].tolist() == [-4.0, -1.0]
    assert batch.target.weight.tolist() == [5.0, 2.0]
    assert batch.target.n_source == 1
    # a slice is a view, no copy
    view = data.take(slice(0, 3))
    assert view.X.data_ptr() == data.X.data_ptr() and view.target.n_source is None
    # no weights: None, not ones
    assert _tensor_data(3, with_weight=False).take(slice(0, 2)).target.weight is None


def test_getitem_is_a_one_row_batch_of_the_view():
    view = _tensor_data(6).subset([5, 2])
    X, (y, w, n_source) = view[1]
    assert X.shape == (1, 2) and X[0, 0] == 2.0 and w.tolist() == [3.0]
    assert y.tolist() == [[-2.0]]
    assert n_source is None


def test_valid_fraction_holds_out_labelled_rows_only():
    data = _tensor_data(20)
    data.weight[10:] = 0.0  # unlabelled rows weigh 0
    split = ValidFraction(0.3, seed=4)
    train, valid = split(data)
    assert set(valid.row_indices().tolist()) <= set(range(10))
    assert len(valid) == 3 and len(train) == 17
    again = ValidFraction(0.3, seed=4)(data)[1]
    assert again.row_indices().tolist() == valid.row_indices().tolist()
    # without weights every row may be held out
    _, valid = ValidFraction(0.5, seed=0)(_tensor_data(8, with_weight=False))
    assert len(valid) == 4
