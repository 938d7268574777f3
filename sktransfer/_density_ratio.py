"""Density ratios between target and source inputs from a domain classifier.

One implementation for importance-weighted validation
(:class:`~sktransfer.model_selection.ImportanceWeightedScorer`) and weighted
conformal intervals (:class:`~sktransfer.conformal.ShiftConformalRegressor`):
a classifier is fitted to tell source rows (label 0) from target rows (label
1), and

    w(x) = p(target | x) / p(source | x) * n_source / n_target

estimates ``p_target(x) / p_source(x)`` (Bickel, Brueckner & Scheffer, ICML 2007).
"""

import numpy as np
from sklearn.base import clone
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

# probabilities are kept this far from 0 and 1, so every ratio is finite and > 0
_EPS = 1e-6


def default_domain_classifier():
    """``StandardScaler`` + ``LogisticRegression(C=1.0)``."""
    return make_pipeline(StandardScaler(), LogisticRegression(C=1.0))


def _rows(owner, name, X):
    rows = np.asarray(X, dtype=float)
    if rows.ndim == 0 or len(rows) == 0:
        raise ValueError(
            f"{owner}: {name} has no rows; the density ratio needs at least one "
            "source and one target row."
        )
    return rows.reshape(len(rows), -1)


class DensityRatio:
    """A fitted domain classifier read as a density ratio ``p_t(x) / p_s(x)``.

    Parameters
    ----------
    classifier : fitted classifier
        Trained with source rows labelled 0 and target rows labelled 1.
    n_source, n_target : int
        The numbers of rows it was trained on (they correct the class prior).
    owner : str
        Who uses it, for error messages.
    """

    def __init__(self, classifier, n_source, n_target, owner):
        self.classifier = classifier
        self.n_source = n_source
        self.n_target = n_target
        self.owner = owner

    def __call__(self, X):
        """The ratio at each row of ``X``: an ndarray of shape (n,), all > 0."""
        X = np.asarray(X, dtype=float)
        X = X.reshape(len(X), -1)
        proba = np.asarray(self.classifier.predict_proba(X), dtype=float)
        if proba.shape != (len(X), 2) or not np.isfinite(proba).all():
            raise ValueError(
                f"{self.owner.split('.')[0]}: domain_classifier.predict_proba must "
                f"return finite probabilities of shape ({len(X)}, 2) for the two "
                f"domains; got shape {proba.shape}"
                + ("" if np.isfinite(proba).all() else " with NaN or inf values")
                + ". Use a probabilistic classifier such as LogisticRegression()."
            )
        p = np.clip(proba[:, 1], _EPS, 1 - _EPS)
        return p / (1 - p) * self.n_source / self.n_target


def fit_density_ratio(owner, X_source, X_target, domain_classifier=None):
    """Fit a clone of ``domain_classifier`` (None: the default) to tell the
    source rows from the target rows; return the :class:`DensityRatio`.

    Parameters
    ----------
    owner : str
        Who asks, for error messages (``"ImportanceWeightedScorer.weights"``).
    X_source, X_target : array-like
        Source and target rows (each row flattened).
    domain_classifier : classifier or None
        Has ``fit`` and ``predict_proba``.

    Returns
    -------
    DensityRatio

    Raises
    ------
    ValueError
        If either set of rows is empty or their widths differ.
    """
    Xs = _rows(owner, "X_source", X_source)
    Xt = _rows(owner, "X_target", X_target)
    if Xs.shape[1] != Xt.shape[1]:
        raise ValueError(
            f"{owner}: X_source has {Xs.shape[1]} values per row but X_target has "
            f"{Xt.shape[1]}; pass source and target rows with the same features."
        )
    clf = clone(
        domain_classifier
        if domain_classifier is not None
        else default_domain_classifier()
    )
    labels = np.r_[np.zeros(len(Xs)), np.ones(len(Xt))]
    clf.fit(np.vstack([Xs, Xt]), labels)
    return DensityRatio(clf, len(Xs), len(Xt), owner)
