"""Self-supervised pre-training of a backbone on unlabelled rows.

:class:`SelfSupervisedPretrainer` trains any backbone of the registry (or a
user module that maps inputs to features) on rows without labels -- from the
source, the target or both -- and hands the trained backbone on: a fitted
pre-trainer is accepted as ``backbone=`` by
:class:`~sktransfer.TransferRegressor` and
:class:`~sktransfer.DomainAdaptRegressor`, as a fitted estimator is.

Objectives:

- ``"masked"``: masked-feature (tabular rows) or masked-segment (sequences,
  spectra) reconstruction, a denoising autoencoder (Vincent et al.,
  "Extracting and Composing Robust Features with Denoising Autoencoders",
  ICML 2008). Masked entries are replaced by values of other rows (each
  feature's empirical marginal, as in VIME and SCARF) or by zeros, and a
  small decoder reconstructs the clean input from the features. With
  ``mask_estimation=True`` a second head predicts which entries were
  replaced (VIME: Yoon et al., "VIME: Extending the Success of Self- and
  Semi-supervised Learning to Tabular Domain", NeurIPS 2020). Contiguous
  segments are masked in sequences, as in Zerveas et al., "A
  Transformer-based Framework for Multivariate Time Series Representation
  Learning", KDD 2021.
- ``"contrastive"``: two random views of every row, pulled together against
  the other rows of the batch by the NT-Xent loss
  (:func:`~sktransfer.losses.nt_xent_loss`) through a projection head.
  Tabular rows are corrupted as in SCARF (Bahri et al., "SCARF:
  Self-Supervised Contrastive Learning using Random Feature Corruption",
  ICLR 2022): a random fraction of features replaced by draws from their
  marginals. Sequences and spectra get jitter, scaling (Um et al., "Data
  Augmentation of Wearable Sensor Data for Parkinson's Disease Monitoring
  using Convolutional Neural Networks", ICMI 2017) and a random crop
  resized to the full length (window slicing: Le Guennec et al., "Data
  Augmentation for Time Series Classification using Convolutional Neural
  Networks", ECML/PKDD workshop AALTD 2016), the weak augmentations of
  TS-TCC (Eldele et al., IJCAI 2021).
"""

import copy
import os
from numbers import Integral, Real

import numpy as np
import torch
import torch.nn.functional as F
from sklearn.base import (
    BaseEstimator,
    ClassNamePrefixFeaturesOutMixin,
    TransformerMixin,
    _fit_context,
)
from sklearn.utils._param_validation import Interval, StrOptions
from sklearn.utils.validation import check_is_fitted, validate_data
from torch import nn

from sktransfer._batches import TensorData
from sktransfer._callbacks import DivergenceGuard
from sktransfer._device import Seeds, resolve_device, seeded_torch
from sktransfer._net import TransferNet
from sktransfer._scaling import _input_stats, scale_inputs
from sktransfer._shared import (
    OPTIMIZERS,
    call_factory,
    check_input_shape,
    check_optimizer,
    dry_run,
    named_errors,
    resolve_shapes,
)
from sktransfer._warnings import warn
from sktransfer.backbones._spec import _as_tuples, read_spec, write_backbone
from sktransfer.backbones._weights import load_weights
from sktransfer.losses import nt_xent_loss

__all__ = ["SelfSupervisedPretrainer"]

OBJECTIVES = ("masked", "contrastive")
#: ``mask_ratio="auto"``: VIME's masking rate and SCARF's corruption rate
AUTO_MASK_RATIO = {"masked": 0.3, "contrastive": 0.6}
#: a sequence is masked in this many blocks of contiguous positions (fewer
#: when it is shorter)
N_SEGMENTS = 16
#: contrastive views of sequences: noise and scaling (standard deviations, in
#: standardised units)
JITTER = 0.1
SCALING = 0.1
_CHUNK = 4096


# ------------------------------------------------------------------ views
def random_mask(shape, ratio, kind, device=None):
    """A random boolean mask of ``shape``: True where an entry is corrupted.

    Parameters
    ----------
    shape : tuple
        ``(n, n_features)`` for tabular rows, ``(n, channels, length)`` for
        sequences.
    ratio : float in (0, 1)
        Probability that an entry (tabular) or a segment (sequence) is
        masked; the expected share of masked entries in both cases.
    kind : {"tabular", "sequence"}
        Tabular: every entry independently. Sequence: the positions are cut
        into ``min(N_SEGMENTS, length)`` contiguous blocks, each masked
        independently across all channels.
    device : torch.device or None, default=None

    Returns
    -------
    mask : bool tensor of ``shape``
    """
    if kind == "tabular":
        return torch.rand(shape, device=device) < ratio
    n, channels, length = shape
    blocks = min(N_SEGMENTS, length)
    block_of = torch.arange(length, device=device) * blocks // length
    masked_blocks = torch.rand((n, blocks), device=device) < ratio
    return masked_blocks[:, block_of].unsqueeze(1).expand(n, channels, length)


def corrupt(x, mask, kind, corruption="marginal"):
    """``x`` with masked entries replaced (a new tensor).

    Parameters
    ----------
    x : tensor of shape (n, n_features) or (n, channels, length)
    mask : bool tensor of the same shape
    kind : {"tabular", "sequence"}
    corruption : {"marginal", "zeros"}, default="marginal"
        ``"marginal"``: a tabular entry takes the value of the same feature
        in another row of the batch (an independent permutation per feature:
        a draw from the feature's empirical marginal, VIME's implementation);
        a masked segment takes the same positions of one other row.
        ``"zeros"``: the entry becomes 0 (the column mean when inputs are
        standardised; 0 in original units with ``standardize_X=False``).

    Returns
    -------
    tensor of ``x``'s shape
    """
    if corruption == "zeros":
        return x.masked_fill(mask, 0.0)
    if kind == "tabular":
        order = torch.rand(x.shape, device=x.device).argsort(dim=0)
        fill = x.gather(0, order)
    else:
        fill = x[torch.randperm(x.shape[0], device=x.device)]
    return torch.where(mask, fill, x)


def crop_resize(x, keep_min):
    """A random window of each row, linearly resampled to the full length.

    Parameters
    ----------
    x : tensor of shape (n, channels, length)
    keep_min : float in (0, 1]
        The window covers a share of the length drawn uniformly from
        ``[keep_min, 1]``, at a uniform random position.

    Returns
    -------
    tensor of ``x``'s shape
    """
    n, channels, length = x.shape
    if length < 2:
        return x
    span = (length - 1) * (keep_min + (1 - keep_min) * torch.rand(n, device=x.device))
    start = (length - 1 - span) * torch.rand(n, device=x.device)
    grid = torch.linspace(0, 1, length, device=x.device)
    pos = start[:, None] + span[:, None] * grid[None, :]
    lo = pos.floor().long().clamp(0, length - 1)
    hi = (lo + 1).clamp(max=length - 1)
    frac = (pos - lo).unsqueeze(1)
    lo = lo.unsqueeze(1).expand(n, channels, length)
    hi = hi.unsqueeze(1).expand(n, channels, length)
    return x.gather(2, lo) * (1 - frac) + x.gather(2, hi) * frac


def sequence_view(x, ratio):
    """A contrastive view of sequences: crop-and-resize (up to ``ratio`` of
    the length cut away), scaling per row and channel, then jitter."""
    n, channels, _ = x.shape
    view = crop_resize(x, 1.0 - ratio)
    scale = 1.0 + SCALING * torch.randn((n, channels, 1), device=x.device)
    return view * scale + JITTER * torch.randn_like(view)


class _PretrainModule(nn.Module):
    """Backbone plus the objective's heads; ``forward`` returns the loss.

    ``view`` is the shape corruptions act on: ``(n_features,)`` for tabular
    rows, ``(channels, length)`` for sequences.
    """

    def __init__(self, backbone, n_features, input_shape, view, settings):
        super().__init__()
        self.backbone = backbone
        self.input_shape = tuple(input_shape)
        self.view = tuple(view)
        self.kind = "tabular" if len(self.view) == 1 else "sequence"
        self.settings = dict(settings)
        width = int(np.prod(self.input_shape))
        d = int(n_features)
        if settings["objective"] == "masked":
            self.decoder = nn.Sequential(
                nn.Linear(d, d), nn.ReLU(), nn.Linear(d, width)
            )
            if settings["mask_estimation"]:
                self.mask_head = nn.Linear(d, width)
        else:
            self.projector = nn.Sequential(nn.Linear(d, d), nn.ReLU(), nn.Linear(d, d))

    def features(self, v):
        f = self.backbone(v.reshape(v.shape[0], *self.input_shape))
        return f.flatten(1) if f.dim() != 2 else f

    def forward(self, x):
        s = self.settings
        v = x.reshape(x.shape[0], *self.view)
        ratio = s["mask_ratio"]
        if s["objective"] == "masked":
            mask = random_mask(v.shape, ratio, self.kind, v.device)
            f = self.features(corrupt(v, mask, self.kind, s["corruption"]))
            loss = F.mse_loss(self.decoder(f), x.reshape(x.shape[0], -1))
            if s["mask_estimation"]:
                target = mask.reshape(x.shape[0], -1).float()
                loss = loss + F.binary_cross_entropy_with_logits(
                    self.mask_head(f), target
                )
            return loss
        views = []
        for _ in range(2):
            if self.kind == "tabular":
                mask = random_mask(v.shape, ratio, self.kind, v.device)
                views.append(corrupt(v, mask, self.kind, s["corruption"]))
            else:
                views.append(sequence_view(v, ratio))
        z1, z2 = (self.projector(self.features(view)) for view in views)
        return nt_xent_loss(z1, z2, s["temperature"])


class _PretrainNet(TransferNet):
    """The estimators' skorch net, with the module's own loss: ``infer``
    returns the objective (the module's forward), ``get_loss`` passes it on.
    Batches hold at least 2 rows (the corruptions draw from other rows)."""

    def initialize(self):
        super().initialize()
        self.min_batch_ = 2
        return self

    def get_loss(self, y_pred, y_true, X=None, training=False):
        return y_pred


class SelfSupervisedPretrainer(
    ClassNamePrefixFeaturesOutMixin, TransformerMixin, BaseEstimator
):
    """Pre-train a backbone on unlabelled rows, self-supervised.

    ``fit(X)`` trains ``backbone`` on rows without labels -- from the source,
    the target or both -- with a masked-reconstruction or a contrastive
    objective (see :mod:`sktransfer.pretraining` for the papers); the fitted
    pre-trainer is accepted as ``backbone=`` by
    :class:`~sktransfer.TransferRegressor` and
    :class:`~sktransfer.DomainAdaptRegressor`, which fine-tune its backbone
    under a new head (pretrained: ``backbone_lr`` and ``l2sp`` act on it) and,
    with ``standardize_X="auto"``, standardise their inputs with this
    pre-trainer's statistics, so the backbone sees its inputs scaled as in
    pre-training. ``transform`` returns the learned features.

    Inputs are standardised inside (``standardize_X``), with statistics of
    every row passed to ``fit``: pre-train on the rows of both domains to get
    statistics of both.

    Parameters
    ----------
    backbone : str or torch.nn.Module, default="mlp"
        A registry name (``"mlp"``, ``"cnn1d"``, ``"gru"``, ``"linear"`` or one
        added with :func:`~sktransfer.backbones.register_backbone`), or a
        module mapping a batch ``(n, *input_shape)`` to features ``(n, d)``
        (deep-copied, never changed).
    backbone_params : dict or None, default=None
        Arguments of a registry backbone, e.g. ``{"hidden_sizes": (64, 64)}``.
    input_shape : tuple of int or None, default=None
        Per-sample shape the backbone receives, such as ``(channels,
        length)``; 2-D rows are reshaped to it. 3-D ``X`` is taken as it is.
    objective : {"masked", "contrastive"}, default="masked"
        ``"masked"``: reconstruct the clean standardised input from the
        features of a masked copy (a denoising autoencoder; features or, for
        sequences, contiguous segments masked). ``"contrastive"``: NT-Xent
        between two random views of each row (SCARF feature corruption for
        tabular rows; crop-and-resize, scaling and jitter for sequences).
    mask_ratio : float in (0, 1) or "auto", default="auto"
        Expected share of masked (or, contrastive tabular, corrupted)
        entries; for contrastive sequences, the largest share of the length
        a crop cuts away. ``"auto"``: 0.3 for ``"masked"`` (VIME's rate), 0.6
        for ``"contrastive"`` (SCARF's). The value used is ``mask_ratio_``.
    mask_estimation : bool, default=False
        ``"masked"`` only: also predict which entries were masked (VIME's
        mask-estimation head and binary cross-entropy loss).
    corruption : {"marginal", "zeros"}, default="marginal"
        What masked entries become: the same feature's value in another row
        of the batch (a draw from its empirical marginal), or 0.
    temperature : float > 0, default=1.0
        ``"contrastive"`` only: the NT-Xent temperature (SCARF's default).
    input_kind : {"auto", "tabular", "sequence"}, default="auto"
        How inputs are masked and augmented. ``"auto"``: ``"sequence"`` when
        the backbone receives ``(channels, length)`` samples, else
        ``"tabular"``. ``"sequence"`` with 1-D samples treats each row as one
        channel (a spectrum fed to an MLP).
    standardize_X : bool or "global", default=True
        Standardise each input feature (``"global"``: centre each feature and
        divide all by one scale, which keeps a spectrum's shape) with the
        statistics of the rows passed to ``fit``.
    max_epochs : int, default=100
        Passes over the rows.
    batch_size : int >= 2, default=128
        Rows per optimizer step (the corruptions and the contrastive loss
        draw on the other rows of the batch).
    lr : float, default=1e-3
        Learning rate.
    weight_decay : float, default=0.0
        Weight decay of the optimizer.
    optimizer : {"adamw", "adam", "sgd"} or torch.optim.Optimizer class, \
default="adamw"
        The optimizer.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, batches and corruptions: the same value on the
        same data and device gives the same backbone.
    device : str or torch.device, default="cpu"
        Where training runs (``"cpu"``, ``"cuda"``, ``"cuda:1"``, ``"auto"``);
        ``backbone_`` is moved to the CPU afterwards, where ``transform``
        runs.
    verbose : int, default=0
        0 silent; 1 one progress bar over the epochs (plain lines where
        standard error is not a terminal); 2 skorch's per-epoch table.

    Attributes
    ----------
    backbone_ : torch.nn.Module
        The trained backbone, on the CPU, in eval mode: maps standardised
        inputs of shape ``(n, *input_shape_)`` to features.
    n_features_in_ : int
        Number of features of ``X`` (for 2-D ``X``).
    feature_names_in_ : ndarray of str
        Names of the features of a DataFrame ``X``.
    n_features_out_ : int
        Width of the features ``transform`` returns.
    sample_shape_ : tuple
        Per-sample shape of ``X``.
    input_shape_ : tuple
        Per-sample shape the backbone receives.
    input_kind_ : str
        ``"tabular"`` or ``"sequence"``.
    mask_ratio_ : float
        The mask ratio used.
    input_mean_, input_scale_ : ndarray or None
        The input standardisation (None: none).
    history_ : skorch History
        Per-epoch records (``train_loss``: the objective's mean).
    loss_curve_ : list of float
        The objective's mean per epoch.

    See Also
    --------
    sktransfer.TransferRegressor : fine-tune the pre-trained backbone.
    sktransfer.backbones.load_spec : rebuild a saved backbone by name.

    Examples
    --------
    Pre-train on the unlabelled rows of both domains, then fine-tune on ten
    target labels (the two-step workflow):

    >>> import numpy as np
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> from sktransfer.pretraining import SelfSupervisedPretrainer
    >>> Xs, ys, Xt, yt = make_domain_shift(n_source=200, n_target=60,
    ...                                    random_state=0)
    >>> pre = SelfSupervisedPretrainer(max_epochs=5, random_state=0)
    >>> pre = pre.fit(np.vstack([Xs, Xt]))
    >>> pre.transform(Xt[:3]).shape
    (3, 128)
    >>> model = TransferRegressor(pre, max_epochs=20, random_state=0)
    >>> model = model.fit(Xt[:10], yt[:10])
    >>> model.predict(Xt[10:12]).shape
    (2,)
    """

    _parameter_constraints: dict = {
        "backbone": [str, torch.nn.Module],
        "backbone_params": [dict, None],
        "input_shape": [tuple, None],
        "objective": [StrOptions(set(OBJECTIVES))],
        "mask_ratio": [Interval(Real, 0, 1, closed="neither"), StrOptions({"auto"})],
        "mask_estimation": ["boolean"],
        "corruption": [StrOptions({"marginal", "zeros"})],
        "temperature": [Interval(Real, 0, None, closed="neither")],
        "input_kind": [StrOptions({"auto", "tabular", "sequence"})],
        "standardize_X": ["boolean", StrOptions({"global"})],
        "max_epochs": [Interval(Integral, 1, None, closed="left")],
        "batch_size": [Interval(Integral, 2, None, closed="left")],
        "lr": [Interval(Real, 0, None, closed="neither")],
        "weight_decay": [Interval(Real, 0, None, closed="left")],
        "optimizer": [StrOptions(set(OPTIMIZERS)), type],
        "random_state": ["random_state"],
        "device": [str, torch.device],
        "verbose": ["verbose"],
    }

    def __init__(
        self,
        backbone="mlp",
        *,
        backbone_params=None,
        input_shape=None,
        objective="masked",
        mask_ratio="auto",
        mask_estimation=False,
        corruption="marginal",
        temperature=1.0,
        input_kind="auto",
        standardize_X=True,
        max_epochs=100,
        batch_size=128,
        lr=1e-3,
        weight_decay=0.0,
        optimizer="adamw",
        random_state=None,
        device="cpu",
        verbose=0,
    ):
        self.backbone = backbone
        self.backbone_params = backbone_params
        self.input_shape = input_shape
        self.objective = objective
        self.mask_ratio = mask_ratio
        self.mask_estimation = mask_estimation
        self.corruption = corruption
        self.temperature = temperature
        self.input_kind = input_kind
        self.standardize_X = standardize_X
        self.max_epochs = max_epochs
        self.batch_size = batch_size
        self.lr = lr
        self.weight_decay = weight_decay
        self.optimizer = optimizer
        self.random_state = random_state
        self.device = device
        self.verbose = verbose

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = False
        tags.target_tags.required = False
        # features are computed in float32, whatever dtype comes in
        tags.transformer_tags.preserves_dtype = ["float32"]
        return tags

    def __sklearn_is_fitted__(self):
        return hasattr(self, "backbone_")

    @property
    def _n_features_out(self):
        """The width of the features (scikit-learn's feature-names mixin)."""
        return self.n_features_out_

    # ------------------------------------------------------------------ fit
    def _check_params(self):
        """Cross-parameter checks the declarative constraints cannot express."""
        check_optimizer(self.optimizer)
        check_input_shape(self.input_shape)
        if self.backbone_params is not None and not isinstance(self.backbone, str):
            raise ValueError(
                "backbone_params only applies to registry backbones (a str "
                f"backbone); got backbone of type {type(self.backbone).__name__}. "
                "Set backbone_params=None."
            )
        if self.mask_estimation and self.objective != "masked":
            warn(
                f"mask_estimation=True has no effect with objective="
                f"{self.objective!r}; it adds VIME's mask-prediction loss to "
                "objective='masked'."
            )

    def _input_kind(self, shapes):
        if self.input_kind != "auto":
            return self.input_kind
        return "sequence" if len(shapes.input) >= 2 else "tabular"

    @staticmethod
    def _view(shapes, kind):
        """The shape corruptions act on: flat rows, or (channels, length)."""
        width = int(np.prod(shapes.input))
        if kind == "tabular":
            return (width,)
        if len(shapes.input) == 1:
            return (1, width)
        return (shapes.input[0], width // shapes.input[0])

    def _make_backbone(self, shapes):
        """The backbone to train and the width of its features."""
        if isinstance(self.backbone, torch.nn.Module):
            backbone = copy.deepcopy(self.backbone).cpu()
        else:
            backbone = call_factory(
                self.backbone, shapes.input, dict(self.backbone_params or {})
            )
        n_features = dry_run(backbone, shapes.input, "backbone")[1:].numel()
        return backbone, int(n_features)

    def _settings(self):
        ratio = self.mask_ratio
        if ratio == "auto":
            ratio = AUTO_MASK_RATIO[self.objective]
        return {
            "objective": self.objective,
            "mask_ratio": float(ratio),
            "mask_estimation": bool(self.mask_estimation),
            "corruption": self.corruption,
            "temperature": float(self.temperature),
        }

    def _net(self, module, seeds, device):
        optimizer = self.optimizer
        if isinstance(optimizer, str):
            optimizer = OPTIMIZERS[optimizer]
        return _PretrainNet(
            module=module,
            criterion=torch.nn.MSELoss,  # unused: the module returns the loss
            optimizer=optimizer,
            optimizer__weight_decay=float(self.weight_decay),
            lr=self.lr,
            max_epochs=self.max_epochs,
            batch_size=self.batch_size,
            train_split=None,
            callbacks=[("divergence_guard", DivergenceGuard())],
            device=device,
            verbose=self.verbose,
            shuffle_seed=seeds.shuffle,
        )

    def _validate_X(self, X, reset):
        with named_errors("X"):
            return validate_data(
                self,
                X,
                reset=reset,
                dtype=[np.float32, np.float64],
                allow_nd=True,
                ensure_min_samples=2 if reset else 1,
            )

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y=None):
        """Pre-train the backbone on the rows of ``X`` (no labels).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
``(n_samples, *input_shape)``
            Unlabelled rows: of the source, the target or (usually best) both.
        y : None
            Ignored; accepted for pipelines.

        Returns
        -------
        self : SelfSupervisedPretrainer
            The fitted pre-trainer.
        """
        saved = dict(self.__dict__)
        try:
            return self._fit(X)
        except BaseException:
            self.__dict__.clear()
            self.__dict__.update(saved)
            raise

    def _fit(self, X):
        self._check_params()
        X = self._validate_X(X, reset=True)
        shapes = resolve_shapes(X, self.input_shape)
        kind = self._input_kind(shapes)
        settings = self._settings()
        mean = scale = None
        if self.standardize_X is not False:
            mode = "global" if self.standardize_X == "global" else "per_feature"
            mean, scale = _input_stats(X, None, mode)
        X_train = np.concatenate(
            [
                scale_inputs(X[i : i + _CHUNK], mean, scale)
                for i in range(0, len(X), _CHUNK)
            ]
        )
        seeds = Seeds.from_random_state(self.random_state)
        device = resolve_device(self.device)
        with seeded_torch(seeds.init, device):
            backbone, n_features = self._make_backbone(shapes)
            view = self._view(shapes, kind)
            module = _PretrainModule(backbone, n_features, shapes.input, view, settings)
            net = self._net(module.to(device), seeds, device)
            x = torch.from_numpy(X_train).to(device)
            net.fit(TensorData(x, x.new_zeros((len(x), 0))), None)
        self.backbone_ = net.module_.backbone.cpu().eval()
        self.n_features_out_ = n_features
        self.sample_shape_ = shapes.sample
        self.input_shape_ = shapes.input
        self.input_kind_ = kind
        self.mask_ratio_ = settings["mask_ratio"]
        self.input_mean_, self.input_scale_ = mean, scale
        self.history_ = net.history
        self.loss_curve_ = [float(row["train_loss"]) for row in net.history]
        return self

    # ------------------------------------------------------------- transform
    def transform(self, X):
        """The learned features of ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or \
``(n_samples, *input_shape)``
            Inputs with the features (or per-sample shape) seen in ``fit``.

        Returns
        -------
        features : ndarray of shape (n_samples, ``n_features_out_``), float32
            The backbone's features of the standardised inputs.
        """
        check_is_fitted(self)
        X = self._validate_X(X, reset=False)
        if X.shape[1:] != self.sample_shape_:
            raise ValueError(
                f"X has samples of shape {X.shape[1:]}, but this "
                f"SelfSupervisedPretrainer was fitted on samples of shape "
                f"{self.sample_shape_}."
            )
        backbone = self.backbone_.eval()
        parts = []
        with torch.inference_mode():
            for start in range(0, len(X), _CHUNK):
                xb = scale_inputs(
                    X[start : start + _CHUNK], self.input_mean_, self.input_scale_
                )
                xb = torch.from_numpy(xb).reshape(len(xb), *self.input_shape_)
                parts.append(backbone(xb).flatten(1).numpy())
        return np.concatenate(parts) if len(parts) > 1 else parts[0]

    # ------------------------------------------------------------ save, load
    def _spec(self):
        name = self.backbone if isinstance(self.backbone, str) else None
        mean = None if self.input_mean_ is None else self.input_mean_.tolist()
        scale = None if self.input_scale_ is None else self.input_scale_.tolist()
        return {
            "backbone": name,
            "module_class": type(self.backbone_).__name__,
            "backbone_params": self.backbone_params if name else None,
            "input_shape": list(self.input_shape_),
            "sample_shape": list(self.sample_shape_),
            "n_features_in": int(self.n_features_in_),
            "n_features_out": int(self.n_features_out_),
            "input_mean": mean,
            "input_scale": scale,
            "pretrainer": {
                k: v
                for k, v in self.get_params(deep=False).items()
                if k not in ("backbone", "backbone_params", "input_shape")
                and isinstance(v, str | int | float | bool | type(None))
            },
        }

    def save(self, path):
        """Save the backbone without pickle: weights and a JSON spec.

        Writes ``backbone.safetensors`` (the backbone's ``state_dict``, keys
        as in the module, without prefix) and ``backbone.json`` (registry
        name, ``backbone_params``, ``input_shape``, feature widths, the input
        statistics and the pre-training settings) into the directory
        ``path``. Load them with :meth:`load`, or build an estimator with
        :func:`sktransfer.backbones.load_spec`. For a user module (not a
        registry name) the JSON records its class name only: rebuild the
        module and pass ``weights=`` the weights file.

        Parameters
        ----------
        path : str or path-like
            A directory, created if missing.

        Returns
        -------
        spec_path : str
            The path of ``backbone.json``.
        """
        check_is_fitted(self)
        return write_backbone(path, self.backbone_, self._spec())

    @classmethod
    def load(cls, path, backbone=None):
        """A fitted pre-trainer from a directory written by :meth:`save`.

        Nothing is unpickled: the registry backbone named in the JSON spec is
        built and the safetensors weights are loaded into it (strictly).
        Its ``transform`` gives the features the saved one gave.

        Parameters
        ----------
        path : str or path-like
            The directory, or its ``backbone.json``.
        backbone : torch.nn.Module or None, default=None
            For a spec saved from a user module: a module of the same
            architecture to load the weights into (deep-copied).

        Returns
        -------
        pretrainer : SelfSupervisedPretrainer
            Fitted; its parameters are the saved ones.
        """
        spec, weights = read_spec(path)
        name = spec.get("backbone")
        if name is None and not isinstance(backbone, torch.nn.Module):
            raise ValueError(
                f"The backbone saved at {os.fspath(path)!r} was a user module "
                f"({spec.get('module_class')}); pass a module of the same "
                "architecture as backbone= to load its weights into."
            )
        params = spec.get("backbone_params")
        est = cls(
            backbone if name is None else name,
            backbone_params=None if params is None else _as_tuples(params),
            input_shape=tuple(spec["input_shape"]),
            **spec.get("pretrainer", {}),
        )
        sample = tuple(spec["sample_shape"])
        shapes = resolve_shapes(np.zeros((1, *sample)), est.input_shape)
        module, n_features = est._make_backbone(shapes)
        load_weights(module, weights)
        est.backbone_ = module.eval()
        est.n_features_out_ = n_features
        est.sample_shape_, est.input_shape_ = sample, shapes.input
        est.n_features_in_ = int(sample[0])
        est.input_kind_ = est._input_kind(shapes)
        est.mask_ratio_ = est._settings()["mask_ratio"]
        est.input_mean_ = _array(spec.get("input_mean"))
        est.input_scale_ = _array(spec.get("input_scale"))
        est.history_, est.loss_curve_ = None, []
        return est


def _array(value):
    return None if value is None else np.asarray(value, dtype=np.float64)
