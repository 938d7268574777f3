"""Self-supervised pre-training on unlabelled rows of both domains (issue 13).

Run: ``python benchmarks/pretraining.py --objectives masked`` (3 seeds, 2
processes of one torch thread each; ``--quick`` for a smoke run of 1 seed on
2 tasks). Writes
``benchmarks/results/pretraining.md`` and ``.csv`` (``--out``).

Tasks: the accuracy suite (``benchmarks/accuracy/tasks.py``: weather, corn,
fermentation, synthetic) with its splits; regimes of 10 and 40 labelled
target rows (40 capped by the pool: 17 on fermentation), drawn as in
``benchmarks/accuracy/common.py`` (one permutation of the pool per seed, so
the 10 are among the 40). The unlabelled rows are the source rows and every
target row usable without its label (the pool, and fermentation's extra
on-line spectra); test rows are never used.

Per task x seed, with the library's default network (MLP 128-128) and
``--epochs`` for every supervised fit (default 100, the library's; the
suite runs 30, which under-trains the new head of the two-step workflow --
``results/pretraining_30epochs.md`` is that run, ``--epochs 30``):

- ``TR full``: ``TransferRegressor().fit(X_source, y_source)``, then
  ``TransferRegressor(source).fit(X_lab, y_lab)`` -- the existing default;
- ``pre+src+tgt <objective>`` (``--objectives``, default both; ``masked``
  is the pre-trainer's default): the three-step workflow, the same with the
  backbone of the source model pre-trained first:
  ``SelfSupervisedPretrainer(objective=...).fit(X_unlabelled)`` ->
  ``TransferRegressor(pre).fit(X_source, y_source)`` ->
  ``TransferRegressor(source).fit(X_lab, y_lab)``;
- ``pre+tgt <objective>``: the two-step workflow,
  ``TransferRegressor(pre).fit(X_lab, y_lab)`` (no source labels);
- each of the two at ``TransferRegressor(pretraining=...)`` for each of
  ``--modes`` (default ``auto use``): unmarked, the default ``"auto"``
  (the pre-trained weights kept only where cross-validation over the
  labelled rows of that fit -- the source rows in the three steps, the
  target labels in the two -- says they beat the same network
  re-initialised); ``, use``: the pre-trained weights always;
- ``target-only``: ``TransferRegressor().fit(X_lab, y_lab)``, the same
  network without pre-training.

The pre-trainer runs at its defaults except ``max_epochs`` (``--pre-epochs``).
``best in suite``: the lowest mean RMSE of any method, ours or a peer's, in
``benchmarks/accuracy/results/results.csv`` for the same task and number of
labels (5 seeds, same splits; read, not re-run).
"""

import argparse
import sys
import time
import warnings
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
import tasks as T

HERE = Path(__file__).resolve().parent
QUICK_TASKS = ("weather-temp Chicago->Beijing", "corn-oil m5->mp5")
REGIMES = (T.N_FEW, T.N_MID)
SUITE_CSV = HERE / "accuracy" / "results" / "results.csv"


def _label(workflow, objective, mode):
    """Column name: the default ``pretraining="auto"`` unmarked."""
    return f"{workflow} {objective}" + ("" if mode == "auto" else f", {mode}")


def columns(objectives, modes):
    out = ["TR full"]
    out += [_label("pre+src+tgt", o, m) for o in objectives for m in modes]
    out += [_label("pre+tgt", o, m) for o in objectives for m in modes]
    return [*out, "target-only"]


def baseline(column):
    """The same workflow without pre-training."""
    return "TR full" if column.startswith("pre+src+tgt") else "target-only"


def _fit_predict(model, X, y, X_test):
    model.fit(X, y)
    return model.predict(X_test)


def run_unit(name, seed, objectives, epochs, pre_epochs, modes=("auto",)):
    """Every column, both regimes, for one task x seed: a list of row dicts."""
    import torch

    from sktransfer import SelfSupervisedPretrainer, TransferRegressor

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    task = T.task_builders()[name]()
    tr = dict(max_epochs=epochs, random_state=seed)
    unlabelled = np.vstack([task.X_source, task.X_target_unlabelled])
    start = time.perf_counter()
    sources = {"TR full": TransferRegressor(**tr).fit(task.X_source, task.y_source)}
    pretrained = {}
    for objective in objectives:
        pre = SelfSupervisedPretrainer(
            objective=objective, max_epochs=pre_epochs, random_state=seed
        ).fit(unlabelled)
        pretrained[objective] = pre
        for mode in modes:
            sources[_label("pre+src+tgt", objective, mode)] = TransferRegressor(
                pre, pretraining=mode, **tr
            ).fit(task.X_source, task.y_source)
    rows = []
    for n in REGIMES:
        n = min(n, len(task.y_pool))
        idx = C.labelled_rows(task, seed, n)
        X, y = task.X_pool[idx], task.y_pool[idx]
        models = {label: TransferRegressor(src, **tr) for label, src in sources.items()}
        for objective, pre in pretrained.items():
            for mode in modes:
                models[_label("pre+tgt", objective, mode)] = TransferRegressor(
                    pre, pretraining=mode, **tr
                )
        models["target-only"] = TransferRegressor(**tr)
        for label, model in models.items():
            pred = _fit_predict(model, X, y, task.X_test)
            rows.append(
                {
                    "task": name,
                    "seed": seed,
                    "labels": n,
                    "config": label,
                    "rmse": C.rmse(pred, task.y_test),
                }
            )
    seconds = time.perf_counter() - start
    for row in rows:
        row["unit_s"] = seconds
    return rows


def run(names, seeds, jobs, objectives, epochs, pre_epochs, modes):
    units = [(name, seed) for name in names for seed in range(seeds)]
    args = (objectives, epochs, pre_epochs, modes)
    if jobs <= 1:
        results = [run_unit(*u, *args) for u in units]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_unit, *u, *args) for u in units]
            results = []
            for u, f in zip(units, futures):
                results.append(f.result())
                print(f"done {u[0]} seed {u[1]}", flush=True)
    return [row for rows in results for row in rows]


def best_in_suite():
    """``{(task, n_labels): (mean RMSE, method)}`` of the best method in the
    accuracy suite's results."""
    acc = {}
    for r in C.read_rows(SUITE_CSV):
        if r["status"] != "ok" or not r["rmse"]:
            continue
        key = (r["task"], int(r["n_labels"]))
        acc.setdefault(key, {}).setdefault(r["method"], []).append(float(r["rmse"]))
    best = {}
    for key, methods in acc.items():
        means = {m: float(np.mean(v)) for m, v in methods.items()}
        method = min(means, key=means.get)
        best[key] = (means[method], method)
    return best


def cells(rows):
    """``{(task, labels): {column: [RMSE per seed]}}``, in row order."""
    acc = {}
    for r in rows:
        cell = acc.setdefault((r["task"], int(r["labels"])), {})
        cell.setdefault(r["config"], []).append(float(r["rmse"]))
    return acc


def _geo(values):
    return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def wide_table(acc, cols, best):
    table = []
    for (name, n), by in acc.items():
        means = {c: np.mean(by[c]) for c in cols}
        low = min(means.values())
        cells_ = [
            f"**{C.stat(by[c])}**" if means[c] == low else C.stat(by[c]) for c in cols
        ]
        ref = best.get((name, n))
        ref = f"{ref[0]:.4g} {ref[1]}" if ref else "—"
        table.append([name, n, *cells_, ref])
    return C.md_table(["task", "labels", *cols, "best in suite"], table)


def ratio_table(acc, cols, best):
    """Per column: geometric mean of its RMSE over ``TR full``'s, over
    ``target-only``'s and over the suite's best; cells it beats ``TR full``;
    and, against the same workflow without pre-training (``TR full`` for the
    three steps, ``target-only`` for the two), the worst ratio and the cells
    where it is worse beyond noise (mean - sd above the other's mean + sd)."""
    table = []
    for c in cols:
        keys = list(acc)
        r_full = [np.mean(acc[k][c]) / np.mean(acc[k]["TR full"]) for k in keys]
        r_tgt = [np.mean(acc[k][c]) / np.mean(acc[k]["target-only"]) for k in keys]
        r_best = [np.mean(acc[k][c]) / best[k][0] for k in keys if k in best]
        wins = sum(r < 1 for r in r_full)
        base = baseline(c)
        r_base = [np.mean(acc[k][c]) / np.mean(acc[k][base]) for k in keys]
        harm = sum(
            np.mean(acc[k][c]) - np.std(acc[k][c])
            > np.mean(acc[k][base]) + np.std(acc[k][base])
            for k in keys
        )
        table.append(
            [
                c,
                f"{_geo(r_full):.3f}",
                f"{wins} / {len(keys)}",
                f"{_geo(r_tgt):.3f}",
                f"{_geo(r_best):.3f}",
                base if c not in ("TR full", "target-only") else "—",
                f"{_geo(r_base):.3f}",
                f"{max(r_base):.3f}",
                f"{harm} / {len(keys)}",
            ]
        )
    header = ["config", "geo. mean / TR full", "cells better than TR full"]
    header += ["geo. mean / target-only", "geo. mean / best"]
    header += ["without pre-training", "geo. mean / it", "worst / it"]
    header += ["cells worse beyond noise"]
    return C.md_table(header, table)


def by_regime(acc, cols):
    """Geometric mean ratio to ``TR full`` and to ``target-only`` per regime."""
    table = []
    for n in sorted({k[1] for k in acc}):
        keys = [k for k in acc if k[1] == n]
        row = [f"{n} labels ({len(keys)} tasks)"]
        for c in cols[1:-1]:
            full = _geo([np.mean(acc[k][c]) / np.mean(acc[k]["TR full"]) for k in keys])
            tgt = _geo(
                [np.mean(acc[k][c]) / np.mean(acc[k]["target-only"]) for k in keys]
            )
            row.append(f"{full:.3f} / {tgt:.3f}")
        table.append(row)
    return C.md_table(["regime", *(f"{c}" for c in cols[1:-1])], table)


def report(rows, command, seconds, args, cols):
    acc = cells(rows)
    best = best_in_suite()
    intro = (
        f"Command: `{command}` ({seconds:.0f} s wall clock, {args.jobs} "
        f"process(es) x 1 torch thread). Target test RMSE, mean ± sd over "
        f"{args.seeds} seed(s) (the seed draws the labelled rows and every "
        f"initialisation). Supervised fits: the library defaults with "
        f"`max_epochs={args.epochs}`; the pre-trainer at its defaults with "
        f"`max_epochs={args.pre_epochs}` on the source rows and every "
        "unlabelled target row (never the test rows). Protocol: the docstring "
        "of `benchmarks/pretraining.py`. Bold: best of the columns run here."
    )
    return "\n".join(
        [
            "# Self-supervised pre-training",
            "",
            intro,
            "",
            "## Summary over every task x regime",
            "",
            ratio_table(acc, cols, best),
            "",
            "## By regime: geometric mean ratio to TR full / to target-only",
            "",
            by_regime(acc, cols),
            "",
            "## Per task x regime",
            "",
            wide_table(acc, cols, best),
            "",
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--pre-epochs", type=int, default=100)
    parser.add_argument("--objectives", nargs="+", default=["masked", "contrastive"])
    parser.add_argument(
        "--modes",
        nargs="+",
        default=["auto", "use"],
        help="TransferRegressor(pretraining=...) values to run (auto: the default)",
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--out", default=str(HERE / "results" / "pretraining.md"))
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds = 1
    names = list(QUICK_TASKS) if args.quick else list(T.task_builders())
    start = time.perf_counter()
    rows = run(
        names,
        args.seeds,
        args.jobs,
        args.objectives,
        args.epochs,
        args.pre_epochs,
        args.modes,
    )
    seconds = time.perf_counter() - start
    command = "python benchmarks/pretraining.py" + (
        " --quick"
        if args.quick
        else f" --seeds {args.seeds} --epochs {args.epochs} "
        f"--pre-epochs {args.pre_epochs} --objectives {' '.join(args.objectives)} "
        f"--modes {' '.join(args.modes)}"
    )
    cols = columns(args.objectives, args.modes)
    text = report(rows, command, seconds, args, cols)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    C.write_csv(rows, out.with_suffix(".csv"))


if __name__ == "__main__":
    main()
