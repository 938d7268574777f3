"""``method="auto"``: the adaptation method chosen from the labelled target rows.

No criterion computed from unlabelled rows alone told, on the public suite,
when an adaptation method helps and when it harms (per-domain normalisation
gains 40-60 % on instrument shifts and loses a factor of 4 on a climate
shift, with nothing in the inputs to tell them apart; docs/benchmarks.md). So
``"auto"`` decides only where labels can: with at least
:data:`AUTO_MIN_LABELS` labelled target rows it cross-validates each of
:data:`AUTO_CANDIDATES` over them (the held-out rows leave training, inputs
too, as future rows would be unseen) and keeps ``source_only`` unless
another beats it by more than one standard error of the per-row differences
(:mod:`sktransfer._choice`); with fewer it trains ``source_only``, which never
does worse than ignoring the target.
"""

import numpy as np

from sktransfer._choice import choose
from sktransfer.adaptation._method import get_method

#: the methods ``"auto"`` chooses among; ``source_only`` first (it wins ties)
AUTO_CANDIDATES = ("source_only", "adabn", "rsd")
#: fewest labelled target rows for which ``"auto"`` cross-validates
AUTO_MIN_LABELS = 6


def _labelled_target(y, sample_domain):
    """Indices of the labelled target rows (none without ``sample_domain``,
    where a target row is one whose ``y`` is NaN)."""
    if sample_domain is None:
        return np.arange(0), None
    try:
        values = np.asarray(y, dtype=np.float64)
        domain = np.asarray(sample_domain)
        if len(domain) != len(values) or domain.dtype.kind not in "iuf":
            return np.arange(0), None
        finite = np.isfinite(values.reshape(len(values), -1)).all(axis=1)
        return np.flatnonzero((domain < 0) & finite), values
    except (TypeError, ValueError):  # left to fit's own validation
        return np.arange(0), None


def choose_method(estimator, X, y, sample_domain, sample_weight):
    """The method ``"auto"`` trains, and each candidate's cross-validated
    squared error (None when there were too few labelled target rows).

    Parameters
    ----------
    estimator : DomainAdaptRegressor
        Its parameters are those of every candidate fit (``method`` aside).
    X, y, sample_domain, sample_weight
        As passed to ``fit``.

    Returns
    -------
    method : str
    scores : dict of str -> float, or None
    """
    rows, values = _labelled_target(y, sample_domain)
    if len(rows) < AUTO_MIN_LABELS:
        return "source_only", None
    names = AUTO_CANDIDATES
    if isinstance(estimator.backbone, str) and estimator.backbone == "linear":
        # a loss on the features cannot act on a parameter-free backbone
        names = tuple(m for m in names if not get_method(m).has_loss)
    candidates = {method: {"method": method} for method in names}
    return choose(
        estimator,
        candidates,
        X,
        values,
        rows,
        # held-out rows leave training: as inputs they would let an
        # adaptation loss see the very rows it is scored on, which favours
        # adaptation over source_only (measured on synthetic-concept)
        unlabel=False,
        sample_weight=sample_weight,
        fit_params={"sample_domain": sample_domain},
    )
