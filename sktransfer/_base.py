"""Shared base of the estimators: parameters, validation, net assembly, predict."""

import contextlib
import copy
import os
import warnings
from collections.abc import Mapping
from numbers import Integral, Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, RegressorMixin, clone
from sklearn.exceptions import NotFittedError
from sklearn.utils import check_random_state
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import (
    _check_sample_weight,
    check_array,
    check_consistent_length,
    check_is_fitted,
    validate_data,
)
from skorch.callbacks import EarlyStopping

from sktransfer._closed_form import (
    AUTO_MAX_FEATURES,
    linear_head_applicable,
    solve_linear_head,
)
from sktransfer._net import TransferNet, ValidFraction
from sktransfer._network import TransferNetwork
from sktransfer.backbones import get_backbone_factory, load_weights
from sktransfer.callbacks import LossTermRecorder
from sktransfer.data import TensorData, domain_masks
from sktransfer.finetuning import plan_finetuning
from sktransfer.heads import HEAD_OPTIONS, make_head

_OPTIMIZERS = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}
_PREDICT_CHUNK = 8192
_SMALL_BATCH = 64
_FAST_PATH_MAX_SIZE = 1 << 16


def resolve_device(device):
    """``"auto"`` -> cuda when available; unavailable cuda -> clear ValueError."""
    if isinstance(device, torch.device):
        device = str(device)
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use 'cpu', 'cuda', "
            "'cuda:N' or 'auto'."
        ) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(
            f"device={device!r} was requested but CUDA is not available on this "
            "machine; use device='cpu' or device='auto'."
        )
    return device


_PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _autocast(device, precision):
    """Mixed-precision context for ``precision`` ("fp32": a no-op)."""
    dtype = _PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


def _fork_devices(device):
    if torch.device(device).type == "cuda":
        index = torch.device(device).index
        return [torch.cuda.current_device() if index is None else index]
    return []


def _silent(*args, **kwargs):
    """A callback sink that discards messages (verbose=0)."""


def _feature_stats(X, weight=None, chunk=4096, constant_scale=1.0):
    """Per-feature (weighted) mean and standard deviation; constant -> scale
    ``constant_scale`` (1; None keeps the raw value).

    Two passes over row chunks in float64: no temporary the size of ``X``.
    """
    n = X.shape[0]
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    total = w.sum()
    acc = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64)
        acc += np.tensordot(w[start : start + chunk], block, axes=1)
    mean = acc / total
    acc = np.zeros_like(mean)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64) - mean
        acc += np.tensordot(w[start : start + chunk], block * block, axes=1)
    std = np.sqrt(acc / total)
    if constant_scale is not None:
        std[~(std > 1e-12)] = constant_scale
    return mean.astype(np.float32), std.astype(np.float32)


def _unfrozen(backbone):
    """The estimator inside a ``sklearn.frozen.FrozenEstimator``, else itself."""
    inner = getattr(backbone, "estimator", None)
    if type(backbone).__name__ == "FrozenEstimator" and inner is not None:
        return inner
    return backbone


def _is_fitted_source(backbone):
    est = _unfrozen(backbone)
    return isinstance(est, BaseTransferEstimator) and est.__sklearn_is_fitted__()


class BaseTransferEstimator(RegressorMixin, BaseEstimator):
    """Common machinery of :class:`TransferRegressor` and
    :class:`DomainAdaptRegressor`. Not for direct use."""

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
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(_OPTIMIZERS)), type],
        "solver": [StrOptions({"auto", "gradient", "closed_form"})],
        "early_stopping": ["boolean"],
        "validation_fraction": [Interval(Real, 0, 1, closed="neither")],
        "n_iter_no_change": [Interval(Integral, 1, None, closed="left")],
        "standardize_y": ["boolean"],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "precision": [StrOptions(set(_PRECISIONS))],
        "verbose": ["verbose"],
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
        self.solver = solver
        self.early_stopping = early_stopping
        self.validation_fraction = validation_fraction
        self.n_iter_no_change = n_iter_no_change
        self.standardize_y = standardize_y
        self.random_state = random_state
        self.device = device
        self.precision = precision
        self.verbose = verbose

    # ------------------------------------------------------------------ tags
    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        tags.input_tags.allow_nan = False
        return tags

    # ------------------------------------------------------------ validation
    def _check_extra_params(self):
        """Cross-parameter checks the declarative constraints cannot express."""
        if isinstance(self.optimizer, type) and not issubclass(
            self.optimizer, torch.optim.Optimizer
        ):
            raise ValueError(
                f"optimizer={self.optimizer.__name__} is not a torch.optim.Optimizer "
                f"subclass; use one of {sorted(_OPTIMIZERS)} or such a class."
            )
        if self.backbone_params is not None and not isinstance(self.backbone, str):
            raise ValueError(
                "backbone_params only applies to registry backbones (a str "
                f"backbone); got backbone of type {type(self.backbone).__name__}. "
                "Set backbone_params=None."
            )
        if isinstance(self.backbone, BaseEstimator) and not isinstance(
            _unfrozen(self.backbone), BaseTransferEstimator
        ):
            raise TypeError(
                "backbone must be a registry name, a torch.nn.Module or a fitted "
                "TransferRegressor/DomainAdaptRegressor; got "
                f"{type(self.backbone).__name__}."
            )
        if self.weights is not None and isinstance(self.backbone, BaseEstimator):
            raise ValueError(
                "weights cannot be combined with a fitted estimator as backbone "
                "(its fitted weights are used). Set weights=None."
            )
        if self.input_shape is not None and not all(
            isinstance(s, Integral) and s > 0 for s in self.input_shape
        ):
            raise ValueError(
                f"input_shape must be a tuple of positive ints such as (channels, "
                f"length); got {self.input_shape!r}."
            )
        if isinstance(self.backbone, str):
            get_backbone_factory(self.backbone)

    def _validate_fit_data(self, X, y, allow_missing_y):
        if y is None:
            raise ValueError(
                f"{type(self).__name__} requires y to be passed, but the target y "
                "is None."
            )
        X = validate_data(
            self,
            X,
            reset=True,
            dtype=[np.float32, np.float64],
            allow_nd=True,
            ensure_min_samples=2,
        )
        y = check_array(
            y,
            ensure_2d=False,
            dtype=[np.float64, np.float32],
            ensure_all_finite="allow-nan" if allow_missing_y else True,
            input_name="y",
        )
        if y.ndim > 2:
            raise ValueError(f"y must be 1-D or 2-D; got shape {y.shape}.")
        if np.isinf(y).any():
            raise ValueError("Input y contains infinity.")
        check_consistent_length(X, y)
        return X, y

    def _sample_shape(self, X):
        if X.ndim > 2:
            shape = tuple(X.shape[1:])
            if self.input_shape is not None and tuple(self.input_shape) != shape:
                raise ValueError(
                    f"input_shape={self.input_shape} does not match the per-sample "
                    f"shape {shape} of the 3-D X; set input_shape=None."
                )
            return shape, None
        if self.input_shape is None:
            source = _unfrozen(self.backbone)
            if (
                isinstance(source, BaseTransferEstimator)
                and getattr(source, "model_shape_", None) is not None
                and source.sample_shape_ == (X.shape[1],)
            ):
                # transferring from a fitted estimator: inherit its input_shape
                return (X.shape[1],), source.model_shape_
            return (X.shape[1],), None
        shape = tuple(int(s) for s in self.input_shape)
        if int(np.prod(shape)) != X.shape[1]:
            raise ValueError(
                f"input_shape={self.input_shape} holds {int(np.prod(shape))} values "
                f"per sample but X has {X.shape[1]} features; choose a shape whose "
                "product is the number of features."
            )
        return (X.shape[1],), shape

    # ------------------------------------------------------------- assembly
    def _source_estimator(self):
        est = _unfrozen(self.backbone)
        if not isinstance(est, BaseTransferEstimator):
            return None
        try:
            check_is_fitted(est)
        except Exception as exc:
            raise ValueError(
                f"backbone is an unfitted {type(est).__name__}; fit it on the "
                "source data first, or pass a registry name or a torch.nn.Module."
            ) from exc
        return est

    def _build_network(self, sample_shape, model_shape, n_outputs):
        """Return (network, info) where info says what is pretrained/inherited."""
        shape = model_shape if model_shape is not None else sample_shape
        info = {"backbone_pretrained": True, "head_pretrained": False}
        source = self._source_estimator()
        pretrained_head = None
        if source is not None:
            if (
                source.sample_shape_ != sample_shape
                or source.model_shape_ != model_shape
            ):
                raise ValueError(
                    f"backbone was fitted on samples of shape {source.sample_shape_} "
                    f"(input_shape={source.model_shape_}) but X has samples of shape "
                    f"{sample_shape} (input_shape={model_shape}); the source and "
                    "target data need the same features."
                )
            src_net = source.net_.module_
            backbone = copy.deepcopy(src_net.backbone).cpu()
            if n_outputs == source.n_outputs_:
                pretrained_head = copy.deepcopy(src_net.head).cpu()
            info["source"] = source
        elif isinstance(self.backbone, torch.nn.Module):
            backbone = copy.deepcopy(self.backbone).cpu()
        else:
            factory = get_backbone_factory(self.backbone)
            try:
                backbone = factory(shape, **(self.backbone_params or {}))
            except TypeError as exc:
                raise ValueError(
                    f"backbone_params={self.backbone_params!r} are not accepted by "
                    f"the {self.backbone!r} backbone: {exc}."
                ) from exc
            info["backbone_pretrained"] = self.weights is not None
        if self.weights is not None:
            load_weights(backbone, self.weights)
        n_feat = self._dry_run(backbone, shape, "backbone")
        if isinstance(self.head, torch.nn.Module):
            head = make_head(self.head, n_feat, n_outputs)
            out = self._dry_run(head, (n_feat,), "head")
            if out != n_outputs:
                raise ValueError(
                    f"head maps features to {out} outputs but y has {n_outputs}; "
                    "give a head whose output width matches y."
                )
        elif self.head == "auto" and pretrained_head is not None:
            head = pretrained_head
            info["head_pretrained"] = True
        else:
            head = make_head(self.head, n_feat, n_outputs)
        network = TransferNetwork(backbone, head, model_shape)
        network.n_features_out = n_feat
        return network, info

    @staticmethod
    def _dry_run(module, shape, what):
        was_training = module.training
        module.eval()
        try:
            with torch.no_grad():
                out = module(torch.zeros((2, *shape)))
        except Exception as exc:
            raise ValueError(
                f"The {what} could not process a batch of shape {(2, *shape)}: "
                f"{exc}. Check backbone, backbone_params and input_shape."
            ) from exc
        finally:
            module.train(was_training)
        if not isinstance(out, torch.Tensor) or out.dim() < 2:
            raise ValueError(
                f"The {what} must return a tensor of shape (n, d); got "
                f"{getattr(out, 'shape', type(out).__name__)}."
            )
        return int(out[0].numel())

    # -------------------------------------------------------------- hooks
    def _input_statistics(self, X, masks, source, weight, fitted):
        """Standardise X (float32, in place when possible).

        Returns (X_prepared, mean, scale): mean/scale go into the network's
        normaliser for prediction (None for no scaling). Fitted attributes to
        publish at the end of ``fit`` go into the dict ``fitted``.
        """
        mode = self.standardize_X
        if mode == "auto":
            if source is not None:
                norm = source.net_.module_.normalizer
                if norm.mean.numel() == 0:
                    return X, None, None
                mean, scale = norm.mean.cpu().numpy(), norm.scale.cpu().numpy()
                return self._scale_inplace(X, mean, scale), mean, scale
            mode = isinstance(self.backbone, str)
        if not mode:
            return X, None, None
        mean, scale = self._x_stats(X, weight)
        return self._scale_inplace(X, mean, scale), mean, scale

    def _x_stats(self, X, weight):
        """Input centre and scale: per feature, or one scale for all features
        (``standardize_X="global"``, which keeps a spectrum's shape)."""
        if self.standardize_X != "global":
            return _feature_stats(X, weight)
        mean, std = _feature_stats(X, weight, constant_scale=None)
        varying = std > 1e-12  # constant features must not set the scale
        rms = np.sqrt(np.mean(np.square(std[varying]))) if varying.any() else 1.0
        return mean, np.full_like(std, rms)

    @staticmethod
    def _scale_inplace(X, mean, scale):
        X -= mean
        X /= scale
        return X

    def _adaptation(self, network, masks, fitted):
        """(adaptation loss or None, extra callbacks, adaptation weight).

        May attach extra trainable modules (e.g. a discriminator) to
        ``network``; they are trained with the head's learning rate.
        """
        return None, [], 0.0

    def _choose_solver(self, network, strategy, adaptation):
        """ "gradient" or "closed_form" (see the ``solver`` parameter)."""
        if self.solver == "gradient":
            return "gradient"
        reason = linear_head_applicable(network, strategy, adaptation)
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
        if network.n_features_out > AUTO_MAX_FEATURES:
            return "gradient"  # a (d+1)^2 Gram matrix would not be cheap
        return "closed_form"

    def _finetune_settings(self):
        """(strategy, backbone_lr, l2sp) for the fine-tuning plan."""
        return "full", 1.0, 0.0

    def _after_training(self, network, data, masks):
        """Hook run on the trained network before it is published."""

    # ---------------------------------------------------------------- clone
    def __sklearn_clone__(self):
        """Clone as scikit-learn does, but share a fitted backbone estimator.

        A fitted estimator passed as ``backbone`` is pretrained weights, read
        and never changed by ``fit``; cloning it would drop what it learned, so
        ``GridSearchCV`` and ``cross_val_score`` could not transfer from it.
        """
        params = self.get_params(deep=False)
        backbone = params.pop("backbone")
        if not _is_fitted_source(backbone):
            backbone = clone(backbone, safe=False)
        params = {k: clone(v, safe=False) for k, v in params.items()}
        return type(self)(backbone, **params)

    # ------------------------------------------------------------------ fit
    def _fit(self, *args, **kwargs):
        """Fit; on any error the estimator is left exactly as it was."""
        saved = dict(self.__dict__)
        try:
            return self._fit_impl(*args, **kwargs)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit_impl(self, X, y, *, sample_weight=None, sample_domain=None, adapt=False):
        self._check_extra_params()
        X, y = self._validate_fit_data(X, y, allow_missing_y=adapt)
        y_1d = y.ndim == 1
        y2 = y.reshape(len(y), -1)
        masks = domain_masks(y2, sample_domain)
        if not masks.labelled.any():
            raise ValueError(
                "y has no labelled rows (all NaN); at least the source rows need "
                "a finite y."
            )
        sw = None
        if sample_weight is not None:
            sw = _check_sample_weight(
                sample_weight, X, dtype=np.float64, ensure_non_negative=True
            )
            if not (sw[masks.labelled] > 0).any():
                raise ValueError(
                    "sample_weight is zero on every labelled row; give some "
                    "labelled rows a positive weight."
                )
            if np.all(sw == sw[0]):
                sw = None  # a constant weight changes nothing
        device = resolve_device(self.device)
        sample_shape, model_shape = self._sample_shape(X)
        n_outputs = y2.shape[1]
        rng = check_random_state(self.random_state)
        seed = int(rng.randint(np.iinfo(np.int32).max))

        fitted = {}  # extra fitted attributes from the hooks, published at the end
        with torch.random.fork_rng(devices=_fork_devices(device)):
            torch.manual_seed(seed)
            network, info = self._build_network(sample_shape, model_shape, n_outputs)
            source = info.get("source")

            # targets: standardised, missing -> 0 with weight 0
            if info["head_pretrained"] and self.standardize_y:
                y_mean, y_scale = source.y_mean_, source.y_scale_
            elif self.standardize_y:
                lab = masks.labelled
                y_mean, y_scale = _feature_stats(
                    y2[lab], None if sw is None else sw[lab]
                )
            else:
                y_mean, y_scale = np.zeros(n_outputs), np.ones(n_outputs)
            y_std = ((y2 - y_mean) / y_scale).astype(np.float32)
            y_std[~masks.labelled] = 0.0

            weight = None
            labelled_target = masks.target & masks.labelled
            if sw is not None or not masks.labelled.all() or labelled_target.any():
                w = np.ones(len(y2)) if sw is None else sw.copy()
                w[~masks.labelled] = 0.0
                if labelled_target.any() and (w[~masks.target] > 0).any():
                    # semi-supervised: the few labelled target rows weigh as
                    # much in total as all source rows (as in "S+T" training)
                    w[labelled_target] *= (
                        w[~masks.target].sum() / w[labelled_target].sum()
                    )
                w /= w[masks.labelled].mean()
                weight = torch.from_numpy(w.astype(np.float32)).to(device)

            # inputs: one float32 copy, standardised in place
            Xf = np.array(X, dtype=np.float32, copy=True, order="C")
            Xf, x_mean, x_scale = self._input_statistics(Xf, masks, source, sw, fitted)

            adaptation, extra_callbacks, da_weight = self._adaptation(
                network, masks, fitted
            )
            network.to(device)
            strategy, backbone_lr, l2sp = self._finetune_settings()
            plan = plan_finetuning(
                network,
                strategy=strategy,
                lr=self.lr,
                backbone_lr=backbone_lr,
                weight_decay=self.weight_decay,
                l2sp=l2sp,
                max_epochs=self.max_epochs,
                backbone_pretrained=info["backbone_pretrained"],
                head_pretrained=info["head_pretrained"],
            )
            extra = [
                p
                for name, child in network.named_children()
                if name not in ("backbone", "head")
                for p in child.parameters()
            ]
            if extra:
                plan.param_groups.append(
                    {"params": extra, "lr": self.lr, "weight_decay": self.weight_decay}
                )

            data = TensorData(
                torch.from_numpy(Xf).to(device),
                torch.from_numpy(y_std).to(device),
                weight,
                torch.from_numpy(masks.target).to(device),
            )
            # without an adaptation loss, unlabelled (weight-0) rows add nothing
            # to training: iterate over the labelled rows only
            rows = None
            if (
                adaptation is None
                and weight is not None
                and not bool((weight > 0).all())
            ):
                rows = torch.nonzero(weight > 0).flatten()
            train_data = data if rows is None else data.subset(rows)
            solver = self._choose_solver(network, strategy, adaptation)
            callbacks = list(plan.callbacks) + list(extra_callbacks)
            train_split = None
            if self.early_stopping and solver == "gradient":
                if masks.labelled.sum() < 2:
                    raise ValueError(
                        "early_stopping=True needs at least 2 labelled rows; set "
                        "early_stopping=False."
                    )
                train_split = ValidFraction(self.validation_fraction, seed + 2)
                callbacks.append(
                    (
                        "early_stopping",
                        EarlyStopping(
                            monitor="valid_loss",
                            patience=self.n_iter_no_change,
                            threshold=1e-4,
                            load_best=True,
                            sink=_silent,
                        ),
                    )
                )
            if plan.anchors or adaptation is not None:
                callbacks.append(("loss_terms", LossTermRecorder()))
            optimizer = (
                _OPTIMIZERS[self.optimizer]
                if isinstance(self.optimizer, str)
                else self.optimizer
            )
            net = TransferNet(
                module=network,
                criterion=torch.nn.MSELoss,
                optimizer=optimizer,
                lr=self.lr,
                max_epochs=self.max_epochs,
                batch_size=self.batch_size,
                train_split=train_split,
                callbacks=callbacks,
                device=device,
                verbose=self.verbose,
                param_groups=plan.param_groups,
                generator=torch.Generator().manual_seed(seed + 1),
                balanced=adaptation is not None and masks.n_target > 0,
                anchors=plan.anchors,
                l2sp=l2sp,
                adaptation=adaptation,
                da_weight=da_weight,
                precision=self.precision,
            )
            if solver == "closed_form":
                net.initialize()
                network.eval()
                anchored = info["head_pretrained"] and l2sp > 0
                solve_linear_head(
                    network,
                    data.X,
                    data.y,
                    data.weight,
                    rows,
                    strength=l2sp if anchored else self.weight_decay,
                    anchored=anchored,
                    pretrained=info["head_pretrained"],
                )
                if self.verbose:
                    n_rows = len(data) if rows is None else rows.numel()
                    print(
                        f"Solved the linear head in closed form: {n_rows} rows, "
                        f"{network.n_features_out} features."
                    )
            else:
                net.fit(train_data, None)
            # leave nothing heavy or unpicklable behind
            net.param_groups = None
            net.generator = None
            net.anchors = ()
            net.frozen_modules_ = []
            network.eval()
            self._after_training(network, data, masks)
            if x_mean is not None:
                network.normalizer.set(x_mean, x_scale)
            del data

        self.net_ = net
        self.history_ = net.history
        self.n_iter_ = len(net.history)
        self.solver_ = solver
        self.sample_shape_ = sample_shape
        self.model_shape_ = model_shape
        self.n_outputs_ = n_outputs
        self.y_mean_ = np.asarray(y_mean, dtype=np.float64)
        self.y_scale_ = np.asarray(y_scale, dtype=np.float64)
        self.device_ = device
        self._y_1d = y_1d
        for name, value in fitted.items():
            setattr(self, name, value)
        return self

    # -------------------------------------------------------------- predict
    def _validate_predict(self, X):
        if (
            type(X) is np.ndarray
            and X.dtype in (np.float32, np.float64)
            and X.shape[1:] == self.sample_shape_
            and 0 < X.size <= _FAST_PATH_MAX_SIZE
            and not hasattr(self, "feature_names_in_")
            and np.isfinite(X).all()
        ):
            return X
        X = validate_data(
            self, X, reset=False, dtype=[np.float32, np.float64], allow_nd=True
        )
        if X.shape[1:] != self.sample_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but this estimator was "
                f"fitted on samples of shape {self.sample_shape_}."
            )
        return X

    def _forward(self, X):
        """Network outputs in standardised target units, float32 (n, n_outputs).

        Small inputs switch gradients off with ``torch.set_grad_enabled``: an
        ``inference_mode`` context costs more to set up than a small network's
        forward pass on one row. Larger inputs run in ``inference_mode``.
        """
        module = self.net_.module_
        if module.training:
            module.eval()
        if X.dtype != np.float32:
            X = X.astype(np.float32)
        elif not X.flags.writeable:
            X = X.copy()  # torch.from_numpy needs a writable buffer
        if X.shape[0] > _SMALL_BATCH:
            with torch.inference_mode():
                return self._run_chunks(module, X)
        grad_was_enabled = torch.is_grad_enabled()
        torch.set_grad_enabled(False)
        try:
            return self._run_chunks(module, X)
        finally:
            torch.set_grad_enabled(grad_was_enabled)

    def _run_chunks(self, module, X):
        parts = []
        device = self.device_
        with _autocast(device, self.precision):
            for start in range(0, X.shape[0], _PREDICT_CHUNK):
                xb = torch.from_numpy(X[start : start + _PREDICT_CHUNK])
                out = module(xb.to(device, non_blocking=True))
                parts.append(out.float().cpu().numpy())
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def predict(self, X):
        """Predict targets in their original units.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)

        Returns
        -------
        y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when the estimator was fitted on a 1-D ``y``.
        """
        if not hasattr(self, "net_"):
            raise NotFittedError(
                f"This {type(self).__name__} instance is not fitted yet. Call "
                "'fit' with appropriate arguments before using this estimator."
            )
        X = self._validate_predict(X)
        out = self._forward(X) * self.y_scale_ + self.y_mean_
        return out.ravel() if self._y_1d else out

    def __sklearn_is_fitted__(self):
        return hasattr(self, "net_")

    def _warn(self, message, category=UserWarning):
        warnings.warn(message, category, stacklevel=3)
