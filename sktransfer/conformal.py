"""Prediction intervals for a target domain: split conformal and weighted
conformal under covariate shift.

Split conformal prediction (Lei, G'Sell, Rinaldo, Tibshirani & Wasserman,
"Distribution-Free Predictive Inference for Regression", JASA 2018) holds out
calibration rows, scores them by their absolute residual ``|y - f(x)|`` and
widens every prediction by the ``(1 - alpha)`` quantile of those scores: if
the calibration rows and a test row are exchangeable, the interval covers the
test row's ``y`` with probability at least ``1 - alpha``.

Source rows and target rows are not exchangeable. Two ways out:

- with enough *labelled target rows*, calibrate on them (plain split
  conformal, exact);
- without, *weighted conformal* under covariate shift (Tibshirani, Foygel
  Barber, Candes & Ramdas, "Conformal Prediction Under Covariate Shift",
  NeurIPS 2019): if only ``p(x)`` changes and ``p(y | x)`` does not, the
  source calibration scores are reweighted by the density ratio
  ``w(x) = p_target(x) / p_source(x)``, estimated by a domain classifier
  (the same one :class:`~sktransfer.model_selection.ImportanceWeightedScorer`
  uses), and the quantile is taken per test point.

:class:`ShiftConformalRegressor` does both, choosing by the labels it is given.
MAPIE's ``SplitConformalRegressor`` and ``CrossConformalRegressor`` also work
around :class:`~sktransfer.TransferRegressor` and
:class:`~sktransfer.DomainAdaptRegressor` (see the user guide).
"""

import inspect
import math
from numbers import Real

import numpy as np
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.exceptions import DataConversionWarning
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import HasMethods, Interval, StrOptions
from sklearn.utils.validation import check_array, check_is_fitted, validate_data

from sktransfer._density_ratio import fit_density_ratio
from sktransfer._transfer import TransferRegressor
from sktransfer._warnings import warn
from sktransfer.data import domain_masks
from sktransfer.ensemble import TransferEnsemble

__all__ = [
    "ShiftConformalRegressor",
    "min_calibration_rows",
    "weighted_conformal_quantile",
]

# relative slack in "cumulative mass >= level": a level such as 0.9 times
# (n + 1) = 10 rows must give 9, not 10 because 0.9 is stored as 0.90000...02
_SLACK = 1e-10


def weighted_conformal_quantile(scores, weights, test_weights, confidence_level):
    """Weighted conformal quantiles, one per test point (Tibshirani et al. 2019).

    For a test point ``x`` with weight ``w(x)``, the quantile at level
    ``confidence_level`` of the distribution

    ``sum_i p_i(x) delta_{V_i} + p_{n+1}(x) delta_{+inf}``,

    ``p_i(x) = w(X_i) / (sum_j w(X_j) + w(x))``, ``p_{n+1}(x) = w(x) / (sum_j
    w(X_j) + w(x))``: the smallest score ``V_i`` whose cumulative mass reaches
    the level, or ``+inf`` when the mass at infinity is larger than
    ``1 - confidence_level``. With equal weights it is the split-conformal
    quantile, the ``ceil(confidence_level * (n + 1))``-th smallest score.

    Parameters
    ----------
    scores : array-like of shape (n_calibration,)
        Conformity scores ``V_i`` of the calibration rows (absolute residuals).
    weights : array-like of shape (n_calibration,)
        Weights ``w(X_i) >= 0`` of the calibration rows.
    test_weights : float or array-like of shape (n_test,)
        Weights ``w(x) >= 0`` of the test points.
    confidence_level : float in (0, 1)
        ``1 - alpha``.

    Returns
    -------
    quantiles : ndarray of shape (n_test,)
        May hold ``inf``.

    Raises
    ------
    ValueError
        If the shapes differ, a weight is negative or not finite, or the
        calibration weights are all 0.

    Examples
    --------
    >>> from sktransfer.conformal import weighted_conformal_quantile
    >>> weighted_conformal_quantile([1.0, 2.0, 3.0, 4.0], [1, 1, 1, 1], [1, 4], 0.6)
    array([ 3., inf])
    """
    v = np.asarray(scores, dtype=float).ravel()
    w = np.asarray(weights, dtype=float).ravel()
    wt = np.atleast_1d(np.asarray(test_weights, dtype=float)).ravel()
    if v.shape != w.shape or len(v) == 0:
        raise ValueError(
            f"weighted_conformal_quantile: scores ({v.shape}) and weights "
            f"({w.shape}) must be non-empty and of the same length, one per "
            "calibration row."
        )
    for name, arr in (("weights", w), ("test_weights", wt)):
        if not (np.isfinite(arr).all() and (arr >= 0).all()):
            raise ValueError(
                f"weighted_conformal_quantile: {name} must be finite and >= 0."
            )
    if not w.sum() > 0:
        raise ValueError("weighted_conformal_quantile: the weights are all 0.")
    order = np.argsort(v, kind="stable")
    cumulative = np.cumsum(w[order])
    total = cumulative[-1] + wt
    need = confidence_level * total * (1 - _SLACK)
    k = np.searchsorted(cumulative, need, side="left")
    out = np.full(len(wt), np.inf)
    finite = k < len(v)
    out[finite] = v[order][k[finite]]
    return out


def min_calibration_rows(confidence_level):
    """The fewest calibration rows whose split-conformal quantile is finite.

    The ``ceil(confidence_level * (n + 1))``-th smallest of ``n`` scores exists
    once ``n >= ceil(1 / alpha) - 1``, ``alpha = 1 - confidence_level``.

    Parameters
    ----------
    confidence_level : float in (0, 1)
        ``1 - alpha``.

    Returns
    -------
    n : int
        ``ceil(1 / alpha) - 1``, at least 1.

    Examples
    --------
    >>> from sktransfer.conformal import min_calibration_rows
    >>> min_calibration_rows(0.9), min_calibration_rows(0.95)
    (9, 19)
    """
    alpha = 1.0 - confidence_level
    return max(1, math.ceil(1.0 / alpha * (1 - _SLACK)) - 1)


def _accepts_sample_domain(estimator):
    if isinstance(estimator, TransferEnsemble):  # as its members do
        return _accepts_sample_domain(estimator.estimator or TransferRegressor())
    try:
        return "sample_domain" in inspect.signature(estimator.fit).parameters
    except (TypeError, ValueError):  # pragma: no cover - builtins
        return False


class ShiftConformalRegressor(RegressorMixin, BaseEstimator):
    """Prediction intervals for target rows, calibrated on target labels or,
    without them, on source rows reweighted for the covariate shift.

    ``fit`` splits the labelled rows into proper-training and calibration
    rows (``prefit=False``; with ``prefit=True`` every labelled row
    calibrates a fitted ``estimator``), fits the estimator and scores the
    calibration rows by their absolute residual. Intervals are
    ``prediction +/- quantile``; the quantile depends on ``mode``:

    - ``"target"``: split conformal (Lei et al. 2018) on labelled target
      rows. Exact under exchangeability of the target rows.
    - ``"weighted"``: weighted split conformal on the source calibration rows
      (Tibshirani et al. 2019), each weighted by ``w(x) = p(target | x) /
      p(source | x)`` from a domain classifier trained on the source inputs
      against the target inputs (those of every target row passed to
      ``fit``). The quantile is computed for each test point. Valid when only
      ``p(x)`` changes (covariate shift) and the classifier estimates the
      ratio well; a test point far outside the source's range carries so much
      weight that its interval is infinite (mass at ``+inf`` above
      ``alpha``), which ``predict_interval`` warns about.
    - ``"source"``: plain split conformal on the source calibration rows,
      ignoring any shift (what MAPIE's ``SplitConformalRegressor`` does).
    - ``"auto"`` (default): ``"target"`` if there are at least
      ``ceil(1 / alpha) - 1`` labelled target rows (9 at 90 %: the fewest for
      a finite quantile), else ``"weighted"`` if there are target rows, else
      ``"source"``.

    Under ``prefit=False`` the split is made per domain: in ``"target"``
    mode ``max(ceil(1 / alpha) - 1, ceil(calibration_size * n_labelled_target))``
    labelled target rows calibrate and all labelled source rows train; in
    the other modes ``calibration_size`` of the labelled source rows
    calibrate and every labelled target row trains. An estimator whose
    ``fit`` takes ``sample_domain`` (:class:`~sktransfer.DomainAdaptRegressor`)
    also receives every target row, the calibration rows' labels hidden
    (NaN), so it adapts to them; other estimators get the training rows only.

    Only one output (1-D ``y``) is supported.

    Parameters
    ----------
    estimator : regressor or None, default=None
        Any scikit-learn regressor; fitted when ``prefit=True``. None:
        ``TransferRegressor("linear")``.
    confidence_level : float in (0, 1), default=0.9
        Nominal coverage ``1 - alpha`` of the intervals.
    calibration_size : float in (0, 1), default=0.3
        Share of the labelled rows held out for calibration
        (``prefit=False``; see above).
    prefit : bool, default=False
        ``estimator`` is fitted: ``fit`` only calibrates (on every labelled
        row; the estimator must not have been trained on them). ``clone``
        (``GridSearchCV``, ``cross_val_score``) unfits an estimator; pass it
        as ``sklearn.frozen.FrozenEstimator(fitted)`` to keep it fitted.
    mode : {"auto", "target", "weighted", "source"}, default="auto"
        Which rows calibrate and how (see above).
    domain_classifier : classifier or None, default=None
        Estimates the density ratio (has ``fit`` and ``predict_proba``); None:
        ``StandardScaler`` + ``LogisticRegression(C=1.0)``.
    clip_quantile : float in (0, 1] or None, default=None
        Weighted mode only: weights above this quantile of the calibration
        weights are clipped, at calibration and test points alike (shorter,
        finite intervals, at the price of exactness); None: no clipping, the
        method as published.
    random_state : int, RandomState instance or None, default=None
        Seeds the calibration split.

    Attributes
    ----------
    estimator_ : regressor
        The fitted estimator (``estimator`` itself when ``prefit=True``).
    mode_ : {"target", "weighted", "source"}
        The mode used.
    conformity_scores_ : ndarray of shape (n_calibration,)
        Absolute residuals of the calibration rows.
    calibration_weights_ : ndarray of shape (n_calibration,)
        Their weights ``w(X_i)`` (ones outside ``"weighted"`` mode).
    calibration_indices_ : ndarray of int
        Which rows of ``fit``'s ``X`` calibrated.
    density_ratio_ : callable or None
        ``w(x)`` for rows of ``X`` (weighted mode), else None.
    weight_cap_ : float
        The clipping threshold of the weights (``inf`` when not clipped).
    n_features_in_ : int
        Number of features seen in ``fit``.
    feature_names_in_ : ndarray of str
        Names of the features seen in ``fit``, when ``X`` has them.

    See Also
    --------
    sktransfer.model_selection.ImportanceWeightedScorer : The same density
        ratios, for choosing settings.

    References
    ----------
    J. Lei, M. G'Sell, A. Rinaldo, R. J. Tibshirani and L. Wasserman,
    "Distribution-Free Predictive Inference for Regression", JASA 2018.

    R. J. Tibshirani, R. Foygel Barber, E. J. Candes and A. Ramdas,
    "Conformal Prediction Under Covariate Shift", NeurIPS 2019.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer.conformal import ShiftConformalRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(300, 200, shift="covariate",
    ...                                    random_state=0)
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.concatenate([ys, np.full(len(Xt), np.nan)])  # no target labels
    >>> model = ShiftConformalRegressor(random_state=0).fit(X, y)
    >>> model.mode_
    'weighted'
    >>> y_pred, intervals = model.predict(Xt, return_interval=True)
    >>> intervals.shape
    (200, 2)
    """

    __metadata_request__fit = {"sample_domain": True}

    _parameter_constraints: dict = {
        "estimator": [HasMethods(["fit", "predict"]), None],
        "confidence_level": [Interval(Real, 0, 1, closed="neither")],
        "calibration_size": [Interval(Real, 0, 1, closed="neither")],
        "prefit": ["boolean"],
        "mode": [StrOptions({"auto", "target", "weighted", "source"})],
        "domain_classifier": [HasMethods(["fit", "predict_proba"]), None],
        "clip_quantile": [Interval(Real, 0, 1, closed="right"), None],
        "random_state": ["random_state"],
    }

    def __init__(
        self,
        estimator=None,
        *,
        confidence_level=0.9,
        calibration_size=0.3,
        prefit=False,
        mode="auto",
        domain_classifier=None,
        clip_quantile=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.confidence_level = confidence_level
        self.calibration_size = calibration_size
        self.prefit = prefit
        self.mode = mode
        self.domain_classifier = domain_classifier
        self.clip_quantile = clip_quantile
        self.random_state = random_state

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.single_output = True
        tags.target_tags.multi_output = False
        tags.input_tags.allow_nan = False
        return tags

    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_domain=None):
        """Fit the estimator (unless prefit) and calibrate the intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Source and target rows.
        y : array-like of shape (n_samples,)
            Targets; NaN marks unlabelled target rows.
        sample_domain : array-like of int of shape (n_samples,) or None, \
default=None
            ``>= 0`` source rows, ``< 0`` target rows; None: rows with a NaN
            ``y`` are target rows.

        Returns
        -------
        self : ShiftConformalRegressor
            The fitted wrapper.

        Raises
        ------
        ValueError
            If ``y`` has more than one output, there are too few labelled rows
            to split, ``mode="target"`` has fewer than ``ceil(1 / alpha) - 1``
            labelled target rows, ``mode="weighted"`` has no target rows, or
            ``prefit=True`` with an unfitted estimator.
        """
        X, y = self._check_data(X, y)
        masks = domain_masks(y.reshape(-1, 1), sample_domain)
        if not masks.labelled.any():
            raise ValueError(
                "ShiftConformalRegressor: y has no finite value, so there is no "
                "labelled row to calibrate on; pass labelled source rows (or "
                "labelled target rows) with a finite y."
            )
        mode = self._choose_mode(masks)
        calibration, train = self._split(masks, mode)
        estimator = self._fit_estimator(X, y, masks, calibration, train)
        scores = np.abs(y[calibration] - self._predict_1d(estimator, X[calibration]))
        ratio, weights, cap = None, np.ones(len(calibration)), np.inf
        if mode == "weighted":
            ratio = fit_density_ratio(
                "ShiftConformalRegressor.fit",
                X[masks.source],
                X[masks.target],
                self.domain_classifier,
            )
            weights = ratio(X[calibration])
            if self.clip_quantile is not None:
                cap = float(np.quantile(weights, self.clip_quantile))
                weights = np.minimum(weights, cap)
        self.estimator_, self.mode_ = estimator, mode
        self.conformity_scores_, self.calibration_weights_ = scores, weights
        self.calibration_indices_ = calibration
        self.density_ratio_, self.weight_cap_ = ratio, cap
        return self

    def _check_data(self, X, y):
        """Validated ``X`` and 1-D float ``y`` (NaN allowed)."""
        if y is None:
            raise ValueError(
                "ShiftConformalRegressor requires y to be passed, but the target y "
                "is None; pass y (NaN for unlabelled target rows)."
            )
        X = validate_data(self, X, reset=True, allow_nd=True, ensure_min_samples=2)
        y = check_array(
            y, ensure_2d=False, dtype=np.float64, ensure_all_finite="allow-nan"
        )
        if y.ndim == 2 and y.shape[1] == 1:
            warn(
                "A column-vector y was passed when a 1d array was expected; it is "
                "ravelled (y.ravel()).",
                DataConversionWarning,
            )
            y = y.ravel()
        if y.ndim != 1:
            raise ValueError(
                "ShiftConformalRegressor supports one output only: y must be 1-D "
                f"of shape (n_samples,); got shape {y.shape}. Fit one wrapper per "
                "output column."
            )
        if len(y) != len(X):
            raise ValueError(
                f"X has {len(X)} rows but y has {len(y)} (inconsistent numbers of "
                "samples); pass one y per row of X (NaN for unlabelled target rows)."
            )
        if np.isinf(y).any():
            raise ValueError(
                "Input y contains infinity; use NaN to mark unlabelled target rows."
            )
        return X, y

    def _n_min(self):
        return min_calibration_rows(self.confidence_level)

    def _choose_mode(self, masks):
        n_min = self._n_min()
        n_labelled_target = int((masks.labelled & masks.target).sum())
        if self.mode == "auto":
            if n_labelled_target >= n_min:
                return "target"
            return "weighted" if masks.n_target else "source"
        if self.mode == "target" and n_labelled_target < n_min:
            raise ValueError(
                f"ShiftConformalRegressor: mode='target' needs at least {n_min} "
                f"labelled target rows at confidence_level={self.confidence_level} "
                f"(ceil(1 / alpha) - 1, the fewest for a finite quantile); got "
                f"{n_labelled_target}. Pass more target labels, lower "
                "confidence_level, or use mode='weighted'."
            )
        if self.mode == "weighted" and not masks.n_target:
            raise ValueError(
                "ShiftConformalRegressor: mode='weighted' needs target rows (y NaN "
                "or sample_domain < 0) to estimate the density ratio; got none. "
                "Pass the unlabelled target rows, or use mode='source'."
            )
        if self.mode == "source" and not (masks.labelled & masks.source).sum():
            raise ValueError(
                "ShiftConformalRegressor: mode='source' needs labelled source rows "
                "to calibrate on; got none. Use mode='target'."
            )
        return self.mode

    def _split(self, masks, mode):
        """Indices of the calibration rows and the labelled training rows."""
        in_domain = masks.target if mode == "target" else masks.source
        pool = np.flatnonzero(masks.labelled & in_domain)
        others = np.flatnonzero(masks.labelled & ~in_domain)
        if self.prefit:
            return pool, np.array([], dtype=int)
        n = len(pool)
        if mode == "target":
            n_cal = max(self._n_min(), math.ceil(self.calibration_size * n))
        else:
            n_cal = max(1, round(self.calibration_size * n))
        # keep one labelled row to train on
        n_cal = min(n_cal, n if len(others) else n - 1)
        if n_cal < 1 or (mode == "target" and n_cal < self._n_min()):
            raise ValueError(
                f"ShiftConformalRegressor: {n} labelled "
                f"{'target' if mode == 'target' else 'source'} rows are too few to "
                "split into training and calibration rows; pass more labelled "
                "rows, or a fitted estimator with prefit=True."
            )
        perm = check_random_state(self.random_state).permutation(pool)
        calibration = np.sort(perm[:n_cal])
        train = np.sort(np.concatenate([perm[n_cal:], others]))
        return calibration, train

    def _fit_estimator(self, X, y, masks, calibration, train):
        if self.prefit:
            check_is_fitted(self.estimator)
            return self.estimator
        estimator = clone(
            TransferRegressor("linear") if self.estimator is None else self.estimator
        )
        if _accepts_sample_domain(estimator):
            # every target row adapts; the calibration rows' labels stay hidden
            rows = np.union1d(train, np.flatnonzero(masks.target))
            y_fit = y.copy()
            y_fit[calibration] = np.nan
            return estimator.fit(X[rows], y_fit[rows], sample_domain=masks.domain[rows])
        return estimator.fit(X[train], y[train])

    @staticmethod
    def _predict_1d(estimator, X):
        pred = np.asarray(estimator.predict(X), dtype=float)
        if pred.ndim == 2 and pred.shape[1] == 1:
            pred = pred.ravel()
        if pred.shape != (len(X),):
            raise ValueError(
                "ShiftConformalRegressor supports one output only; the estimator "
                f"predicts shape {pred.shape} for {len(X)} rows."
            )
        return pred

    def predict(self, X, return_interval=False):
        """Point predictions and, with ``return_interval``, the intervals.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Rows to predict (target rows, for the weighted intervals).
        return_interval : bool, default=False
            Also return the intervals.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The estimator's predictions.
        intervals : ndarray of shape (n_samples, 2)
            Lower and upper bounds (only with ``return_interval=True``); may
            be infinite in weighted mode.
        """
        check_is_fitted(self)
        X = validate_data(self, X, reset=False, allow_nd=True)
        y_pred = self._predict_1d(self.estimator_, X)
        if not return_interval:
            return y_pred
        q = self._quantiles(X)
        return y_pred, np.column_stack([y_pred - q, y_pred + q])

    def predict_interval(self, X):
        """Point predictions and intervals (MAPIE's name for it).

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            Rows to predict.

        Returns
        -------
        y_pred : ndarray of shape (n_samples,)
            The estimator's predictions.
        intervals : ndarray of shape (n_samples, 2)
            Lower and upper bounds.
        """
        return self.predict(X, return_interval=True)

    def _quantiles(self, X):
        scores, level = self.conformity_scores_, self.confidence_level
        if self.mode_ != "weighted":
            q = weighted_conformal_quantile(scores, np.ones(len(scores)), 1.0, level)
            return np.full(len(X), q[0])
        test_weights = np.minimum(self.density_ratio_(X), self.weight_cap_)
        q = weighted_conformal_quantile(
            scores, self.calibration_weights_, test_weights, level
        )
        n_inf = int(np.isinf(q).sum())
        if n_inf:
            warn(
                f"{n_inf} of {len(q)} rows got infinite intervals: the source "
                "calibration rows carry too little weight near them (they lie "
                "where the source has few rows). Pass labelled target rows "
                "(mode='target'), more calibration rows, or clip_quantile."
            )
        return q
