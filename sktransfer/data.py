"""Which rows are source, target and labelled, and what each row weighs.

Conventions (skada's): ``sample_domain >= 0`` marks source rows (several sources
allowed), ``< 0`` target rows. Without ``sample_domain``, rows whose ``y`` is NaN
are target rows. A row is *labelled* when every output of ``y`` is finite.
"""

from dataclasses import dataclass

import numpy as np

from sktransfer._batches import BalancedIterator as _BalancedIterator
from sktransfer._batches import BatchIterator as _BatchIterator
from sktransfer._batches import TensorData as _TensorData
from sktransfer._batches import validation_split as _validation_split
from sktransfer._warnings import moved

__all__ = [
    "DomainMasks",
    "domain_masks",
    "loss_weights",
]


@dataclass(frozen=True)
class DomainMasks:
    """Boolean masks over the rows of one ``fit`` call.

    Parameters
    ----------
    domain : ndarray of int
        Domain label per row (``>= 0`` source, ``< 0`` target).
    target : ndarray of bool
        Target rows.
    labelled : ndarray of bool
        Rows with a finite ``y`` in every output.
    """

    domain: np.ndarray
    target: np.ndarray
    labelled: np.ndarray

    @property
    def source(self):
        """Source rows (the complement of ``target``)."""
        return ~self.target

    @property
    def n_target(self):
        """Number of target rows."""
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
    elif sd.dtype.kind == "b":
        raise ValueError(
            "sample_domain must hold integers (>= 0 for source rows, < 0 for "
            "target rows); got a boolean array, which would mark every row a "
            "source row. For a mask of the target rows pass "
            "np.where(is_target, -1, 0)."
        )
    elif sd.dtype.kind not in "iu":
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


def loss_weights(masks, sample_weight=None, *, balance_target=False, target_draws=1.0):
    """Per-row weights of the supervised loss, mean 1 over the labelled rows.

    Unlabelled rows weigh 0. With ``balance_target``, the labelled target rows
    are scaled to weigh as much in total as all source rows (semi-supervised
    "S+T" training).

    Parameters
    ----------
    masks : DomainMasks
        The rows' domains.
    sample_weight : ndarray of shape (n_samples,) or None
        Non-negative user weights.
    balance_target : bool, default=False
        Balance labelled target rows against the source rows.
    target_draws : float, default=1.0
        How many times per epoch training draws each target row for each time
        it draws a source row (source/target balanced batches draw the few
        target rows more often). The balancing divides by it, so that the
        labelled target rows weigh as much as the source rows over an epoch,
        not that much more.

    Returns
    -------
    weight : float32 ndarray of shape (n_samples,) or None
        None when every row weighs the same (no weighting needed).

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.data import domain_masks, loss_weights
    >>> m = domain_masks(np.array([1.0, 2.0, np.nan]))
    >>> loss_weights(m).tolist()
    [1.0, 1.0, 0.0]
    """
    labelled_target = masks.target & masks.labelled
    balance = balance_target and bool(labelled_target.any())
    if sample_weight is None and masks.labelled.all() and not balance:
        return None
    w = np.ones(len(masks.labelled)) if sample_weight is None else sample_weight.copy()
    w[~masks.labelled] = 0.0
    with np.errstate(over="ignore"):
        huge = not np.isfinite(w.sum())
    if huge:
        w /= w.max()  # huge weights: only their ratios matter
    if balance and (w[~masks.target] > 0).any() and (w[labelled_target] > 0).any():
        ratio = w[~masks.target].sum() / w[labelled_target].sum()
        w[labelled_target] *= ratio / target_draws
    w /= w[masks.labelled].mean()
    return w.astype(np.float32)


__getattr__ = moved(
    "sktransfer.data",
    {
        name: (lambda obj=obj: obj, "the estimators' fit")
        for name, obj in (
            ("TensorData", _TensorData),
            ("BatchIterator", _BatchIterator),
            ("BalancedIterator", _BalancedIterator),
            ("validation_split", _validation_split),
        )
    },
)
