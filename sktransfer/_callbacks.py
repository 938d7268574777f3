"""Training-time behaviour as skorch callbacks.

Each callback has an explicit signature and keeps its state in the net's
fitted attributes, so the estimators never copy skorch's training loop.
"""

import math

import numpy as np
import torch
from skorch.callbacks import Callback
from skorch.callbacks import EarlyStopping as _SkorchEarlyStopping


class UnfreezeSchedule(Callback):
    """Unfreeze backbone blocks in phases (linear probe, LP-FT, gradual).

    Parameters
    ----------
    phases : list of list of torch.nn.Module
        ``phases[k]`` are the blocks made trainable at the start of phase
        ``k`` (phase 0 usually unfreezes nothing: only the head trains).
        Blocks not yet unfrozen have ``requires_grad=False`` and stay in
        eval mode (their batch-norm statistics do not move).
    epochs_per_phase : int or None
        Length of each phase but the last; None keeps phase 0 for the whole
        fit (a linear probe).
    """

    def __init__(self, phases, epochs_per_phase=None):
        self.phases = phases
        self.epochs_per_phase = epochs_per_phase

    def _apply(self, net, n_active):
        frozen = []
        for k, blocks in enumerate(self.phases):
            for block in blocks:
                trainable = k < n_active
                for p in block.parameters():
                    p.requires_grad_(trainable)
                if not trainable:
                    frozen.append(block)
        net.frozen_modules_ = frozen

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._apply(net, 1)

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if self.epochs_per_phase is None:
            return
        epoch = len(net.history) - 1
        self._apply(net, 1 + epoch // self.epochs_per_phase)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        self._apply(net, len(self.phases))


def dann_ramp(progress: float) -> float:
    """DANN's schedule ``2 / (1 + exp(-10 p)) - 1`` for training progress ``p``."""
    return 2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0


class DAWeightSchedule(Callback):
    """Set ``net.da_scale_`` (multiplier of the adaptation loss) at each epoch.

    Parameters
    ----------
    ramp : {"constant", "dann", "linear"}
        ``constant`` keeps 1; ``dann`` follows :func:`dann_ramp`; ``linear``
        rises from 0 to 1 over the fit.
    max_epochs : int
    """

    def __init__(self, ramp, max_epochs):
        self.ramp = ramp
        self.max_epochs = max_epochs

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        progress = (len(net.history) - 1) / max(self.max_epochs, 1)
        if self.ramp == "dann":
            net.da_scale_ = dann_ramp(progress)
        elif self.ramp == "linear":
            net.da_scale_ = progress
        else:
            net.da_scale_ = 1.0
        net.history.record("da_scale", net.da_scale_)


class LossTermRecorder(Callback):
    """Record each loss term's epoch mean in ``history`` (``train_<term>``).

    The net appends each batch's detached terms to ``net.loss_terms_``; they
    are averaged and read (one device synchronisation) once per epoch.
    """

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        net.loss_terms_ = {}

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        for name, values in net.loss_terms_.items():
            net.history.record(f"train_{name}", float(torch.stack(values).mean()))
        net.loss_terms_ = {}


class SolverLog(Callback):
    """Report a closed-form solve at ``verbose >= 1`` (the epoch table's place).

    Parameters
    ----------
    sink : callable, default=print
        Receives the message, as skorch's ``PrintLog`` does.
    """

    def __init__(self, sink=print):
        self.sink = sink

    def on_train_end(self, net, X=None, y=None, **kwargs):
        report = getattr(net, "closed_form_report_", None)
        if report is not None:
            self.sink(
                f"Solved the linear head in closed form: {report['n_rows']} rows, "
                f"{report['n_features']} features."
            )


class StopTraining(KeyboardInterrupt):
    """Early stopping's end of training; skorch stops on a KeyboardInterrupt,
    so this subclass tells it apart from the user's Ctrl-C."""


class EarlyStopping(_SkorchEarlyStopping):
    """skorch's ``EarlyStopping``, stopping with :class:`StopTraining`."""

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except KeyboardInterrupt as exc:
            if self.misses_ != self.patience:
                raise  # a Ctrl-C, not the end of patience
            raise StopTraining from exc


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss (raised from ``fit``)."""


class DivergenceGuard(Callback):
    """Stop training with :class:`TrainingDivergedError` at the first epoch
    whose training or validation loss is not finite.

    The losses are the epoch means skorch already recorded, so the check
    costs no device synchronisation.
    """

    def on_epoch_end(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        row = net.history[-1]
        for key in ("train_loss", "valid_loss"):
            value = row.get(key)
            if value is not None and not np.isfinite(value):
                what = key.replace("_", " ")
                raise TrainingDivergedError(
                    f"Training diverged at epoch {row['epoch']}: the {what} "
                    f"is {value}. Lower lr (it is {net.lr:g}), keep "
                    "standardize_y=True, lower weight_decay, or set grad_clip (for "
                    "example grad_clip=1.0). The estimator was left as it was."
                )
