"""Plots of fitted estimators, as scikit-learn's display objects.

Each display stores what it draws (``__init__``), is built from a fitted
estimator (``from_estimator``) or from numbers already computed
(``from_predictions``, ``from_results``), and draws itself with
``plot(ax=None, ...)``, which sets ``ax_`` and ``figure_`` and returns the
display. matplotlib is an optional dependency (the ``plot`` extra,
``pip install 'sktransfer[plot]'``): this module imports without it, and only
``plot`` needs it.

- :class:`TrainingHistoryDisplay`: training and validation loss per epoch,
  and each recorded loss term (task loss, adaptation loss, L2-SP penalty).
- :class:`ParityDisplay`: predicted against true values, with the identity
  line and RMSE / R^2, coloured by domain.
- :class:`LabelCurveDisplay`: target error against the number of target
  labels, one line per method.
- :class:`DomainShiftDisplay`: a 2-D PCA of the backbone features of source
  and target rows, before and after adaptation.

Each class has an example; the user guide's "Plots" section shows all four.
"""

import inspect
import numbers

import numpy as np
import torch
from sklearn.base import clone
from sklearn.decomposition import PCA
from sklearn.metrics import r2_score, root_mean_squared_error
from sklearn.utils import check_random_state
from sklearn.utils.validation import check_is_fitted

from sktransfer._docs import fill_doc
from sktransfer._scaling import scale_inputs

__all__ = [
    "DomainShiftDisplay",
    "LabelCurveDisplay",
    "ParityDisplay",
    "TrainingHistoryDisplay",
]

_FEATURE_CHUNK = 4096
# history keys drawn by TrainingHistoryDisplay, in this order, with their labels
_LOSS_LABELS = {
    "train_loss": "training loss",
    "valid_loss": "validation loss",
    "train_task_loss": "task loss",
    "train_da_loss": "adaptation loss (before da_weight)",
    "train_l2sp_penalty": "L2-SP penalty",
}
_TERM_KEYS = {"train_da_loss", "train_l2sp_penalty", "da_scale"}


# ------------------------------------------------------------------ helpers
def _pyplot(caller):
    """``matplotlib.pyplot``, or an ImportError naming the extra to install."""
    try:
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise ImportError(
            f"{caller} needs matplotlib, which is not installed. Install it with "
            "pip install 'sktransfer[plot]' (or pip install matplotlib)."
        ) from exc
    return plt


def _axes(ax, caller):
    """``(figure, ax)``: a new figure when ``ax`` is None."""
    plt = _pyplot(caller)
    if ax is None:
        _, ax = plt.subplots(layout="constrained")
    return ax.figure, ax


def _check_fitted(est, caller):
    """NotFittedError (scikit-learn's message) unless ``est`` is fitted."""
    check_is_fitted(
        est,
        "net_",
        msg=(
            f"This %(name)s instance is not fitted yet; {caller} needs a fitted "
            "estimator. Call 'fit' with appropriate arguments first."
        ),
    )


def _features(est, X, sample_domain=None):
    """Backbone features ``(n_samples, n_backbone_features_)`` of ``X``.

    The rows go through what ``predict`` does before the backbone: validation,
    each domain's own standardisation (``sample_domain``, for a
    :class:`~sktransfer.DomainAdaptRegressor` with per-domain normalisation),
    the input scaling and ``clip_inputs``; then the network's reshape and
    backbone (``net_.module_.features``), in inference mode, chunk by chunk.
    """
    _check_fitted(est, "_features")
    if sample_domain is not None and hasattr(est, "_in_domain_inputs"):
        X = est._in_domain_inputs(X, sample_domain)
    X = est._validate_predict(X)
    module = est.net_.module_
    module.eval()
    parts = []
    with torch.inference_mode():
        for start in range(0, X.shape[0], _FEATURE_CHUNK):
            xb = scale_inputs(
                X[start : start + _FEATURE_CHUNK], est.input_mean_, est.input_scale_
            )
            xb = torch.from_numpy(est._bounded(xb)).to(est.device_)
            parts.append(module.features(xb, scaled=True).float().cpu().numpy())
    return np.concatenate(parts)


def _domain_array(sample_domain, n, name="sample_domain"):
    """``sample_domain`` as an int array of ``n`` rows (ValueError otherwise)."""
    domain = np.asarray(sample_domain)
    if domain.shape != (n,) or domain.dtype.kind not in "iu":
        raise ValueError(
            f"{name} must be one integer per row ({n}); got shape {domain.shape} "
            f"and dtype {domain.dtype}. Use >= 0 for source rows, < 0 for target "
            "rows."
        )
    return domain


def _domain_label(domain):
    return f"source {domain}" if domain >= 0 else f"target {domain}"


def _domain_groups(sample_domain, n):
    """``[(label, row mask), ...]``: one group per domain (sources first), or
    one unlabelled group when ``sample_domain`` is None."""
    if sample_domain is None:
        return [(None, np.ones(n, dtype=bool))]
    domains = sorted(np.unique(sample_domain).tolist(), key=lambda d: (d < 0, abs(d)))
    return [(_domain_label(d), sample_domain == d) for d in domains]


def _predict(est, X, sample_domain):
    """``est.predict``, passing ``sample_domain`` where predict takes it."""
    if sample_domain is not None and _takes(est.predict, "sample_domain"):
        return est.predict(X, sample_domain=sample_domain)
    return est.predict(X)


def _takes(method, name):
    return name in inspect.signature(method).parameters


# ---------------------------------------------------------- training history
class TrainingHistoryDisplay:
    """Loss per epoch from a fitted estimator's ``history_``.

    Draws the training loss, the validation loss (with ``early_stopping``) and
    each loss term the estimator recorded: the task loss and the adaptation
    loss of a :class:`~sktransfer.DomainAdaptRegressor` with an adaptation
    loss, the L2-SP penalty of a :class:`~sktransfer.TransferRegressor`. The
    training loss is what was minimised (task loss + ``da_weight`` times the
    ramped adaptation loss); the adaptation loss is drawn before its weight.

    Parameters
    ----------
    epochs : ndarray of shape (n_epochs,)
        Epoch numbers (from 1).
    curves : dict of str -> ndarray of shape (n_epochs,)
        Values per epoch, by ``history_`` key (NaN where an epoch did not
        record the key).

    Attributes
    ----------
    lines_ : dict of str -> matplotlib.lines.Line2D
        One line per key of ``curves``.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    ax_terms_ : matplotlib.axes.Axes or None
        The right axis of the adaptation loss and the L2-SP penalty (their
        scale differs from the losses'), or None when only one kind is drawn.
    figure_ : matplotlib.figure.Figure
        The figure holding ``ax_``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> from sktransfer.plotting import TrainingHistoryDisplay
    >>> X, y, _, _ = make_domain_shift(100, 10, random_state=0)
    >>> est = TransferRegressor(
    ...     backbone_params={"hidden_sizes": (16,)},
    ...     max_epochs=4,
    ...     early_stopping=True,
    ...     random_state=0,
    ... )
    >>> display = TrainingHistoryDisplay.from_estimator(est.fit(X, y))
    >>> sorted(display.lines_)
    ['train_loss', 'valid_loss']
    """

    def __init__(self, *, epochs, curves):
        self.epochs = epochs
        self.curves = curves

    @classmethod
    @fill_doc
    def from_estimator(cls, estimator, *, keys=None, ax=None, log_scale=False):
        """Draw the losses recorded in ``estimator.history_``.

        Parameters
        ----------
        estimator : TransferRegressor, DomainAdaptRegressor or \
SelfSupervisedPretrainer
            A fitted estimator trained by gradient (``solver_ == "gradient"``).
        keys : list of str, default=None
            The ``history_`` keys to draw; None draws those it has of
            ``train_loss``, ``valid_loss``, ``train_task_loss``,
            ``train_da_loss`` and ``train_l2sp_penalty``.
        %(ax)s
        %(log_scale)s

        Returns
        -------
        display : TrainingHistoryDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        history = _history(estimator)
        wanted = list(_LOSS_LABELS) if keys is None else list(keys)
        present = [k for k in wanted if any(k in row for row in history)]
        if keys is not None and len(present) < len(wanted):
            missing = sorted(set(wanted) - set(present))
            recorded = sorted({k for row in history for k in row})
            raise ValueError(
                f"keys={list(keys)!r} holds {missing}, which history_ does not "
                f"record; it records {recorded}."
            )
        curves = {
            k: np.array([float(row.get(k, np.nan)) for row in history]) for k in present
        }
        epochs = np.array([row.get("epoch", i + 1) for i, row in enumerate(history)])
        return cls(epochs=epochs, curves=curves).plot(ax=ax, log_scale=log_scale)

    @fill_doc
    def plot(self, ax=None, *, log_scale=False, **kwargs):
        """Draw the curves.

        Parameters
        ----------
        %(ax)s
        %(log_scale)s
        %(plot_kwargs)s

        Returns
        -------
        display : TrainingHistoryDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        self.figure_, self.ax_ = _axes(ax, "TrainingHistoryDisplay.plot")
        terms = [k for k in self.curves if k in _TERM_KEYS]
        losses = [k for k in self.curves if k not in _TERM_KEYS]
        # the adaptation loss and the penalty have their own scale: a right axis
        self.ax_terms_ = self.ax_.twinx() if terms and losses else None
        self.lines_ = {}
        colors = iter(f"C{i}" for i in range(10 * len(self.curves)))
        for key in losses + terms:
            on = self.ax_terms_ if key in terms and self.ax_terms_ else self.ax_
            style = {"linestyle": "--" if key in terms else "-", "color": next(colors)}
            style.update(kwargs)
            label = _LOSS_LABELS.get(key, key)
            (self.lines_[key],) = on.plot(
                self.epochs, self.curves[key], label=label, **style
            )
        for axes in (self.ax_, self.ax_terms_):
            if axes is not None and log_scale:
                axes.set_yscale("log")
        self.ax_.xaxis.set_major_locator(_integer_locator())
        self.ax_.set_xlabel("epoch")
        self.ax_.set_ylabel("loss (scaled target units)")
        if self.ax_terms_ is not None:
            self.ax_terms_.set_ylabel("adaptation loss, penalty (dashed)")
        self.ax_.legend(handles=list(self.lines_.values()))
        return self


def _integer_locator():
    from matplotlib.ticker import MaxNLocator

    return MaxNLocator(integer=True)


def _history(estimator):
    """The estimator's ``history_`` rows; ValueError when it holds no epoch."""
    if not hasattr(estimator, "history_"):
        raise _not_fitted(estimator, "TrainingHistoryDisplay")
    history = list(estimator.history_)
    if not history:
        solver = getattr(estimator, "solver_", None)
        why = (
            "it was solved in closed form (solver_='closed_form'), without epochs"
            if solver == "closed_form"
            else "it records no epoch"
        )
        raise ValueError(
            f"This {type(estimator).__name__} has no training history to draw: "
            f"{why}. Fit it with solver='gradient' to record losses per epoch."
        )
    return history


def _not_fitted(estimator, caller):
    from sklearn.exceptions import NotFittedError

    return NotFittedError(
        f"This {type(estimator).__name__} instance is not fitted yet; {caller} "
        "needs a fitted estimator. Call 'fit' with appropriate arguments first."
    )


# ------------------------------------------------------------------- parity
class ParityDisplay:
    """Predicted against true values, with the identity line.

    The legend gives RMSE and R^2, for all rows and for each domain when
    ``sample_domain`` is given (each domain has its own colour). Rows whose
    true value is NaN (unlabelled target rows) are left out.

    Parameters
    ----------
    y_true : ndarray of shape (n_samples,)
        True values.
    y_pred : ndarray of shape (n_samples,)
        Predicted values.
    sample_domain : ndarray of int, shape (n_samples,), default=None
        Domain of each row (``>= 0`` source, ``< 0`` target), or None.

    Attributes
    ----------
    rmse_ : float
        Root mean squared error over all rows.
    r2_ : float
        R^2 over all rows.
    scatters_ : list of matplotlib.collections.PathCollection
        One scatter per domain (one in all without ``sample_domain``).
    line_ : matplotlib.lines.Line2D
        The identity line.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure holding ``ax_``.

    See Also
    --------
    sklearn.metrics.PredictionErrorDisplay : scikit-learn's residual and
        actual-against-predicted plots, without domains.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.plotting import ParityDisplay
    >>> display = ParityDisplay.from_predictions([1.0, 2.0, 3.0], [1.1, 1.9, 3.2])
    >>> round(display.rmse_, 3)
    0.141
    """

    def __init__(self, *, y_true, y_pred, sample_domain=None):
        self.y_true = y_true
        self.y_pred = y_pred
        self.sample_domain = sample_domain

    @classmethod
    @fill_doc
    def from_estimator(
        cls, estimator, X, y, *, sample_domain=None, output=None, ax=None, **kwargs
    ):
        """Predict ``X`` with ``estimator`` and draw against ``y``.

        Parameters
        ----------
        estimator : fitted regressor
            Any fitted scikit-learn regressor; ``sample_domain`` is passed to
            its ``predict`` where it takes one
            (:class:`~sktransfer.DomainAdaptRegressor`).
        X : array-like of shape (n_samples, ...)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True values; NaN rows are left out.
        %(parity_domain)s
        output : int, default=None
            The output to draw for multi-output ``y``; None for one output.
        %(ax)s
        %(scatter_kwargs)s

        Returns
        -------
        display : ParityDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        y_pred = _predict(estimator, X, sample_domain)
        return cls.from_predictions(
            y, y_pred, sample_domain=sample_domain, output=output, ax=ax, **kwargs
        )

    @classmethod
    @fill_doc
    def from_predictions(
        cls, y_true, y_pred, *, sample_domain=None, output=None, ax=None, **kwargs
    ):
        """Draw predictions already computed against the true values.

        Parameters
        ----------
        y_true : array-like of shape (n_samples,) or (n_samples, n_outputs)
            True values; NaN rows are left out.
        y_pred : array-like of the shape of ``y_true``
            Predicted values.
        %(parity_domain)s
        output : int, default=None
            The output to draw for multi-output values; None for one output.
        %(ax)s
        %(scatter_kwargs)s

        Returns
        -------
        display : ParityDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        y_true = _one_output(y_true, output, "y_true")
        y_pred = _one_output(y_pred, output, "y_pred")
        if y_true.shape != y_pred.shape:
            raise ValueError(
                f"y_true and y_pred must have the same shape; got {y_true.shape} "
                f"and {y_pred.shape}."
            )
        labelled = np.isfinite(y_true)
        if not labelled.any():
            raise ValueError(
                "y_true has no finite value: there is nothing to compare the "
                "predictions with. Pass rows with their true values."
            )
        if sample_domain is not None:
            sample_domain = _domain_array(sample_domain, len(y_true))[labelled]
        display = cls(
            y_true=y_true[labelled],
            y_pred=y_pred[labelled],
            sample_domain=sample_domain,
        )
        return display.plot(ax=ax, **kwargs)

    @fill_doc
    def plot(self, ax=None, **kwargs):
        """Draw the scatter, the identity line and the legend.

        Parameters
        ----------
        %(ax)s
        %(scatter_kwargs)s

        Returns
        -------
        display : ParityDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        self.figure_, self.ax_ = _axes(ax, "ParityDisplay.plot")
        y_true, y_pred = np.asarray(self.y_true), np.asarray(self.y_pred)
        self.rmse_ = float(root_mean_squared_error(y_true, y_pred))
        self.r2_ = float(r2_score(y_true, y_pred)) if len(y_true) > 1 else np.nan
        style = {"s": 12, "alpha": 0.7}
        style.update(kwargs)
        self.scatters_ = []
        for label, rows in _domain_groups(self.sample_domain, len(y_true)):
            metrics = f"RMSE {root_mean_squared_error(y_true[rows], y_pred[rows]):.3g}"
            name = "predictions" if label is None else label
            self.scatters_.append(
                self.ax_.scatter(
                    y_true[rows], y_pred[rows], label=f"{name}: {metrics}", **style
                )
            )
        both = np.concatenate([y_true, y_pred])
        low, high = float(both.min()), float(both.max())
        (self.line_,) = self.ax_.plot(
            [low, high], [low, high], "k--", linewidth=1, label="y = x"
        )
        self.ax_.set_xlabel("true value")
        self.ax_.set_ylabel("predicted value")
        self.ax_.legend(title=f"RMSE {self.rmse_:.3g}, R$^2$ {self.r2_:.3f}")
        return self


def _one_output(values, output, name):
    """``values`` as a 1-D float array (column ``output`` of a 2-D one)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim == 2 and output is None and values.shape[1] == 1:
        return values[:, 0]
    if values.ndim == 2 and output is not None:
        if not isinstance(output, numbers.Integral) or not (
            -values.shape[1] <= output < values.shape[1]
        ):
            raise ValueError(
                f"output={output!r} is not a column of {name}, which has "
                f"{values.shape[1]} outputs; pass an int in [0, {values.shape[1]})."
            )
        return values[:, output]
    if values.ndim != 1:
        raise ValueError(
            f"{name} has shape {values.shape}; ParityDisplay draws one output. "
            "Pass output=k to draw the k-th column."
        )
    return values


# ------------------------------------------------------------- label curve
class LabelCurveDisplay:
    """Target test error against the number of target labels.

    One line per method (the mean over seeds) and, with several seeds, a band
    from the lowest to the highest error.

    Parameters
    ----------
    n_labels : ndarray of shape (n_points,)
        Numbers of labelled target rows.
    errors : dict of str -> ndarray of shape (n_seeds, n_points)
        Test errors by method name; row ``s`` is seed ``s``.
    metric_name : str, default="RMSE"
        The y-axis label.

    Attributes
    ----------
    lines_ : dict of str -> matplotlib.lines.Line2D
        The mean error of each method.
    bands_ : dict of str -> matplotlib.collections.PolyCollection
        The seeds' spread of each method with more than one seed.
    ax_ : matplotlib.axes.Axes
        The axes drawn on.
    figure_ : matplotlib.figure.Figure
        The figure holding ``ax_``.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> from sktransfer.plotting import LabelCurveDisplay
    >>> display = LabelCurveDisplay.from_results(
    ...     [0, 10, 40],
    ...     {"source only": [0.9, 0.9, 0.9], "fine-tuned": [[0.9, 0.6, 0.4],
    ...                                                  [0.9, 0.7, 0.4]]},
    ... )
    >>> sorted(display.bands_)
    ['fine-tuned']
    """

    def __init__(self, *, n_labels, errors, metric_name="RMSE"):
        self.n_labels = n_labels
        self.errors = errors
        self.metric_name = metric_name

    @classmethod
    @fill_doc
    def from_results(cls, n_labels, errors, *, metric_name="RMSE", ax=None):
        """Draw errors already measured.

        Parameters
        ----------
        n_labels : array-like of int, shape (n_points,)
            Numbers of labelled target rows.
        errors : dict of str -> array-like of shape (n_points,) or \
(n_seeds, n_points)
            Test errors by method name.
        metric_name : str, default="RMSE"
            The y-axis label.
        %(ax)s

        Returns
        -------
        display : LabelCurveDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        n_labels = np.asarray(n_labels)
        if not isinstance(errors, dict) or not errors:
            raise TypeError(
                "errors must be a non-empty dict of method name -> errors; got "
                f"{type(errors).__name__}."
            )
        checked = {}
        for name, values in errors.items():
            values = np.atleast_2d(np.asarray(values, dtype=np.float64))
            if values.ndim != 2 or values.shape[1] != len(n_labels):
                raise ValueError(
                    f"errors[{name!r}] has shape {values.shape}; it needs one "
                    f"value per entry of n_labels ({len(n_labels)}), one row per "
                    "seed."
                )
            checked[name] = values
        display = cls(n_labels=n_labels, errors=checked, metric_name=metric_name)
        return display.plot(ax=ax)

    @classmethod
    @fill_doc
    def from_estimator(
        cls,
        estimator,
        X_source,
        y_source,
        X_target,
        y_target,
        X_test,
        y_test,
        *,
        n_labels=(0, 5, 10, 20, 40),
        seeds=(0,),
        scoring=None,
        metric_name=None,
        ax=None,
    ):
        """Fit clones with more and more target labels; draw the test error.

        For each seed and each number ``k`` of ``n_labels``, ``k`` rows of
        ``X_target`` (drawn with the seed; the rows for a larger ``k`` include
        those for a smaller one) keep their label, and a clone of each
        estimator (``random_state`` set to the seed where it has one) is
        fitted: a regressor whose ``fit`` takes ``sample_domain``
        (:class:`~sktransfer.DomainAdaptRegressor`) on the source rows and all
        target rows (the unlabelled ones with NaN labels), any other regressor
        on the source rows and the ``k`` labelled target rows. It costs
        ``len(seeds) * len(n_labels)`` fits per estimator: keep the
        estimators small, or measure once and use :meth:`from_results`.

        Parameters
        ----------
        estimator : regressor or dict of str -> regressor
            The estimator(s) to compare; each is cloned, fitted or not, and
            never changed.
        X_source : array-like of shape (n_source, ...)
            Source inputs.
        y_source : array-like of shape (n_source,) or (n_source, n_outputs)
            Source targets.
        X_target : array-like of shape (n_target, ...)
            Target inputs, the pool the labelled rows are drawn from.
        y_target : array-like of shape (n_target,) or (n_target, n_outputs)
            Target labels (only ``k`` of them are used for each fit).
        X_test : array-like of shape (n_test, ...)
            Held-out target inputs.
        y_test : array-like of shape (n_test,) or (n_test, n_outputs)
            Held-out target labels.
        n_labels : sequence of int, default=(0, 5, 10, 20, 40)
            Numbers of labelled target rows, each at most ``n_target``.
        seeds : sequence of int, default=(0,)
            One draw of the labelled rows (and one ``random_state``) each.
        scoring : callable, default=None
            ``scoring(y_true, y_pred) -> float``, lower is better; None is
            the root mean squared error.
        metric_name : str, default=None
            The y-axis label; None is ``"RMSE"`` or ``scoring``'s name.
        %(ax)s

        Returns
        -------
        display : LabelCurveDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        estimators = _named_estimators(estimator)
        n_labels = _check_n_labels(n_labels, len(X_target))
        score = root_mean_squared_error if scoring is None else scoring
        data = (X_source, y_source, X_target, y_target)
        errors = {
            name: np.array(
                [
                    [
                        score(
                            y_test, _fit_with_labels(est, data, k, seed).predict(X_test)
                        )
                        for k in n_labels
                    ]
                    for seed in seeds
                ]
            )
            for name, est in estimators.items()
        }
        if metric_name is None:
            metric_name = (
                "RMSE" if scoring is None else getattr(scoring, "__name__", "error")
            )
        return cls.from_results(n_labels, errors, metric_name=metric_name, ax=ax)

    @fill_doc
    def plot(self, ax=None, **kwargs):
        """Draw one line per method, with the seeds' spread.

        Parameters
        ----------
        %(ax)s
        %(plot_kwargs)s

        Returns
        -------
        display : LabelCurveDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        self.figure_, self.ax_ = _axes(ax, "LabelCurveDisplay.plot")
        self.lines_, self.bands_ = {}, {}
        for name, values in self.errors.items():
            values = np.atleast_2d(values)
            style = {"marker": "o"}
            style.update(kwargs)
            (line,) = self.ax_.plot(
                self.n_labels, values.mean(axis=0), label=name, **style
            )
            self.lines_[name] = line
            if values.shape[0] > 1:
                self.bands_[name] = self.ax_.fill_between(
                    self.n_labels,
                    values.min(axis=0),
                    values.max(axis=0),
                    color=line.get_color(),
                    alpha=0.2,
                )
        self.ax_.set_xlabel("number of target labels")
        self.ax_.set_ylabel(f"target test {self.metric_name}")
        self.ax_.legend()
        return self


def _named_estimators(estimator):
    if isinstance(estimator, dict):
        if not estimator:
            raise ValueError("estimator is an empty dict; pass at least one.")
        return dict(estimator)
    params = estimator.get_params(deep=False)
    name = type(estimator).__name__
    if "method" in params:
        name = f"{name}(method={params['method']!r})"
    return {name: estimator}


def _check_n_labels(n_labels, n_target):
    values = np.asarray(n_labels)
    if (
        values.ndim != 1
        or values.size == 0
        or values.dtype.kind not in "iu"
        or values.min() < 0
        or values.max() > n_target
    ):
        raise ValueError(
            f"n_labels must be a non-empty sequence of ints in [0, {n_target}] "
            f"(the number of target rows); got {n_labels!r}."
        )
    return values


def _fit_with_labels(estimator, data, k, seed):
    """A clone of ``estimator`` fitted with ``k`` labelled target rows."""
    X_source, y_source, X_target, y_target = (np.asarray(a) for a in data)
    est = clone(estimator)
    if "random_state" in est.get_params(deep=False):
        est.set_params(random_state=seed)
    order = check_random_state(seed).permutation(len(X_target))
    labelled = order[:k]
    if _takes(est.fit, "sample_domain"):
        y_t = np.full(y_target.shape, np.nan)
        y_t[labelled] = y_target[labelled]
        domain = np.r_[np.zeros(len(X_source), int), -np.ones(len(X_target), int)]
        return est.fit(
            np.concatenate([X_source, X_target]),
            np.concatenate([y_source, y_t]),
            sample_domain=domain,
        )
    X = np.concatenate([X_source, X_target[labelled]])
    return est.fit(X, np.concatenate([y_source, y_target[labelled]]))


# ------------------------------------------------------------- domain shift
class DomainShiftDisplay:
    """A 2-D PCA of backbone features, source rows against target rows.

    One panel per fitted estimator (``before`` and after adaptation). Each
    panel has its own PCA, fitted on the features of all rows: two networks'
    feature coordinates do not correspond, so one basis for both would mean
    nothing. The title gives each panel's *mean gap*, the distance between the
    source and target mean features over the root of the pooled features'
    total variance (0: aligned means).

    Parameters
    ----------
    embeddings : list of ndarray of shape (n_samples, 2)
        The PCA coordinates of the rows, one array per panel.
    sample_domain : ndarray of int, shape (n_samples,)
        Domain of each row (``>= 0`` source, ``< 0`` target).
    titles : list of str
        One title per panel.
    mean_gaps : list of float
        One mean gap per panel.

    Attributes
    ----------
    axes_ : ndarray of matplotlib.axes.Axes
        One axes per panel.
    ax_ : matplotlib.axes.Axes
        The last panel (after adaptation).
    figure_ : matplotlib.figure.Figure
        The figure holding ``axes_``.
    scatters_ : list of dict of str -> matplotlib.collections.PathCollection
        One scatter per domain of each panel.

    Examples
    --------
    >>> import matplotlib
    >>> matplotlib.use("Agg")
    >>> import numpy as np
    >>> from sktransfer import DomainAdaptRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> from sktransfer.plotting import DomainShiftDisplay
    >>> Xs, ys, Xt, _ = make_domain_shift(100, 40, random_state=0)
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.concatenate([ys, np.full(40, np.nan)])
    >>> domain = np.r_[np.zeros(100, int), -np.ones(40, int)]
    >>> est = DomainAdaptRegressor(
    ...     method="coral",
    ...     backbone_params={"hidden_sizes": (16,)},
    ...     max_epochs=3,
    ...     random_state=0,
    ... )
    >>> display = DomainShiftDisplay.from_estimator(est.fit(X, y), X, domain)
    >>> display.embeddings[0].shape
    (140, 2)
    """

    def __init__(self, *, embeddings, sample_domain, titles, mean_gaps):
        self.embeddings = embeddings
        self.sample_domain = sample_domain
        self.titles = titles
        self.mean_gaps = mean_gaps

    @classmethod
    @fill_doc
    def from_estimator(
        cls,
        estimator,
        X,
        sample_domain,
        *,
        before=None,
        titles=None,
        ax=None,
        **kwargs,
    ):
        """Embed the backbone features of ``X`` and draw them by domain.

        Parameters
        ----------
        estimator : TransferRegressor or DomainAdaptRegressor
            A fitted estimator (after adaptation).
        X : array-like of shape (n_samples, ...)
            Rows of the source and target domains.
        sample_domain : array-like of int, shape (n_samples,)
            Domain of each row (``>= 0`` source, ``< 0`` target); also passed
            on to the features, so per-domain normalisation applies as in
            training.
        before : TransferRegressor or DomainAdaptRegressor, default=None
            A second fitted estimator, drawn first (for example the
            ``method="source_only"`` fit): before and after adaptation in
            one figure.
        titles : list of str, default=None
            One title per panel; None names each estimator's method.
        ax : matplotlib.axes.Axes or array of them, default=None
            One axes per panel; None makes a new figure.
        %(scatter_kwargs)s

        Returns
        -------
        display : DomainShiftDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        estimators = [estimator] if before is None else [before, estimator]
        domain = _domain_array(sample_domain, len(X))
        if titles is None:
            titles = [_describe(est) for est in estimators]
        if len(titles) != len(estimators):
            raise ValueError(
                f"titles has {len(titles)} entries; pass one per panel "
                f"({len(estimators)})."
            )
        embeddings, gaps = [], []
        for est in estimators:
            features = _features(est, X, domain)
            embeddings.append(_embed(features, type(est).__name__))
            gaps.append(_mean_gap(features, domain))
        display = cls(
            embeddings=embeddings,
            sample_domain=domain,
            titles=list(titles),
            mean_gaps=gaps,
        )
        return display.plot(ax=ax, **kwargs)

    @fill_doc
    def plot(self, ax=None, **kwargs):
        """Draw one panel per embedding, each domain in its own colour.

        Parameters
        ----------
        ax : matplotlib.axes.Axes or array of them, default=None
            One axes per panel; None makes a new figure.
        %(scatter_kwargs)s

        Returns
        -------
        display : DomainShiftDisplay
            The display, its axes and artists set (``ax_``, ``figure_``).
        """
        plt = _pyplot("DomainShiftDisplay.plot")
        n_panels = len(self.embeddings)
        if ax is None:
            _, ax = plt.subplots(
                1,
                n_panels,
                figsize=(4.5 * n_panels, 4),
                squeeze=False,
                layout="constrained",
            )
        axes = np.atleast_1d(np.asarray(ax, dtype=object)).ravel()
        if len(axes) != n_panels:
            raise ValueError(
                f"ax holds {len(axes)} axes; this display draws {n_panels} "
                "panel(s): pass one axes per panel or ax=None."
            )
        style = {"s": 10, "alpha": 0.6}
        style.update(kwargs)
        self.scatters_ = []
        for panel, emb, title, gap in zip(
            axes, self.embeddings, self.titles, self.mean_gaps
        ):
            groups = _domain_groups(self.sample_domain, len(emb))
            self.scatters_.append(
                {
                    label: panel.scatter(
                        emb[rows, 0], emb[rows, 1], label=label, **style
                    )
                    for label, rows in groups
                }
            )
            panel.set_title(f"{title}\nmean gap {gap:.2f}")
            panel.set_xlabel("PC 1")
            panel.set_ylabel("PC 2")
            panel.legend()
        self.axes_, self.ax_ = axes, axes[-1]
        self.figure_ = self.ax_.figure
        return self


def _describe(est):
    method = getattr(est, "method_", None) or getattr(est, "finetune_", None)
    name = type(est).__name__
    return name if method is None else f"{name} ({method})"


def _embed(features, name):
    """The first two principal components of ``features``."""
    if features.shape[1] < 2:
        raise ValueError(
            f"The {name}'s backbone has {features.shape[1]} feature(s); a 2-D "
            "view needs 2 or more. Use a wider backbone."
        )
    return PCA(n_components=2, random_state=0).fit_transform(features)


def _mean_gap(features, domain):
    """``||mean(source) - mean(target)||`` over the root of the total variance
    of all rows' features; NaN without both kinds of rows."""
    source, target = features[domain >= 0], features[domain < 0]
    if not len(source) or not len(target):
        return np.nan
    spread = np.sqrt(features.var(axis=0).sum())
    gap = np.linalg.norm(source.mean(axis=0) - target.mean(axis=0))
    return float(gap / spread) if spread > 0 else 0.0
