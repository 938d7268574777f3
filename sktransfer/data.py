"""Domain masks, in-memory tensor datasets and batch iterators.

Conventions (skada's): ``sample_domain >= 0`` marks source rows (several sources
allowed), ``< 0`` target rows. Without ``sample_domain``, rows whose ``y`` is NaN
are target rows. A row is *labelled* when every output of ``y`` is finite.
"""

from dataclasses import dataclass

import numpy as np
import torch


@dataclass(frozen=True)
class DomainMasks:
    """Boolean masks over the rows of one ``fit`` call.

    Attributes
    ----------
    domain : ndarray of int
        Domain label per row (``>= 0`` source, ``< 0`` target).
    target : ndarray of bool
        Target rows.
    labelled : ndarray of bool
        Rows with a finite ``y`` in every output; these feed the supervised loss.
    """

    domain: np.ndarray
    target: np.ndarray
    labelled: np.ndarray

    @property
    def source(self):
        return ~self.target

    @property
    def n_target(self):
        return int(self.target.sum())


def domain_masks(y, sample_domain=None) -> DomainMasks:
    """Compute the source/target/labelled masks of a training set.

    Parameters
    ----------
    y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        Targets; NaN marks a missing label.
    sample_domain : array-like of int, shape (n_samples,), or None
        ``>= 0`` source rows, ``< 0`` target rows. When None, rows with a NaN
        ``y`` are target rows (domain ``-1``) and the others source rows
        (domain ``0``).

    Returns
    -------
    DomainMasks

    Raises
    ------
    ValueError
        If ``sample_domain`` has the wrong length, is not integral, or a source
        row has a missing ``y``.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.data import domain_masks
    >>> m = domain_masks(np.array([1.0, np.nan, 2.0]))
    >>> m.target.tolist(), m.labelled.tolist()
    ([False, True, False], [True, False, True])
    """
    y = np.asarray(y, dtype=float)
    y2 = y.reshape(len(y), -1)
    labelled = np.isfinite(y2).all(axis=1)
    if sample_domain is None:
        target = ~labelled
        domain = np.where(target, -1, 0)
        return DomainMasks(domain=domain, target=target, labelled=labelled)
    sd = np.asarray(sample_domain)
    if sd.ndim != 1 or sd.shape[0] != y2.shape[0]:
        raise ValueError(
            f"sample_domain must be a 1-D array with one entry per row of X "
            f"({y2.shape[0]}); got shape {sd.shape}."
        )
    if sd.dtype.kind == "f":
        if not np.all(np.isfinite(sd)) or not np.all(sd == np.round(sd)):
            raise ValueError(
                "sample_domain must hold integers (>= 0 for source rows, < 0 for "
                "target rows); got non-integral values."
            )
    elif sd.dtype.kind not in "iub":
        raise ValueError(
            "sample_domain must hold integers (>= 0 for source rows, < 0 for "
            f"target rows); got dtype {sd.dtype}."
        )
    domain = sd.astype(np.int64)
    target = domain < 0
    bad = ~target & ~labelled
    if bad.any():
        raise ValueError(
            f"{int(bad.sum())} source rows (sample_domain >= 0) have a missing "
            "(NaN) y. Source rows must be labelled; mark unlabelled rows as target "
            "rows with a negative sample_domain."
        )
    return DomainMasks(domain=domain, target=target, labelled=labelled)


class TensorData(torch.utils.data.Dataset):
    """Training data held as tensors, iterated by index without per-sample collation.

    Parameters
    ----------
    X : tensor of shape (n, ...)
    y : tensor of shape (n, n_outputs)
        Missing labels must already be replaced by 0 and given weight 0.
    weight : tensor of shape (n,) or None
        Per-row weight of the supervised loss (sample weight times labelled).
    is_target : tensor of bool, shape (n,), or None
        Target rows, for balanced source/target batches.
    indices : tensor of int64 or None
        Rows of ``X`` that belong to this set (a view, the data are not copied).
    """

    def __init__(self, X, y, weight=None, is_target=None, indices=None):
        self.X = X
        self.y = y
        self.weight = weight
        self.is_target = is_target
        self.indices = indices

    def __len__(self):
        return self.X.shape[0] if self.indices is None else int(self.indices.numel())

    def __getitem__(self, i):
        j = i if self.indices is None else int(self.indices[i])
        w = None if self.weight is None else self.weight[j]
        return self.X[j], (self.y[j], w)

    def subset(self, indices):
        """A view of the rows ``indices`` (positions within this set)."""
        indices = torch.as_tensor(indices, dtype=torch.int64, device=self.X.device)
        if self.indices is not None:
            indices = self.indices[indices]
        return TensorData(self.X, self.y, self.weight, self.is_target, indices)

    def row_indices(self):
        if self.indices is None:
            return torch.arange(self.X.shape[0], device=self.X.device)
        return self.indices

    def _take(self, idx):
        w = None if self.weight is None else self.weight[idx]
        return self.X[idx], (self.y[idx], w, None)


class BatchIterator:
    """Mini-batches of a :class:`TensorData`: one gather per batch, no collation.

    Yields ``(X_batch, (y_batch, weight_batch, None))``. With ``shuffle=False``
    and no index view, batches are slices (no copy).
    """

    def __init__(self, data, batch_size, shuffle=False, generator=None):
        self.data = data
        self.batch_size = int(batch_size)
        self.shuffle = shuffle
        self.generator = generator

    def __len__(self):
        n = len(self.data)
        return (n + self.batch_size - 1) // self.batch_size

    def __iter__(self):
        data, bs = self.data, self.batch_size
        n = len(data)
        if not self.shuffle and data.indices is None:
            for start in range(0, n, bs):
                sl = slice(start, start + bs)
                w = None if data.weight is None else data.weight[sl]
                yield data.X[sl], (data.y[sl], w, None)
            return
        rows = data.row_indices()
        if self.shuffle:
            perm = torch.randperm(n, generator=self.generator).to(rows.device)
            rows = rows[perm]
        for start in range(0, n, bs):
            yield data._take(rows[start : start + bs])


class BalancedIterator:
    """Source/target balanced mini-batches for domain adaptation.

    Each step takes ``batch_size`` source rows (one pass over the source rows
    per epoch) and ``min(batch_size, n_target)`` target rows, cycling through
    reshuffled target rows, so no batch lacks target rows while any exist.
    Yields ``(X_batch, (y_batch, weight_batch, n_source))`` with the source rows
    first.
    """

    def __init__(self, data, batch_size, generator=None):
        self.data = data
        self.batch_size = int(batch_size)
        self.generator = generator
        rows = data.row_indices()
        mask = data.is_target[rows]
        self.source_rows = rows[~mask]
        self.target_rows = rows[mask]

    def __len__(self):
        n = int(self.source_rows.numel())
        return (n + self.batch_size - 1) // self.batch_size

    def _perm(self, rows):
        perm = torch.randperm(rows.numel(), generator=self.generator)
        return rows[perm.to(rows.device)]

    def __iter__(self):
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
            s_idx = src[step * bs : min((step + 1) * bs, n_s)]
            t_idx = tgt[step * bt : (step + 1) * bt]
            X, (y, w, _) = self.data._take(torch.cat([s_idx, t_idx]))
            yield X, (y, w, int(s_idx.numel()))


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
