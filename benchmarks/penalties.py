"""Penalties chosen from the data against fixed ones, for linear models.

Run: ``python benchmarks/penalties.py`` (about a minute; ``--seeds N``).

On every task of the accuracy suite (``benchmarks/accuracy/tasks.py``), with
the suite's splits and seeds, it compares the closed-form linear models a user
gets from ``TransferRegressor("linear", ...)``:

- the source model: ``weight_decay=0`` (no penalty: minimum-norm least squares)
  against ``weight_decay="auto"`` (generalised cross-validation on the source
  rows);
- fine-tuning that source model on 10 / 40 / all labelled target rows: L2-SP
  toward it with ``l2sp=0.1`` (the fixed value of the benchmark) against
  ``l2sp="auto"``, each from both source models;
- the target rows alone with ``weight_decay=0`` and ``"auto"``.

It prints the target test RMSE (mean over seeds) per task and label count, and
the geometric mean ratio of "auto" to each fixed value.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
from tasks import task_builders

from sktransfer import TransferRegressor

CONFIGS = {
    "source wd=0": ("source", {"weight_decay": 0.0}, None),
    "source wd=auto": ("source", {"weight_decay": "auto"}, None),
    "target wd=0": ("target", {"weight_decay": 0.0}, None),
    "target wd=auto": ("target", {"weight_decay": "auto"}, None),
    "L2-SP 0.1 from wd=0": ("transfer", {"l2sp": 0.1}, "source wd=0"),
    "L2-SP auto from wd=0": ("transfer", {"l2sp": "auto"}, "source wd=0"),
    "L2-SP 0.1 from wd=auto": ("transfer", {"l2sp": 0.1}, "source wd=auto"),
    "L2-SP auto from wd=auto": ("transfer", {"l2sp": "auto"}, "source wd=auto"),
}


def _fit(kind, params, source, task, rows):
    if kind == "source":
        return TransferRegressor("linear", **params).fit(task.X_source, task.y_source)
    X, y = task.X_pool[rows], task.y_pool[rows]
    if kind == "target":
        return TransferRegressor("linear", **params).fit(X, y)
    return TransferRegressor(source, **params).fit(X, y)


def run(seeds):
    table, ratios = [], {}
    for name, build in task_builders().items():
        task = build()
        for n in task.regimes[1:]:  # the labelled regimes
            cells = {label: [] for label in CONFIGS}
            for seed in range(seeds):
                rows = C.labelled_rows(task, seed, n)
                fitted = {}
                for label, (kind, params, src) in CONFIGS.items():
                    if kind == "source" and n != task.regimes[1]:
                        model = fitted.setdefault(
                            label, _fit(kind, params, None, task, rows)
                        )
                    else:
                        model = _fit(kind, params, fitted.get(src), task, rows)
                    fitted[label] = model
                    cells[label].append(C.rmse(model.predict(task.X_test), task.y_test))
            means = {label: float(np.mean(v)) for label, v in cells.items()}
            table.append([name, n, *(f"{means[label]:.4g}" for label in CONFIGS)])
            for auto, fixed in [
                ("source wd=auto", "source wd=0"),
                ("target wd=auto", "target wd=0"),
                ("L2-SP auto from wd=auto", "L2-SP 0.1 from wd=auto"),
                ("L2-SP auto from wd=auto", "L2-SP 0.1 from wd=0"),
            ]:
                key = f"{auto} / {fixed}"
                ratios.setdefault(key, []).append(means[auto] / means[fixed])
    return table, ratios


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=5)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        table, ratios = run(args.seeds)
    print(C.md_table(["task", "labels", *CONFIGS], table))
    print()
    rows = [
        [key, f"{np.exp(np.mean(np.log(v))):.3f}", f"{min(v):.3f}", f"{max(v):.3f}"]
        for key, v in ratios.items()
    ]
    print(C.md_table(["ratio (lower: auto better)", "geo. mean", "min", "max"], rows))
    print(f"\n{args.seeds} seeds, {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
