"""TransferRegressor: fine-tune a pretrained backbone on a new regression task.

What transfer adds to the shared base is its plan: the fine-tuning strategy's
callbacks, discriminative learning rates and L2-SP anchors
(:mod:`sktransfer.finetuning`).
"""

from numbers import Real

import numpy as np
import torch
from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import _num_samples

from sktransfer._base import (
    BaseTransferEstimator,
    TrainingPlan,
    _fitted_backbone,
    _is_source_kind,
    _unfrozen,
)
from sktransfer._choice import choose
from sktransfer._docs import fill_doc
from sktransfer._shared import can_reinitialise
from sktransfer._warnings import warn
from sktransfer.finetuning import get_strategy, parameter_groups
from sktransfer.pretraining import SelfSupervisedPretrainer

#: the L2-SP strength of ``l2sp="auto"`` where it cannot be chosen exactly (the
#: gradient loop): the value that helped on every task measured (docs/benchmarks.md)
AUTO_L2SP = 0.1
#: ``finetune="auto"``'s candidates, (strategy, L2-SP strength under
#: ``l2sp="auto"``), in order of preference (the first is the fallback)
AUTO_FINETUNE = (("full", 0.1), ("full", 1.0), ("lp_ft", 0.1), ("linear_probe", 0.1))
#: fewest labelled rows for which ``finetune="auto"`` cross-validates
AUTO_FINETUNE_MIN_ROWS = 10
#: most folds of ``pretraining="auto"``'s cross-validation (two candidates;
#: its rows are often a whole labelled source set)
PRETRAINING_MAX_FOLDS = 5


@fill_doc
class TransferRegressor(BaseTransferEstimator):
    """Fine-tune a pretrained PyTorch backbone for regression, scikit-learn style.

    The estimator builds a skorch net inside ``fit`` (kept as ``net_``): input
    standardisation -> ``backbone`` -> ``head``. Train it from scratch on the
    source data with a registry backbone, then transfer it to the target task
    by passing the fitted estimator as ``backbone`` of a new one.

    Parameters
    ----------
    %(model_parameters)s
    finetune : str, default="full"
        A registered fine-tuning strategy (:mod:`sktransfer.finetuning`):
        ``"full"``, ``"linear_probe"`` (backbone frozen), ``"lp_ft"`` (probe,
        then fine-tune) or ``"gradual"`` (unfreeze from the top); or
        ``"auto"``: for a pretrained backbone with parameters and at least 10
        labelled rows, the strategy and L2-SP strength (with ``l2sp="auto"``;
        else ``l2sp`` as given) chosen among ``full`` with 0.1 and 1.0,
        ``lp_ft`` and ``linear_probe`` with 0.1 by cross-validation over the
        rows (3 folds, 12 fits before the final one; one fold per 20 rows
        beyond 60 rows, at most 10), keeping ``full`` with
        0.1 unless another beats it by more than one standard error of the
        per-row differences; otherwise ``full``. The choice is
        ``finetune_``.
    backbone_lr : float, default=0.1
        Learning-rate multiplier for *pretrained* backbone parameters
        (discriminative learning rates). A backbone trained from scratch uses
        ``lr``.
    l2sp : float or "auto", default="auto"
        Strength of the L2-SP penalty ``l2sp / 2 * ||w - w0||^2`` pulling
        pretrained parameters (backbone, and a reused head) toward their
        pretrained values. 0 disables it. ``"auto"``: for the closed-form
        solver with a pretrained head, chosen by exact leave-one-out
        cross-validation over a grid from 1e-6 to 1e3 (one eigendecomposition
        serves every value, as in scikit-learn's ``RidgeCV``); 0.1 for the
        gradient loop, the value that helped on every task measured
        (``benchmarks/penalties.py`` and ``docs/benchmarks.md`` measure both).
        Nothing pretrained: no penalty. The value used is ``l2sp_``.
    pretraining : {"auto", "use", "reinit"}, default="auto"
        How a fitted :class:`~sktransfer.SelfSupervisedPretrainer` given as
        ``backbone`` is used (other backbones ignore it). ``"use"``: start from
        its weights. ``"reinit"``: the same network, input scaling and shapes
        with fresh weights -- the model without pre-training. ``"auto"``
        (with at least 10 labelled rows, a strategy that trains the backbone
        and a backbone whose layers all have ``reset_parameters``, as
        ``torch.nn``'s do; else ``"use"``): both,
        cross-validated over the rows (3 folds, one per 20 rows beyond 60, at
        most 5; ``finetune="auto"`` then chooses among its candidates for the
        one kept), keeping ``"reinit"`` unless the pre-trained weights beat it
        by more than one standard error of the per-row differences.
        Self-supervised features help on some tasks and hurt on others
        (``benchmarks/pretraining.py``: weather and fermentation gain, corn
        spectra and the synthetic tasks lose), and only labels tell which, so
        by default pre-training does no harm. The choice is ``pretraining_``.
    %(training_parameters)s

    Attributes
    ----------
    %(attributes)s
    l2sp_ : float
        The L2-SP strength used (the one ``"auto"`` chose for the closed form).
    finetune_ : str
        The strategy trained (the one ``finetune="auto"`` chose).
    finetune_scores_ : dict of str -> float or None
        ``finetune="auto"``'s cross-validated squared error per candidate
        (summed over the held-out rows); None when it did not cross-validate.
    pretraining_ : {"use", "reinit"} or None
        Whether a self-supervised pre-trainer's weights were used (the choice
        of ``pretraining="auto"``); None for other backbones.
    pretraining_scores_ : dict of str -> float or None
        ``pretraining="auto"``'s cross-validated squared error of ``"reinit"``
        and ``"use"``; None when it did not cross-validate.

    See Also
    --------
    DomainAdaptRegressor : adaptation with unlabelled target rows.

    Examples
    --------
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(n_source=300, n_target=40, random_state=0)
    >>> source = TransferRegressor(max_epochs=20, random_state=0).fit(Xs, ys)
    >>> target = TransferRegressor(source, max_epochs=30, random_state=0).fit(Xt, yt)
    >>> target.predict(Xt[:2]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        **BaseTransferEstimator._parameter_constraints,
        "finetune": [str],
        "backbone_lr": [Interval(Real, 0, None, closed="left")],
        "l2sp": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "pretraining": [StrOptions({"auto", "use", "reinit"})],
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
        finetune="full",
        backbone_lr=0.1,
        l2sp="auto",
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
        pretraining="auto",
    ):
        # the shared parameters, stored by the base (one list of names: its
        # signature)
        super().__init__(**self._base_arguments(locals()))
        self.finetune = finetune
        self.backbone_lr = backbone_lr
        self.l2sp = l2sp
        self.pretraining = pretraining

    def _check_params(self):
        super()._check_params()
        if self.finetune != "auto":
            get_strategy(self.finetune)

    def _registry_names(self):
        from sktransfer.finetuning import _STRATEGIES

        names = super()._registry_names()
        if isinstance(self.finetune, str) and self.finetune != "auto":
            names.append((_STRATEGIES, self.finetune))
        return names

    def _strategy_name(self):
        """The strategy this fit trains (``"auto"`` resolved)."""
        if self.finetune == "auto":
            return self._auto_choice[0]
        return self.finetune

    def _choose_auto(self, X, y, sample_weight, sample_domain):
        self._pretraining_choice = self._choose_pretraining(X, y, sample_weight)
        if self.finetune != "auto":
            return None
        return self._choose_finetune(X, y, sample_weight)

    def _self_supervised_source(self):
        """The fitted pre-trainer given as ``backbone`` (also inside a
        ``FrozenEstimator``), or None."""
        source = _unfrozen(self.backbone)
        if isinstance(source, SelfSupervisedPretrainer) and hasattr(
            source, "backbone_"
        ):
            return source
        return None

    def _choose_pretraining(self, X, y, sample_weight):
        """(``"use"`` or ``"reinit"`` or None, scores or None)."""
        source = self._self_supervised_source()
        if source is None:
            return None, None
        resettable = can_reinitialise(source.backbone_)
        if self.pretraining == "reinit" and not resettable:
            raise ValueError(
                "pretraining='reinit' needs a backbone whose parameters all "
                "belong to layers with reset_parameters() (as torch.nn's "
                f"layers do); the pre-trainer's {type(source.backbone_).__name__} "
                "has others. Give those layers a reset_parameters method, or "
                "use pretraining='use'."
            )
        if self.pretraining != "auto":
            return self.pretraining, None
        fallback = ("use", None)
        # a frozen backbone asked for: its features are the point
        frozen = (
            self.finetune != "auto" and get_strategy(self.finetune).freezes_backbone
        )
        if (
            frozen
            or not resettable
            or not any(True for _ in source.backbone_.parameters())
        ):
            return fallback
        values = self._rows_to_choose_on(X, y)
        if values is None:
            return fallback
        # the candidates' own fits choose nothing: the strategy is the
        # default's, and finetune="auto" chooses for the one kept
        fixed = {"finetune": "full"} if self.finetune == "auto" else {}
        candidates = {
            "reinit": {"pretraining": "reinit", **fixed},
            "use": {"pretraining": "use", **fixed},
        }
        return self._cross_validate(
            candidates, X, values, sample_weight, max_folds=PRETRAINING_MAX_FOLDS
        )

    @staticmethod
    def _rows_to_choose_on(X, y):
        """``y`` as float64 when there are enough labelled rows for an
        ``"auto"`` choice to cross-validate, else None."""
        try:
            values = np.asarray(y, dtype=np.float64)
            n_rows = _num_samples(X)
        except (TypeError, ValueError):  # left to fit's own validation
            return None
        if n_rows < AUTO_FINETUNE_MIN_ROWS or len(values) != n_rows:
            return None
        return values

    def _cross_validate(self, candidates, X, values, sample_weight, **kwargs):
        """:func:`~sktransfer._choice.choose` over every labelled row."""
        return choose(
            self,
            candidates,
            X,
            values,
            np.arange(len(values)),
            unlabel=False,
            sample_weight=sample_weight,
            fit_params={},
            **kwargs,
        )

    def _uses_pretrained_weights(self):
        choice = getattr(self, "_pretraining_choice", (None, None))[0]
        return choice != "reinit"

    def _trains_pretrained_parameters(self):
        """The backbone is pretrained and has parameters to fine-tune."""
        if not self._uses_pretrained_weights():
            return False
        source = _unfrozen(self.backbone)
        if _is_source_kind(source):
            backbone = _fitted_backbone(source)
            return backbone is not None and any(True for _ in backbone.parameters())
        if isinstance(source, torch.nn.Module):
            return any(True for _ in source.parameters())
        return self.weights is not None and source != "linear"

    def _choose_finetune(self, X, y, sample_weight):
        """(strategy, L2-SP strength, scores) for ``finetune="auto"``."""
        fallback = ("full", self.l2sp, None)
        if not self._trains_pretrained_parameters():
            return fallback
        values = self._rows_to_choose_on(X, y)
        if values is None:
            return fallback
        candidates = {}
        # the pre-training choice made, the candidates' fits keep it
        chosen = self._pretraining_choice[0]
        fixed = {"pretraining": chosen} if chosen is not None else {}
        for strategy, strength in AUTO_FINETUNE:
            l2sp = strength if self.l2sp == "auto" else self.l2sp
            name = f"{strategy}, l2sp={l2sp:g}"
            candidates.setdefault(name, {"finetune": strategy, "l2sp": l2sp, **fixed})
        best, scores = self._cross_validate(candidates, X, values, sample_weight)
        return candidates[best]["finetune"], candidates[best]["l2sp"], scores

    def _plan(self, network, origin, masks):
        """The fine-tuning plan: strategy callbacks, learning rates, L2-SP."""
        strategy = get_strategy(self._strategy_name())
        l2sp = self._l2sp()
        groups, anchored = parameter_groups(
            network,
            lr=self.lr,
            weight_decay=self._weight_decay(),
            backbone_lr=self.backbone_lr,
            l2sp=l2sp,
            backbone_pretrained=origin.backbone_pretrained,
            head_pretrained=origin.head_pretrained,
        )
        callbacks = []
        has_params = any(True for _ in network.backbone.parameters())
        if has_params:
            callbacks = strategy.callbacks(network, self.max_epochs)
        self._warn_ignored(origin, has_params)
        anchor_head = origin.head_pretrained and l2sp > 0
        return TrainingPlan(
            param_groups=groups,
            callbacks=callbacks,
            anchored=anchored,
            l2sp=l2sp,
            frozen_backbone=strategy.freezes_backbone,
            anchor_head=anchor_head,
            head_penalty=self._head_penalty(origin, anchor_head),
        )

    def _head_penalty(self, origin, anchor_head):
        """The exact solver's penalty: L2-SP toward a pretrained head, else
        weight decay -- where ``weight_decay="auto"`` leaves a pretrained head
        unpenalised (the exact fit nearest to it), since decay toward zero
        would discard what it learned."""
        if anchor_head:
            return self._l2sp_setting()
        if self.weight_decay == "auto" and origin.head_pretrained:
            return 0.0
        return self.weight_decay

    def _l2sp_setting(self):
        """``l2sp``, or the strength ``finetune="auto"`` chose."""
        return self._auto_choice[1] if self.finetune == "auto" else self.l2sp

    def _l2sp(self):
        """The L2-SP strength of the gradient loop (``"auto"``: 0.1)."""
        l2sp = self._l2sp_setting()
        return AUTO_L2SP if l2sp == "auto" else float(l2sp)

    def _publish(self, fit):
        super()._publish(fit)
        closed = fit.solver == "closed_form" and fit.plan.anchor_head
        self.l2sp_ = fit.penalty if closed else fit.plan.l2sp
        self.finetune_ = self._strategy_name()
        auto = self.finetune == "auto"
        self.finetune_scores_ = self._auto_choice[2] if auto else None
        self.__dict__.pop("_auto_choice", None)
        choice = self.__dict__.pop("_pretraining_choice", (None, None))
        self.pretraining_, self.pretraining_scores_ = choice

    def _warn_ignored(self, origin, backbone_has_params):
        """Say so when a fine-tuning parameter cannot act on this network."""
        if (
            self.l2sp != "auto"
            and self.l2sp > 0
            and not (origin.backbone_pretrained or origin.head_pretrained)
        ):
            warn(
                f"l2sp={self.l2sp!r} has no effect: nothing is pretrained. Pass a "
                "fitted estimator, a torch.nn.Module or weights as the backbone, "
                "or use weight_decay to penalise the weights."
            )
        if self.backbone_lr != 0.1 and not (
            origin.backbone_pretrained and backbone_has_params
        ):
            warn(
                f"backbone_lr={self.backbone_lr!r} has no effect: it scales the "
                "learning rate of a pretrained backbone with parameters, and this "
                "backbone is "
                + ("not pretrained." if backbone_has_params else "parameter-free.")
            )

    @fill_doc
    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit (or fine-tune) the network.

        Parameters
        ----------
        %(X)s
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, all finite.
        %(sample_weight)s

        Returns
        -------
        self : TransferRegressor
            The fitted estimator.
        """
        return self._fit(X, y, sample_weight=sample_weight)
