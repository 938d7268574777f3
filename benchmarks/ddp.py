"""Data-parallel training (``distributed="ddp"``) under torchrun: agreement and time.

Run (two CPU processes, under a minute on 2 cores)::

    torchrun --nproc_per_node=2 benchmarks/ddp.py

On a machine with GPUs, one process per GPU::

    torchrun --nproc_per_node=<gpus> benchmarks/ddp.py --device cuda

(NCCL is chosen for CUDA, gloo for the CPU; ``device="cuda"`` becomes
``"cuda:<LOCAL_RANK>"`` in each process.) It is also the example of a
data-parallel script: every process loads the same data, fits the same
estimator with ``distributed="ddp"``, and holds the same fitted model.

What it measures, on ``make_domain_shift`` data (``--rows`` source rows, half
as many unlabelled target rows, 16 features):

- a ``TransferRegressor`` (MLP 128-128, ``--epochs`` epochs, batch
  ``--batch-size``, the global batch) and a ``DomainAdaptRegressor(method=
  "coral")`` fitted with ``distributed="ddp"`` over the processes, timed
  between barriers;
- then, in rank 0 alone, the same fits with ``distributed=None`` (one
  process, one torch thread, as each of the data-parallel processes has);
- the largest difference between the predictions of the data-parallel and
  the one-process models on the target rows (float32 rounding for the
  squared error; CORAL's loss is computed on each process's shard, so its
  model departs a little), and each model's target RMSE.

Writes a Markdown table to standard output (rank 0) and, with ``--out FILE``,
to FILE. Times on a shared machine are noisy: compare within one run.
"""

import argparse
import os
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist
from sklearn.metrics import root_mean_squared_error

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import make_domain_shift


def _data(rows):
    Xs, ys, Xt, yt = make_domain_shift(rows, rows // 2, n_features=16, random_state=0)
    X_da = np.vstack([Xs, Xt])
    y_da = np.r_[ys, np.full(len(Xt), np.nan)]
    return Xs, ys, Xt, yt, X_da, y_da


def _estimators(args, distributed):
    common = dict(
        backbone_params={"hidden_sizes": (128, 128)},
        max_epochs=args.epochs,
        batch_size=args.batch_size,
        lr=1e-3,
        random_state=0,
        device=args.device,
        distributed=distributed,
    )
    return {
        "TransferRegressor": TransferRegressor(**common),
        "DomainAdaptRegressor coral": DomainAdaptRegressor(
            method="coral", da_weight=1.0, **common
        ),
    }


def _fit(make, name, data, repeats, barrier=False):
    """The last fitted estimator and the median fit time over ``repeats``."""
    Xs, ys, _, _, X_da, y_da = data
    X, y = (Xs, ys) if name == "TransferRegressor" else (X_da, y_da)
    times = []
    for _ in range(repeats):
        est = make()
        if barrier:
            dist.barrier()
        start = time.perf_counter()
        est.fit(X, y)
        if barrier:
            dist.barrier()
        times.append(time.perf_counter() - start)
    return est, statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=8000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if "RANK" not in os.environ:
        parser.error("launch with torchrun --nproc_per_node=2 benchmarks/ddp.py")
    dist.init_process_group("nccl" if args.device.startswith("cuda") else "gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    warnings.filterwarnings("ignore", message="X has values far outside")
    data = _data(args.rows)
    Xt, yt = data[2], data[3]
    # warm-up: the first fit of a process pays for lazy initialisation
    _estimators(args, "ddp")["TransferRegressor"].set_params(max_epochs=1).fit(
        data[0][:512], data[1][:512]
    )

    parallel = {}
    for name in _estimators(args, "ddp"):
        parallel[name] = _fit(
            lambda name=name: _estimators(args, "ddp")[name],
            name,
            data,
            args.repeats,
            barrier=True,
        )
    lines = []
    if rank == 0:
        lines += [
            f"{world} processes, device {args.device}, {args.rows} source rows, "
            f"{args.epochs} epochs, global batch {args.batch_size}; median of "
            f"{args.repeats} fits; torch {torch.__version__}",
            "",
            f"| model | fit, ddp ({world} processes) | fit, 1 process | "
            "max abs pred diff | target RMSE ddp / 1 process |",
            "|---|---|---|---|---|",
        ]
        for name, (est, seconds) in parallel.items():
            make = lambda name=name: _estimators(args, None)[name]  # noqa: E731
            one, t_one = _fit(make, name, data, args.repeats)
            pred, ref = est.predict(Xt), one.predict(Xt)
            diff = float(np.abs(pred - ref).max())
            rmse = root_mean_squared_error(yt, pred)
            rmse_one = root_mean_squared_error(yt, ref)
            lines.append(
                f"| {name} | {seconds:.2f} s | {t_one:.2f} s | {diff:.1e} "
                f"| {rmse:.4f} / {rmse_one:.4f} |"
            )
        text = "\n".join(lines) + "\n"
        print(text)
        if args.out is not None:
            args.out.write_text(text)
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
