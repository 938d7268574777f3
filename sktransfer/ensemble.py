"""Ensembles of transferred models: the mean prediction and the member spread.

:class:`TransferEnsemble` fits ``n_members`` copies of one transfer estimator
(a :class:`~sktransfer.TransferRegressor` or
:class:`~sktransfer.DomainAdaptRegressor`) that differ by seed and, through
``member_params``, by any parameter (``finetune``, ``method``, ``backbone``,
...), in parallel with joblib. ``predict(X)`` is the mean of the members;
``predict(X, return_std=True)`` adds their standard deviation, as
:class:`sklearn.gaussian_process.GaussianProcessRegressor` returns it (for
members with a Gaussian head, the standard deviation of the mixture of the
Gaussians they predict).
"""

import copy
import warnings
from contextlib import nullcontext
from numbers import Integral

import numpy as np
from joblib import Parallel, delayed, effective_n_jobs
from sklearn.base import BaseEstimator, RegressorMixin, _fit_context, clone
from sklearn.utils import check_random_state, get_tags
from sklearn.utils._param_validation import Interval
from sklearn.utils.validation import (
    _check_feature_names,
    _num_samples,
    check_is_fitted,
)
from threadpoolctl import threadpool_limits

from sktransfer._base import (
    BaseTransferEstimator,
    SourceNotSaved,
    _is_fitted_source,
    _unfrozen,
)
from sktransfer._domain_adapt import DomainAdaptRegressor
from sktransfer._transfer import TransferRegressor
from sktransfer._warnings import warn
from sktransfer._workers import worker_threads

__all__ = ["TransferEnsemble"]

_MAX_SEED = np.iinfo(np.int32).max
#: rows on which fit checks that the members differ
_CHECK_ROWS = 256
#: members whose predictions spread less than this, relative, are the same
_IDENTICAL = 1e-5


def _fit_member(member, X, y, fit_params, one_thread):
    """Fit one member (in a joblib worker): one torch thread when members
    run in parallel, so that workers do not oversubscribe the cores. Returns
    the member and what it warned about, ``[(category, message)]``, which
    the ensemble says again in the caller's process."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        with threadpool_limits(limits=1) if one_thread else nullcontext():
            member.fit(X, y, **fit_params)
    return member, [(w.category, str(w.message)) for w in caught]


def _warn_once(caught):
    """Say each distinct warning of the members once, at the caller's line
    (deprecations of dependencies are left to their own filters)."""
    said = []
    for item in caught:
        if item not in said:
            said.append(item)
    for category, message in said:
        if not issubclass(category, DeprecationWarning | PendingDeprecationWarning):
            warn(message, category)


def _warn_if_identical(fitted, X):
    """Warn when the members predict alike on the first training rows: their
    seeds changed nothing, and the spread ``return_std`` gives is about 0."""
    if len(fitted) < 2:
        return
    n = min(_CHECK_ROWS, _num_samples(X))
    rows = X.iloc[:n] if hasattr(X, "iloc") else np.asarray(X)[:n]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the fit said it already
        predictions = np.stack([member.predict(rows) for member in fitted])
    scale = float(np.abs(predictions).max())
    if predictions.std(axis=0).max() > _IDENTICAL * scale:
        return
    warn(
        f"The {len(fitted)} members of this TransferEnsemble predict the same "
        f"(to {_IDENTICAL:g} relative) on the training rows, so predict(X, "
        "return_std=True) gives a spread of about 0 (with Gaussian heads, "
        "only the variance the members predict): their seeds change "
        "nothing in this training (a network taken whole from a fitted "
        "source, every row in one batch, no augmentation; or a closed-form "
        "solution). Make the members differ with member_params (finetune, "
        "lr, augment, or a different fitted source as backbone each), or a "
        "batch_size below the number of rows."
    )


def _mixture(means, stds):
    """Mean and standard deviation of an equally weighted mixture.

    Each member ``i`` predicts a Gaussian ``N(mean_i, std_i^2)``; the mixture
    has mean ``m = mean(mean_i)`` and variance ``mean(std_i^2 + mean_i^2) -
    m^2`` (Lakshminarayanan et al., NeurIPS 2017), computed here as
    ``mean(std_i^2) + mean((mean_i - m)^2)``, the same value without the
    cancellation. With every ``std_i = 0`` it is the members' spread.

    Parameters
    ----------
    means, stds : ndarray of shape (n_members, ...)
        The members' predicted means and standard deviations.

    Returns
    -------
    mean, std : ndarray of shape (...)
        The mixture's mean and standard deviation.
    """
    mean = means.mean(axis=0)
    variance = (stds**2).mean(axis=0) + ((means - mean) ** 2).mean(axis=0)
    return mean, np.sqrt(variance)


def _domain_params(member, sample_domain, method):
    """``{"sample_domain": ...}`` for a DomainAdaptRegressor member's
    ``method``, ``{}`` without one; refused for other members."""
    if sample_domain is None:
        return {}
    if not isinstance(member, DomainAdaptRegressor):
        raise ValueError(
            f"sample_domain applies to DomainAdaptRegressor members; the members "
            f"here are {type(member).__name__}s, whose {method} takes no "
            "sample_domain. Leave it out, or pass a DomainAdaptRegressor as "
            "estimator."
        )
    return {"sample_domain": sample_domain}


def _placeholder(backbone):
    """:class:`SourceNotSaved` for a fitted source estimator, else
    ``backbone`` itself."""
    if not _is_fitted_source(backbone):
        return backbone
    return SourceNotSaved(type(_unfrozen(backbone)).__name__)


def _without_source(estimator):
    """``estimator`` (unfitted) with a fitted source ``backbone`` replaced by
    the :class:`SourceNotSaved` placeholder, unless ``keep_source``."""
    if estimator.keep_source or not _is_fitted_source(estimator.backbone):
        return estimator
    light = copy.copy(estimator)
    light.backbone = _placeholder(estimator.backbone)
    return light


def _params_without_source(params):
    """A ``member_params`` entry with a fitted source ``backbone`` replaced by
    the :class:`SourceNotSaved` placeholder."""
    if not isinstance(params, dict) or "backbone" not in params:
        return params
    return {**params, "backbone": _placeholder(params["backbone"])}


class TransferEnsemble(RegressorMixin, BaseEstimator):
    """An ensemble of transferred models: mean prediction and member spread.

    ``fit`` clones ``estimator`` ``n_members`` times; member ``i`` is
    ``clone(estimator).set_params(random_state=seed_i, **member_params[i %
    len(member_params)])``, with ``seed_i`` drawn from ``random_state``, so
    members differ by seed and optionally by strategy, method or backbone.
    A fitted source model given as the template's ``backbone`` (or in
    ``member_params``) is shared by the members, never refitted or copied
    before their fit. Members are fitted in parallel with joblib
    (``n_jobs``), one torch thread per worker.

    ``predict(X)`` is the mean of the members' predictions;
    ``predict(X, return_std=True)`` also returns their standard deviation
    (the spread of the ensemble, ``ddof=0``), with the shapes of
    :meth:`sklearn.gaussian_process.GaussianProcessRegressor.predict`. The
    spread measures how much the members disagree; it is not a calibrated
    prediction interval. Members fitted with ``head="gaussian"`` each
    predict a mean and a variance; ``return_std=True`` then gives the
    standard deviation of the equally weighted mixture of their Gaussians,
    ``sqrt(mean(var_i + mean_i^2) - mean^2)`` (deep ensembles,
    Lakshminarayanan et al., NeurIPS 2017): the noise each member expects
    plus their disagreement.

    Parameters
    ----------
    estimator : TransferRegressor or DomainAdaptRegressor, default=None
        The template of the members (cloned, never changed). None:
        ``TransferRegressor()``.
    n_members : int, default=5
        Number of members.
    member_params : list of dict, default=None
        Parameters of the members, cycled over them: member ``i`` takes
        ``member_params[i % len(member_params)]`` (for example
        ``[{"finetune": "full"}, {"finetune": "linear_probe"}]``). A
        ``random_state`` given here overrides the drawn seed. None: the
        members differ by seed only.
    n_jobs : int, default=None
        Number of members fitted at once (joblib; None means 1 unless in a
        ``joblib.parallel_backend`` context, -1 all processors). Above one,
        each member fits on one torch thread. Inside a Dask or Ray worker
        (a search on a cluster), None means 1: the members fit one after
        the other in that worker. Members predict in turn.
    random_state : int, RandomState instance or None, default=None
        Draws the members' seeds: an int gives the same members, whatever
        ``n_jobs``.

    Attributes
    ----------
    estimators_ : list of estimators
        The fitted members, in order.
    seeds_ : ndarray of shape (n_members,)
        The seed drawn for each member (before ``member_params``).
    n_features_in_ : int
        Number of features seen during ``fit``.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Names of the features seen during ``fit``; only when ``X`` has
        feature names that are all strings.
    n_outputs_ : int
        Number of outputs of ``y``.

    See Also
    --------
    TransferRegressor : a member that fine-tunes.
    DomainAdaptRegressor : a member that adapts.
    sklearn.ensemble.VotingRegressor : averages members of any kinds.

    Examples
    --------
    >>> from sktransfer import TransferEnsemble, TransferRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(200, 40, random_state=0)
    >>> source = TransferRegressor(max_epochs=20, random_state=0).fit(Xs, ys)
    >>> ensemble = TransferEnsemble(
    ...     TransferRegressor(source, max_epochs=10),
    ...     n_members=3,
    ...     member_params=[{"finetune": "full"}, {"finetune": "linear_probe"}],
    ...     random_state=0,
    ... ).fit(Xt, yt)
    >>> mean, std = ensemble.predict(Xt[:2], return_std=True)
    >>> mean.shape, std.shape
    ((2,), (2,))
    >>> [member.finetune for member in ensemble.estimators_]
    ['full', 'linear_probe', 'full']
    """

    _parameter_constraints: dict = {
        "estimator": "no_validation",  # checked in fit, with a TypeError
        "n_members": [Interval(Integral, 1, None, closed="left")],
        "member_params": [list, None],
        "n_jobs": [Integral, None],
        "random_state": ["random_state"],
    }
    # as DomainAdaptRegressor: sample_domain flows to fit and predict under
    # metadata routing (it is refused for members that do not take it)
    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__predict = {"sample_domain": True}

    def __init__(
        self,
        estimator=None,
        *,
        n_members=5,
        member_params=None,
        n_jobs=None,
        random_state=None,
    ):
        self.estimator = estimator
        self.n_members = n_members
        self.member_params = member_params
        self.n_jobs = n_jobs
        self.random_state = random_state

    # ------------------------------------------------------------ helpers
    def _template(self):
        """The members' template, checked (a TypeError names what was
        passed)."""
        if self.estimator is None:
            return TransferRegressor()
        if not isinstance(self.estimator, BaseTransferEstimator):
            raise TypeError(
                "estimator must be a TransferRegressor or a DomainAdaptRegressor "
                f"(or None for TransferRegressor()); got {self.estimator!r} of "
                f"type {type(self.estimator).__name__}. To average other "
                "regressors, use sklearn.ensemble.VotingRegressor."
            )
        return self.estimator

    def _member_settings(self, template):
        """The ``member_params`` list (``[{}]`` for None), each entry checked
        against the template's parameters."""
        if self.member_params is None:
            return [{}]
        if not self.member_params:
            raise ValueError(
                "member_params must hold at least one dict of parameters; got "
                "[]. Pass None for members that differ by seed only."
            )
        valid = template.get_params(deep=False)
        for i, params in enumerate(self.member_params):
            if not isinstance(params, dict):
                raise TypeError(
                    f"member_params[{i}] must be a dict of parameters of "
                    f"{type(template).__name__}; got {params!r} of type "
                    f"{type(params).__name__}."
                )
            unknown = sorted(set(params) - set(valid))
            if unknown:
                raise ValueError(
                    f"member_params[{i}] names {unknown}, which "
                    f"{type(template).__name__} does not take; valid "
                    f"parameters are {sorted(valid)}."
                )
        return self.member_params

    def _members(self, template, seeds):
        """The unfitted members: clones of the template, a seed each, then
        their ``member_params`` (a fitted source backbone is shared)."""
        settings = self._member_settings(template)
        return [
            clone(template).set_params(
                **{"random_state": int(seed), **settings[i % len(settings)]}
            )
            for i, seed in enumerate(seeds)
        ]

    def _fit_params(self, template, sample_weight, sample_domain):
        """The keyword arguments of each member's ``fit``."""
        params = {} if sample_weight is None else {"sample_weight": sample_weight}
        return {**params, **_domain_params(template, sample_domain, "fit")}

    # ---------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=False)
    def fit(self, X, y, sample_weight=None, sample_domain=None):
        """Fit the members (in parallel with ``n_jobs``).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Training inputs, as the template's ``fit`` takes them.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; NaN marks an unlabelled target row for
            DomainAdaptRegressor members.
        sample_weight : array-like of shape (n_samples,), default=None
            Row weights, passed to every member.
        sample_domain : array-like of int, shape (n_samples,), default=None
            Domains of the rows (``>= 0`` source, ``< 0`` target), passed to
            every member; DomainAdaptRegressor members only.

        Returns
        -------
        self : TransferEnsemble
            The fitted ensemble.
        """
        template = self._template()
        fit_params = self._fit_params(template, sample_weight, sample_domain)
        seeds = check_random_state(self.random_state).randint(
            _MAX_SEED, size=self.n_members
        )
        members = self._members(template, seeds)
        parallel = Parallel(n_jobs=self.n_jobs)
        one_thread = effective_n_jobs(self.n_jobs) > 1 and len(members) > 1
        if self.n_jobs is None and worker_threads() is not None:
            # in a Dask or Ray worker the search already spreads the fits over
            # the cluster; joblib's nested backend there (which ignores
            # n_jobs=1) would send the members on to the busy workers
            parallel = Parallel(n_jobs=1, backend="sequential")
            one_thread = False  # the worker's allotment applies
        results = parallel(
            delayed(_fit_member)(member, X, y, fit_params, one_thread)
            for member in members
        )
        _warn_once([item for _, caught in results for item in caught])
        fitted = [result for result, _ in results]
        for member, result in zip(members, fitted):
            # a member back from a worker process holds a placeholder
            # (SourceNotSaved) or, with keep_source, a copy of its fitted
            # source: point it at the shared one again
            if _is_fitted_source(member.backbone):
                result.backbone = member.backbone
        _warn_if_identical(fitted, X)
        self._publish(fitted, seeds)
        return self

    def _publish(self, fitted, seeds):
        """Every fitted attribute, in one place."""
        first = fitted[0]
        self.estimators_ = fitted
        self.seeds_ = np.asarray(seeds)
        self.n_features_in_ = first.n_features_in_
        if hasattr(first, "feature_names_in_"):
            self.feature_names_in_ = first.feature_names_in_
        elif hasattr(self, "feature_names_in_"):
            del self.feature_names_in_
        self.n_outputs_ = first.n_outputs_

    def __sklearn_is_fitted__(self):
        return hasattr(self, "estimators_")

    # ------------------------------------------------------------ predict
    def _member_predictions(self, X, params):
        """``(n_members, n_samples[, n_outputs])``: each member's prediction.
        What a member warns about (inputs out of the training range), every
        member would: it is said once, by the first."""
        predictions = []
        for i, member in enumerate(self.estimators_):
            with warnings.catch_warnings():
                if i:
                    warnings.simplefilter("ignore")
                else:  # checked by the ensemble, which names itself
                    warnings.filterwarnings("ignore", message=".*feature names")
                predictions.append(member.predict(X, **params))
        return np.stack(predictions)

    def predict(self, X, return_std=False, sample_domain=None):
        """Mean prediction of the members, and optionally their spread.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, ...)
            Inputs.
        return_std : bool, default=False
            Also return the standard deviation of the members' predictions
            (``ddof=0``; 0 for one member). When members have a Gaussian head
            (``head="gaussian"``), the standard deviation of the mixture of
            their predicted Gaussians instead: the mean of the members'
            variances plus the variance of their means (members without one
            count with variance 0).
        sample_domain : array-like of int, shape (n_samples,), default=None
            The domain of each row, passed to every member (DomainAdaptRegressor
            members only; see its ``predict``). None: every row is a target
            row.

        Returns
        -------
        y_mean : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Mean of the members' predictions.
        y_std : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            Standard deviation of the members' predictions (of the mixture,
            with Gaussian heads); only with ``return_std=True``.
        """
        check_is_fitted(self)
        _check_feature_names(self, X, reset=False)
        # the members check the shape of X (the first one says what is wrong)
        params = _domain_params(self.estimators_[0], sample_domain, "predict")
        gaussian = [member._predicts_variance() for member in self.estimators_]
        if not (return_std and any(gaussian)):
            predictions = self._member_predictions(X, params)
            mean = predictions.mean(axis=0)
            return (mean, predictions.std(axis=0)) if return_std else mean
        means, stds = self._member_distributions(X, params, gaussian)
        return _mixture(means, stds)

    def _member_distributions(self, X, params, gaussian):
        """``(means, stds)``, each ``(n_members, n_samples[, n_outputs])``:
        the members' predicted means and standard deviations (0 for a member
        without a Gaussian head)."""
        means, stds = [], []
        for i, member in enumerate(self.estimators_):
            with warnings.catch_warnings():
                if i:
                    warnings.simplefilter("ignore")
                else:
                    warnings.filterwarnings("ignore", message=".*feature names")
                if gaussian[i]:
                    mean, std = member.predict(X, return_std=True, **params)
                else:
                    mean = member.predict(X, **params)
                    std = np.zeros_like(mean)
            means.append(mean)
            stds.append(std)
        return np.stack(means), np.stack(stds)

    # -------------------------------------------------------- tags, pickle
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        try:
            template = self._template()
        except TypeError:  # fit says so
            return tags
        inner = get_tags(template)
        tags.input_tags = copy.deepcopy(inner.input_tags)
        tags.target_tags = copy.deepcopy(inner.target_tags)
        return tags

    def __getstate__(self):
        """The state; a fitted ensemble leaves a fitted source backbone of
        its template and of ``member_params`` out (as each member does:
        :class:`~sktransfer._base.SourceNotSaved` stands in), unless the
        template has ``keep_source=True``."""
        state = dict(super().__getstate__())
        template = state.get("estimator")
        if "estimators_" not in state or not isinstance(
            template, BaseTransferEstimator
        ):
            return state
        state["estimator"] = _without_source(template)
        if state.get("member_params") and not template.keep_source:
            state["member_params"] = [
                _params_without_source(params) for params in state["member_params"]
            ]
        return state
