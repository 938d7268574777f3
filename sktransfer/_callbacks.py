"""Training-time behaviour as skorch callbacks.

Each callback has an explicit signature and keeps its state in the net's
fitted attributes, so the estimators never copy skorch's training loop.
"""

import math
import sys
import time

import numpy as np
import torch
import tqdm
from skorch.callbacks import Callback, EarlyStopping, PrintLog
from skorch.utils import Ansi

from sktransfer.exceptions import TrainingDivergedError


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
        ctx = getattr(net, "distributed", None)
        if ctx is not None:
            self._record_over_processes(net, ctx)
        else:
            for name, values in net.loss_terms_.items():
                value = torch.stack(values).mean()
                net.history.record(f"train_{name}", float(value))
        net.loss_terms_ = {}

    #: every term a batch may record, in one order on every process
    TERMS = ("task_loss", "l2sp_penalty", "da_loss")

    def _record_over_processes(self, net, ctx):
        """Data-parallel: each term's mean over every process's batches (one
        all-reduce; a process whose shards lacked target rows has no
        adaptation term, and the names it holds may differ)."""
        terms = net.loss_terms_
        names = [*self.TERMS, *sorted(set(terms) - set(self.TERMS))]
        sums = [
            torch.stack(terms[n]).float().sum().cpu() if n in terms else 0.0
            for n in names
        ]
        counts = [float(len(terms.get(n, ()))) for n in names]
        total = ctx.mean(torch.tensor([*map(float, sums), *counts]))
        for i, name in enumerate(names):
            if total[len(names) + i] > 0:
                value = total[i] / total[len(names) + i]
                net.history.record(f"train_{name}", float(value))


class EpochProgress(Callback):
    """One progress bar over the epochs of a fit (``verbose=1``).

    On a terminal it is a tqdm bar of ``max_epochs`` steps whose postfix shows
    the epoch's training loss, the validation loss when there is one, and
    the adaptation loss and L2-SP penalty when they are recorded; it closes
    where training ends (early stopping ends it short of the total). Where
    the stream is not a terminal (a CI log, a file, a notebook's captured
    output) it writes plain lines instead -- about one every tenth of the
    epochs, and the last -- with no carriage returns or ANSI codes.

    An epoch's row is read at the start of the next epoch (or at the end of
    training), when every callback has recorded its terms in it.

    Parameters
    ----------
    file : file-like or None, default=None
        Where to write; None: ``sys.stderr`` at the start of training.
    """

    #: history key -> label in the postfix / log line
    KEYS = {
        "train_loss": "train_loss",
        "valid_loss": "valid_loss",
        "train_da_loss": "da_loss",
        "train_l2sp_penalty": "l2sp",
    }

    def __init__(self, file=None):
        self.file = file

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self._close()
        self.stream_ = sys.stderr if self.file is None else self.file
        self.total_ = int(net.max_epochs)
        self.every_ = max(1, math.ceil(self.total_ / 10))
        self.done_ = 0
        self.start_ = time.perf_counter()

    def on_epoch_begin(self, net, dataset_train=None, dataset_valid=None, **kwargs):
        if len(net.history) >= 2:
            self._report(net.history[-2])
        elif _isatty(self.stream_):  # the first epoch (a closed form has none)
            self.pbar_ = tqdm.tqdm(
                total=self.total_, file=self.stream_, unit="epoch", dynamic_ncols=True
            )

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if self.done_ < len(net.history):
            self._report(net.history[-1], last=True)
        if self.pbar_ is None and 0 < self.done_ < self.total_:
            self.stream_.write(f"stopped after epoch {self.done_} of {self.total_}\n")
            self.stream_.flush()
        self._close()

    def _report(self, row, last=False):
        self.done_ += 1
        if self.pbar_ is not None:
            self.pbar_.set_postfix(self.postfix(row), refresh=False)
            self.pbar_.update(1)
        elif last or self.done_ % self.every_ == 0:
            terms = "  ".join(f"{k}={v}" for k, v in self.postfix(row).items())
            elapsed = time.perf_counter() - self.start_
            width = len(str(self.total_))
            self.stream_.write(
                f"epoch {self.done_:>{width}}/{self.total_}  {terms}  "
                f"({elapsed:.1f} s)\n"
            )
            self.stream_.flush()

    @classmethod
    def postfix(cls, row):
        """The recorded loss terms of a history row, formatted, by label."""
        return {
            label: f"{row[key]:.4g}"
            for key, label in cls.KEYS.items()
            if row.get(key) is not None
        }

    def _close(self):
        bar = getattr(self, "pbar_", None)
        if bar is not None:
            bar.close()
        self.pbar_ = None

    def __getstate__(self):
        # the stream and the bar serve one fit; a fitted net pickles without them
        state = self.__dict__.copy()
        for key in ("pbar_", "stream_"):
            state.pop(key, None)
        return state


class EpochTable(PrintLog):
    """skorch's per-epoch table (``verbose=2``), without colour codes where
    standard output is not a terminal (a CI log, a file), and with the row of
    the epoch that early stopping ended on (whose ``on_epoch_end`` it cut)."""

    def on_train_begin(self, net, X=None, y=None, **kwargs):
        self.colour_ = _isatty(sys.stdout)
        self.rows_ = 0
        return super().on_train_begin(net, X=X, y=y, **kwargs)

    def on_epoch_end(self, net, **kwargs):
        self.rows_ += 1
        return super().on_epoch_end(net, **kwargs)

    def on_train_end(self, net, X=None, y=None, **kwargs):
        if 0 < len(net.history) and self.rows_ < len(net.history):
            self.on_epoch_end(net)
        return super().on_train_end(net, X=X, y=y, **kwargs)

    def format_row(self, row, key, color):
        text = super().format_row(row, key, color)
        if getattr(self, "colour_", True) or not isinstance(text, str):
            return text
        return text.replace(color, "").replace(Ansi.ENDC.value, "")


def _isatty(stream):
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # no isatty, or a closed stream
        return False


class SolverLog(Callback):
    """Report a closed-form solve at ``verbose >= 1`` (in place of the epochs).

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


class StopTraining(KeyboardInterrupt):
    """How early stopping ends the loop (skorch stops on a KeyboardInterrupt);
    a distinct type, so that a user's Ctrl-C is not mistaken for it."""


class EarlyStop(EarlyStopping):
    """skorch's ``EarlyStopping``, stopping with :class:`StopTraining`."""

    def on_epoch_end(self, net, **kwargs):
        try:
            super().on_epoch_end(net, **kwargs)
        except StopTraining:
            raise
        except KeyboardInterrupt:
            raise StopTraining from None
