"""The skorch net the estimators build inside ``fit`` (kept as ``net_``).

It overrides skorch hooks only (``initialize_module``, ``initialize_optimizer``,
``get_iterator``, ``infer``, ``get_loss``, ``get_default_callbacks``,
``_set_training``, and the fp16 train step); the training loop is skorch's own.
Its parameters are plain data (parameter names, seeds, the adaptation method
object), so ``net_`` describes how it was trained and pickles.
"""

import numpy as np
import torch
from skorch import NeuralNet
from skorch.callbacks import EpochTimer, PassthroughScoring
from skorch.utils import TeeGenerator
from torch.nn import functional as F
from torch.nn.modules.batchnorm import _BatchNorm

from sktransfer._augment import AugmentedBatches, BatchAugmenter
from sktransfer._batches import BalancedIterator, BatchIterator, TensorData
from sktransfer._callbacks import (
    EpochProgress,
    EpochTable,
    SolverLog,
    StopTraining,
)
from sktransfer._closed_form import solve_linear_head
from sktransfer._device import autocast
from sktransfer.exceptions import TrainingDivergedError
from sktransfer.finetuning import l2sp_penalty
from sktransfer.heads import predicts_variance


class TrainingInterrupted(Exception):
    """``KeyboardInterrupt`` during training, carried past skorch (which would
    swallow it and return a half-trained net); ``fit`` re-raises it as a
    ``KeyboardInterrupt`` after restoring the estimator."""

    def __init__(self, epochs_done):
        super().__init__(epochs_done)
        self.epochs_done = epochs_done


class TransferNet(NeuralNet):
    """skorch ``NeuralNet`` specialised for in-memory regression transfer.

    Parameters
    ----------
    *args, **kwargs
        As for ``skorch.NeuralNet``; ``module`` is a ``TransferModule``.
    param_groups : list of dict or None, default=None
        Optimizer parameter groups ``{"params": [names], "lr", "weight_decay"}``
        with names from ``module.named_parameters()``; None: one group.
    shuffle_seed : int, default=0
        Seeds the generator that orders the mini-batches.
    balanced : bool, default=False
        Train on source/target balanced batches.
    anchored : list of str, default=()
        Parameters pulled toward their values at the start of training by
        ``l2sp / 2 * ||w - w0||^2``.
    l2sp : float, default=0.0
    adaptation : AdaptationMethod or None, default=None
        Its loss between source and target features is added, weighted by
        ``da_weight`` times ``da_scale_`` (set by a schedule callback); its
        extra modules become modules of this net (``<name>_``) and train with
        the head's learning rate and weight decay.
    da_weight : float, default=0.0
    precision : {"fp32", "bf16", "fp16"}, default="fp32"
    augment : tuple of Augmentation, default=()
        Applied to every training batch (never to validation batches), in
        order (:mod:`sktransfer.augmentation`).
    augment_seed : int, default=0
        Seeds the generator the augmentations draw from (on the device), kept
        apart from the batch-order generator so that augmenting does not
        change which rows form each batch.
    input_stats : (ndarray, ndarray) or None, default=None
        Mean and scale that standardised the training inputs; ``"raw"``
        augmentations un-standardise the batch with them.
    distributed : Distributed or None, default=None
        The process group of data-parallel training
        (:mod:`sktransfer._distributed`): every process forms the same
        batches, trains on its shard of each, and the gradients (and the
        reported losses) are averaged over the processes.
    """

    def __init__(
        self,
        *args,
        param_groups=None,
        shuffle_seed=0,
        balanced=False,
        anchored=(),
        l2sp=0.0,
        adaptation=None,
        da_weight=0.0,
        precision="fp32",
        augment=(),
        augment_seed=0,
        input_stats=None,
        distributed=None,
        **kwargs,
    ):
        super().__init__(*args, **kwargs)
        self.param_groups = param_groups
        self.shuffle_seed = shuffle_seed
        self.balanced = balanced
        self.anchored = anchored
        self.l2sp = l2sp
        self.adaptation = adaptation
        self.da_weight = da_weight
        self.precision = precision
        self.augment = augment
        self.augment_seed = augment_seed
        self.input_stats = input_stats
        self.distributed = distributed

    # --- initialisation ------------------------------------------------------
    def get_default_callbacks(self):
        callbacks = [
            ("epoch_timer", EpochTimer()),
            ("train_loss", PassthroughScoring(name="train_loss", on_train=True)),
            ("valid_loss", PassthroughScoring(name="valid_loss")),
        ]
        # verbose=1: one bar over the epochs; 2 (or more): skorch's epoch table
        if self.verbose == 1:
            callbacks.append(("progress_bar", EpochProgress()))
        elif self.verbose:
            callbacks.append(("print_log", EpochTable()))
        if self.verbose:
            callbacks.append(("solver_log", SolverLog()))
        return callbacks

    def initialize(self):
        self.frozen_modules_ = []
        self.generator_ = torch.Generator().manual_seed(self.shuffle_seed)
        self.augment_generator_ = torch.Generator(
            device=torch.device(self.device)
        ).manual_seed(self.augment_seed)
        if self.precision == "fp16":
            self.grad_scaler_ = torch.amp.GradScaler(torch.device(self.device).type)
        self.da_scale_ = 1.0
        self.loss_terms_ = None
        self._loss_norm = None
        super().initialize()
        if self.distributed is not None:
            # rank 0's initial weights everywhere (a user's module may have been
            # built unseeded in each process; DANN's discriminator is built here)
            for name in self._modules:
                self.distributed.broadcast_parameters(getattr(self, name + "_"))
        # batch-norm cannot train on a batch of one row: never leave one behind
        self.min_batch_ = 2 if _has_batch_norm(self.module_) else 1
        params = dict(self.module_.named_parameters())
        self.anchors_ = [(params[n], params[n].detach().clone()) for n in self.anchored]
        return self

    def initialize_module(self):
        super().initialize_module()
        if self.adaptation is not None:
            for name, module in self.adaptation.modules(
                self.module_.n_features
            ).items():
                setattr(self, name + "_", module)  # a skorch custom module
        return self

    @property
    def adaptation_modules(self):
        """The adaptation method's modules, by name (as they train)."""
        return {
            name: getattr(self, name + "_")
            for name in self._modules
            if name != "module"
        }

    def initialize_optimizer(self, triggered_directly=None):
        kwargs = self.get_params_for("optimizer")
        params = dict(self.module_.named_parameters())
        if self.param_groups is None:
            groups = [{"params": list(params.values())}]
        else:
            groups = [
                {**g, "params": [params[n] for n in g["params"]]}
                for g in self.param_groups
            ]
        extra = [p for m in self.adaptation_modules.values() for p in m.parameters()]
        if extra:
            head = next(iter(self.module_.head.parameters()), None)
            like = next((g for g in groups if any(p is head for p in g["params"])), {})
            groups.append(
                {"params": extra}
                | {k: like[k] for k in ("lr", "weight_decay") if k in like}
            )
        kwargs.setdefault("lr", self.lr)
        self.optimizer_ = self.optimizer(groups, **kwargs)
        return self

    # --- training ------------------------------------------------------------
    def get_iterator(self, dataset, training=False):
        if not isinstance(dataset, TensorData):
            return super().get_iterator(dataset, training=training)
        # data-parallel: a batch holds at least one row per process (a batch-norm
        # shard two), so no shard is empty; a smaller last batch joins the one
        # before it
        k = 1 if self.distributed is None else self.distributed.world_size
        if training and self.balanced:
            iterator = BalancedIterator(
                dataset, self.batch_size, self.generator_, min_source=k
            )
        else:
            iterator = BatchIterator(
                dataset,
                self.batch_size,
                shuffle=training,
                generator=self.generator_,
                min_batch=k * (self.min_batch_ if training else 1),
            )
        if training and self.augment:
            return AugmentedBatches(iterator, self._augmenter())
        return iterator

    def _augmenter(self):
        """The :class:`~sktransfer._augment.BatchAugmenter` of training batches."""
        stats = None
        if self.input_stats is not None and self.input_stats[0] is not None:
            stats = tuple(
                torch.as_tensor(v, dtype=torch.float64, device=self.device)
                for v in self.input_stats
            )
        return BatchAugmenter(
            self.augment, self.augment_generator_, stats, self.module_.reshape_to
        )

    def fit_loop(self, X, y=None, epochs=None, **fit_params):
        try:
            return super().fit_loop(X, y, epochs=epochs, **fit_params)
        except StopTraining:
            raise  # early stopping: skorch ends the loop as usual
        except KeyboardInterrupt as exc:
            raise TrainingInterrupted(len(self.history)) from exc

    def infer(self, x, **fit_params):
        with autocast(self.device, self.precision):
            if self.adaptation is not None:
                return self.module_.forward_with_features(x)
            return self.module_(x)

    def _local(self, batch):
        """This process's shard of ``batch`` (all of it in one process); the
        shard's loss normaliser is kept for :meth:`get_loss`."""
        if self.distributed is None:
            return batch
        batch, self._loss_norm = self.distributed.shard(batch)
        return batch

    def _learnable(self):
        return [p for _, p in self.get_all_learnable_params()]

    def validation_step(self, batch, **fit_params):
        step = super().validation_step(self._local(batch), **fit_params)
        if self.distributed is not None:
            # every process records the whole batch's loss: early stopping
            # decides alike everywhere
            step["loss"] = self.distributed.mean(step["loss"])
        return step

    def train_step_single(self, batch, **fit_params):
        batch = self._local(batch)
        if self.precision != "fp16":
            step = super().train_step_single(batch, **fit_params)
            if self.distributed is not None:
                step["loss"] = self.distributed.average_gradients(
                    self._learnable(), step["loss"]
                )
            return step
        # fp16: scale the loss so small gradients survive; unscaled in train_step
        self._set_training(True)
        Xi, yi = batch
        y_pred = self.infer(Xi, **fit_params)
        loss = self.get_loss(y_pred, yi, X=Xi, training=True)
        self.grad_scaler_.scale(loss).backward()
        if self.distributed is not None:
            # average the scaled gradients, so every process's scaler finds
            # the same overflow and takes the same step
            loss = self.distributed.average_gradients(self._learnable(), loss)
        self.grad_scaler_.unscale_(self.optimizer_)  # true gradients for clipping
        self.notify(
            "on_grad_computed",
            named_parameters=TeeGenerator(self.get_all_learnable_params()),
            X=Xi,
            y=yi,
        )
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
        for name in self._modules:
            getattr(self, name + "_").train(training)
        if training:
            for module in self.frozen_modules_:
                module.eval()

    def get_loss(self, y_pred, y_true, X=None, training=False):
        """Weighted squared error (or Gaussian negative log-likelihood), plus
        L2-SP and the adaptation loss in training.

        ``y_true`` is a :class:`~sktransfer._batches.Target`.
        """
        y, w, n_source = y_true
        features = None
        if isinstance(y_pred, tuple):
            y_pred, features = y_pred
        if y_pred.dtype != torch.float32:  # mixed precision: losses in float32
            y_pred = y_pred.float()
            features = None if features is None else features.float()
        err = _row_loss(y_pred, y, predicts_variance(self.module_.head))
        if self._loss_norm is not None:
            # a shard: normalised by the whole batch's weight over the processes
            task = (err if w is None else err * w).sum() / self._loss_norm
        elif w is None:
            task = err.mean()
        else:
            task = (err * w).sum() / w.sum().clamp_min(1e-12)
        if not training:
            return task
        loss = task
        terms = None
        if self.l2sp and self.anchors_:
            penalty = 0.5 * self.l2sp * l2sp_penalty(self.anchors_)
            loss = loss + penalty
            terms = {"task_loss": task, "l2sp_penalty": penalty}
        if (
            self.adaptation is not None
            and n_source is not None
            and 0 < n_source < features.shape[0]
        ):
            try:
                da = self.adaptation.loss(
                    features[:n_source], features[n_source:], self.adaptation_modules
                )
            except torch.linalg.LinAlgError as exc:  # SVD/eigh of inf or NaN
                raise TrainingDivergedError(
                    f"Training diverged at epoch {len(self.history)}: the "
                    f"{self.adaptation.name!r} adaptation loss cannot be computed "
                    f"({str(exc).splitlines()[0]}). Lower lr (it is {self.lr:g}), "
                    "keep standardize_X and standardize_y on, use precision='fp32' "
                    "(fp16 overflows beyond 65504), or set grad_clip (for example "
                    "grad_clip=1.0). The estimator was left as it was."
                ) from exc
            loss = loss + (self.da_weight * self.da_scale_) * da
            terms = terms or {"task_loss": task}
            terms["da_loss"] = da
        if terms is not None and self.loss_terms_ is not None:
            # keep detached tensors; averaged once per epoch (no per-batch sync)
            for name, value in terms.items():
                self.loss_terms_.setdefault(name, []).append(value.detach())
        return loss

    def synchronize(self):
        """Data-parallel: make the fitted modules the same on every process
        (rank 0's parameters, the mean of the batch-norm statistics)."""
        if self.distributed is not None:
            self.distributed.synchronize(
                [getattr(self, name + "_") for name in self._modules]
            )
        return self

    def on_train_end(self, net, X=None, y=None, **kwargs):
        # the start values of anchored parameters only serve training, and so
        # does the augmentation generator, which lives on the training device
        # (a CUDA generator in a pickle cannot be rebuilt without CUDA)
        self.anchors_ = []
        self.augment_generator_ = None
        self._loss_norm = None
        return super().on_train_end(net, X=X, y=y, **kwargs)

    # --- the exact solver ------------------------------------------------------
    def fit_closed_form(self, dataset, rows, *, strength, anchored, pretrained):
        """Solve for the linear head instead of running the training loop.

        Callbacks see ``on_train_begin`` and ``on_train_end`` (the verbose
        report among them); the history has no epochs. Arguments as in
        :func:`~sktransfer._closed_form.solve_linear_head`.
        """
        self.initialize()
        self.notify("on_train_begin", X=dataset, y=None)
        self.module_.eval()
        try:
            strength = solve_linear_head(
                self.module_,
                dataset.X,
                dataset.y,
                dataset.weight,
                rows,
                strength=strength,
                anchored=anchored,
                pretrained=pretrained,
                unit=dataset.weight_unit,
            )
        except np.linalg.LinAlgError as exc:
            raise ValueError(
                f"The closed-form solve failed ({exc}); use solver='gradient', a "
                "positive weight_decay or l2sp, or rescale the inputs."
            ) from exc
        head = self.module_.head
        if not all(bool(torch.isfinite(p).all()) for p in head.parameters()):
            raise ValueError(
                "The closed-form solution is not finite; use solver='gradient', a "
                "positive weight_decay or l2sp, or rescale the inputs."
            )
        n_rows = len(dataset) if rows is None else int(rows.numel())
        self.closed_form_report_ = {
            "n_rows": n_rows,
            "n_features": self.module_.n_features,
            "strength": strength,
        }
        self.notify("on_train_end", X=dataset, y=None)
        return self


def _row_loss(y_pred, y, gaussian):
    """The per-row task loss ``(n,)``, averaged over the outputs: the squared
    error, or for a head that predicts ``(mean, variance)`` columns the
    Gaussian negative log-likelihood without its constant,
    ``(log var + (y - mean)^2 / var) / 2`` (Lakshminarayanan et al., 2017)."""
    if gaussian:
        k = y.shape[1]
        err = F.gaussian_nll_loss(
            y_pred[:, :k], y, y_pred[:, k:], full=False, reduction="none"
        )
    else:
        err = (y_pred - y).pow(2)
    return err.mean(dim=1) if err.shape[1] > 1 else err.reshape(-1)


def _has_batch_norm(module):
    return any(isinstance(m, _BatchNorm) for m in module.modules())
