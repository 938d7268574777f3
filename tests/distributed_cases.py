"""Data-parallel fits, run by ``tests/test_distributed.py`` in two processes.

``python -m torch.distributed.run --nproc_per_node=2 tests/distributed_cases.py
OUT`` fits every case of :data:`CASES` with ``distributed="ddp"`` and writes
each process's predictions (and loss histories) to ``OUT/rank<r>.npz``; the
test fits the same cases in one process and compares.

The networks have no dropout (each process draws its own masks, so one
process cannot reproduce them) and batch sizes that split evenly over two
processes; the batch order is shuffled, from the one seed every process
shares.
"""

import os
import sys
from pathlib import Path

import numpy as np
import torch

from sktransfer import DomainAdaptRegressor, TransferRegressor

NET = dict(
    backbone_params={"hidden_sizes": (8,)},
    max_epochs=4,
    batch_size=16,
    lr=1e-2,
    random_state=0,
)
#: ``max_epochs`` of the early-stopping case (it stops well before)
MAX_EPOCHS_EARLY = 30


class RowCounter(torch.nn.Module):
    """A linear backbone, initialised from ``seed``, that counts the rows it
    trains on."""

    def __init__(self, seed=0, n_in=4, n_out=8):
        super().__init__()
        with torch.random.fork_rng():
            torch.manual_seed(seed)
            self.linear = torch.nn.Linear(n_in, n_out)
        self.rows = 0

    def forward(self, x):
        if self.training and torch.is_grad_enabled():
            self.rows += x.shape[0]
        return torch.relu(self.linear(x))


def data():
    """Source rows (labelled), target rows (unlabelled) and test rows."""
    rng = np.random.default_rng(0)
    w = np.array([1.0, -2.0, 0.5, 0.0])
    Xs = rng.normal(size=(64, 4))
    ys = Xs @ w + 0.1 * rng.normal(size=64)
    Xt = rng.normal(loc=0.7, size=(32, 4))
    Xtest = rng.normal(loc=0.3, size=(10, 4))
    weight = rng.uniform(0.5, 2.0, size=64)
    return Xs, ys, Xt, Xtest, weight


def cases(rank=0):
    """Name -> ``(estimator, fit arguments)``; ``rank`` seeds the user's
    backbone module (rank 0's weights must win)."""
    Xs, ys, Xt, _, weight = data()
    X_da = np.vstack([Xs, Xt])
    y_da = np.concatenate([ys, np.full(len(Xt), np.nan)])
    two_outputs = np.column_stack([ys, -ys])
    return {
        # full-batch: one step per epoch over all 64 rows
        "full_batch": (
            TransferRegressor(**{**NET, "batch_size": 64}),
            dict(X=Xs, y=ys),
        ),
        # each process trains on its half of every batch (64 rows x 4 epochs
        # in one process, 128 rows in each of two), from rank 0's weights
        "counted": (
            TransferRegressor(
                RowCounter(seed=rank), **{**NET, "backbone_params": None}
            ),
            dict(X=Xs, y=ys),
        ),
        # shuffled mini-batches, row weights, two outputs
        "weighted": (
            TransferRegressor(**NET),
            dict(X=Xs, y=two_outputs, sample_weight=weight),
        ),
        # early stopping on the validation loss averaged over the processes
        "early_stopping": (
            TransferRegressor(
                **{**NET, "max_epochs": MAX_EPOCHS_EARLY, "lr": 0.05},
                early_stopping=True,
                validation_fraction=0.25,
                n_iter_no_change=2,
            ),
            dict(X=Xs, y=ys),
        ),
        # fine-tuning that freezes the backbone, then unfreezes it (the set of
        # trained parameters changes during training)
        "lp_ft": (
            TransferRegressor(
                TransferRegressor(**NET).fit(Xs, ys),
                **{**NET, "backbone_params": None},
                finetune="lp_ft",
            ),
            dict(X=Xt, y=Xt @ np.array([1.2, -2.0, 0.5, 0.3]) + 0.5),
        ),
        # a linear model: the closed form, no gradient loop
        "closed_form": (
            TransferRegressor("linear", random_state=0),
            dict(X=Xs, y=ys),
        ),
        # balanced source/target batches, DANN's discriminator (a module of
        # its own): per-domain mean losses, even shards -> exact
        "dann": (
            DomainAdaptRegressor(**NET, method="dann", da_weight=0.5),
            dict(X=X_da, y=y_da),
        ),
        # CORAL's loss from batch covariances: computed per shard
        "coral": (
            DomainAdaptRegressor(**NET, method="coral", da_weight=1.0),
            dict(X=X_da, y=y_da),
        ),
        "coral_off": (
            DomainAdaptRegressor(**NET, method="coral", da_weight=0.0),
            dict(X=X_da, y=y_da),
        ),
    }


def fit_all(distributed):
    """Predictions and histories of every case, as arrays by key."""
    _, _, _, Xtest, _ = data()
    out = {}
    # torchrun's environment: the first fit initialises the process group
    rank = 0 if distributed is None else int(os.environ["RANK"])
    for name, (est, fit_params) in cases(rank).items():
        est.set_params(distributed=distributed).fit(**fit_params)
        out[f"{name}/pred"] = est.predict(Xtest)
        out[f"{name}/n_iter"] = np.array(est.n_iter_)
        if isinstance(est.net_.module_.backbone, RowCounter):
            out[f"{name}/rows_trained"] = np.array(est.net_.module_.backbone.rows)
        for key in ("train_loss", "valid_loss", "train_da_loss"):
            if est.history_ and key in est.history_[-1]:
                out[f"{name}/{key}"] = np.array(est.history_[:, key])
    return out


def failures():
    """The messages of fits that must fail under two processes."""
    import torch.distributed as dist

    Xs, ys, *_ = data()
    messages = {}
    # each process passes other rows: refused on every process
    rank = dist.get_rank()
    try:
        TransferRegressor(**NET, distributed="ddp").fit(Xs[rank:], ys[rank:])
    except ValueError as exc:
        messages["different_data"] = str(exc)
    try:
        TransferRegressor(**{**NET, "batch_size": 1}, distributed="ddp").fit(Xs, ys)
    except ValueError as exc:
        messages["batch_size"] = str(exc)
    return messages


def auto_unseeded():
    """``finetune="auto"`` with ``random_state=None``: its cross-validation
    must split the same folds on every process (rank 0's seed), or each
    fold's fit finds other rows on the other process. The error, if any."""
    Xs, ys, Xt, Xtest, _ = data()
    source = TransferRegressor(**NET).fit(Xs, ys)  # seeded, one process: alike
    est = TransferRegressor(
        source,
        **{**NET, "backbone_params": None, "random_state": None},
        finetune="auto",
        distributed="ddp",
    )
    try:
        est.fit(Xt, Xt @ np.array([1.2, -2.0, 0.5, 0.3]) + 0.5)
    except ValueError as exc:
        return {"auto_unseeded/error": np.array(str(exc))}
    return {
        "auto_unseeded/pred": est.predict(Xtest),
        "auto_unseeded/finetune": np.array(est.finetune_),
        "auto_unseeded/scores": np.array(sorted(est.finetune_scores_.values())),
    }


def main(out_dir):
    import torch.distributed as dist

    torch.set_num_threads(1)
    out = fit_all("ddp")
    out.update(auto_unseeded())
    for key, message in failures().items():
        out[f"error/{key}"] = np.array(message)
    out["world_size"] = np.array(dist.get_world_size())
    np.savez(Path(out_dir) / f"rank{dist.get_rank()}.npz", **out)
    dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1])
