"""Shared estimator base: parameters, validation, the fit coordinator, predict.

``fit`` is :meth:`BaseTransferEstimator._fit_stages`, a short coordinator
over named stages; each stage is a method with one job. What fine-tuning or
adaptation adds comes from the subclass as a :class:`TrainingPlan`
(:meth:`BaseTransferEstimator._plan`); this module knows neither.
"""

import copy
import inspect
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_is_fitted,
    validate_data,
)
from skorch.callbacks import GradientNormClipping

from sktransfer._batches import TensorData, ValidFraction
from sktransfer._callbacks import DivergenceGuard, EarlyStop, LossTermRecorder
from sktransfer._closed_form import (
    AUTO_MAX_FEATURES,
    AUTO_STRENGTHS,
    linear_head_applicable,
)
from sktransfer._device import PRECISIONS, Seeds, autocast, seeded_torch
from sktransfer._distributed import OPTIONS as DISTRIBUTED_OPTIONS
from sktransfer._distributed import setup as setup_distributed
from sktransfer._docs import fill_doc
from sktransfer._module import TransferModule
from sktransfer._net import TrainingInterrupted, TransferNet
from sktransfer._outofcore import (
    ArrayData,
    check_chunk,
    chunk_rows,
    is_out_of_core,
    random_access,
    read_rows,
)
from sktransfer._registry import dumps_entry
from sktransfer._scaling import Scaling, scale_inputs
from sktransfer._shared import (
    OPTIMIZERS,
    Shapes,
    check_input_shape,
    check_optimizer,
    reinitialise,
    resolve_shapes,
)
from sktransfer._shared import call_factory as _call_factory
from sktransfer._shared import dry_run as _dry_run
from sktransfer._shared import named_errors as _named_errors
from sktransfer._warnings import warn
from sktransfer._workers import torch_threads_for_workers
from sktransfer.augmentation import Augmentation, as_augmentations
from sktransfer.backbones import get_backbone_factory, load_weights
from sktransfer.backbones._weights import _check_finite_parameters
from sktransfer.data import domain_masks, loss_weights
from sktransfer.heads import HEAD_OPTIONS, make_head, predicts_variance
from sktransfer.pretraining import SelfSupervisedPretrainer

_PREDICT_CHUNK = 8192
_SMALL_BATCH = 64
_FAST_PATH_MAX_SIZE = 1 << 16
#: most bytes of an out-of-core X read per prediction chunk
_DISK_CHUNK_BYTES = 1 << 21


def _silent(*args, **kwargs):
    """A callback sink that discards messages."""


def _unfrozen(backbone):
    """The estimator inside a ``sklearn.frozen.FrozenEstimator``, else itself."""
    inner = getattr(backbone, "estimator", None)
    if type(backbone).__name__ == "FrozenEstimator" and inner is not None:
        return inner
    return backbone


def _is_source_kind(est):
    """An estimator whose fitted network a backbone can come from: a
    transfer estimator or a self-supervised pre-trainer."""
    return isinstance(est, BaseTransferEstimator | SelfSupervisedPretrainer)


def _is_fitted_source(backbone):
    est = _unfrozen(backbone)
    return _is_source_kind(est) and est.__sklearn_is_fitted__()


class SourceNotSaved(BaseEstimator):
    """Stands in for the fitted source estimator in a fitted model's pickle.

    A model fine-tuned from a fitted estimator does not need it to predict;
    saving it would make every transfer step carry all the models before it.
    Fitting a model whose ``backbone`` is this placeholder raises an error
    that says how to pass the source back.

    Parameters
    ----------
    estimator : str
        The class name of the source estimator that was left out.
    """

    def __init__(self, estimator="estimator"):
        self.estimator = estimator


def _fitted_backbone(est):
    """The trained backbone module of a fitted source (estimator or
    pre-trainer), or None."""
    if isinstance(est, SelfSupervisedPretrainer):
        return getattr(est, "backbone_", None)
    module = getattr(getattr(est, "net_", None), "module_", None)
    return getattr(module, "backbone", None)


def _backbone_spec(est):
    """``{"name", "params"}``: the registry entry that builds ``est``'s
    backbone, followed through the fitted sources it was transferred from."""
    seen = set()
    while id(est) not in seen:
        seen.add(id(est))
        backbone = _unfrozen(est.backbone)
        if isinstance(backbone, str):
            return {"name": backbone, "params": est.backbone_params}
        if isinstance(backbone, SelfSupervisedPretrainer) and isinstance(
            backbone.backbone, str
        ):
            return {"name": backbone.backbone, "params": backbone.backbone_params}
        if isinstance(backbone, BaseTransferEstimator) and _is_fitted_source(backbone):
            est = backbone
            continue
        # a loaded or unpickled model whose source was left out says how
        spec = est.__dict__.get("_sktransfer_backbone_spec")
        if spec is not None and isinstance(backbone, SourceNotSaved):
            return spec
        break
    if isinstance(backbone, SourceNotSaved):
        raise ValueError(
            f"This {type(est).__name__} was fine-tuned from a fitted "
            f"{backbone.estimator} that its pickle left out (keep_source=False), "
            "and with it how the backbone was built. Pass the source back with "
            "set_params(backbone=source) and save again, or save the model "
            "before pickling it."
        )
    if isinstance(backbone, SelfSupervisedPretrainer):
        backbone = backbone.backbone
    raise TypeError(
        f"The backbone of this {type(est).__name__} is a "
        f"{type(backbone).__name__} module, not a registry name; saving without "
        "pickle rebuilds the network by name. Register a factory that builds it "
        "with sktransfer.backbones.register_backbone('my_backbone', factory), "
        "fit with backbone='my_backbone' (weights= loads pretrained weights), "
        "and register it again before sktransfer.persistence.load."
    )


@dataclass
class Origin:
    """What the assembled network inherits.

    ``source`` is the fitted estimator passed as backbone (or None);
    ``backbone_pretrained`` and ``head_pretrained`` say which parts hold
    pretrained weights (discriminative learning rates and L2-SP act on those).
    """

    source: object = None
    backbone_pretrained: bool = True
    head_pretrained: bool = False


@dataclass
class TrainingPlan:
    """What a subclass asks of training: its fine-tuning or adaptation plan.

    Attributes
    ----------
    param_groups : list of dict
        ``{"params": [names], "lr", "weight_decay"}`` over the network's
        parameter names.
    callbacks : list of (str, Callback)
        Extra skorch callbacks (freezing schedules, weight ramps).
    anchored : list of str
        Parameters pulled toward their starting values by ``l2sp``.
    l2sp : float
        L2-SP strength.
    adaptation : AdaptationMethod or None
        A method whose loss between source and target features trains
        (None: no feature loss). It trains on source/target balanced batches
        over all rows; without it training iterates over rows of positive
        loss weight only.
    da_weight : float
        Weight of the adaptation loss.
    frozen_backbone : bool
        The backbone never trains (the closed form then applies to a
        parameterised backbone too).
    after_training : callable or None
        ``after_training(network, dataset)``, run on the trained network
        before the input normaliser is switched on.
    anchor_head : bool
        The exact solver pulls the head toward its pretrained values (L2-SP)
        rather than toward zero (weight decay).
    head_penalty : float or "auto"
        The exact solver's penalty strength; ``"auto"`` chooses it by
        leave-one-out cross-validation.
    """

    param_groups: list
    callbacks: list = field(default_factory=list)
    anchored: list = field(default_factory=list)
    l2sp: float = 0.0
    adaptation: object = None
    da_weight: float = 0.0
    frozen_backbone: bool = False
    after_training: object = None
    anchor_head: bool = False
    head_penalty: object = 0.0


@dataclass
class _FitResult:
    """Everything ``fit`` publishes, gathered by the stages."""

    net: TransferNet
    solver: str
    shapes: Shapes
    scaling: Scaling
    plan: TrainingPlan
    y_1d: bool
    device: str
    penalty: float | None = None
    input_range: tuple | None = None


class BaseTransferEstimator(RegressorMixin, BaseEstimator):
    """Common machinery of the estimators; not for direct use."""

    #: rows with a NaN ``y`` are accepted (as unlabelled target rows)
    _allow_unlabelled = False

    _parameter_constraints: dict = {
        "backbone": [str, torch.nn.Module, BaseEstimator],
        "backbone_params": [dict, None],
        "weights": [str, os.PathLike, Mapping, None],
        "head": [StrOptions(set(HEAD_OPTIONS)), torch.nn.Module],
        "input_shape": [tuple, None],
        "standardize_X": ["boolean", StrOptions({"auto", "global"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 1, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left"), StrOptions({"auto"})],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "grad_clip": [Interval(Real, 0, None, closed="neither"), None],
        "solver": [StrOptions({"auto", "gradient", "closed_form"})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "standardize_y": ["boolean"],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "precision": [StrOptions(set(PRECISIONS))],
        "verbose": ["verbose"],
        "clip_inputs": ["boolean"],
        "keep_source": ["boolean"],
        "augment": [Augmentation, list, tuple, None],
        "distributed": [StrOptions(set(DISTRIBUTED_OPTIONS)), None],
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
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.weights = weights
        self.head = head
        self.input_shape = input_shape
        self.standardize_X = standardize_X
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.grad_clip = grad_clip
        self.solver = solver
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize_y = standardize_y
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose
        self.clip_inputs = clip_inputs
        self.keep_source = keep_source
        self.augment = augment
        self.distributed = distributed

    @staticmethod
    def _base_arguments(arguments):
        """The arguments of :class:`BaseTransferEstimator`'s ``__init__`` among
        a subclass ``__init__``'s ``locals()``, by the base's signature."""
        names = inspect.signature(BaseTransferEstimator.__init__).parameters
        return {name: arguments[name] for name in names if name != "self"}

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.allow_nan = False
        return tags

    def __sklearn_clone__(self):
        """Clone as scikit-learn does, but share a fitted backbone estimator.

        Metadata requests (``set_fit_request``, ``set_score_request``) and the
        output configuration survive, as with :func:`sklearn.base.clone`.

        A fitted estimator passed as ``backbone`` is pretrained weights, read
        and never changed by ``fit``; cloning it would drop what it learned, so
        ``GridSearchCV`` and ``cross_val_score`` could not transfer from it.
        """
        params = self.get_params(deep=False)
        backbone = params.pop("backbone")
        if not _is_fitted_source(backbone):
            backbone = clone(backbone, safe=False)
        params = {k: clone(v, safe=False) for k, v in params.items()}
        new = type(self)(backbone, **params)
        # what scikit-learn's clone keeps besides the parameters: metadata
        # requests (set_fit_request, ...), set_output and callbacks
        if "_metadata_request" in self.__dict__:
            new._metadata_request = clone(self._metadata_request)
        if hasattr(self, "_sklearn_output_config"):
            new._sklearn_output_config = copy.deepcopy(self._sklearn_output_config)
        if hasattr(self, "_skl_callbacks"):
            new._skl_callbacks = self._skl_callbacks
        return new

    # --- pickling: registry entries travel with the names that use them ----
    def _registry_names(self):
        """(registry, name) for every parameter naming a registry entry."""
        from sktransfer.backbones._registry import _REGISTRY

        return [(_REGISTRY, self.backbone)] if isinstance(self.backbone, str) else []

    def __getstate__(self):
        """The state, plus the registry entries its names refer to.

        A backbone, method or strategy registered in one process is unknown in
        another (a ``GridSearchCV(n_jobs=2)`` worker, a plant server loading
        the pickle, a Dask or Ray worker): the entry travels with the
        estimator, serialised with cloudpickle, by value when it comes from a
        module other than sktransfer's (a worker may not be able to import
        that module; see :func:`sktransfer._registry.dumps_entry`). Loading
        registers it where the name is unknown or came with an earlier pickle
        (:meth:`sktransfer._registry.Registry.receive`). A fitted model
        leaves out the fitted estimator it was trained from (a
        :class:`SourceNotSaved` placeholder stands in) unless
        ``keep_source=True``.
        """
        state = dict(super().__getstate__())
        backbone = state.get("backbone")
        if (
            not state.get("keep_source", False)
            and "net_" in state
            and _is_fitted_source(backbone)
        ):
            # the fitted model predicts without it; its own pickle would
            # carry the whole chain of models before it
            state["backbone"] = SourceNotSaved(type(_unfrozen(backbone)).__name__)
            # how the backbone was built (its registry name), so that the
            # unpickled model can still be saved without pickle
            try:
                state["_sktransfer_backbone_spec"] = _backbone_spec(self)
            except (TypeError, ValueError):
                pass  # a user module: sktransfer.persistence.save refuses it
        carried = []
        for registry, name in self._registry_names():
            entry = registry.entries.get(name)
            if entry is None:
                continue  # fit will say the name is unknown
            blob = dumps_entry(entry)
            if blob is not None:
                carried.append((registry.kind, name, blob))
        if carried:
            state["_sktransfer_registry_entries"] = carried
        return state

    def __setstate__(self, state):
        state = dict(state)
        carried = state.pop("_sktransfer_registry_entries", ())
        registries = {registry.kind: registry for registry, _ in self._all_registries()}
        for kind, name, blob in carried:
            registry = registries.get(kind)
            if registry is not None:
                registry.receive(name, blob)
        super().__setstate__(state)
        self._follow_the_net_device()

    def _follow_the_net_device(self):
        """After unpickling, predict where the net now lives: skorch loads a
        net fitted on a GPU onto the CPU where no GPU is available."""
        net = self.__dict__.get("net_")
        device = getattr(self, "device_", None)
        if net is None or device is None or str(net.device) == str(device):
            return
        warn(
            f"This {type(self).__name__} was fitted on {device!r}, which this "
            f"machine does not have; it predicts on {str(net.device)!r}."
        )
        self.device_ = str(net.device)

    @staticmethod
    def _all_registries():
        from sktransfer.adaptation._method import _METHODS
        from sktransfer.backbones._registry import _REGISTRY
        from sktransfer.finetuning import _STRATEGIES

        return [(r, None) for r in (_REGISTRY, _METHODS, _STRATEGIES)]

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    # ------------------------------------------------------------------ fit
    def _fit(self, X, y, *, sample_weight=None, sample_domain=None):
        """Fit; on any error the estimator is left exactly as it was."""
        saved = dict(self.__dict__)
        try:
            # in a Dask or Ray worker: the CPUs the worker allots this fit
            with torch_threads_for_workers():
                return self._fit_stages(X, y, sample_weight, sample_domain)
        except BaseException as exc:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if isinstance(exc, TrainingInterrupted):
                raise KeyboardInterrupt(
                    f"fit was interrupted after {exc.epochs_done} epoch(s); the "
                    "estimator was left as it was before this fit."
                ) from exc
            raise

    def _fit_stages(self, X, y, sample_weight, sample_domain):
        """The fit coordinator: one line per stage."""
        self._check_params()
        # the process group first: an "auto" choice splits its folds alike on
        # every process (_choice.choose)
        ctx, device = setup_distributed(self.distributed, self.device)
        self._auto_choice = self._choose_auto(X, y, sample_weight, sample_domain)
        X, y, y_1d = self._validate_data(X, y)
        masks = self._domains(y, sample_domain)
        sample_weight = self._validate_sample_weight(sample_weight, X, masks)
        shapes = self._resolve_shapes(X)
        seeds = Seeds.from_random_state(self.random_state)
        if ctx is not None:
            seeds = ctx.broadcast_seeds(seeds)
            ctx.check_same_data(X, y, sample_weight, masks.domain)
        with seeded_torch(seeds.init, device):
            network, origin = self._build_network(shapes, y.shape[1])
            plan = self._plan(network, origin, masks)
            scaling = self._make_scaling(origin, masks, plan)
            if is_out_of_core(X):  # read on demand, batch by batch
                y_train, raw_range = scaling.fit_stream(X, y, masks, sample_weight)
                X_train = _OnDisk(X, scaling.transform_rows)
            else:
                X_train, y_train = scaling.fit_transform(X, y, masks, sample_weight)
                raw_range = None
            input_range = _input_range(X_train, origin.source, scaling, raw_range)
            weight = self._loss_weights(masks, sample_weight, plan)
            dataset = self._dataset(
                X_train, y_train, weight, masks, device, sample_weight
            )
            solver = self._choose_solver(
                network, plan, len(dataset), isinstance(X_train, _OnDisk)
            )
            net = self._assemble_net(
                network.to(device),
                plan,
                seeds,
                device,
                solver,
                input_stats=(scaling.input_mean_, scaling.input_scale_),
                distributed=ctx,
            )
            if ctx is not None and ctx.rank:
                # the same initial weights (broadcast from rank 0), but each
                # process its own dropout masks
                torch.default_generator.manual_seed(seeds.init + 7919 * ctx.rank)
                if torch.device(device).type == "cuda":
                    torch.cuda.manual_seed(seeds.init + 7919 * ctx.rank)
            penalty = self._train(net, dataset, plan, origin, solver)
            if plan.after_training is not None:
                plan.after_training(network, dataset)
            scaling.configure(network)
        self._publish(
            _FitResult(
                net, solver, shapes, scaling, plan, y_1d, device, penalty, input_range
            )
        )
        return self

    # --- stage: validate ------------------------------------------------------
    def _choose_auto(self, X, y, sample_weight, sample_domain):
        """What an ``"auto"`` setting resolves to, chosen before the fit
        (by cross-validation on clones); None when there is none."""
        return None

    def _check_params(self):
        """Cross-parameter checks the declarative constraints cannot express."""
        check_optimizer(self.optimizer)
        if self.backbone_params is not None and not isinstance(self.backbone, str):
            raise ValueError(
                "backbone_params only applies to registry backbones (a str "
                f"backbone); got backbone of type {type(self.backbone).__name__}. "
                "Set backbone_params=None."
            )
        if isinstance(self.backbone, SourceNotSaved):
            raise ValueError(
                f"backbone is {self.backbone!r}: this model was unpickled (or "
                f"copied) without the fitted {self.backbone.estimator} it was "
                "trained from, which a fitted model's pickle leaves out "
                "(keep_source=False). To fit again, pass the source back with "
                "set_params(backbone=source), or set keep_source=True before "
                "pickling."
            )
        if isinstance(self.backbone, BaseEstimator) and not _is_source_kind(
            _unfrozen(self.backbone)
        ):
            raise TypeError(
                "backbone must be a registry name, a torch.nn.Module, a fitted "
                "TransferRegressor/DomainAdaptRegressor or a fitted "
                f"SelfSupervisedPretrainer; got {type(self.backbone).__name__}."
            )
        if self.weights is not None and isinstance(self.backbone, BaseEstimator):
            raise ValueError(
                "weights cannot be combined with a fitted estimator as backbone "
                "(its fitted weights are used). Set weights=None."
            )
        check_input_shape(self.input_shape)
        if isinstance(self.backbone, str):
            get_backbone_factory(self.backbone)
        as_augmentations(self.augment)

    def _validate_data(self, X, y):
        """``(X, y as 2-D, whether y was 1-D)``; NaN ``y`` only if allowed."""
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None."
            )
        with _named_errors("X"):
            X = self._validate_X(X)
        with _named_errors("y"):
            y = check_array(
                y,
                ensure_2d=False,
                allow_nd=True,  # refused below, with a message that says why
                dtype=[np.float64, np.float32],
                ensure_all_finite="allow-nan",
                input_name="y",
            )
        if y.ndim > 2:
            raise ValueError(
                f"y must be 1-D (n_samples,) or 2-D (n_samples, n_outputs); got "
                f"an array with dim {y.ndim} of shape {y.shape}. Reshape it, for "
                "example y.reshape(len(y), -1)."
            )
        if not self._allow_unlabelled and np.isnan(y).any():
            raise ValueError(
                f"Input y contains NaN. {type(self).__name__} needs a finite y on "
                "every row: drop the rows without a label, or use "
                "DomainAdaptRegressor, where a NaN y marks an unlabelled target row."
            )
        if X.shape[0] != y.shape[0]:
            raise ValueError(
                f"X has {X.shape[0]} rows but y has {y.shape[0]} (inconsistent "
                "numbers of samples); pass one y per row of X."
            )
        return X, y.reshape(len(y), -1), y.ndim == 1

    def _validate_X(self, X):
        """``X`` checked as scikit-learn checks it (``n_features_in_`` set); an
        out-of-core ``X`` is checked on its first rows and left on disk (its
        values are checked by the streaming pass of the scaling)."""
        if not is_out_of_core(X):
            return validate_data(
                self,
                X,
                reset=True,
                dtype=[np.float32, np.float64],
                allow_nd=True,
                ensure_min_samples=2,
            )
        _check_out_of_core(X)
        if X.shape[0] < 2:
            raise ValueError(
                f"Found array with {X.shape[0]} sample(s) (shape={X.shape}) while "
                "a minimum of 2 is required."
            )
        validate_data(self, read_rows(X, slice(0, 2)), reset=True, allow_nd=True)
        return X

    def _domains(self, y, sample_domain):
        """The rows' domain masks; at least one row must be labelled."""
        masks = domain_masks(y, sample_domain)
        if not masks.labelled.any():
            raise ValueError(
                "y has no labelled rows (all NaN); at least the source rows need "
                "a finite y."
            )
        if (
            self.early_stopping
            and self.solver != "closed_form"
            and masks.labelled.sum() < 2
        ):
            raise ValueError(
                "early_stopping=True needs at least 2 labelled rows; set "
                "early_stopping=False."
            )
        return masks

    def _validate_sample_weight(self, sample_weight, X, masks):
        """Checked float64 weights, or None when they change nothing."""
        if sample_weight is None:
            return None
        with _named_errors("sample_weight"):
            sw = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
        if not (sw[masks.labelled] > 0).any():
            raise ValueError(
                "sample_weight is zero on every labelled row; give some labelled "
                "rows a positive weight."
            )
        return None if np.all(sw == sw[0]) else sw

    def _loss_weights(self, masks, sample_weight, plan):
        """Per-row weights of the supervised loss (see :func:`loss_weights`)."""
        return loss_weights(masks, sample_weight)

    def _resolve_shapes(self, X):
        """The per-sample shape of ``X`` and the one the backbone receives."""
        source = _unfrozen(self.backbone)
        inherited = None
        if _is_fitted_source(source):
            inherited = Shapes(source.sample_shape_, source.input_shape_)
        return resolve_shapes(X, self.input_shape, inherited)

    # --- stage: network -------------------------------------------------------
    def _source_estimator(self):
        """The fitted estimator passed as ``backbone``, or None."""
        est = _unfrozen(self.backbone)
        if not _is_source_kind(est):
            return None
        try:
            check_is_fitted(est)
        except NotFittedError as exc:
            what = (
                "unlabelled rows"
                if isinstance(est, SelfSupervisedPretrainer)
                else "the source data"
            )
            raise ValueError(
                f"backbone is an unfitted {type(est).__name__}; fit it on {what} "
                "first, or pass a registry name or a torch.nn.Module."
            ) from exc
        return est

    def _build_network(self, shapes, n_outputs):
        """``(TransferModule, Origin)``: backbone, head, what is inherited."""
        backbone, pretrained_head, origin = self._backbone(shapes, n_outputs)
        # the dry run first: it also materialises lazy modules before loading
        n_features = _dry_run(backbone, shapes.input, "backbone")[1:].numel()
        if self.weights is not None:
            load_weights(backbone, self.weights)
        if isinstance(self.head, torch.nn.Module):
            head = make_head(self.head, n_features, n_outputs)
            out = _dry_run(head, (n_features,), "head")
            width = 2 * n_outputs if predicts_variance(head) else n_outputs
            if tuple(out) != (2, width):
                raise ValueError(
                    f"head maps a batch of features of shape (2, {n_features}) to "
                    f"shape {tuple(out)}, but y needs (2, {width}); give a head "
                    "that returns one column per output (a mean, then a "
                    "variance per output for a head with predicts_variance=True)."
                )
        elif self.head == "auto" and pretrained_head is not None:
            head = pretrained_head
            origin.head_pretrained = True
        else:
            head = make_head(self.head, n_features, n_outputs)
        network = TransferModule(backbone, head, n_features, shapes.reshape_to)
        _check_finite_parameters(network, "The network (backbone and head)")
        return network, origin

    def _backbone(self, shapes, n_outputs):
        """``(backbone, the source's head or None, Origin)`` from ``backbone``."""
        source = self._source_estimator()
        if source is not None:
            if (source.sample_shape_, source.input_shape_) != (
                shapes.sample,
                shapes.input,
            ):
                raise ValueError(
                    f"backbone was fitted on samples of shape {source.sample_shape_} "
                    f"(input_shape={source.input_shape_}) but X has samples of shape "
                    f"{shapes.sample} (input_shape={shapes.input}); the source and "
                    "target data need the same features."
                )
            backbone = copy.deepcopy(_fitted_backbone(source)).cpu()
            head = None
            if isinstance(source, BaseTransferEstimator) and (
                n_outputs == source.n_outputs_
            ):
                head = copy.deepcopy(source.net_.module_.head).cpu()
            origin = Origin(source)
            if not self._uses_pretrained_weights():
                # the same network, input scaling and shapes, fresh weights
                reinitialise(backbone)
                origin.backbone_pretrained = False
            return backbone, head, origin
        if isinstance(self.backbone, torch.nn.Module):
            return copy.deepcopy(self.backbone).cpu(), None, Origin()
        return (
            _call_factory(self.backbone, shapes.input, self.backbone_params or {}),
            None,
            Origin(backbone_pretrained=self.weights is not None),
        )

    def _uses_pretrained_weights(self):
        """Whether the fit starts from the source's trained weights
        (``TransferRegressor(pretraining=...)`` can re-initialise them)."""
        return True

    # --- stage: scaling -------------------------------------------------------
    def _per_domain_scaling(self, masks):
        """Whether each domain's inputs are scaled with their own statistics."""
        return False

    def _make_scaling(self, origin, masks, plan):
        """The :class:`~sktransfer._scaling.Scaling` of this fit: without an
        adaptation loss, input statistics come from the labelled rows."""
        mode = self.standardize_X
        if mode == "auto":
            if isinstance(origin.source, SelfSupervisedPretrainer) and not (
                self._uses_pretrained_weights()
            ):
                # re-initialised: the model without pre-training scales its
                # inputs with its own rows, as the pre-trainer scaled its own
                mode = {False: "off", "global": "global"}.get(
                    origin.source.standardize_X, "per_feature"
                )
            elif origin.source is not None:
                mode = "inherit"
            else:
                mode = isinstance(self.backbone, str)
        if mode is True:
            mode = "per_feature"
        elif mode is False:
            mode = "off"
        return Scaling(
            mode,
            self.standardize_y,
            per_domain=self._per_domain_scaling(masks),
            inherited=origin.source,
            inherit_y=origin.head_pretrained,
            labelled_only=plan.adaptation is None,
        )

    # --- stage: plan (the subclass's) -------------------------------------------
    def _plan(self, network, origin, masks):
        """The subclass's :class:`TrainingPlan` (fine-tuning or adaptation)."""
        raise NotImplementedError

    # --- stage: data and solver -----------------------------------------------
    @staticmethod
    def _dataset(X_train, y_train, weight, masks, device, sample_weight=None):
        """The training arrays as one on-device :class:`TensorData` (an
        :class:`~sktransfer._outofcore.ArrayData` whose inputs stay on disk
        for an out-of-core ``X``)."""
        unit = 1.0  # the loss weights are the user's divided by their mean
        if weight is not None and sample_weight is not None:
            with np.errstate(over="ignore"):
                unit = float(np.mean(sample_weight[masks.labelled]))
            unit = unit if np.isfinite(unit) and unit > 0 else 1.0
        rest = (
            torch.from_numpy(y_train).to(device),
            None if weight is None else torch.from_numpy(weight).to(device),
            torch.from_numpy(masks.target).to(device),
        )
        if isinstance(X_train, _OnDisk):
            return ArrayData(X_train.X, X_train.transform, *rest, weight_unit=unit)
        return TensorData(torch.from_numpy(X_train).to(device), *rest, weight_unit=unit)

    def _choose_solver(self, network, plan, n_rows, on_disk=False):
        """``"gradient"`` or ``"closed_form"`` (see the ``solver`` parameter).

        An ``X`` read on demand (``on_disk``) trains by gradient: the exact
        solver needs every row's features in memory.
        """
        solver = self._solver_for(network, plan, n_rows)
        if not on_disk or solver == "gradient":
            return solver
        if self.solver == "closed_form":
            raise ValueError(
                "solver='closed_form' needs the training inputs in memory, but X "
                "is read on demand (a np.memmap, h5py dataset or zarr array), "
                "which trains by gradient, batch by batch. Use solver='auto' or "
                "'gradient', or pass np.asarray(X) if it fits in memory."
            )
        warn(
            "X is read on demand (a np.memmap, h5py dataset or zarr array), so "
            f"this linear model trains by gradient for max_epochs={self.max_epochs} "
            "instead of by the exact solver that an in-memory X would use. Pass "
            "np.asarray(X) if it fits in memory, or set solver='gradient' to "
            "silence this warning."
        )
        return "gradient"

    def _solver_for(self, network, plan, n_rows):
        """The solver of an in-memory ``X``."""
        if self.solver == "gradient":
            return "gradient"
        if predicts_variance(network.head):
            if self.solver == "closed_form":
                raise ValueError(
                    f"solver='closed_form' cannot train head={self.head!r}: the "
                    "head predicts a variance and trains by the Gaussian negative "
                    "log-likelihood, which has no closed-form solution (the exact "
                    "solver minimises a squared error). Use solver='auto' or "
                    "'gradient', or head='linear'."
                )
            return "gradient"
        reason = linear_head_applicable(
            network,
            frozen_backbone=plan.frozen_backbone,
            feature_loss=plan.adaptation is not None,
        )
        if as_augmentations(self.augment):
            if self.solver == "closed_form":
                raise ValueError(
                    f"solver='closed_form' cannot use augment={self.augment!r}: "
                    "augmentations transform each training batch, and only the "
                    "gradient loop trains on batches. Use solver='auto' or "
                    "'gradient', or set augment=None."
                )
            return "gradient"
        if self.solver == "closed_form":
            if reason:
                raise ValueError(
                    f"solver='closed_form' needs a model whose only trainable "
                    f"part is a torch.nn.Linear head, but {reason}. Use "
                    "solver='gradient' or 'auto'."
                )
            return "closed_form"
        if reason or self.early_stopping:
            return "gradient"
        # "auto" solves linear models only: for a linear probe on a frozen
        # feature extractor (often more features than rows) the exact,
        # unpenalised optimum interpolates the rows, which the gradient
        # loop's implicit regularisation avoids
        if any(True for _ in network.backbone.parameters()):
            return "gradient"
        if min(n_rows, network.n_features + 1) > AUTO_MAX_FEATURES:
            return "gradient"  # neither the primal nor the dual system is cheap
        return "closed_form"

    # --- stage: net -----------------------------------------------------------
    def _assemble_net(
        self,
        network,
        plan,
        seeds,
        device,
        solver,
        input_stats=None,
        distributed=None,
    ):
        """The skorch net: the network, the plan and the training settings
        (``input_stats``: the input mean and scale, for augmentations that act
        in original units; ``distributed``: the process group of data-parallel
        training, where only rank 0 reports progress)."""
        # the guard first: early stopping must not end a run whose loss is
        # not finite (its patience runs out on an infinite validation loss)
        callbacks = [*plan.callbacks, ("divergence_guard", DivergenceGuard())]
        if plan.anchored or plan.adaptation is not None:
            # before early stopping, which ends the last epoch's callbacks
            callbacks.append(("loss_terms", LossTermRecorder()))
        train_split = None
        if self.early_stopping and solver == "gradient":
            train_split = ValidFraction(self.validation_fraction, seeds.split)
            stopper = EarlyStop(
                monitor="valid_loss",
                patience=self.n_iter_no_change,
                threshold=1e-4,
                # a negative log-likelihood may be negative, where a relative
                # threshold would count a worse loss as an improvement
                threshold_mode="abs" if predicts_variance(network.head) else "rel",
                load_best=True,
                sink=_silent,
            )
            callbacks.append(("early_stopping", stopper))
        if self.grad_clip is not None:
            clip = GradientNormClipping(gradient_clip_value=self.grad_clip)
            callbacks.append(("grad_clip", clip))
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            optimizer = OPTIMIZERS[optimizer]
        return TransferNet(
            module=network,
            criterion=torch.nn.MSELoss,
            optimizer=optimizer,
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=train_split,
            callbacks=callbacks,
            device=device,
            verbose=self.verbose if distributed is None or not distributed.rank else 0,
            param_groups=plan.param_groups,
            shuffle_seed=seeds.shuffle,
            balanced=plan.adaptation is not None,
            anchored=plan.anchored,
            l2sp=plan.l2sp,
            adaptation=plan.adaptation,
            da_weight=plan.da_weight,
            precision=self.precision,
            augment=tuple(clone(a) for a in as_augmentations(self.augment)),
            augment_seed=seeds.augment,
            input_stats=input_stats,
            distributed=distributed,
        )

    # --- stage: train ---------------------------------------------------------
    def _train(self, net, dataset, plan, origin, solver):
        """Train ``net`` by gradient or solve it in closed form; return the
        closed form's penalty strength (None for the gradient loop)."""
        rows = None
        weight = dataset.weight
        if plan.adaptation is None and weight is not None and not (weight > 0).all():
            # rows of weight 0 add nothing without an adaptation loss
            rows = torch.nonzero(weight > 0).flatten()
        if solver == "closed_form":
            strength = plan.head_penalty
            net.fit_closed_form(
                dataset,
                rows,
                strength=AUTO_STRENGTHS if strength == "auto" else strength,
                anchored=plan.anchor_head,
                pretrained=origin.head_pretrained,
            )
            # every process solved the same system on all rows; rank 0's
            # solution is the one kept everywhere
            net.synchronize()
            net.module_.eval()
            return net.closed_form_report_["strength"]
        train = dataset if rows is None else dataset.subset(rows)
        _check_batch_norm_rows(net.module, len(train), self, plan)
        _check_distributed_rows(net, len(train), self)
        if isinstance(dataset, ArrayData):
            with random_access(dataset.X):  # shuffled rows: no read-ahead
                net.fit(train, None)
        else:
            net.fit(train, None)
        net.synchronize()
        net.module_.eval()
        return None

    def _weight_decay(self):
        """The weight decay of the gradient loop (``"auto"``: none)."""
        return 0.0 if self.weight_decay == "auto" else float(self.weight_decay)

    # --- stage: publish -------------------------------------------------------
    def _publish(self, fit):
        """Set every fitted attribute (the one place that does)."""
        network = fit.net.module_
        self.net_ = fit.net
        self.history_ = fit.net.history
        self.n_iter_ = len(fit.net.history)
        self.solver_ = fit.solver
        self.sample_shape_ = fit.shapes.sample
        self.input_shape_ = fit.shapes.input
        self.n_backbone_features_ = network.n_features
        self.n_outputs_ = int(fit.scaling.y_mean_.shape[0])
        self.input_mean_ = fit.scaling.input_mean_
        self.input_scale_ = fit.scaling.input_scale_
        self.y_mean_ = fit.scaling.y_mean_
        self.y_scale_ = fit.scaling.y_scale_
        self.device_ = fit.device
        self.precision_ = self.precision
        self.input_range_ = fit.input_range
        self.clip_inputs_ = self.clip_inputs
        closed_decay = fit.solver == "closed_form" and not fit.plan.anchor_head
        self.weight_decay_ = fit.penalty if closed_decay else self._weight_decay()
        self._y_1d = fit.y_1d

    # -------------------------------------------------------------- predict
    def _validate_predict(self, X):
        """``X`` checked against the fitted shape; a fast path for small arrays.
        An out-of-core ``X`` is checked on its first row and stays on disk
        (each chunk's values are checked as it is read)."""
        if is_out_of_core(X):
            _check_out_of_core(X)
            with _named_errors("X"):
                validate_data(
                    self,
                    read_rows(X, slice(0, min(1, X.shape[0]))),
                    reset=False,
                    allow_nd=True,
                    ensure_min_samples=0,
                )
            if tuple(X.shape[1:]) != self.sample_shape_:
                raise ValueError(
                    f"X has samples of shape {tuple(X.shape[1:])}, but this "
                    f"estimator was fitted on samples of shape {self.sample_shape_}."
                )
            return X
        if (
            type(X) is np.ndarray
            and X.dtype in (np.float32, np.float64)
            and X.shape[1:] == self.sample_shape_
            and 0 < X.size <= _FAST_PATH_MAX_SIZE
            and not hasattr(self, "feature_names_in_")
            and np.isfinite(X).all()
        ):
            return X
        with _named_errors("X"):
            X = validate_data(
                self, X, reset=False, dtype=[np.float32, np.float64], allow_nd=True
            )
        if X.shape[1:] != self.sample_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but this estimator was "
                f"fitted on samples of shape {self.sample_shape_}."
            )
        return X

    def _forward(self, X, precision=None):
        """Network outputs in scaled target units, float32 (n, n_outputs).

        Inputs are converted chunk by chunk (centred in float64, then cast to
        float32), so no float32 copy of all of ``X`` is made. Small inputs
        switch gradients off with ``torch.set_grad_enabled``: an
        ``inference_mode`` context costs more to set up than a small network's
        forward pass on one row. Larger inputs run in ``inference_mode``.
        """
        module = self.net_.module_
        if module.training:
            module.eval()
        precision = self.precision_ if precision is None else precision
        if X.shape[0] > _SMALL_BATCH:
            with torch.inference_mode():
                return self._run_chunks(module, X, precision)
        grad_was_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            return self._run_chunks(module, X, precision)
        finally:
            torch.set_grad_enabled(grad_was_enabled)

    def _run_chunks(self, module, X, precision):
        parts = []
        device = self.device_
        on_disk = is_out_of_core(X)
        step = _PREDICT_CHUNK
        if on_disk:  # the same chunks as in memory, unless rows are wide
            step = min(step, chunk_rows(X, _DISK_CHUNK_BYTES))
        with autocast(device, precision):
            for start in range(0, X.shape[0], step):
                if on_disk:
                    xb = check_chunk(read_rows(X, slice(start, start + step)))
                else:
                    xb = X[start : start + step]
                xb = scale_inputs(xb, self.input_mean_, self.input_scale_)
                xb = self._bounded(xb)
                out = module(torch.from_numpy(xb).to(device, non_blocking=True), True)
                parts.append(out.float().cpu().numpy())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def _bounded(self, xb):
        """Warn about inputs far outside the training range; clip them to it
        with ``clip_inputs=True``."""
        low, high = self.input_range_
        beyond = np.maximum(xb - high, low - xb)
        worst = beyond.reshape(len(xb), -1).max(axis=0)
        far = worst > OUT_OF_RANGE
        if far.any():
            self._warn_out_of_range(far, worst)
        if self.clip_inputs_:
            xb = np.clip(xb, low, high)
        return xb

    def _warn_out_of_range(self, far, worst):
        names = getattr(self, "feature_names_in_", None)
        columns = np.flatnonzero(far)
        order = columns[np.argsort(-worst[columns])][:5]
        unit = "standard deviations" if self.input_scale_ is not None else "units"
        listed = ", ".join(
            f"{names[j] if names is not None and names.ndim == 1 else j!s} "
            f"({worst[j]:.1f})"
            for j in order
        )
        warn(
            f"X has values far outside the training range in {len(columns)} "
            f"feature(s); the furthest, with how many {unit} beyond the range: "
            f"{listed}. The network extrapolates there; clip_inputs=True bounds "
            "what it sees to the training range."
        )

    @fill_doc
    def predict(self, X, return_std=False):
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
``(n_samples, *input_shape)``
            Inputs, with the features (or per-sample shape) seen in ``fit``;
            a ``np.memmap``, h5py dataset or zarr array is read chunk by chunk.
        %(return_std)s

        Returns
        -------
        %(predict_returns)s
        """
        if not hasattr(self, "net_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator."
            )
        gaussian = self._predicts_variance()
        if return_std and not gaussian:
            raise ValueError(
                f"predict(X, return_std=True) needs a head that predicts a "
                f"variance, but this {type(self).__name__} was fitted with "
                f"head={self.head!r}. Fit with head='gaussian' (or use a "
                "TransferEnsemble for the spread of several models)."
            )
        X = self._validate_predict(X)
        out = self._forward(X)
        if not np.isfinite(out).all():
            out = self._recompute_non_finite(X, out)
        if gaussian:
            out, variance = out[:, : self.n_outputs_], out[:, self.n_outputs_ :]
        mean = out * self.y_scale_ + self.y_mean_
        mean = mean.ravel() if self._y_1d else mean
        if not return_std:
            return mean
        std = np.sqrt(variance) * self.y_scale_
        return mean, std.ravel() if self._y_1d else std

    def _predicts_variance(self):
        """Whether the fitted head predicts a variance (a Gaussian head)."""
        return predicts_variance(self.net_.module_.head)

    def _recompute_non_finite(self, X, out):
        """Rows whose outputs overflowed in fp16/bf16 are recomputed in float32
        (row by row, so no row depends on the others); outputs that are still
        not finite are an error, never returned."""
        bad = np.flatnonzero(~np.isfinite(out).all(axis=1))
        if self.precision_ != "fp32":
            out = out.copy()
            rows = read_rows(X, bad) if is_out_of_core(X) else X[bad]
            out[bad] = self._forward(rows, "fp32")
            bad = bad[~np.isfinite(out[bad]).all(axis=1)]
        if bad.size:
            raise ValueError(
                f"The network's outputs are not finite for {bad.size} row(s) of X "
                f"(the first: {bad[:5].tolist()}): their values are far outside "
                "what the model was trained on, or the network overflows float32. "
                "Check those rows, or refit with standardize_X=True."
            )
        return out


def _check_batch_norm_rows(module, n_rows, est, plan):
    """Batch norm trains on batches of 2 rows or more: refuse fewer rows, and
    batches of one row (balanced batches hold a target row too)."""
    if est.early_stopping:
        n_rows -= max(1, int(np.ceil(est.validation_fraction * n_rows)))
    has_bn = any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in module.modules()
    )
    if (
        has_bn
        and n_rows >= 2
        and est.batch_size < 2
        and plan.adaptation is None
        and not plan.frozen_backbone
    ):
        raise ValueError(
            "The network has batch-norm layers, which cannot train on batches of "
            f"one row, but batch_size={est.batch_size}. Set batch_size=2 or more, "
            "or use a backbone without batch norm."
        )
    if has_bn and n_rows < 2:
        raise ValueError(
            f"The network has batch-norm layers, which need at least 2 training "
            f"rows, but {max(n_rows, 0)} remain"
            + (" after the early-stopping split" if est.early_stopping else "")
            + ". Give more labelled rows, set early_stopping=False, or use a "
            "backbone without batch norm."
        )


def _check_distributed_rows(net, n_rows, est):
    """Data-parallel training gives every process rows of every batch: refuse
    a batch size or a training set smaller than the number of processes."""
    ctx = net.distributed
    if ctx is None:
        return
    k = ctx.world_size
    if est.batch_size < k:
        raise ValueError(
            f"distributed='ddp' over {k} processes shards each batch across them, "
            f"but batch_size={est.batch_size} is smaller than the number of "
            f"processes; set batch_size={k} or more (batch_size is the global "
            "batch, over all processes)."
        )
    if n_rows < k:
        raise ValueError(
            f"distributed='ddp' over {k} processes needs at least {k} training "
            f"rows, one per process; got {n_rows}. Train in one process "
            "(distributed=None)."
        )


#: how far beyond the training range (in scaled units: standard deviations when
#: inputs are standardised) a value must lie for predict to warn
OUT_OF_RANGE = 3.0


@dataclass
class _OnDisk:
    """Training inputs left on disk: the raw array and the function that
    scales a block of its rows (``transform(block, rows)``)."""

    X: object
    transform: object


def _check_out_of_core(X):
    """An out-of-core ``X`` has rows and a numeric dtype (checked without
    reading its values)."""
    if len(X.shape) < 2:
        raise ValueError(
            f"Expected a 2-D (or higher) X, got an array of shape {X.shape}. "
            "Reshape it on disk to (n_samples, n_features)."
        )
    if np.dtype(X.dtype).kind not in "fiu":
        raise ValueError(
            f"X read on demand must hold numbers (float, int); got dtype "
            f"{X.dtype}. Convert the array on disk to float32."
        )


def _input_range(X_train, source=None, scaling=None, known=None):
    """Per-feature minimum and maximum of the scaled training inputs (``known``
    when the scaling's streaming pass found them); a model that inherits a
    source model's scaling also saw the source's range."""
    if known is not None:
        low, high = known
    else:
        low, high = X_train.min(axis=0), X_train.max(axis=0)
    inherited = getattr(source, "input_range_", None)
    if inherited is not None and scaling is not None and scaling.inputs == "inherit":
        if not scaling.per_domain:
            low, high = np.minimum(low, inherited[0]), np.maximum(high, inherited[1])
    return low, high
