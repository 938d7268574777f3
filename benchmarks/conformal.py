"""Prediction intervals on target rows: coverage and width of 90 % intervals
(issue 14).

Run: ``python benchmarks/conformal.py`` (3 seeds, 2 processes of one torch
thread each; a few minutes on 2 cores; ``--quick``: 1 seed, 2 tasks).
Writes ``benchmarks/results/conformal.md`` and ``.csv`` (``--out``).

Tasks: the accuracy suite's weather tasks (3 temperature pairs, the
precipitation one), corn-oil m5->mp5 and m5->mp6, synthetic-instrument and
-concept, plus synthetic-covariate (``make_domain_shift(shift="covariate")``
with the synthetic tasks' protocol), with the suite's splits: intervals are
scored on the held-out target test rows only. 0, 10 and 40 labelled target
rows (the suite's nested draw per seed). Two models: ``TransferRegressor
("linear")`` (closed form) and the default MLP at 30 epochs
(``TransferRegressor(max_epochs=30)``).

Methods (``sktransfer.ShiftConformalRegressor``, ``calibration_size=0.3``):

- ``source``: split conformal on 30 % of the source rows, ignoring the shift
  (MAPIE's ``SplitConformalRegressor`` does the same); the model trains on
  the other 70 % plus the labelled target rows.
- ``weighted``: the same model and calibration rows, weighted by the
  density ratio of a domain classifier (StandardScaler + LogisticRegression)
  between all source inputs and all target pool inputs (Tibshirani et al.
  2019).
- ``weighted-clip``: the same with ``clip_quantile=0.9``.
- ``weighted-quad``: the same with a quadratic domain classifier
  (StandardScaler + PolynomialFeatures(2) + LogisticRegression): the log
  density ratio between two Gaussians of different spreads is quadratic.
  Not on the spectra (700 wavelengths: 245 000 features).
- ``target`` (10 and 40 labels): split conformal on max(9, ceil(0.3 n))
  labelled target rows; the model trains on all source rows and the other
  labelled target rows.
- ``ensemble`` (MLP only: the linear model is deterministic; 0 labels only,
  to keep the run short): five MLPs (seeds) on all source rows; mean ± 1.645
  std.

Cells: empirical coverage of the test rows (target 0.90; an infinite
interval covers), mean width of the finite intervals in the task's units,
and the share of infinite intervals. The summary adds the coverage of the
finite intervals alone (what is left once the method's refusals, the
infinite intervals, are set aside).
"""

import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
import tasks as T

TASKS = (
    "weather-temp Chicago->Beijing",
    "weather-temp Beijing->Chicago",
    "weather-temp Mumbai->San Diego",
    "weather-precip Beijing->Chicago",
    "corn-oil m5->mp5",
    "corn-oil m5->mp6",
    "synthetic-instrument",
    "synthetic-concept",
    "synthetic-covariate",
)
QUICK_TASKS = ("weather-temp Chicago->Beijing", "synthetic-covariate")
LABELS = (0, 10, 40)
LEVEL = 0.9
Z = 1.645  # the standard normal's 95 % quantile: a central 90 % interval
METHODS = (
    "source",
    "weighted",
    "weighted-clip",
    "weighted-quad",
    "target",
    "ensemble",
)


def _quadratic():
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import PolynomialFeatures, StandardScaler

    return make_pipeline(
        StandardScaler(),
        PolynomialFeatures(2),
        StandardScaler(),
        LogisticRegression(max_iter=1000),
    )


def _task(name):
    builders = T.task_builders()
    if name in builders:
        return builders[name]()
    return T.synthetic_task(name.split("-", 1)[1])


def _model(kind, seed):
    from sktransfer import TransferRegressor

    if kind == "linear":
        return TransferRegressor("linear", random_state=seed)
    return TransferRegressor(max_epochs=30, random_state=seed)


def _row(task, seed, kind, n, method, y_pred, intervals):
    y = task.y_test
    lower, upper = intervals[:, 0], intervals[:, 1]
    finite = np.isfinite(lower) & np.isfinite(upper)
    width = upper - lower
    hit = (y >= lower) & (y <= upper)
    return {
        "task": task.name,
        "seed": seed,
        "model": kind,
        "labels": n,
        "method": method,
        "coverage": float(np.mean(hit)),
        "coverage_finite": float(hit[finite].mean()) if finite.any() else float("nan"),
        "width": float(width[finite].mean()) if finite.any() else float("inf"),
        "infinite": float(1 - finite.mean()),
        "rmse": C.rmse(y_pred, y),
    }


def _conformal(task, seed, kind, n, X, y, domain):
    """The source, weighted and target methods for one model kind."""
    from sklearn.frozen import FrozenEstimator

    from sktransfer import ShiftConformalRegressor

    common = dict(confidence_level=LEVEL, random_state=seed)
    source = ShiftConformalRegressor(_model(kind, seed), mode="source", **common)
    source.fit(X, y, domain)
    rows = [_row(task, seed, kind, n, "source", *source.predict_interval(task.X_test))]
    # the same model and calibration rows (same split), only reweighted
    frozen = FrozenEstimator(source.estimator_)
    variants = {"weighted": {}, "weighted-clip": {"clip_quantile": 0.9}}
    if not task.spectra:
        variants["weighted-quad"] = {"domain_classifier": _quadratic()}
    for method, params in variants.items():
        weighted = ShiftConformalRegressor(
            frozen, mode="weighted", **params, **common
        ).fit(X, y, domain)
        result = weighted.predict_interval(task.X_test)
        rows.append(_row(task, seed, kind, n, method, *result))
    if n >= 9:
        target = ShiftConformalRegressor(_model(kind, seed), mode="target", **common)
        target.fit(X, y, domain)
        rows.append(
            _row(task, seed, kind, n, "target", *target.predict_interval(task.X_test))
        )
    return rows


def _ensemble(task, seed, n, X, y):
    """Five MLPs on every labelled row: mean ± Z std."""
    labelled = np.isfinite(y)
    preds = np.array(
        [
            _model("mlp", 10 * seed + k)
            .fit(X[labelled], y[labelled])
            .predict(task.X_test)
            for k in range(5)
        ]
    )
    mean, std = preds.mean(axis=0), preds.std(axis=0, ddof=1)
    intervals = np.column_stack([mean - Z * std, mean + Z * std])
    return _row(task, seed, "mlp", n, "ensemble", mean, intervals)


def run_unit(name, seed):
    """Every model, label count and method for one task x seed."""
    import torch

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    task = _task(name)
    rows = []
    for n in sorted({min(n, len(task.y_pool)) for n in LABELS}):
        labelled = C.labelled_rows(task, seed, n) if n else None
        X, y, domain = C.task_stack(task, labelled)
        for kind in ("linear", "mlp"):
            rows += _conformal(task, seed, kind, n, X, y, domain)
        if n == 0:  # (run time; the ensemble has no calibration to gain from labels)
            rows.append(_ensemble(task, seed, n, X, y))
    return rows


def _cells(rows):
    """``{(task, model, labels): {method: [row, ...]}}``."""
    acc = {}
    for r in rows:
        cell = acc.setdefault((r["task"], r["model"], int(r["labels"])), {})
        cell.setdefault(r["method"], []).append(r)
    return acc


def _mean(rs, key):
    return float(np.mean([float(r[key]) for r in rs]))


def summary_table(acc):
    """Per model x method: cells, mean coverage, cells under 0.85 / within
    0.85-0.95, mean width relative to the source method's, infinite share."""
    table = []
    for kind in ("linear", "mlp"):
        for method in METHODS:
            cells = [v for (_, k, _), v in acc.items() if k == kind and method in v]
            if not cells:
                continue
            cov = [_mean(v[method], "coverage") for v in cells]
            # rows whose intervals are all infinite have no finite coverage
            fin = [
                float(r["coverage_finite"])
                for v in cells
                for r in v[method]
                if np.isfinite(float(r["coverage_finite"]))
            ]
            rel = [
                _mean(v[method], "width") / _mean(v["source"], "width")
                for v in cells
                if np.isfinite(_mean(v[method], "width"))
            ]
            table.append(
                [
                    kind,
                    method,
                    len(cells),
                    f"{np.mean(cov):.3f}",
                    f"{np.mean(fin):.3f}" if fin else "",
                    f"{min(cov):.2f}",
                    sum(c < 0.85 for c in cov),
                    sum(0.85 <= c <= 0.95 for c in cov),
                    f"{C.geo_mean(rel):.2f}" if rel else "inf",
                    f"{np.mean([_mean(v[method], 'infinite') for v in cells]):.1%}",
                ]
            )
    header = ["model", "method", "cells", "mean coverage"]
    header += ["coverage of the finite intervals", "worst"]
    header += ["cells < 0.85", "cells in [0.85, 0.95]"]
    header += ["width / source's (geo. mean)", "infinite"]
    return C.md_table(header, table)


def _cell_text(rs):
    cov, width, inf = (_mean(rs, k) for k in ("coverage", "width", "infinite"))
    text = f"{cov:.2f} / {width:.3g}" + (f" ({inf:.0%} inf)" if inf > 0 else "")
    return f"**{text}**" if cov < 0.85 else text


def cell_table(acc):
    """Task x model x labels rows: coverage / mean finite width per method;
    coverage under 0.85 in bold."""
    table = []
    for (name, kind, n), cols in acc.items():
        row = [name, kind, n]
        row += [_cell_text(cols[m]) if m in cols else "" for m in METHODS]
        table.append(row)
    return C.md_table(["task", "model", "labels", *METHODS], table)


def report(rows, command, seconds, seeds):
    """The Markdown report: summary, then every cell."""
    acc = _cells(rows)
    intro = (
        f"Command: `{command}` ({seconds:.0f} s wall clock). Empirical coverage "
        "of 90 % intervals on the held-out target test rows and their mean "
        f"width (finite ones, task units), mean over {seeds} seed(s). Methods: "
        "see the module docstring of `benchmarks/conformal.py`. Nominal "
        "coverage is 0.90; a cell under 0.85 is a failure (bold)."
    )
    return "\n".join(
        [
            "# Prediction intervals on target rows (conformal)",
            "",
            intro,
            "",
            "## Summary",
            "",
            summary_table(acc),
            "",
            "## Per task x model x labels: coverage / mean width",
            "",
            cell_table(acc),
            "",
        ]
    )


def run(quick, seeds, jobs):
    """Rows of every task x seed unit, in task then seed order."""
    names = QUICK_TASKS if quick else TASKS
    units = [(name, seed) for name in names for seed in range(seeds)]
    return C.run_units(run_unit, units, jobs)


def main():
    C.run_script("conformal", __doc__, run, report)


if __name__ == "__main__":
    main()
