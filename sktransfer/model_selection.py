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

import numbers

import numpy as np
from sklearn import get_config
from sklearn.base import clone
from sklearn.model_selection import KFold
from sklearn.utils import _safe_indexing
from sklearn.utils._metadata_requests import MetadataRequest, _MetadataRequester
from sklearn.utils.validation import _num_samples

from sktransfer._density_ratio import fit_density_ratio
from sktransfer._scaling import standardize_by_domain
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

    Raises
    ------
    ValueError
        If ``y`` or ``sample_domain`` does not have one entry per row of ``X``,
        or the fold has no labelled source rows to score against.
    """


def _as_2d(y):
    y = np.asarray(y, dtype=float)
    return y.reshape(len(y), -1)


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(
        value, bool | np.bool_
    )


def _check_lengths(owner, X, y, sample_domain):
    """The number of rows of ``X``; ``y`` and ``sample_domain`` must match it."""
    n = _num_samples(X)
    if y is not None and _num_samples(y) != n:
        raise ValueError(
            f"{owner}: X has {n} rows but y has {_num_samples(y)}; pass one y per "
            "row of X (NaN for unlabelled target rows)."
        )
    if sample_domain is not None:
        sd = np.asarray(sample_domain)
        if sd.ndim != 1 or sd.shape[0] != n:
            raise ValueError(
                f"{owner}: sample_domain must be a 1-D array with one entry per row "
                f"of X ({n}); got shape {sd.shape}."
            )
    return n


class _RequestsSampleDomain(_MetadataRequester):
    """A scorer that asks metadata routing for ``sample_domain``: searches and
    ``cross_validate`` then pass it to ``__call__`` (it says which rows are
    target rows)."""

    def _get_metadata_request(self):
        request = MetadataRequest(owner=self)
        request.score.add_request(param="sample_domain", alias=True)
        return request


class DomainAwareKFold(_MetadataRequester):
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
    random_state : int, RandomState instance or None, default=None
        Seeds the shuffle.

    Notes
    -----
    The parameters are checked when the splitter is used (``split``,
    ``get_n_splits``), as scikit-learn does: a wrong type raises a
    ``TypeError``, a value out of range a ``ValueError``.
    """

    # under metadata routing, GridSearchCV and cross_validate pass
    # ``sample_domain`` to ``split`` (it says which rows are target rows)
    __metadata_request__split = {"sample_domain": True}

    def __init__(self, n_splits=5, shuffle=True, random_state=None):
        self.n_splits = n_splits
        self.shuffle = shuffle
        self.random_state = random_state

    def _check_params(self):
        n_splits, shuffle, seed = self.n_splits, self.shuffle, self.random_state
        if not _is_int(n_splits):
            raise TypeError(
                f"DomainAwareKFold: n_splits must be an int >= 2; got {n_splits!r} "
                f"of type {type(n_splits).__name__}."
            )
        if n_splits < 2:
            raise ValueError(
                f"DomainAwareKFold: n_splits={n_splits!r} is out of range; n_splits "
                "must be an int >= 2 (each fold validates once and trains on the "
                "others)."
            )
        if not isinstance(shuffle, bool | np.bool_):
            raise TypeError(
                f"DomainAwareKFold: shuffle must be True or False; got {shuffle!r} "
                f"of type {type(shuffle).__name__}."
            )
        if not (
            seed is None or _is_int(seed) or isinstance(seed, np.random.RandomState)
        ):
            raise TypeError(
                "DomainAwareKFold: random_state must be an int, a "
                f"numpy.random.RandomState or None; got {seed!r} of type "
                f"{type(seed).__name__}."
            )
        if _is_int(seed) and not 0 <= seed < 2**32:
            raise ValueError(
                f"DomainAwareKFold: random_state={seed!r} is out of range; an int "
                "seed must be in [0, 2**32 - 1]."
            )

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
        self._check_params()
        return int(self.n_splits)

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

        Raises
        ------
        ValueError
            If neither ``y`` nor ``sample_domain`` is given, their lengths differ
            from that of ``X``, or there are fewer source rows than folds.
        """
        self._check_params()
        if y is None and sample_domain is None:
            raise ValueError(
                "DomainAwareKFold.split needs y (NaN marks target rows) or "
                "sample_domain to tell source rows from target rows."
            )
        n = _check_lengths("DomainAwareKFold.split", X, y, sample_domain)
        y2 = np.zeros((n, 1)) if y is None else _as_2d(y)
        masks = domain_masks(y2, sample_domain)
        source = np.flatnonzero(~masks.target)
        target = np.flatnonzero(masks.target)
        unlabelled_target = np.flatnonzero(masks.target & ~masks.labelled)
        if len(source) < self.n_splits:
            raise ValueError(
                f"DomainAwareKFold: n_splits={self.n_splits} is larger than the "
                f"number of source rows ({len(source)} of {n} rows); the source rows "
                "are split into the folds. Use a smaller n_splits, or check y (NaN "
                "marks target rows) and sample_domain (< 0 marks target rows)."
            )
        kfold = KFold(
            self.n_splits,
            shuffle=bool(self.shuffle),
            random_state=self.random_state if self.shuffle else None,
        )
        for train, valid in kfold.split(source):
            yield (
                np.sort(np.concatenate([source[train], target])),
                np.sort(np.concatenate([source[valid], unlabelled_target])),
            )


def _split_rows(owner, X, y, sample_domain):
    """Labelled source rows and unlabelled target rows of a validation fold."""
    if y is None:
        raise ValueError(
            f"{owner} needs the fold's y (NaN marks unlabelled target rows) to score "
            "the source rows; got y=None."
        )
    n = _check_lengths(owner, X, y, sample_domain)
    masks = domain_masks(_as_2d(y), sample_domain)
    src = np.flatnonzero(masks.labelled & ~masks.target)
    tgt = np.flatnonzero(masks.target & ~masks.labelled)
    if len(src) == 0:
        raise ValueError(
            f"{owner}: the validation fold has no labelled source rows (of {n} "
            "rows), so there is nothing to score against. Use "
            "cv=DomainAwareKFold(...), which puts source rows in every validation "
            "fold, and check y (NaN marks target rows) and sample_domain (< 0 "
            "marks target rows)."
        )
    return src, tgt


def _final_step(estimator):
    """``(final estimator, the pipeline before it or None)``: the last step of
    a pipeline, and the estimator inside the selector that skada's
    ``make_da_pipeline`` wraps around each step (``base_estimator_``)."""
    final, transform = estimator, None
    if hasattr(estimator, "steps"):
        final, transform = estimator.steps[-1][1], estimator[:-1]
    return getattr(final, "base_estimator_", final), transform


def _predict_source(estimator, X, domains):
    """Predictions for source rows as the model sees its source rows.

    ``predict`` standardises inputs with the target domain's statistics; under
    per-domain normalisation (``adabn``, ``domain_norm``) a source row must be
    standardised with its own domain's, or the score measures the source rows
    through the wrong statistics: ``DomainAdaptRegressor.predict`` takes
    ``sample_domain`` for that.
    """
    final, transform = _final_step(estimator)
    if not getattr(final, "domain_stats_", None):
        return estimator.predict(X)
    if transform is not None:
        X = transform.transform(X)
    return final.predict(X, sample_domain=np.asarray(domains, dtype=np.int64))


def _model_view(estimator, X, domains):
    """``X`` as the final estimator's network sees it: through the pipeline's
    steps, then, under per-domain normalisation, each row standardised with
    its own domain's statistics (otherwise one affine scaling for all rows,
    which a standardising domain classifier does not notice)."""
    final, transform = _final_step(estimator)
    if transform is not None:
        X = transform.transform(X)
    values = np.asarray(X, dtype=np.float64)
    stats = getattr(final, "domain_stats_", None)
    if not stats:
        return values
    return standardize_by_domain(values.reshape(len(values), -1), domains, stats)


def _mse(pred, y):
    pred = np.asarray(pred, dtype=float).reshape(len(y), -1)
    return ((pred - _as_2d(y)) ** 2).mean(axis=1)


class ImportanceWeightedScorer(_RequestsSampleDomain):
    """Importance-weighted validation score (higher is better).

    A domain classifier is fitted to tell the validation fold's source rows from
    its target rows; each source row's squared error is weighted by
    ``p(target | x) / p(source | x)`` (times ``n_source / n_target``), which
    estimates the target risk (Sugiyama et al., JMLR 2007). The score is minus
    that estimate plus ``n_se`` of its standard errors: an estimate that rests
    on a few heavily weighted source rows is trusted less than one that rests
    on many. Without target rows the score is the plain negative MSE.

    Source rows can stand for target rows only under an assumption about the
    shift, and ``shift`` says which:

    - ``"covariate"`` (default): ``p(y | x)`` is the same in both domains.
      Each source row is predicted as the model predicts target rows (with
      the target's input statistics under per-domain normalisation), and the
      weights are between the raw inputs. Right for a covariate shift; on an
      instrument shift (gain and offset) it keeps models that ignore the
      shift, the safe choice.
    - ``"per_domain"``: ``p(y | x)`` is the same once each domain is
      standardised with its own statistics (an instrument's gain and
      offset). Each source row is predicted with its own domain's
      statistics, as in training, and the classifier sees every row as the
      model does (standardised per domain under ``adabn``/``domain_norm``).
      Where per-domain statistics align the domains the weights are nearly
      uniform, while a model that sees the target beyond the source's range
      rests on the few source rows at its edge, and its standard error says
      so: on the synthetic instrument shift this picks ``adabn`` over
      ``source_only`` in 10 of 12 fits (linear and MLP backbones, 6 seeds).
      But on a covariate shift it prefers per-domain statistics just the same.

    No score on source rows tells the two kinds of shift apart; choose the
    assumption that fits what changed between the domains.

    Parameters
    ----------
    domain_classifier : classifier or None, default=None
        Has ``predict_proba``; None uses ``StandardScaler`` +
        ``LogisticRegression(C=1.0)``.
    clip_quantile : float in (0, 1], default=0.99
        Weights above this quantile are clipped (variance control; 1: no
        clipping).
    n_se : float >= 0, default=1.0
        Standard errors of the weighted estimate added to it (0: the
        estimate itself).
    shift : {"covariate", "per_domain"}, default="covariate"
        What stays the same between the domains (see above).

    Notes
    -----
    The parameters are checked when the scorer is used, as scikit-learn does.
    """

    def __init__(
        self, domain_classifier=None, clip_quantile=0.99, n_se=1.0, shift="covariate"
    ):
        self.domain_classifier = domain_classifier
        self.clip_quantile = clip_quantile
        self.n_se = n_se
        self.shift = shift

    def _check_params(self):
        q = self.clip_quantile
        if isinstance(q, bool | np.bool_) or not isinstance(q, numbers.Real):
            raise TypeError(
                "ImportanceWeightedScorer: clip_quantile must be a float in (0, 1]; "
                f"got {q!r} of type {type(q).__name__}."
            )
        if not 0.0 < float(q) <= 1.0:  # also refuses NaN
            raise ValueError(
                f"ImportanceWeightedScorer: clip_quantile={q!r} is out of range; "
                "clip_quantile must be a float in (0, 1] (1: no clipping)."
            )
        n_se = self.n_se
        if isinstance(n_se, bool | np.bool_) or not isinstance(n_se, numbers.Real):
            raise TypeError(
                "ImportanceWeightedScorer: n_se must be a float >= 0; got "
                f"{n_se!r} of type {type(n_se).__name__}."
            )
        if not float(n_se) >= 0.0:  # also refuses NaN
            raise ValueError(
                f"ImportanceWeightedScorer: n_se={n_se!r} is out of range; n_se "
                "must be a float >= 0 (0: the weighted estimate itself)."
            )
        if self.shift not in ("covariate", "per_domain"):
            raise ValueError(
                f"ImportanceWeightedScorer: shift={self.shift!r} is not one of "
                "'covariate' (p(y | x) is the same in both domains) or "
                "'per_domain' (the same after each domain's own "
                "standardisation)."
            )
        clf = self.domain_classifier
        if clf is not None:
            missing = [m for m in ("fit", "predict_proba") if not hasattr(clf, m)]
            if missing:
                raise TypeError(
                    "ImportanceWeightedScorer: domain_classifier must be a "
                    "classifier with fit and predict_proba, such as "
                    f"LogisticRegression(); got {clf!r}, which has no "
                    f"{' or '.join(missing)}."
                )

    def weights(self, X_source, X_target):
        """Density-ratio weights of the source rows (mean 1).

        Parameters
        ----------
        X_source, X_target : array-like
            Source and target rows.

        Returns
        -------
        weights : ndarray of shape (n_source,)

        Raises
        ------
        ValueError
            If either set of rows is empty, their widths differ, or the domain
            classifier returns non-finite probabilities.
        """
        self._check_params()
        ratio = fit_density_ratio(
            "ImportanceWeightedScorer.weights",
            X_source,
            X_target,
            self.domain_classifier,
        )
        w = ratio(X_source)
        w = np.minimum(w, np.quantile(w, self.clip_quantile))
        return w / w.mean()

    def __call__(self, estimator, X, y, sample_domain=None):
        self._check_params()
        src, tgt = _split_rows("ImportanceWeightedScorer", X, y, sample_domain)
        Xs = _safe_indexing(X, src)
        ys = _as_2d(y)[src]
        domain = domain_masks(_as_2d(y), sample_domain).domain
        if len(tgt) == 0:
            return -float(_mse(_predict_source(estimator, Xs, domain[src]), ys).mean())
        Xt = _safe_indexing(X, tgt)
        if self.shift == "covariate":
            # p(y | x) shared: the source rows stand for target rows, so each
            # is predicted as the model predicts the target
            err = _mse(estimator.predict(Xs), ys)
            w = self.weights(Xs, Xt)
        else:
            err = _mse(_predict_source(estimator, Xs, domain[src]), ys)
            w = self.weights(
                _model_view(estimator, Xs, domain[src]),
                _model_view(estimator, Xt, domain[tgt]),
            )
        risk = np.average(err, weights=w)
        se = np.sqrt(np.sum(w**2 * (err - risk) ** 2)) / w.sum()
        return -float(risk + self.n_se * se)


class ReverseValidationScorer(_RequestsSampleDomain):
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
        src, tgt = _split_rows("ReverseValidationScorer", X, y, sample_domain)
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
        fit_params = _reverse_domains(estimator, sample_domain, len(tgt), len(src))
        reverse = clone(estimator).fit(_safe_indexing(X, rows), y_rev, **fit_params)
        return -float(_mse(reverse.predict(Xs), ys).mean())


def _reverse_domains(estimator, sample_domain, n_pseudo, n_source):
    """``sample_domain`` for the reverse fit, where the scorer was given one:
    the pseudo-labelled rows are its source (0), the fold's source rows its
    target (-1), as the NaN marks already say. skada's pipelines need it said:
    without ``sample_domain`` they drop the NaN-marked rows before the
    estimator sees them, and the reverse model would not adapt. A
    scikit-learn pipeline takes it only under metadata routing."""
    if sample_domain is None:
        return {}
    if hasattr(estimator, "steps") and not get_config()["enable_metadata_routing"]:
        return {}
    domains = np.r_[np.zeros(n_pseudo, np.int64), np.full(n_source, -1, np.int64)]
    return {"sample_domain": domains}


ImportanceWeightedScorer.__call__.__doc__ = _SCORE_DOC
ReverseValidationScorer.__call__.__doc__ = _SCORE_DOC
