"""DomainAdaptRegressor: unsupervised and semi-supervised domain adaptation.

What adaptation adds to the shared base: the domains of the rows
(``sample_domain``), the semi-supervised weighting of labelled target rows,
per-domain scaling, and the adaptation plan from the method registry
(:mod:`sktransfer.adaptation`).
"""

from numbers import Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.metrics import r2_score
from sklearn.utils import _safe_indexing
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples

from sktransfer._base import BaseTransferEstimator, TrainingPlan
from sktransfer._docs import fill_doc
from sktransfer._scaling import standardize_by_domain
from sktransfer._warnings import warn
from sktransfer.adaptation import get_method, reestimate_batch_norm
from sktransfer.adaptation._auto import choose_method
from sktransfer.data import loss_weights
from sktransfer.finetuning import parameter_groups


@fill_doc
class DomainAdaptRegressor(BaseTransferEstimator):
    """Domain adaptation for regression: source labels, few or no target labels.

    ``fit(X, y, sample_domain)`` trains on labelled rows (source rows and any
    labelled target rows) with a squared error, plus ``da_weight`` times an
    adaptation loss between source and target features of each balanced
    mini-batch. ``predict(X)`` needs no domain: it predicts for the target
    domain.

    Rows follow skada's convention: ``sample_domain >= 0`` marks source rows
    (several source domains allowed), ``< 0`` target rows; without
    ``sample_domain``, rows whose ``y`` is NaN are target rows. Target rows with
    a finite ``y`` join the supervised loss (semi-supervised adaptation), where
    together they weigh as much as all source rows.

    With an adaptation loss each training step takes ``batch_size`` source rows
    and ``min(batch_size, n_target)`` target rows, and an epoch is one pass over
    the source rows. Methods without one (``source_only``, ``adabn``) iterate
    over the labelled rows only, so an epoch is again one pass over the source
    rows (plus any labelled target rows). Early stopping holds out labelled
    rows.

    Parameters
    ----------
    %(model_parameters)s
    method : str, default="auto"
        ``"auto"`` or a registered adaptation method
        (:mod:`sktransfer.adaptation`). ``"auto"`` does no harm by
        construction: with at least 6 labelled target rows it chooses among
        ``source_only``, ``adabn`` and ``rsd`` (``rsd`` dropped for the
        parameter-free ``"linear"`` backbone) by cross-validation over those
        rows (each candidate fitted with this estimator's other parameters,
        the held-out rows left out of training; 3 folds, about ten fits in
        all, and one fold per 20 rows beyond 60 rows, at most 10), keeping
        ``source_only`` unless another beats it by more than one standard
        error of the per-row differences; with fewer it trains
        ``source_only``, because no criterion computed from unlabelled rows
        told, on the public suite, when adaptation helps (``adabn`` gains on
        instrument shifts and loses badly on a climate shift; see
        docs/benchmarks.md). The choice is ``method_``. Methods:

        - ``"source_only"``: no adaptation loss (the baseline to beat).
        - ``"adabn"``: per-domain normalisation (Li et al., 2016): each
          domain's inputs are standardised with that domain's statistics, and
          batch-norm statistics are re-estimated on the target after training.
        - ``"dann"``: domain-adversarial training (Ganin et al., JMLR 2016).
        - ``"coral"``: Deep CORAL (Sun & Saenko, 2016).
        - ``"mmd"``: multi-kernel MMD (DAN, Long et al., ICML 2015).
        - ``"rsd"``: Representation Subspace Distance (Chen et al., ICML 2021).
        - ``"daregram"``: DARE-GRAM (Nejjar et al., WACV 2024).

        No fixed method is safe on every task: when you know the shift (an
        instrument's gain and offset: ``adabn``), name it; otherwise keep
        ``"auto"`` or compare with ``source_only`` on your own split
        (docs/benchmarks.md).
    da_weight : float or "auto", default="auto"
        Weight of the adaptation loss; ``"auto"`` takes the method's
        conservative ``default_weight``.
    da_ramp : {"dann", "linear", "constant"}, default="dann"
        Schedule multiplying ``da_weight`` over the epochs: DANN's
        ``2 / (1 + exp(-10 p)) - 1``, a linear ramp, or constant.
    domain_norm : bool, default=False
        Standardise each domain's inputs with its own statistics under any
        method (``method="adabn"`` implies it). Prediction uses the target
        statistics.
    %(training_parameters)s

    Attributes
    ----------
    %(attributes)s
    method_ : str
        The method trained (the one ``"auto"`` chose).
    method_scores_ : dict of str -> float or None
        ``"auto"``'s cross-validated squared error of each candidate (summed
        over the held-out labelled target rows); None when it did not
        cross-validate (a named method, or too few labelled target rows).
    da_weight_ : float
        The adaptation weight used.
    domain_stats_ : dict of int -> (mean, scale) or None
        Per-domain input statistics when per-domain normalisation is on.

    See Also
    --------
    TransferRegressor : fine-tuning with target labels.

    Examples
    --------
    >>> import numpy as np
    >>> from sktransfer import DomainAdaptRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(300, 100, random_state=0)
    >>> X = np.vstack([Xs, Xt])
    >>> y = np.concatenate([ys, np.full(len(Xt), np.nan)])  # NaN: unlabelled target
    >>> est = DomainAdaptRegressor(method="coral", max_epochs=10, random_state=0)
    >>> est.fit(X, y).predict(Xt).shape
    (100,)
    """

    # under metadata routing, sample_domain reaches fit and predict where a
    # caller passes it (Pipeline, GridSearchCV, skada's pipelines and scorers);
    # score takes it on request only: cross_validate would otherwise hand it
    # the test fold's domains uninvited
    __metadata_request__fit = {"sample_domain": True}
    __metadata_request__predict = {"sample_domain": True}
    __metadata_request__score = {"sample_domain": False}
    _allow_unlabelled = True

    _parameter_constraints: dict = {
        **BaseTransferEstimator._parameter_constraints,
        "method": [str],
        "da_weight": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "da_ramp": [StrOptions({"dann", "linear", "constant"})],
        "domain_norm": ["boolean"],
    }

    def __init__(
        self,
        backbone="mlp",
        *,
        backbone_params=None,
        weights=None,
        head="auto",
        input_shape=None,
        standardize_X="auto",
        method="auto",
        da_weight="auto",
        da_ramp="dann",
        domain_norm=False,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay="auto",
        optimizer="adamw",
        grad_clip=None,
        solver="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        standardize_y=True,
        random_state=None,
        device="cpu",
        precision="fp32",
        verbose=0,
        clip_inputs=False,
        keep_source=False,
        augment=None,
        distributed=None,
    ):
        # the shared parameters, stored by the base (one list of names: its
        # signature)
        super().__init__(**self._base_arguments(locals()))
        self.method = method
        self.da_weight = da_weight
        self.da_ramp = da_ramp
        self.domain_norm = domain_norm

    def _check_params(self):
        super()._check_params()
        if self.method != "auto":
            get_method(self.method)

    def _registry_names(self):
        from sktransfer.adaptation._method import _METHODS

        names = super()._registry_names()
        if isinstance(self.method, str) and self.method != "auto":
            names.append((_METHODS, self.method))
        return names

    def _method_name(self):
        """The method this fit trains (``"auto"`` resolved)."""
        if self.method == "auto":
            return self._auto_choice[0]
        return self.method

    def _choose_auto(self, X, y, sample_weight, sample_domain):
        if self.method != "auto":
            return None
        return choose_method(self, X, y, sample_domain, sample_weight)

    def _loss_weights(self, masks, sample_weight, plan):
        # semi-supervised: over an epoch the labelled target rows weigh as much
        # in total as all source rows (as in "S+T" training); balanced batches
        # draw target rows more often than source rows, which counts once
        draws = 1.0
        if plan.adaptation is not None:
            n_source = int(masks.source.sum())
            steps = -(-n_source // self.batch_size)
            draws = steps * min(self.batch_size, masks.n_target) / masks.n_target
        return loss_weights(
            masks, sample_weight, balance_target=True, target_draws=draws
        )

    def _domains(self, y, sample_domain):
        masks = super()._domains(y, sample_domain)
        target = masks.target
        if target.any() and masks.labelled[target].all():
            warn(
                f"All {int(target.sum())} target rows (sample_domain < 0) have a "
                "finite y, so every one trains as a labelled target row "
                "(semi-supervised adaptation). If those labels are for "
                "evaluation only -- skada's dataset helpers return them -- hide "
                "them before fit: y[sample_domain < 0] = np.nan."
            )
        return masks

    def _per_domain_scaling(self, masks):
        per_domain = (
            self.domain_norm or get_method(self._method_name()).per_domain_scaling
        )
        return per_domain and masks.n_target > 0

    def _plan(self, network, origin, masks):
        """The adaptation plan: the method's loss, modules, callbacks, batching."""
        name = self._method_name()
        method = get_method(name)
        groups, _ = parameter_groups(
            network, lr=self.lr, weight_decay=self._weight_decay()
        )
        weight = method.default_weight if self.da_weight == "auto" else self.da_weight
        plan = TrainingPlan(
            param_groups=groups, da_weight=float(weight), head_penalty=self.weight_decay
        )
        if not masks.source.any():
            warn(
                "No source rows (sample_domain >= 0 or a finite y without "
                f"sample_domain) were given: method={name!r} cannot adapt, "
                "so the model is trained on the labelled target rows alone."
            )
            return plan
        if masks.n_target == 0:
            if name != "source_only":
                warn(
                    f"No target rows (sample_domain < 0 or NaN y) were given: "
                    f"method={name!r} cannot adapt, so the model is trained "
                    "on the source rows alone."
                )
            return plan
        if method.has_loss and not any(
            p.requires_grad for p in network.backbone.parameters()
        ):
            warn(
                f"method={name!r} aligns the backbone's features, but the "
                "backbone has no trainable parameters (the features are the "
                "inputs), so its loss cannot act; the model is trained as "
                "method='source_only'. Use method='adabn' (per-domain scaling) "
                "or a backbone with parameters."
            )
        elif method.has_loss:
            plan.adaptation = method
            plan.callbacks = method.callbacks(
                da_ramp=self.da_ramp, max_epochs=self.max_epochs
            )
        if self._per_domain_scaling(masks):
            plan.after_training = _reestimate_on_target
        if plan.adaptation is None and not method.has_loss:
            for name, default in (("da_weight", "auto"), ("da_ramp", "dann")):
                if getattr(self, name) != default:
                    warn(
                        f"{name}={getattr(self, name)!r} has no effect: "
                        f"method={name!r} has no adaptation loss."
                    )
        return plan

    def _publish(self, fit):
        super()._publish(fit)
        self.method_ = self._method_name()
        self.method_scores_ = self._auto_choice[1] if self.method == "auto" else None
        self.__dict__.pop("_auto_choice", None)
        self.da_weight_ = fit.plan.da_weight
        self.domain_stats_ = fit.scaling.domain_stats_

    @fill_doc
    def predict(self, X, sample_domain=None, return_std=False):
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
``(n_samples, *input_shape)``
            Inputs, with the features (or per-sample shape) seen in ``fit``.
        sample_domain : array-like of int, shape (n_samples,), default=None
            The domain of each row. None: every row is a target row. Under
            per-domain normalisation (``method="adabn"``, ``domain_norm=True``)
            each row is standardised with its own domain's statistics from
            ``fit`` (``domain_stats_``), so source rows and several target
            domains are predicted as in training; without it, the target's
            statistics apply to every row, and ``sample_domain`` changes
            nothing.
        %(return_std)s

        Returns
        -------
        %(predict_returns)s
        """
        if sample_domain is not None and hasattr(self, "net_"):
            X = self._in_domain_inputs(X, sample_domain)
        return super().predict(X, return_std=return_std)

    def _in_domain_inputs(self, X, sample_domain):
        """``X`` with each row moved so that the network's (target)
        standardisation is its own domain's standardisation of the row."""
        domain = np.asarray(sample_domain)
        n = _num_samples(X)
        if domain.shape != (n,) or domain.dtype.kind not in "iu":
            raise ValueError(
                f"sample_domain must be one integer per row of X ({n}); got "
                f"shape {domain.shape} and dtype {domain.dtype}."
            )
        stats = self.domain_stats_
        if not stats or self.input_mean_ is None:
            return X
        unseen = sorted(set(np.unique(domain).tolist()) - set(stats))
        if unseen:
            raise ValueError(
                f"sample_domain holds domain(s) {unseen} that fit did not see "
                f"(seen: {sorted(stats)}); their input statistics are unknown. "
                "Pass sample_domain=None to predict them as the target domain."
            )
        values = np.asarray(X, dtype=np.float64)
        mean_t, scale_t = self.input_mean_.ravel(), self.input_scale_.ravel()
        flat = standardize_by_domain(values.reshape(n, -1), domain, stats)
        moved = (flat * scale_t + mean_t).reshape(values.shape)
        if hasattr(X, "columns"):  # keep the feature names
            moved = type(X)(moved, columns=X.columns, index=X.index)
        return moved

    def score(self, X, y, sample_weight=None, sample_domain=None):
        """R^2 on the labelled rows; rows whose ``y`` is NaN are left out.

        Unlabelled target rows are part of the training data, so a ``y`` that
        marks them with NaN can be scored as it is, e.g. by
        ``cross_val_score``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; NaN marks an unlabelled row.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the rows.
        sample_domain : array-like of int, shape (n_samples,), default=None
            The domain of each row, passed to :meth:`predict`: under
            per-domain normalisation source rows are then scored through
            their own domain's statistics. Metadata routing passes it only
            after ``set_score_request(sample_domain=True)`` (skada's
            ``ImportanceWeightedScorer`` sends the source rows' domains).

        Returns
        -------
        score : float
            R^2 of ``predict(X)`` on the labelled rows.
        """
        try:
            values = np.asarray(y, dtype=np.float64)
        except (TypeError, ValueError):
            return self._r2(X, y, sample_weight, sample_domain)
        if values.ndim == 0 or not np.isnan(values).any():
            return self._r2(X, y, sample_weight, sample_domain)
        keep = np.flatnonzero(~np.isnan(values.reshape(len(values), -1)).any(axis=1))
        if len(keep) == 0:
            raise ValueError(
                "y has no labelled rows (all NaN), so there is nothing to score; "
                "pass the target labels of the rows to score."
            )
        sw, sd = (
            None if v is None else _safe_indexing(v, keep)
            for v in (sample_weight, sample_domain)
        )
        return self._r2(_safe_indexing(X, keep), values[keep], sw, sd)

    def _r2(self, X, y, sample_weight, sample_domain):
        if sample_domain is None:
            return super().score(X, y, sample_weight=sample_weight)
        pred = self.predict(X, sample_domain=sample_domain)
        return r2_score(y, pred, sample_weight=sample_weight)

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_domain=None, sample_weight=None):
        """Fit with source rows and (unlabelled or labelled) target rows.

        Parameters
        ----------
        %(X)s
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets; NaN marks an unlabelled (target) row.
        sample_domain : array-like of int, shape (n_samples,), default=None
            ``>= 0`` source rows, ``< 0`` target rows. None: NaN ``y`` marks
            the target rows.
        %(sample_weight)s

        Returns
        -------
        self : DomainAdaptRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight, sample_domain=sample_domain)


def _reestimate_on_target(network, dataset):
    """AdaBN after training: batch-norm statistics from the target rows."""
    rows = torch.nonzero(dataset.is_target).flatten()
    reestimate_batch_norm(network, dataset.X[rows])
