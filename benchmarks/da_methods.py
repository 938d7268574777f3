"""Target RMSE of every DomainAdaptRegressor method on the synthetic shifts.

Run: ``python benchmarks/da_methods.py [--seeds 3]``. For each shift of
``make_domain_shift`` (600 source rows, 250 unlabelled target rows for
training, 250 held-out target rows for the RMSE), every method is fitted with
its default ``da_weight="auto"`` and the same network and epochs, and the
table gives the mean (std) target RMSE over seeds, with ``source_only`` as the
reference. Prints a Markdown table.
"""

import argparse
import sys
import time
from pathlib import Path

import numpy as np

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))
import common as C


def run(shift, seed, method):
    Xs, ys, Xt, yt = make_domain_shift(600, 500, shift=shift, random_state=seed)
    X, y, _ = C.da_stack(Xs, ys, Xt[:250])  # 250 unlabelled target rows
    est = DomainAdaptRegressor(
        method=method,
        backbone_params={"hidden_sizes": (64, 64)},
        max_epochs=30,
        random_state=seed,
    ).fit(X, y)
    return C.rmse(est.predict(Xt[250:]), yt[250:])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--shifts", nargs="+", default=["instrument", "covariate", "concept"]
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    methods = C.list_methods()
    table = {
        (shift, m): [run(shift, s, m) for s in range(args.seeds)]
        for shift in args.shifts
        for m in methods
    }
    print(f"Target RMSE, mean (std) over {args.seeds} seeds; lower is better.\n")
    rows = []
    for m in methods:
        cells = []
        for shift in args.shifts:
            v = np.array(table[shift, m])
            ref = np.mean(table[shift, "source_only"])
            cells.append(f"{v.mean():.3f} ({v.std():.3f}) [{v.mean() / ref:.2f}x]")
        rows.append([m, *cells])
    print(C.md_table(["method", *args.shifts], rows))
    print(f"\n[ratio to source_only in brackets] ({time.perf_counter() - start:.0f} s)")


if __name__ == "__main__":
    main()
