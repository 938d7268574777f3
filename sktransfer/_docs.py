"""Parameter descriptions shared by the estimators, written once.

A docstring line holding only ``%(name)s`` is replaced by the entry ``name``,
indented like that line (see :func:`fill_doc`); ``%(model_parameters)s`` and
``%(training_parameters)s`` stand for the shared groups.
"""

import re
import textwrap

PARAMETERS = {
    "backbone": """\
backbone : str, torch.nn.Module or fitted estimator, default="mlp"
    A registry name (``"linear"``, ``"mlp"``, ``"cnn1d"``, ``"gru"``, or one
    added with :func:`~sktransfer.backbones.register_backbone`); a module
    holding pretrained weights that maps inputs to features (deep-copied,
    never changed); or a fitted :class:`~sktransfer.TransferRegressor` /
    :class:`~sktransfer.DomainAdaptRegressor` (also inside a
    ``sklearn.frozen.FrozenEstimator``), whose backbone, input scaling and
    ``input_shape`` are reused -- and, when the number of outputs matches and
    ``head="auto"``, its head and target scaling; or a fitted
    :class:`~sktransfer.SelfSupervisedPretrainer`, whose pre-trained backbone,
    input scaling and ``input_shape`` are reused under a new head. The
    feature width is found by a dry forward pass.""",
    "backbone_params": """\
backbone_params : dict or None, default=None
    Arguments of a registry backbone, e.g. ``{"hidden_sizes": (64, 64)}`` for
    ``"mlp"``; ``{"channels": (16, 32), "kernel_size": 7, "positions": 256,
    "dense": 128}`` (the defaults) for ``"cnn1d"``, whose convolution blocks
    feed a readout that keeps where along the sequence a feature is
    (``pooling="positions"``; ``"flatten"``; or ``"global"``, the
    position-blind average of sktransfer 0.1.0, with ``kernel_size=5, pool=2,
    batch_norm=True, dense=None, shortcut=False``); its ``pool``,
    ``batch_norm`` and ``shortcut`` default to ``"auto"``: pooling and batch
    norm for sequences of 32 or more positions, neither but a shortcut from
    the raw input to the dense layer for shorter ones (sensor windows);
    ``{"hidden_size": 32}`` for ``"gru"``.""",
    "weights": """\
weights : str, path-like, mapping or None, default=None
    Pretrained backbone weights: a ``.safetensors`` file, a
    ``torch.save(state_dict)`` file (read with ``weights_only=True``) or a
    state dict. Keys must match; mismatches are reported by name.""",
    "head": """\
head : {"auto", "linear", "mlp", "gaussian"} or torch.nn.Module, \
default="auto"
    ``"auto"`` reuses a fitted estimator's head when the number of outputs
    matches (whatever its kind: a Gaussian source head stays Gaussian), else
    builds a new linear head. ``"linear"``, ``"mlp"`` and ``"gaussian"`` build
    new heads. ``"gaussian"`` (deep ensembles, Lakshminarayanan et al.,
    NeurIPS 2017) is a linear layer to a mean and a variance per output
    (``softplus + 1e-6``), trained by the Gaussian negative log-likelihood on
    the scaled targets with the same row weights as the squared error, by
    gradient only (``solver="closed_form"`` is refused); ``predict(X)``
    returns the mean and ``predict(X, return_std=True)`` the mean and the
    standard deviation, in original units. A module maps features to outputs
    and is deep-copied (one with ``predicts_variance = True`` returns the
    means, then the variances, like
    :class:`~sktransfer.heads.GaussianHead`).""",
    "input_shape": """\
input_shape : tuple of int or None, default=None
    Per-sample shape the backbone receives, such as ``(channels, length)``:
    2-D rows are reshaped to it before the backbone, so sequence and spectrum
    models live in 2-D pipelines. 3-D ``X`` is accepted as it is.""",
    "standardize_X": """\
standardize_X : bool, "global" or "auto", default="auto"
    Standardise each input feature with training statistics inside the
    network. ``"global"`` centres each feature but divides all of them by one
    scale (the root mean square of the per-feature standard deviations), which
    keeps the relative sizes of the features -- the shape of a spectrum.
    ``"auto"``: per feature for registry backbones, off for a user module,
    inherited from a fitted estimator or pre-trainer used as backbone.""",
    "max_epochs": """\
max_epochs : int, default=100
    Passes over the training rows (see each estimator for what one pass
    covers).""",
    "batch_size": """\
batch_size : int, default=64
    Rows per optimizer step.""",
    "lr": """\
lr : float, default=1e-3
    Learning rate of the optimizer.""",
    "weight_decay": """\
weight_decay : float or "auto", default="auto"
    Weight decay of the optimizer (for the closed-form solver, an L2 penalty
    ``weight_decay / 2 * ||theta||^2``). ``"auto"``: for the closed-form
    solver and a new head, chosen by exact leave-one-out cross-validation
    over a grid from 1e-6 to 1e3 (one eigendecomposition serves every value,
    as in scikit-learn's ``RidgeCV``; sample weights count as repeated rows;
    generalised cross-validation beyond 2**24 row x parameter values); a
    pretrained head is left unpenalised (the exact fit nearest to it); the
    gradient loop uses no weight decay. The value used is
    ``weight_decay_``.""",
    "optimizer": """\
optimizer : {"adamw", "adam", "sgd"} or torch.optim.Optimizer class, \
default="adamw"
    The optimizer.""",
    "grad_clip": """\
grad_clip : float or None, default=None
    Clip the norm of all gradients to this value at every step (skorch's
    ``GradientNormClipping``); a remedy for training that diverges.""",
    "solver": """\
solver : {"auto", "gradient", "closed_form"}, default="auto"
    ``"gradient"`` trains with the optimizer for ``max_epochs``.
    ``"closed_form"`` solves for the head exactly; it applies when only a
    ``torch.nn.Linear`` head trains and no adaptation loss does:
    ``backbone="linear"`` (a linear model), or a linear probe on a frozen
    backbone. It minimises the objective of the gradient loop -- the
    (weighted) mean squared error on scaled targets plus
    ``l2sp / 2 * ||theta - theta0||^2`` for a pretrained head, else
    ``weight_decay / 2 * ||theta||^2`` -- and, when that has many minimisers,
    returns the one nearest the pretrained head, or the minimum-norm one for
    a new head. ``max_epochs``, ``batch_size``, ``lr``, ``optimizer`` and
    ``precision`` (in training) do not apply. ``"auto"``: closed form for a
    linear model (a backbone without parameters, batch-norm or dropout, with
    at most 4096 features or rows) when ``early_stopping=False``, else
    gradient. With fewer rows than features the n x n (dual) form is solved. A
    linear probe stays on the gradient solver under ``"auto"``: with more
    features than labelled rows its exact unpenalised optimum interpolates
    the rows, so ask for ``"closed_form"`` together with ``l2sp`` or
    ``weight_decay``.""",
    "early_stopping": """\
early_stopping : bool, default=False
    Hold out ``validation_fraction`` of the labelled rows and stop when the
    validation loss has not improved for ``n_iter_no_change`` epochs; the
    best weights are restored.""",
    "validation_fraction": """\
validation_fraction : float, default=0.1
    Share of the labelled rows held out for early stopping.""",
    "n_iter_no_change": """\
n_iter_no_change : int, default=10
    Epochs without improvement before early stopping stops.""",
    "standardize_y": """\
standardize_y : bool, default=True
    Train on standardised targets; predictions come back in original units.""",
    "random_state": """\
random_state : int, RandomState instance or None, default=None
    Seeds initialisation, dropout, shuffling and the validation split: the
    same value, data and device give identical predictions. The global torch
    random state is left as it was.""",
    "device": """\
device : str or torch.device, default="cpu"
    ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"`` (cuda when available).
    The training data are moved to the device once, not per batch.""",
    "precision": """\
precision : {"fp32", "bf16", "fp16"}, default="fp32"
    Mixed precision for training and prediction (``torch.autocast``);
    ``"fp16"`` trains with a gradient scaler. Parameters stay float32.""",
    "verbose": """\
verbose : int, default=0
    0 is silent. 1 shows one progress bar over the epochs (on standard
    error), with the training loss, the validation loss when there is one and
    the adaptation loss when there is one; where standard error is not a
    terminal (a CI log, a file) it writes a plain line about every tenth of
    the epochs instead. 2 or more prints skorch's table, one row per epoch
    with every recorded loss term (on standard output). A closed-form solve
    reports one line at 1 or more.""",
    "clip_inputs": """\
clip_inputs : bool, default=False
    At prediction, clip each (scaled) input feature to the range it had in
    training, so the network never extrapolates beyond it. Inputs more than
    3 standard deviations outside that range raise a warning either way.""",
    "keep_source": """\
keep_source : bool, default=False
    Whether the pickle (or deep copy) of a *fitted* model holds the fitted
    estimator passed as ``backbone``. By default it holds a small
    ``SourceNotSaved`` placeholder instead, so a model fine-tuned in several
    steps does not carry every model before it: predictions are unaffected,
    but fitting the unpickled model again needs the source passed back
    (``set_params(backbone=source)``). An unfitted estimator always keeps
    its source (``fit`` needs it).""",
    "augment": """\
augment : Augmentation, list of Augmentation or None, default=None
    Augmentations of the training batches (:mod:`sktransfer.augmentation`):
    one, or a list applied in order to every training batch -- never to the
    early-stopping validation rows, never in ``predict``. Their random draws
    come from a generator seeded by ``random_state``, apart from the one that
    orders the batches. Row-wise ones (``GaussianJitter``,
    ``BaselineShift``...) transform every row, unlabelled target rows
    included; ``Mixup`` and ``CMixup`` mix labelled rows of one domain side
    (source or target) only, and mix their loss weights (``sample_weight``)
    with the same coefficient. The closed-form solver cannot augment:
    ``solver="auto"`` then trains by gradient, ``solver="closed_form"`` is an
    error. None: no augmentation.""",
    "distributed": """\
distributed : {"ddp"} or None, default=None
    ``"ddp"``: data-parallel training over a ``torch.distributed`` process
    group, one process per GPU (or CPU worker), started for example by
    ``torchrun --nproc_per_node=2 train.py``; the group is initialised from
    ``torchrun``'s environment unless the script already did (NCCL for CUDA,
    gloo for the CPU), and ``device="cuda"`` becomes ``"cuda:<LOCAL_RANK>"``.
    Every process passes the same data to ``fit`` and forms the same batches
    (``batch_size`` is the global batch); each trains on its shard of every
    batch and the gradients are averaged over the processes, so with one
    seed the model equals one process's full-batch training. Scaling
    statistics come from all rows; validation losses (early stopping) are
    averaged over the processes; an adaptation loss (CORAL, MMD...) is
    computed on each process's shard of the source and target rows. The
    fitted model is the same in every process and predicts in each, without
    communication; only rank 0 reports progress. The closed-form solver
    needs no data parallelism: each process solves on all rows and keeps
    rank 0's solution. None: one process.""",
}

FIT_PARAMETERS = {
    "X": """\
X : array-like of shape (n_samples, n_features) or ``(n_samples, *input_shape)``
    Training inputs.""",
    "sample_weight": """\
sample_weight : array-like of shape (n_samples,), default=None
    Non-negative weights of the rows in the squared-error loss and the
    scaling statistics.""",
}

#: the parameters shared by the displays of ``sktransfer.plotting``
PREDICT_PARAMETERS = {
    "return_std": """\
return_std : bool, default=False
    Also return the predicted standard deviation of each target, in original
    units: the square root of the variance a Gaussian head predicts (fit with
    ``head="gaussian"``), as
    :meth:`sklearn.gaussian_process.GaussianProcessRegressor.predict` returns
    it.""",
    "predict_returns": """\
y_pred : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    1-D when the estimator was fitted on a 1-D ``y``; with a Gaussian head,
    the predicted mean.
y_std : ndarray of shape (n_samples,) or (n_samples, n_outputs)
    Predicted standard deviation; only with ``return_std=True``.""",
}

PLOT_PARAMETERS = {
    "ax": """\
ax : matplotlib.axes.Axes, default=None
    Axes to draw on; None makes a new figure.""",
    "scatter_kwargs": """\
**kwargs : dict
    Passed to ``ax.scatter``.""",
    "plot_kwargs": """\
**kwargs : dict
    Passed to every ``ax.plot`` call.""",
    "log_scale": """\
log_scale : bool, default=False
    Draw the losses on a logarithmic scale.""",
    "parity_domain": """\
sample_domain : array-like of int, shape (n_samples,), default=None
    Domain of each row (``>= 0`` source, ``< 0`` target): each gets its own
    colour and metrics.""",
}

FEATURES = """\
features_source : tensor of shape (n_source, d)
    Source features.
features_target : tensor of shape (n_target, d)
    Target features."""

ATTRIBUTES = """\
net_ : skorch.NeuralNet
    The trained net: how it was trained (parameter groups, callbacks,
    history) and the network (``net_.module_``).
history_ : skorch.History
    Per-epoch records (``train_loss``, ``valid_loss``, loss terms, ...).
n_iter_ : int
    Number of epochs run (0 for the closed-form solver).
solver_ : {"gradient", "closed_form"}
    The solver used.
n_features_in_ : int
    Number of features of ``X`` (per-sample values for 3-D ``X``).
feature_names_in_ : ndarray of str
    Only when ``X`` had string column names.
sample_shape_ : tuple of int
    Per-sample shape of ``X`` as passed to ``fit``.
input_shape_ : tuple of int
    Per-sample shape the backbone receives.
n_backbone_features_ : int
    Width of the backbone's features (the head's input).
n_outputs_ : int
    Number of targets.
input_mean_, input_scale_ : ndarray or None
    Input scaling applied inside the network at prediction (None: none).
y_mean_, y_scale_ : ndarray of shape (n_outputs,)
    Target scaling undone at prediction.
device_ : str
    The device the network lives on.
input_range_ : tuple of ndarray
    Per-feature minimum and maximum of the scaled training inputs (what
    ``clip_inputs`` clips to, and what the out-of-range warning measures).
weight_decay_ : float
    The weight decay used (the one ``"auto"`` chose for the closed form)."""

#: the model and training parameters both estimators share, in signature order
MODEL_PARAMETERS = (
    "backbone",
    "backbone_params",
    "weights",
    "head",
    "input_shape",
    "standardize_X",
)
TRAINING_PARAMETERS = tuple(p for p in PARAMETERS if p not in MODEL_PARAMETERS)

_PLACEHOLDER = re.compile(r"^(?P<indent>\s*)%\((?P<name>\w+)\)s\s*$")
_ALL = {
    **PARAMETERS,
    **FIT_PARAMETERS,
    **PREDICT_PARAMETERS,
    **PLOT_PARAMETERS,
    "attributes": ATTRIBUTES,
    "features": FEATURES,
    "model_parameters": "\n".join(PARAMETERS[p] for p in MODEL_PARAMETERS),
    "training_parameters": "\n".join(PARAMETERS[p] for p in TRAINING_PARAMETERS),
}


def fill_doc(obj):
    """Replace each ``%(name)s`` line of ``obj.__doc__`` with the shared entry."""
    lines = []
    for line in (obj.__doc__ or "").splitlines():
        match = _PLACEHOLDER.match(line)
        if match is None:
            lines.append(line)
            continue
        text = _ALL[match["name"]]
        lines.extend(textwrap.indent(text, match["indent"]).splitlines())
    obj.__doc__ = "\n".join(lines)
    return obj
