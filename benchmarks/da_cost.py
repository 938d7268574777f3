"""Cost of ``DomainAdaptRegressor(method="daregram")`` relative to ``"coral"``.

Run: ``python benchmarks/da_cost.py`` (about 5 minutes on 2 cores;
``--repeats N``, ``--epochs E``, ``--quick`` for a smoke run,
``--out FILE`` to write the Markdown table, by default
``benchmarks/results/da_cost.md``).

On the same data, settings and seed it times ``fit`` of ``coral``,
``daregram`` and ``daregram_reference`` -- the DARE-GRAM loss as it was
before issue 11 (two float64 ``svdvals`` and two ``pinv`` per step, kept in
``tests/daregram_reference.py``, registered here under that name and nowhere
in the package) -- interleaved (one fit of each per repetition, the order
rotating), with one torch thread, and reports the medians and the ratios to
``coral``. The machine's load moves absolute times; compare the ratios.

Cases (``make_domain_shift``, instrument shift, default ``mlp`` backbone
(128, 128) unless noted, ``batch_size=64``): the default setting on 8 input
features; wide inputs (256 features, as spectra); a wider representation
(``hidden_sizes=(256, 256)``); a large batch (256, wider than the 129
columns of the Gram matrix).
"""

import argparse
import os
import platform
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from daregram_reference import daregram_loss_reference

from sktransfer import DomainAdaptRegressor
from sktransfer.adaptation import DAREGRAM, register_method
from sktransfer.datasets import make_domain_shift

METHODS = ("coral", "daregram", "daregram_reference")
RESULTS = Path(__file__).resolve().parent / "results" / "da_cost.md"


class DAREGRAMReference(DAREGRAM):
    """DAREGRAM with the pre-issue-11 loss (benchmark only)."""

    name = "daregram_reference"
    divergence = staticmethod(daregram_loss_reference)


register_method(DAREGRAMReference, overwrite=True)

# name: (n_source, n_target, n_features, extra DomainAdaptRegressor params)
CASES = {
    "default (8 features)": (1000, 500, 8, {}),
    "wide inputs (256 features)": (500, 250, 256, {}),
    "hidden (256, 256)": (
        1000,
        500,
        8,
        {"backbone_params": {"hidden_sizes": (256,) * 2}},
    ),
    "batch_size 256": (2000, 1000, 8, {"batch_size": 256}),
}


def make_data(n_source, n_target, n_features):
    Xs, ys, Xt, _ = make_domain_shift(
        n_source, n_target, n_features, shift="instrument", random_state=0
    )
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(len(Xt), np.nan)])
    sample_domain = np.concatenate([np.ones(len(Xs)), -np.ones(len(Xt))]).astype(int)
    return X, y, sample_domain


def fit_seconds(method, data, epochs, params):
    X, y, sample_domain = data
    est = DomainAdaptRegressor(
        method=method, max_epochs=epochs, random_state=0, **params
    )
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_domain=sample_domain)
    return time.perf_counter() - start


def bench_case(case, repeats, epochs):
    n_source, n_target, n_features, params = CASES[case]
    data = make_data(n_source, n_target, n_features)
    times = {m: [] for m in METHODS}
    for r in range(repeats):
        order = METHODS[r % 3 :] + METHODS[: r % 3]
        for method in order:
            times[method].append(fit_seconds(method, data, epochs, params))
    med = {m: statistics.median(v) for m, v in times.items()}
    return [
        case,
        f"{n_source}+{n_target} x {n_features}",
        f"{med['coral']:.2f}",
        f"{med['daregram']:.2f}",
        f"{med['daregram_reference']:.2f}",
        f"{med['daregram'] / med['coral']:.2f}",
        f"{med['daregram_reference'] / med['coral']:.2f}",
    ]


HEADER = [
    "case",
    "rows x features",
    "coral s",
    "daregram s",
    "before s",
    "daregram / coral",
    "before / coral",
]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args(argv)
    if args.quick:
        args.repeats, args.epochs = 1, 2
    torch.set_num_threads(1)
    fit_seconds("coral", make_data(100, 50, 8), 1, {})  # one-time import costs
    start = time.perf_counter()
    rows = [bench_case(case, args.repeats, args.epochs) for case in CASES]
    lines = [
        "# Cost of daregram relative to coral",
        "",
        f"Output of `python benchmarks/da_cost.py --repeats {args.repeats} "
        f"--epochs {args.epochs}`: median seconds per `fit` over "
        f"{args.repeats} interleaved repetitions, one torch thread, "
        f"{args.epochs} epochs, `random_state=0`. `before` is the DARE-GRAM "
        "loss before issue 11 (`tests/daregram_reference.py`). Machine: "
        f"{platform.machine()}, {os.cpu_count()} CPU cores, torch {torch.__version__}.",
        "",
        "| " + " | ".join(HEADER) + " |",
        "|" + "---|" * len(HEADER),
        *("| " + " | ".join(row) + " |" for row in rows),
        "",
        f"({time.perf_counter() - start:.0f} s)",
    ]
    text = "\n".join(lines) + "\n"
    print(text)
    if not args.quick:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
