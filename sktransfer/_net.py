"""The skorch net the estimators build inside ``fit`` (kept as ``net_``).

It overrides skorch hooks only (``get_iterator``, ``infer``, ``get_loss``,
``initialize_optimizer``, ``get_default_callbacks``, ``_set_training``); the
training loop is skorch's own.
"""

import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring, PrintLog, ProgressBar

from sktransfer.data import BalancedIterator, BatchIterator, TensorData
from sktransfer.finetuning import l2sp_penalty


class ValidFraction:
    """skorch ``train_split``: hold out a fraction of the labelled rows.

    Splits a :class:`~sktransfer.data.TensorData` into index views (no copy).
    """

    def __init__(self, fraction, seed):
        self.fraction = fraction
        self.seed = seed

    def __call__(self, dataset, y=None, **fit_params):
        from sktransfer.data import validation_split

        gen = torch.Generator().manual_seed(self.seed)
        eligible = None
        if dataset.weight is not None:
            eligible = (dataset.weight[dataset.row_indices()] > 0).cpu().numpy()
        return validation_split(dataset, self.fraction, gen, eligible)


class TransferNet(NeuralNet):
    """skorch ``NeuralNet`` specialised for in-memory regression transfer.

    Extra parameters
    ----------------
    param_groups : list of dict
        Optimizer parameter groups (from :mod:`sktransfer.finetuning`).
    generator : torch.Generator
        Drives batch shuffling.
    balanced : bool
        Use source/target balanced batches for training.
    anchors, l2sp :
        L2-SP anchors ``[(param, pretrained value)]`` and strength.
    adaptation : callable or None
        ``adaptation(features_source, features_target, module) -> loss``.
    da_weight : float
        Weight of the adaptation loss (times ``da_scale_``, set by a schedule).
    """

    def __init__(
        self,
        *args,
        param_groups=None,
        generator=None,
        balanced=False,
        anchors=(),
        l2sp=0.0,
        adaptation=None,
        da_weight=0.0,
        precision="fp32",
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.precision = precision
        self.param_groups = param_groups
        self.generator = generator
        self.balanced = balanced
        self.anchors = anchors
        self.l2sp = l2sp
        self.adaptation = adaptation
        self.da_weight = da_weight

    # --- skorch hooks -------------------------------------------------------
    def get_default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        if self.verbose:
            callbacks.append(("progress_bar", ProgressBar()))
            callbacks.append(("print_log", PrintLog()))
        return callbacks

    def initialize(self):
        self.frozen_modules_ = []
        if self.precision == "fp16":
            self.grad_scaler_ = torch.amp.GradScaler(torch.device(self.device).type)
        self.da_scale_ = 1.0
        self.loss_terms_ = None
        return super().initialize()

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        groups = self.param_groups
        if groups is None:
            groups = [{"params": list(self.module_.parameters())}]
        kwargs.setdefault("lr", self.lr)
        self.optimizer_ = self.optimizer(groups, **kwargs)
        return self

    def get_iterator(self, dataset, training=False):
        if not isinstance(dataset, TensorData):
            return super().get_iterator(dataset, training=training)
        if training and self.balanced:
            return BalancedIterator(dataset, self.batch_size, self.generator)
        return BatchIterator(
            dataset, self.batch_size, shuffle=training, generator=self.generator
        )

    def infer(self, x, **fit_params):
        with self._autocast():
            if self.adaptation is not None:
                return self.module_.forward_with_features(x)
            return self.module_(x)

    def _autocast(self):
        from sktransfer._base import _autocast

        return _autocast(self.device, self.precision)

    def train_step_single(self, batch, **fit_params):
        if self.precision != "fp16":
            return super().train_step_single(batch, **fit_params)
        # fp16: scale the loss so small gradients survive; unscaled in train_step
        self._set_training(True)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        return {"loss": loss, "y_pred": y_pred}

    def train_step(self, batch, **fit_params):
        if self.precision != "fp16":
            return super().train_step(batch, **fit_params)
        self._zero_grad_optimizer()
        step = self.train_step_single(batch, **fit_params)
        self.grad_scaler_.step(self.optimizer_)
        self.grad_scaler_.update()
        return step

    def _set_training(self, training=True):
        self.module_.train(training)
        if training:
            for module in self.frozen_modules_:
                module.eval()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        y, w, n_source = y_true
        features = None
        if isinstance(y_pred, tuple):
            y_pred, features = y_pred
        if y_pred.dtype != torch.float32:  # mixed precision: losses in float32
            y_pred = y_pred.float()
            features = None if features is None else features.float()
        err = (y_pred - y).pow(2)
        err = err.mean(dim=1) if err.shape[1] > 1 else err.reshape(-1)
        if w is None:
            task = err.mean()
        else:
            task = (err * w).sum() / w.sum().clamp_min(1e-12)
        if not training:
            return task
        loss = task
        terms = None
        if self.l2sp and self.anchors:
            penalty = 0.5 * self.l2sp * l2sp_penalty(self.anchors)
            loss = loss + penalty
            terms = {"task_loss": task, "l2sp_penalty": penalty}
        if (
            self.adaptation is not None
            and n_source is not None
            and 0 < n_source < features.shape[0]
        ):
            da = self.adaptation(features[:n_source], features[n_source:], self.module_)
            loss = loss + (self.da_weight * self.da_scale_) * da
            terms = terms or {"task_loss": task}
            terms["da_loss"] = da
        if terms is not None and self.loss_terms_ is not None:
            # keep detached tensors; averaged once per epoch (no per-batch sync)
            for name, value in terms.items():
                self.loss_terms_.setdefault(name, []).append(value.detach())
        return loss
