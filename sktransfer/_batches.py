"""In-memory training data, the batch type and the batch iterators.

Every iterator yields :class:`Batch` objects; the net's loss reads the same
type. ``fit`` moves the training arrays to the device once; batches are index
gathers on the device (no per-sample collation).
"""

import itertools
from typing import NamedTuple

import numpy as np
import torch


class Target(NamedTuple):
    """The supervised part of a batch.

    Attributes
    ----------
    y : tensor of shape (n, n_outputs)
        Scaled targets (0 on unlabelled rows).
    weight : tensor of shape (n,) or None
        Loss weight of each row (0 on unlabelled rows); None: all rows weigh 1.
    n_source : int or None
        With source/target balanced batches, the first ``n_source`` rows are
        source rows and the rest target rows; None otherwise.
    """

    y: torch.Tensor
    weight: torch.Tensor | None
    n_source: int | None


class Batch(NamedTuple):
    """One mini-batch: inputs and :class:`Target` (skorch's ``(X, y)`` pair)."""

    X: torch.Tensor
    target: Target


class TensorData(torch.utils.data.Dataset):
    """Training data held as tensors, iterated by index.

    Parameters
    ----------
    X : tensor of shape (n, ...)
    y : tensor of shape (n, n_outputs)
        Missing labels already replaced by 0 and given weight 0.
    weight : tensor of shape (n,) or None
        Per-row loss weight.
    is_target : tensor of bool, shape (n,), or None
        Target rows, for balanced source/target batches.
    indices : tensor of int64 or None
        Rows of ``X`` that belong to this set (a view, the data are not copied).
    weight_unit : float, default=1.0
        How many rows one unit of ``weight`` stands for: the weights are the
        user's (frequency) weights divided by their mean, this mean.
    """

    def __init__(
        self, X, y, weight=None, is_target=None, indices=None, weight_unit=1.0
    ):
        self.X = X
        self.y = y
        self.weight = weight
        self.is_target = is_target
        self.indices = indices
        self.weight_unit = float(weight_unit)

    def __len__(self):
        return self.X.shape[0] if self.indices is None else int(self.indices.numel())

    def __getitem__(self, i):
        """The one-row :class:`Batch` of row ``i`` of this set."""
        return self.take(self.row_indices()[i : i + 1])

    def subset(self, indices):
        """A view of the rows ``indices`` (positions within this set)."""
        indices = torch.as_tensor(indices, dtype=torch.int64, device=self.X.device)
        if self.indices is not None:
            indices = self.indices[indices]
        return TensorData(
            self.X, self.y, self.weight, self.is_target, indices, self.weight_unit
        )

    def row_indices(self):
        """Positions in ``X`` of this set's rows."""
        if self.indices is None:
            return torch.arange(self.X.shape[0], device=self.X.device)
        return self.indices

    def take(self, idx, n_source=None):
        """The :class:`Batch` of the rows ``idx`` of ``X`` (an index or a slice)."""
        w = None if self.weight is None else self.weight[idx]
        return Batch(self.X[idx], Target(self.y[idx], w, n_source))


class BatchIterator:
    """Mini-batches of a :class:`TensorData`, each one gather (no collation).

    With ``shuffle=False`` and no index view, batches are slices (no copy). A
    last batch smaller than ``min_batch`` rows joins the one before it (batch
    norm cannot train on one row).
    """

    def __init__(self, data, batch_size, shuffle=False, generator=None, min_batch=1):
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator
        self.min_batch = int(min_batch)

    def _starts(self):
        n, bs = len(self.data), self.batch_size
        starts = list(range(0, n, bs))
        if len(starts) > 1 and n - starts[-1] < self.min_batch:
            starts.pop()
        return [*starts, n]

    def __len__(self):
        return len(self._starts()) - 1

    def row_batches(self):
        """``(rows, n_source)`` of each batch: the positions in ``data.X`` (an
        index tensor, or a slice) and None (no source/target blocks)."""
        data = self.data
        bounds = self._starts()
        n = len(data)
        if not self.shuffle and data.indices is None:
            for start, stop in itertools.pairwise(bounds):
                yield slice(start, stop), None
            return
        rows = data.row_indices()
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(rows.device)
            rows = rows[perm]
        for start, stop in itertools.pairwise(bounds):
            yield rows[start:stop], None

    def __iter__(self):
        for rows, n_source in self.row_batches():
            yield self.data.take(rows, n_source)


class BalancedIterator:
    """Source/target balanced mini-batches for domain adaptation.

    Each step takes ``batch_size`` source rows (one pass over the source rows
    per epoch) and ``min(batch_size, n_target)`` target rows, cycling through
    reshuffled target rows, so no batch lacks target rows while any exist.
    Source rows come first; ``Target.n_source`` says how many. A last batch
    with fewer than ``min_source`` source rows joins the one before it (each
    process of data-parallel training then gets source rows in every batch).
    """

    def __init__(self, data, batch_size, generator=None, min_source=1):
        self.data = data
        self.batch_size = int(batch_size)
        self.generator = generator
        self.min_source = int(min_source)
        rows = data.row_indices()
        mask = data.is_target[rows]
        self.source_rows = rows[~mask]
        self.target_rows = rows[mask]

    def __len__(self):
        n = int(self.source_rows.numel())
        steps = (n + self.batch_size - 1) // self.batch_size
        if steps > 1 and n - (steps - 1) * self.batch_size < self.min_source:
            steps -= 1
        return steps

    def _perm(self, rows):
        perm = torch.randperm(rows.numel(), generator=self.generator)
        return rows[perm.to(rows.device)]

    def __iter__(self):
        for rows, n_source in self.row_batches():
            yield self.data.take(rows, n_source)

    def row_batches(self):
        """``(rows, n_source)`` of each batch: positions in ``data.X``, source
        rows first, and how many source rows there are."""
        bs = self.batch_size
        src = self._perm(self.source_rows)
        n_s, n_t = int(src.numel()), int(self.target_rows.numel())
        steps = len(self)
        bt = min(bs, n_t)
        need = steps * bt
        reps = -(-need // n_t) if n_t else 0
        tgt = (
            torch.cat([self._perm(self.target_rows) for _ in range(reps)])
            if reps
            else self.target_rows
        )
        for step in range(steps):
            stop = n_s if step == steps - 1 else (step + 1) * bs
            s_idx = src[step * bs : stop]
            t_idx = tgt[step * bt : (step + 1) * bt]
            yield torch.cat([s_idx, t_idx]), int(s_idx.numel())


def validation_split(data, fraction, generator, eligible=None):
    """Split a :class:`TensorData` into train and validation views.

    Parameters
    ----------
    data : TensorData
    fraction : float
        Share of the eligible rows held out (at least one row, at most all but
        one).
    generator : torch.Generator
    eligible : ndarray of bool or None
        Rows that may be held out (e.g. labelled rows); all rows when None.

    Returns
    -------
    train, valid : TensorData views sharing ``data``'s tensors.
    """
    n = len(data)
    pool = np.arange(n) if eligible is None else np.flatnonzero(eligible)
    n_valid = int(np.ceil(fraction * len(pool)))
    n_valid = min(max(n_valid, 1), len(pool) - 1)
    if n_valid < 1:
        raise ValueError(
            "early_stopping=True needs at least 2 labelled rows to hold out a "
            "validation set; got fewer. Set early_stopping=False."
        )
    perm = torch.randperm(len(pool), generator=generator).numpy()
    valid_rows = np.sort(pool[perm[:n_valid]])
    keep = np.ones(n, dtype=bool)
    keep[valid_rows] = False
    return data.subset(np.flatnonzero(keep)), data.subset(valid_rows)


class ValidFraction:
    """skorch ``train_split``: hold out a fraction of the labelled rows.

    Parameters
    ----------
    fraction : float
    seed : int
        Seeds the split.
    """

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        gen = torch.Generator().manual_seed(self.seed)
        eligible = None
        if dataset.weight is not None:
            eligible = (dataset.weight[dataset.row_indices()] > 0).cpu().numpy()
        return validation_split(dataset, self.fraction, gen, eligible)
