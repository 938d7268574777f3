"""TransferRegressor: fine-tune a pretrained backbone on a new regression task."""

from numbers import Real

from sklearn.base import _fit_context
from sklearn.utils._param_validation import Interval, StrOptions

from sktransfer._base import BaseTransferEstimator
from sktransfer.finetuning import FINETUNE_OPTIONS


class TransferRegressor(BaseTransferEstimator):
    """Fine-tune a pretrained PyTorch backbone for regression, scikit-learn style.

    The estimator builds a skorch net inside ``fit`` (kept as ``net_``): input
    standardisation -> ``backbone`` -> ``head``. Train it from scratch on the
    source data with a registry backbone, then transfer it to the target task
    by passing the fitted estimator as ``backbone`` of a new one.

    Parameters
    ----------
    backbone : str, torch.nn.Module or fitted estimator, default="mlp"
        A registry name (``"linear"``, ``"mlp"``, ``"cnn1d"``, ``"gru"``, or
        one added with :func:`~sktransfer.backbones.register_backbone`); a module
        holding pretrained weights that maps inputs to features (deep-copied,
        never changed); or a fitted :class:`TransferRegressor` /
        :class:`DomainAdaptRegressor`, whose backbone, input scaling and -- when
        the number of outputs matches and ``head="auto"`` -- head and target
        scaling are reused. The feature width is found by a dry forward pass.
    backbone_params : dict or None, default=None
        Arguments of a registry backbone, e.g. ``{"hidden_sizes": (64, 64)}``
        for ``"mlp"``, ``{"channels": (16, 32), "kernel_size": 5}`` for
        ``"cnn1d"``, ``{"hidden_size": 32}`` for ``"gru"``.
    weights : str, path-like, mapping or None, default=None
        Pretrained backbone weights: a ``.safetensors`` file, a
        ``torch.save(state_dict)`` file (read with ``weights_only=True``) or a
        state dict. Keys must match; mismatches are reported by name.
    head : {"auto", "linear", "mlp"} or torch.nn.Module, default="auto"
        ``"auto"`` reuses a fitted estimator's head when the number of outputs
        matches, else builds a new linear head. A module maps features to
        outputs and is deep-copied.
    input_shape : tuple of int or None, default=None
        Per-sample shape such as ``(channels, length)``: 2-D rows are reshaped
        to it before the backbone, so sequence models live in 2-D pipelines.
        3-D ``X`` is accepted as it is.
    standardize_X : bool, "global" or "auto", default="auto"
        Standardise each input feature with training statistics inside the
        network. ``"global"`` centres each feature but divides all of them by
        one scale (the root mean square of the per-feature standard
        deviations), which keeps the relative sizes of the features -- the
        shape of a spectrum, where per-feature scaling blows up the noisy,
        nearly constant wavelengths. ``"auto"``: per feature for registry
        backbones, off for a user module, inherited from a fitted estimator
        used as backbone.
    finetune : {"full", "linear_probe", "lp_ft", "gradual"}, default="full"
        Which parameters train when (see :mod:`sktransfer.finetuning`).
    backbone_lr : float, default=0.1
        Learning-rate multiplier for *pretrained* backbone parameters
        (discriminative learning rates). A backbone trained from scratch uses
        ``lr``.
    l2sp : float, default=0.0
        Strength of the L2-SP penalty ``l2sp / 2 * ||w - w0||^2`` pulling
        pretrained parameters (backbone, and a reused head) toward their
        pretrained values. 0 disables it.
    max_epochs : int, default=100
    batch_size : int, default=64
    lr : float, default=1e-3
    weight_decay : float, default=0.0
    optimizer : {"adamw", "adam", "sgd"} or torch.optim.Optimizer class, default="adamw"
    solver : {"auto", "gradient", "closed_form"}, default="auto"
        ``"gradient"`` trains with the optimizer for ``max_epochs``.
        ``"closed_form"`` solves for the head exactly; it applies when only a
        ``torch.nn.Linear`` head trains: ``backbone="linear"`` (a linear model,
        e.g. ridge regression toward a source model with ``l2sp``), or
        ``finetune="linear_probe"`` on a frozen backbone. It minimises the same
        objective as the gradient loop -- the (weighted) mean squared error on
        standardised targets plus ``l2sp / 2 * ||theta - theta0||^2`` for a
        pretrained head, else ``weight_decay / 2 * ||theta||^2`` -- and, when
        that has many minimisers (fewer rows than features, no penalty),
        returns the one nearest the pretrained head (the limit of gradient
        descent from it), or the minimum-norm one for a new head. ``max_epochs``,
        ``batch_size``, ``lr``, ``optimizer``, ``early_stopping`` and
        ``precision`` (in training) do not apply. ``"auto"``: closed form for
        a linear model (a backbone without parameters, batch-norm or dropout,
        and at most 4096 features) when ``early_stopping=False``, else
        gradient. A linear probe stays on the gradient solver under
        ``"auto"``: with more features than labelled rows its exact
        unpenalised optimum interpolates the rows (the demo's 40-row probe:
        RMSE 82 against 6.4 for 100 epochs of AdamW), so ask for
        ``"closed_form"`` together with ``l2sp`` or ``weight_decay``.
    early_stopping : bool, default=False
        Hold out ``validation_fraction`` of the rows and stop when the
        validation loss has not improved for ``n_iter_no_change`` epochs; the
        best weights are restored.
    validation_fraction : float, default=0.1
    n_iter_no_change : int, default=10
    standardize_y : bool, default=True
        Train on standardised targets; predictions come back in original units.
    random_state : int, RandomState instance or None, default=None
        Seeds initialisation, dropout and shuffling: the same value, data and
        device give identical predictions.
    device : str or torch.device, default="cpu"
        ``"cpu"``, ``"cuda"``, ``"cuda:1"`` or ``"auto"``. The training data
        are moved to the device once, not per batch.
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
        Mixed precision for training and prediction (``torch.autocast``);
        ``"fp16"`` trains with a gradient scaler. Parameters stay float32.
    verbose : int, default=0
        0 is silent; 1 shows a progress bar and an epoch table.

    Attributes
    ----------
    net_ : skorch.NeuralNet
        The trained net; ``net_.module_`` is the network.
    history_ : skorch.History
        Per-epoch records (``train_loss``, ``valid_loss``, ...).
    n_iter_ : int
        Number of epochs run (0 for the closed-form solver).
    solver_ : {"gradient", "closed_form"}
        The solver used.
    n_features_in_ : int
    feature_names_in_ : ndarray of str
        Only when ``X`` had string column names.
    n_outputs_ : int
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Target scaling undone at prediction.

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
        "finetune": [StrOptions(set(FINETUNE_OPTIONS))],
        "backbone_lr": [Interval(Real, 0, None, closed="left")],
        "l2sp": [Interval(Real, 0, None, closed="left")],
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
        l2sp=0.0,
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
        self.finetune = finetune
        self.backbone_lr = backbone_lr
        self.l2sp = l2sp

    def _finetune_settings(self):
        return self.finetune, self.backbone_lr, self.l2sp

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X, y, sample_weight=None):
        """Fit (or fine-tune) the network.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features) or (n_samples, *input_shape)
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
        sample_weight : array-like of shape (n_samples,), default=None
            Per-row weights of the squared-error loss.

        Returns
        -------
        self : TransferRegressor
        """
        return self._fit(X, y, sample_weight=sample_weight)
