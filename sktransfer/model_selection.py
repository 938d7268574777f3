"""Choosing settings without target labels: domain-aware splits and scorers.

Unsupervised domain adaptation has no target labels to validate on. These
tools follow skada's data convention (``y`` NaN or ``sample_domain < 0`` marks
target rows) and plug into ``GridSearchCV``:

- :class:`DomainAwareKFold` splits the labelled source rows into folds and puts
  every target row in every training fold (adaptation needs them) and every
  unlabelled target row in every validation fold (the scorers need them).
- :class:`ImportanceWeightedScorer`: importance-weighted validation (Sugiyama,
  Krauledat & Mueller, "Covariate Shift Adaptation by Importance Weighted Cross
  Validation", JMLR 2007): source validation errors weighted by the density
  ratio ``p_target(x) / p_source(x)`` from a domain classifier.
- :class:`ReverseValidationScorer`: reverse validation (Zhong et al., ECML
  2010; Ganin et al., JMLR 2016): pseudo-label the target rows, train a
  reverse model from them back to the source rows, and score it on the source
  labels.

Scorers return a *higher-is-better* negative mean squared error.

Examples
--------
>>> import numpy as np
>>> from sklearn.model_selection import GridSearchCV
>>> from sktransfer import DomainAdaptRegressor
>>> from sktransfer.datasets import make_domain_shift
>>> from sktransfer.model_selection import DomainAwareKFold, ImportanceWeightedScorer
>>> Xs, ys, Xt, _ = make_domain_shift(200, 100, shift="covariate", random_state=0)
>>> X, y = np.vstack([Xs, Xt]), np.concatenate([ys, np.full(100, np.nan)])
>>> search = GridSearchCV(
...     DomainAdaptRegressor(method="coral", max_epochs=5, random_state=0),
...     {"da_weight": [0.0, 1.0]},
...     cv=DomainAwareKFold(n_splits=2, random_state=0),
...     scoring=ImportanceWeightedScorer(),
... ).fit(X, y)
>>> search.best_params_["da_weight"] in (0.0, 1.0)
True
"""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils import _safe_indexing

from sktransfer.data import domain_masks

__all__ = [
    "DomainAwareKFold",
    "ImportanceWeightedScorer",
    "ReverseValidationScorer",
]


_SCORE_DOC = """Score ``estimator`` on a validation fold (higher is better).

    Parameters
    ----------
    estimator : fitted regressor
        The model to score.
    X : array-like of shape (n_samples, ...)
        The fold's rows: labelled source rows and unlabelled target rows.
    y : array-like
        Targets; NaN marks the unlabelled target rows.
    sample_domain : array-like of int or None, default=None
        ``>= 0`` source rows, ``< 0`` target rows.

    Returns
    -------
    score : float
        A negative mean squared error.
    """


def _as_2d(y):
    y = np.asarray(y, dtype=float)
    return y.reshape(len(y), -1)


class DomainAwareKFold:
    """K-fold over the labelled source rows; target rows join every fold.

    Training folds: ``k - 1`` parts of the source rows plus every target row
    (labelled or not). Validation folds: one part of the source rows plus the
    unlabelled target rows, which the scorers use as the target sample.

    Parameters
    ----------
    n_splits : int, default=5
        Number of folds of the source rows.
    shuffle : bool, default=True
        Shuffle the source rows before splitting.
    random_state : int or None, default=None
        Seeds the shuffle.
    """

    def __init__(self, n_splits=5, shuffle=True, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def get_n_splits(self, X=None, y=None, groups=None, **kwargs):
        """The number of folds.

        Parameters
        ----------
        X, y, groups : ignored
            For scikit-learn's splitter API.
        **kwargs : dict
            Ignored.

        Returns
        -------
        n_splits : int
        """
        return self.n_splits

    def split(self, X, y=None, groups=None, sample_domain=None):
        """Yield ``(train_index, valid_index)`` pairs.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            The rows (only their number is used).
        y : array-like, NaN for unlabelled rows
            Required when ``sample_domain`` is None (NaN marks target rows).
        groups : None
            Ignored.
        sample_domain : array-like of int or None
            ``>= 0`` source rows, ``< 0`` target rows.

        Yields
        ------
        train, valid : ndarray of int
        """
        n = len(X)
        if y is None and sample_domain is None:
            raise ValueError(
                "DomainAwareKFold.split needs y (NaN marks target rows) or "
                "sample_domain to tell source rows from target rows."
            )
        y2 = np.zeros((n, 1)) if y is None else _as_2d(y)
        masks = domain_masks(y2, sample_domain)
        source = np.flatnonzero(~masks.target)
        target = np.flatnonzero(masks.target)
        unlabelled_target = np.flatnonzero(masks.target & ~masks.labelled)
        if len(source) < self.n_splits:
            raise ValueError(
                f"n_splits={self.n_splits} is larger than the number of source rows "
                f"({len(source)})."
            )
        kfold = KFold(
            self.n_splits,
            shuffle=self.shuffle,
            random_state=self.random_state if self.shuffle else None,
        )
        for train, valid in kfold.split(source):
            yield (
                np.sort(np.concatenate([source[train], target])),
                np.sort(np.concatenate([source[valid], unlabelled_target])),
            )


def _split_rows(X, y, sample_domain):
    masks = domain_masks(_as_2d(y), sample_domain)
    src = np.flatnonzero(masks.labelled & ~masks.target)
    tgt = np.flatnonzero(masks.target & ~masks.labelled)
    return src, tgt


def _mse(pred, y):
    pred = np.asarray(pred, dtype=float).reshape(len(y), -1)
    return ((pred - _as_2d(y)) ** 2).mean(axis=1)


class ImportanceWeightedScorer:
    """Importance-weighted validation score (higher is better).

    A domain classifier is fitted to tell the validation fold's source rows from
    its target rows; each source row's squared error is weighted by
    ``p(target | x) / p(source | x)`` (times ``n_source / n_target``), which
    estimates the target risk under covariate shift. Without target rows the
    score is the plain negative MSE.

    Parameters
    ----------
    domain_classifier : classifier or None, default=None
        Has ``predict_proba``; None uses ``StandardScaler`` +
        ``LogisticRegression(C=1.0)``.
    clip_quantile : float, default=0.99
        Weights above this quantile are clipped (variance control).
    """

    def __init__(self, domain_classifier=None, clip_quantile=0.99):
        self.domain_classifier = domain_classifier
        self.clip_quantile = clip_quantile

    def weights(self, X_source, X_target):
        """Density-ratio weights of the source rows (mean 1).

        Parameters
        ----------
        X_source, X_target : array-like
            Source and target rows.

        Returns
        -------
        weights : ndarray of shape (n_source,)
        """
        clf = clone(
            self.domain_classifier
            if self.domain_classifier is not None
            else make_pipeline(StandardScaler(), LogisticRegression(C=1.0))
        )
        Xs = np.asarray(X_source, dtype=float).reshape(len(X_source), -1)
        Xt = np.asarray(X_target, dtype=float).reshape(len(X_target), -1)
        labels = np.r_[np.zeros(len(Xs)), np.ones(len(Xt))]
        clf.fit(np.vstack([Xs, Xt]), labels)
        p = np.clip(clf.predict_proba(Xs)[:, 1], 1e-6, 1 - 1e-6)
        w = p / (1 - p) * len(Xs) / len(Xt)
        w = np.minimum(w, np.quantile(w, self.clip_quantile))
        return w / w.mean()

    def __call__(self, estimator, X, y, sample_domain=None):
        src, tgt = _split_rows(X, y, sample_domain)
        Xs = _safe_indexing(X, src)
        ys = _as_2d(y)[src]
        err = _mse(estimator.predict(Xs), ys)
        if len(tgt) == 0:
            return -float(err.mean())
        w = self.weights(Xs, _safe_indexing(X, tgt))
        return -float(np.average(err, weights=w))


class ReverseValidationScorer:
    """Reverse validation score (higher is better).

    The fitted estimator pseudo-labels the validation fold's target rows; a
    clone with the same settings is trained with those target rows as its
    labelled source and the fold's source rows as its unlabelled target; its
    error on the true source labels is the score. A setting that transfers well
    one way should transfer back. The estimator must accept NaN-marked target
    rows in ``fit`` (a :class:`~sktransfer.DomainAdaptRegressor`, or a pipeline
    ending in one).
    """

    def __call__(self, estimator, X, y, sample_domain=None):
        src, tgt = _split_rows(X, y, sample_domain)
        Xs = _safe_indexing(X, src)
        ys = _as_2d(y)[src]
        if len(tgt) == 0:
            return -float(_mse(estimator.predict(Xs), ys).mean())
        Xt = _safe_indexing(X, tgt)
        pseudo = _as_2d(estimator.predict(Xt))
        y_rev = np.vstack([pseudo, np.full_like(ys, np.nan)])
        if np.ndim(y) == 1:
            y_rev = y_rev.ravel()
        rows = np.concatenate([tgt, src])
        reverse = clone(estimator).fit(_safe_indexing(X, rows), y_rev)
        return -float(_mse(reverse.predict(Xs), ys).mean())


ImportanceWeightedScorer.__call__.__doc__ = _SCORE_DOC
ReverseValidationScorer.__call__.__doc__ = _SCORE_DOC
