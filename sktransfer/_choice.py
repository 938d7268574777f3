"""Choosing settings by cross-validation over the few labelled target rows.

Shared by ``DomainAdaptRegressor(method="auto")`` and
``TransferRegressor(finetune="auto")``: each candidate setting is fitted on
every fold with the estimator's other parameters and scored by its squared
error on the held-out labelled target rows. The first candidate is the
baseline (the safe choice); the candidate with the lowest total replaces it
only when its advantage on the held-out rows exceeds one standard error of
the paired per-row differences -- on a few noisy rows an apparent gain is
often chance, and then the baseline does no harm.
"""

import warnings

import numpy as np
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.utils import _safe_indexing, check_random_state

from sktransfer._distributed import setup as setup_distributed
from sktransfer._outofcore import take

#: folds of the inner cross-validation with few labelled rows
FOLDS = 3
#: most folds, reached at ``MAX_FOLDS * ROWS_PER_FOLD`` labelled rows
MAX_FOLDS = 10
#: labelled rows per fold once there are more than ``FOLDS`` folds' worth
ROWS_PER_FOLD = 20


def n_folds(n_rows):
    """Folds of the inner cross-validation over ``n_rows`` labelled rows.

    Each fold trains on ``(k - 1) / k`` of the labels, so a k-fold score
    describes a model trained on fewer labels than the final fit. With few
    labels 3 folds keep the fits few; with many, the advantage of an
    adaptation loss shrinks as labels grow, and a 3-fold score overstates it:
    on synthetic-concept with 200 labels, 3 and 5 folds chose ``rsd`` and 10
    folds ``source_only``, which is the better model on the test rows
    (0.725 against 0.759). So the folds grow to one per
    :data:`ROWS_PER_FOLD` rows, at most :data:`MAX_FOLDS`.
    """
    return max(min(FOLDS, n_rows // 2), min(MAX_FOLDS, n_rows // ROWS_PER_FOLD))


def _held_out_errors(pred, y, held, sample_weight):
    """Per held-out row, its (weighted) squared error."""
    err = (np.reshape(pred, (len(held), -1)) - y[held].reshape(len(held), -1)) ** 2
    err = err.mean(axis=1)
    if sample_weight is not None:
        return np.asarray(sample_weight, dtype=np.float64)[held] * err
    return err


def _significantly_better(errors, best, baseline):
    """``best``'s errors beat ``baseline``'s by more than one standard error
    of the paired differences."""
    diff = errors[best] - errors[baseline]
    if len(diff) < 2:
        return diff.sum() < 0
    return diff.mean() + diff.std(ddof=1) / np.sqrt(len(diff)) < 0


def _fit_fold(model, X, y, held, *, unlabel, sample_weight, fit_params):
    """Fit ``model`` without the labels of ``held``: as unlabelled rows
    (``unlabel``) or without those rows at all."""
    if unlabel:
        y_fold = y.copy()
        y_fold[held] = np.nan
        return model.fit(X, y_fold, sample_weight=sample_weight, **fit_params)
    keep = np.setdiff1d(np.arange(len(y)), held)
    params = {k: _safe_indexing(v, keep) for k, v in fit_params.items()}
    sw = None if sample_weight is None else _safe_indexing(sample_weight, keep)
    return model.fit(take(X, keep), y[keep], sample_weight=sw, **params)


def choose(
    estimator,
    candidates,
    X,
    y,
    rows,
    *,
    unlabel,
    sample_weight,
    fit_params,
    max_folds=MAX_FOLDS,
):
    """The candidate with the lowest cross-validated error, and every score.

    Parameters
    ----------
    estimator : estimator
        Cloned for every fit; a candidate's parameters are set on the clone.
    candidates : dict of str -> dict
        Name -> parameters, in order of preference (ties go to the first).
    X : array-like
    y : float ndarray
        Targets (NaN: unlabelled).
    rows : int ndarray
        The labelled target rows the folds split.
    unlabel : bool
        Held-out rows stay in training without their label (adaptation), or
        leave training (fine-tuning).
    sample_weight : array-like or None
    fit_params : dict
        Further per-row arguments of ``fit`` (such as ``sample_domain``).
    max_folds : int, default=MAX_FOLDS
        At most this many folds (:func:`n_folds` otherwise).

    Returns
    -------
    name : str
    scores : dict of str -> float
        Each candidate's squared error summed over the held-out rows.
    """
    seed = check_random_state(estimator.random_state).randint(2**31 - 1)
    if getattr(estimator, "distributed", None) is not None:
        # under distributed="ddp" every process must split the same folds, also
        # with random_state=None: rank 0's seed (the group is set up by fit)
        ctx, _ = setup_distributed(estimator.distributed, estimator.device)
        seed = ctx.broadcast_int(seed)
    folds = KFold(min(n_folds(len(rows)), max_folds), shuffle=True, random_state=seed)
    splits = [rows[held] for _, held in folds.split(rows)]
    errors = {}
    # verbose reports the final fit, not each fold's
    quiet = {"verbose": 0} if "verbose" in estimator.get_params() else {}
    for name, params in candidates.items():
        parts = []
        for held in splits:
            model = clone(estimator).set_params(**quiet, **params)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _fit_fold(
                    model,
                    X,
                    y,
                    held,
                    unlabel=unlabel,
                    sample_weight=sample_weight,
                    fit_params=fit_params,
                )
                pred = model.predict(take(X, held))
            parts.append(_held_out_errors(pred, y, held, sample_weight))
        errors[name] = np.concatenate(parts)
    scores = {name: float(e.sum()) for name, e in errors.items()}
    order = list(candidates)
    best = min(order, key=lambda name: (scores[name], order.index(name)))
    if best != order[0] and not _significantly_better(errors, best, order[0]):
        best = order[0]
    return best, scores
