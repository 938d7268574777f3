"""DomainAdaptRegressor: unsupervised and semi-supervised domain adaptation."""

from numbers import Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from torch.nn.modules.batchnorm import _BatchNorm

from sktransfer._base import BaseTransferEstimator
from sktransfer.callbacks import DAWeightSchedule
from sktransfer.losses import DIVERGENCES, DomainDiscriminator, dann_loss

METHODS = ("source_only", "adabn", "dann", "coral", "mmd", "rsd", "daregram")

#: Adaptation-loss weights used by ``da_weight="auto"``: conservative values
#: on the scale of each loss ("do no harm" first; see docs/benchmarks.md).
DEFAULT_DA_WEIGHTS = {
    "dann": 0.3,
    "coral": 10.0,
    "mmd": 0.1,
    "rsd": 0.1,
    "daregram": 10.0,
}


class _Divergence:
    """Picklable adaptation loss: a divergence between feature batches."""

    def __init__(self, method):
        self.method = method

    def __call__(self, features_source, features_target, module):
        if self.method == "dann":
            return dann_loss(features_source, features_target, module.discriminator)
        return DIVERGENCES[self.method](features_source, features_target)


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
    a finite ``y`` join the supervised loss (semi-supervised adaptation).

    Parameters
    ----------
    backbone, backbone_params, weights, head, input_shape, standardize_X
        As in :class:`TransferRegressor`; ``backbone`` may be a fitted
        :class:`TransferRegressor` trained on the source.
    method : {"source_only", "adabn", "dann", "coral", "mmd", "rsd", "daregram"}, \
default="adabn"
        - ``"source_only"``: no adaptation loss (the baseline to beat).
        - ``"adabn"``: per-domain normalisation (Li et al., "Revisiting Batch
          Normalization for Practical Domain Adaptation", 2016): each domain's
          inputs are standardised with that domain's statistics, and batch-norm
          statistics are re-estimated on the target after training.
        - ``"dann"``: domain-adversarial training (Ganin et al., JMLR 2016).
        - ``"coral"``: Deep CORAL (Sun & Saenko, 2016).
        - ``"mmd"``: multi-kernel MMD (DAN, Long et al., ICML 2015).
        - ``"rsd"``: Representation Subspace Distance (Chen et al., ICML 2021).
        - ``"daregram"``: DARE-GRAM (Nejjar et al., WACV 2024).

        See :mod:`sktransfer.losses` for the formulas. The default, ``adabn``,
        was by far the best on the synthetic instrument shift and within
        10 % of the best method on the covariate and concept shifts, where
        no method beat ``source_only`` by more than 2 %
        (``benchmarks/da_methods.py``, docs/user_guide.md). No method is safe
        on every task (docs/benchmarks.md): compare with ``source_only`` on
        your own split.
    da_weight : float or "auto", default="auto"
        Weight of the adaptation loss; ``"auto"`` takes a conservative
        per-method value from ``DEFAULT_DA_WEIGHTS``.
    da_ramp : {"dann", "linear", "constant"}, default="dann"
        Schedule multiplying ``da_weight`` over the epochs: DANN's
        ``2 / (1 + exp(-10 p)) - 1``, a linear ramp, or constant.
    domain_norm : bool, default=False
        Standardise each domain's inputs with its own statistics under any
        method (``method="adabn"`` implies it). Prediction uses the target
        statistics.
    max_epochs, batch_size, lr, weight_decay, optimizer, solver, early_stopping,
    validation_fraction, n_iter_no_change, standardize_y, random_state, device,
    precision, verbose
        As in :class:`TransferRegressor`. With a divergence method each
        training step takes ``batch_size`` source rows and
        ``min(batch_size, n_target)`` target rows; an epoch is one pass over the
        source rows. ``source_only`` and ``adabn`` have no loss on the
        unlabelled rows and iterate over the labelled rows only, so an epoch is
        again one pass over the source rows (plus any labelled target rows).
        Early stopping holds out labelled rows. ``solver="auto"`` solves a
        linear model (``backbone="linear"``) in closed form under
        ``source_only`` and ``adabn``.

    Attributes
    ----------
    net_, history_, n_iter_, n_features_in_, feature_names_in_, n_outputs_,
    y_mean_, y_scale_
        As in :class:`TransferRegressor`. ``history_`` also records
        ``train_task_loss``, ``train_da_loss`` and ``da_scale`` per epoch.
    solver_ : {"gradient", "closed_form"}
        The solver used.
    da_weight_ : float
        The adaptation weight used.
    domain_stats_ : dict of int -> (mean, scale) or None
        Per-domain input statistics when per-domain normalisation is on.

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

    __metadata_request__fit = {"sample_domain": True}

    _parameter_constraints: dict = {
        **BaseTransferEstimator._parameter_constraints,
        "method": [StrOptions(set(METHODS))],
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
        method="adabn",
        da_weight="auto",
        da_ramp="dann",
        domain_norm=False,
        max_epochs=100,
        batch_size=64,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adamw",
        solver="auto",
        early_stopping=False,
        validation_fraction=0.1,
        n_iter_no_change=10,
        standardize_y=True,
        random_state=None,
        device="cpu",
        precision="fp32",
        verbose=0,
    ):
        super().__init__(
            backbone,
            backbone_params=backbone_params,
            weights=weights,
            head=head,
            input_shape=input_shape,
            standardize_X=standardize_X,
            max_epochs=max_epochs,
            batch_size=batch_size,
            lr=lr,
            weight_decay=weight_decay,
            optimizer=optimizer,
            solver=solver,
            early_stopping=early_stopping,
            validation_fraction=validation_fraction,
            n_iter_no_change=n_iter_no_change,
            standardize_y=standardize_y,
            random_state=random_state,
            device=device,
            precision=precision,
            verbose=verbose,
        )
        self.method = method
        self.da_weight = da_weight
        self.da_ramp = da_ramp
        self.domain_norm = domain_norm

    # ----------------------------------------------------------------- hooks
    def _per_domain(self):
        return self.domain_norm or self.method == "adabn"

    def _input_statistics(self, X, masks, source, weight, fitted):
        fitted["domain_stats_"] = None
        if not self._per_domain() or masks.n_target == 0:
            return super()._input_statistics(X, masks, source, weight, fitted)
        stats = {}
        for dom in np.unique(masks.domain):
            rows = masks.domain == dom
            mean, scale = self._x_stats(
                X[rows], None if weight is None else weight[rows]
            )
            X[rows] = (X[rows] - mean) / scale
            stats[int(dom)] = (mean, scale)
        fitted["domain_stats_"] = stats
        # predict() sees target data: it uses the target statistics (with
        # several target domains, those of the domain numbered closest to 0)
        mean, scale = stats[max(d for d in stats if d < 0)]
        return X, mean, scale

    def _adaptation(self, network, masks, fitted):
        weight = (
            DEFAULT_DA_WEIGHTS.get(self.method, 0.0)
            if self.da_weight == "auto"
            else float(self.da_weight)
        )
        fitted["da_weight_"] = weight
        if masks.n_target == 0:
            if self.method != "source_only":
                self._warn(
                    f"No target rows (sample_domain < 0 or NaN y) were given: "
                    f"method={self.method!r} cannot adapt, so the model is trained "
                    "on the source rows alone."
                )
            return None, [], 0.0
        if self.method in ("source_only", "adabn"):
            return None, [], 0.0
        if self.method == "dann":
            network.discriminator = DomainDiscriminator(network.n_features_out)
        schedule = DAWeightSchedule(self.da_ramp, self.max_epochs)
        return _Divergence(self.method), [("da_schedule", schedule)], weight

    def _after_training(self, network, data, masks):
        if hasattr(network, "discriminator"):
            del network.discriminator  # training-only; predict never needs it
        if not self._per_domain() or masks.n_target == 0:
            return
        bns = [m for m in network.modules() if isinstance(m, _BatchNorm)]
        if not bns:
            return
        # AdaBN: re-estimate batch-norm statistics on the target rows
        saved = [(m.momentum, m.training) for m in bns]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average
            m.train()
        target_rows = torch.nonzero(data.is_target).flatten()
        with torch.no_grad():
            for start in range(0, target_rows.numel(), 1024):
                idx = target_rows[start : start + 1024]
                if idx.numel() > 1:
                    network.features(data.X[idx])
        for m, (momentum, training) in zip(bns, saved):
            m.momentum = momentum
            m.train(training)

    # ------------------------------------------------------------------- fit
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_domain=None, sample_weight=None):
        """Fit with source rows and (unlabelled or labelled) target rows.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            NaN marks an unlabelled (target) row.
        sample_domain : array-like of int, shape (n_samples,), default=None
            ``>= 0`` source rows, ``< 0`` target rows. None: NaN ``y`` marks
            the target rows.
        sample_weight : array-like of shape (n_samples,), default=None
            Weights of the supervised loss.

        Returns
        -------
        self : DomainAdaptRegressor
        """
        return self._fit(
            X, y, sample_weight=sample_weight, sample_domain=sample_domain, adapt=True
        )
