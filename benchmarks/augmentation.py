"""Augmentation of training batches with few target labels (issue 13).

Run: ``python benchmarks/augmentation.py`` (3 seeds, 2 processes of one torch
thread each; about 5 minutes on 2 cores; ``--quick`` for a smoke run of 1 seed
on 2 tasks). Writes ``benchmarks/results/augmentation.md`` and ``.csv``
(``--out``).

Tasks: the accuracy suite (``benchmarks/accuracy/tasks.py``) without the
windowed sensor tasks and without the weather tasks that repeat a kind (one
temperature pair per direction of climate change, the precipitation one):
weather-temp Chicago->Beijing, Mumbai->San Diego, weather-precip
Beijing->Chicago, corn-oil m5->mp5 and m5->mp6, fermentation-glucose
lab->online, synthetic-instrument and -concept; with the suite's splits.
Per task x seed, the source model is fitted once with the library's defaults
(``TransferRegressor(random_state=seed)``: MLP 128-128, 100 epochs); then,
for 10 and 40 labelled target rows (capped by the pool: 17 for the
fermentation; one permutation of the pool per seed, nested, as in
``benchmarks/accuracy/common.py``), it is fine-tuned with the defaults
(``finetune="full"``, ``l2sp=0.1``, 100 epochs) and each ``augment`` below,
against ``augment=None``. The spectral augmentations run on the spectra
tasks only (corn, fermentation).

Cells: target test RMSE, mean ± standard deviation over seeds, and the ratio
of mean RMSEs to ``none``.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
import tasks as T

TASKS = (
    "weather-temp Chicago->Beijing",
    "weather-temp Mumbai->San Diego",
    "weather-precip Beijing->Chicago",
    "corn-oil m5->mp5",
    "corn-oil m5->mp6",
    "fermentation-glucose lab->online",
    "synthetic-instrument",
    "synthetic-concept",
)
QUICK_TASKS = ("weather-temp Chicago->Beijing", "corn-oil m5->mp5")
LABELS = (10, 40)
#: column -> (augmentation class name, parameters), built in the worker; None: none
GENERAL = {
    "none": None,
    "GaussianJitter(0.05)": ("GaussianJitter", {"std": 0.05}),
    "RandomScaling(0.05)": ("RandomScaling", {"std": 0.05}),
    "Mixup(0.2)": ("Mixup", {"alpha": 0.2}),
    "CMixup(2, 0.5)": ("CMixup", {"alpha": 2.0, "bandwidth": 0.5}),
    "CMixup(2, 0.1)": ("CMixup", {"alpha": 2.0, "bandwidth": 0.1}),
}
SPECTRAL = {
    "BaselineShift(0.1, 0.1)": ("BaselineShift", {"std": 0.1, "slope_std": 0.1}),
    "MultiplicativeScatter": ("MultiplicativeScatter", {}),
    "WavelengthShift(1)": ("WavelengthShift", {"max_shift": 1.0}),
    "chemotools ScatterShift": ("chemotools", {}),
}
COLUMNS = (*GENERAL, *SPECTRAL)


def _augment(spec, X_source):
    """The ``augment`` value of a column's spec. chemotools' amplitudes are in
    the units of the spectra: its baseline coefficients get 0.1 times the
    median spread of a source spectrum along the wavelengths (the relative
    size of the built-in ``BaselineShift``'s default)."""
    from sktransfer import augmentation as A

    if spec is None:
        return None
    name, params = spec
    if name == "chemotools":
        from chemotools.augmentation import ScatterShift

        spread = float(np.median(np.std(X_source, axis=1)))
        shift = ScatterShift(
            order=2, multiplicative_scale=0.05, additive_scale=0.1 * spread
        )
        return A.ChemotoolsAugmentation(shift)
    return getattr(A, name)(**params)


def run_unit(name, seed):
    """Every column, both regimes, for one task x seed: a list of row dicts."""
    import torch

    from sktransfer import TransferRegressor

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    task = T.all_task_builders()[name]()
    source = TransferRegressor(random_state=seed).fit(task.X_source, task.y_source)
    columns = {**GENERAL, **(SPECTRAL if task.spectra else {})}
    rows = []
    for n in sorted({min(n, len(task.y_pool)) for n in LABELS}):
        idx = C.labelled_rows(task, seed, n)
        X, y = task.X_pool[idx], task.y_pool[idx]
        for label, spec in columns.items():
            augment = _augment(spec, task.X_source)
            model = TransferRegressor(source, random_state=seed, augment=augment)
            start = time.perf_counter()
            model.fit(X, y)
            seconds = time.perf_counter() - start
            rmse = C.rmse(model.predict(task.X_test), task.y_test)
            rows.append(
                {
                    "task": name,
                    "seed": seed,
                    "labels": n,
                    "augment": label,
                    "rmse": rmse,
                    "fit_s": seconds,
                }
            )
    return rows


def summary_table(acc, rows):
    """Per augmentation: geometric mean ratio to none (all cells, 10 labels,
    40 labels), cells better / worse than none by more than 2 %, fits with a
    lower RMSE than none's on the same task, labels and seed, best and worst
    ratio, mean fit seconds."""
    seconds = {}
    for r in rows:
        seconds.setdefault(r["augment"], []).append(float(r["fit_s"]))
    table = []
    for col in COLUMNS:
        ratio = {
            k: np.mean(v[col]) / np.mean(v["none"]) for k, v in acc.items() if col in v
        }
        if not ratio:
            continue
        pairs = [
            (a, b) for v in acc.values() if col in v for a, b in zip(v[col], v["none"])
        ]
        few = [r for (_, n), r in ratio.items() if n <= T.N_FEW]
        more = [r for (_, n), r in ratio.items() if n > T.N_FEW]
        values = list(ratio.values())
        table.append(
            [
                col,
                len(values),
                f"{C.geo_mean(values):.3f}",
                f"{C.geo_mean(few):.3f}",
                f"{C.geo_mean(more):.3f}",
                f"{sum(v < 0.98 for v in values)} / {sum(v > 1.02 for v in values)}",
                f"{sum(a < b for a, b in pairs)} / {len(pairs)}",
                f"{min(values):.3f}",
                f"{max(values):.3f}",
                f"{np.mean(seconds[col]):.2f}",
            ]
        )
    header = ["augment", "cells", "geo. mean ratio", "10 labels", "40 labels"]
    header += ["cells better / worse (2 %)", "fits better (paired)"]
    header += ["best", "worst", "mean fit s"]
    return C.md_table(header, table)


def cell_table(acc, columns):
    """Task x labels rows: ``none``'s RMSE (mean ± sd), then each column's
    mean ± sd and ratio to none; ratios below 0.98 in bold."""
    table = []
    for (name, n), cols in acc.items():
        base = np.mean(cols["none"])
        row = [name, n]
        for col in columns:
            if col not in cols:
                row.append("")
                continue
            ratio = np.mean(cols[col]) / base
            text = f"{C.stat(cols[col])}" + ("" if col == "none" else f" ({ratio:.2f})")
            row.append(f"**{text}**" if ratio < 0.98 else text)
        table.append(row)
    return C.md_table(["task", "labels", *columns], table)


def report(rows, command, seconds, seeds):
    """The Markdown report: summary, then the cells."""
    acc = C.per_cell(rows, "augment")
    intro = (
        f"Command: `{command}` ({seconds:.0f} s wall clock). Fine-tuning a "
        "source MLP (library defaults) on 10 and 40 labelled target rows "
        "(17 for the fermentation) with each `augment` against `none`. Target "
        f"test RMSE, mean ± sd over {seeds} seed(s); in brackets the ratio of "
        "mean RMSEs to `none` (below 1: the augmentation helps; bold below "
        "0.98). Spectral augmentations on the spectra tasks only. `chemotools "
        "ScatterShift`: `ChemotoolsAugmentation(ScatterShift(order=2, "
        "multiplicative_scale=0.05, additive_scale=0.1 * s))` with `s` the "
        "median standard deviation of a source spectrum along its wavelengths "
        "(chemotools' amplitudes are in the units of the spectra)."
    )
    spectra = [k for k, v in acc.items() if "MultiplicativeScatter" in v]
    return "\n".join(
        [
            "# Augmentation with few target labels",
            "",
            intro,
            "",
            "## Summary (ratio of mean RMSE to `none`)",
            "",
            summary_table(acc, rows),
            "",
            "## Per task x labels: general augmentations",
            "",
            cell_table(acc, list(GENERAL)),
            "",
            "## Per task x labels: spectral augmentations (spectra tasks)",
            "",
            cell_table({k: acc[k] for k in spectra}, ["none", *SPECTRAL]),
            "",
        ]
    )


def run(quick, seeds, jobs):
    """Rows of every task x seed unit, in task then seed order."""
    names = QUICK_TASKS if quick else TASKS
    units = [(name, seed) for name in names for seed in range(seeds)]
    return C.run_units(run_unit, units, jobs)


def main():
    C.run_script("augmentation", __doc__, run, report)


if __name__ == "__main__":
    main()
