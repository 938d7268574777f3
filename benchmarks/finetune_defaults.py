"""Fine-tuning defaults: strategy, L2-SP, backbone learning rate and budget.

Run: ``python benchmarks/finetune_defaults.py`` (3 seeds, 2 processes of one
torch thread each; ``--quick`` for a smoke run of 1 seed on 2 tasks).
Writes ``benchmarks/results/finetune_defaults.md`` and ``.csv`` (``--out``).

Tasks: the accuracy suite (``benchmarks/accuracy/tasks.py``: weather, corn,
fermentation, synthetic) and its windowed sensor tasks (``window7-temp``, fed
to the default MLP as flattened rows), with the suite's splits. Per task x
seed, the source model is fitted once with the library's defaults
(``TransferRegressor(random_state=seed).fit(X_source, y_source)``: MLP
128-128, 100 epochs); then, for each regime (10, 40 and all labelled target
rows: one permutation of the pool per seed, nested, as in
``benchmarks/accuracy/common.py``), every configuration below fine-tunes it
with ``TransferRegressor(source, **config)``:

- stage A, the strategy x the penalty at 100 epochs: ``finetune`` in
  ``full / linear_probe / lp_ft / gradual`` x ``l2sp`` in ``0 / 0.1 / 1.0``,
  and ``backbone_lr=1.0`` with ``full``, ``l2sp=0.1``;
- stage B, the budget of the current default (``full``, ``l2sp=0.1``):
  ``max_epochs`` 30 / 300, and ``early_stopping=True`` with 300 epochs (with
  10 labels early stopping holds out 1 row: reported, but meaningless there).

References: the source model as is, a target-only MLP
(``TransferRegressor(random_state=seed)``) and the target-only closed-form
``TransferRegressor("linear")`` (penalty chosen by leave-one-out).

Cells: target test RMSE, mean over seeds. The summary compares every column
with the current default (``full``, ``l2sp=0.1`` = ``"auto"`` for a pretrained
MLP, ``backbone_lr=0.1``, 100 epochs, no early stopping).
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

DEFAULT = "full l2sp=0.1"
CONFIGS = {
    f"{s} l2sp={p}": {"finetune": s, "l2sp": p}
    for s in ("full", "linear_probe", "lp_ft", "gradual")
    for p in (0.0, 0.1, 1.0)
}
CONFIGS["full l2sp=0.1 blr=1"] = {"finetune": "full", "l2sp": 0.1, "backbone_lr": 1.0}
CONFIGS["full l2sp=0.1 30ep"] = {"finetune": "full", "l2sp": 0.1, "max_epochs": 30}
CONFIGS["full l2sp=0.1 300ep"] = {"finetune": "full", "l2sp": 0.1, "max_epochs": 300}
CONFIGS["full l2sp=0.1 300ep ES"] = {
    "finetune": "full",
    "l2sp": 0.1,
    "max_epochs": 300,
    "early_stopping": True,
}
REFERENCES = ("source as is", "target-only mlp", "target-only linear")
COLUMNS = (*CONFIGS, *REFERENCES)
STAGE = {
    name: "A" if name.endswith(("=0.0", "=0.1", "=1.0", "blr=1")) else "B"
    for name in CONFIGS
}
QUICK_TASKS = ("weather-temp Chicago->Beijing", "corn-oil m5->mp5")
GROUPS = {"weather": "weather", "calibration": "spectra", "soft sensor": "spectra"}


def _task_names(quick):
    names = list(T.all_task_builders())
    return list(QUICK_TASKS) if quick else names


def _timed(model, X, y, X_test, y_test):
    start = time.perf_counter()
    model.fit(X, y)
    seconds = time.perf_counter() - start
    return C.rmse(model.predict(X_test), y_test), seconds


def run_unit(name, seed):
    """Every column, every regime, for one task x seed: a list of row dicts."""
    import torch

    from sktransfer import TransferRegressor

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    task = T.all_task_builders()[name]()
    source = TransferRegressor(random_state=seed)
    src_rmse, src_s = _timed(
        source, task.X_source, task.y_source, task.X_test, task.y_test
    )
    rows = []
    for n in task.regimes[1:]:
        idx = C.labelled_rows(task, seed, n)
        X, y = task.X_pool[idx], task.y_pool[idx]
        models = {
            label: TransferRegressor(source, random_state=seed, **kw)
            for label, kw in CONFIGS.items()
        }
        models["target-only mlp"] = TransferRegressor(random_state=seed)
        models["target-only linear"] = TransferRegressor("linear")
        scores = {
            label: _timed(m, X, y, task.X_test, task.y_test)
            for label, m in models.items()
        }
        scores["source as is"] = (src_rmse, src_s)
        for label in COLUMNS:
            rmse, seconds = scores[label]
            rows.append(
                {
                    "task": name,
                    "family": T.family(name),
                    "seed": seed,
                    "labels": n,
                    "config": label,
                    "stage": STAGE.get(label, "ref"),
                    "rmse": rmse,
                    "fit_s": seconds,
                }
            )
    return rows


def run(names, seeds, jobs):
    """Rows of every task x seed unit, in task then seed order."""
    units = [(name, seed) for name in names for seed in range(seeds)]
    if jobs <= 1:
        results = [run_unit(*u) for u in units]
    else:
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(run_unit, *u) for u in units]
            results = []
            for u, f in zip(units, futures):
                results.append(f.result())
                print(f"done {u[0]} seed {u[1]}", flush=True)
    return [row for rows in results for row in rows]


def cell_means(rows):
    """``{(task, labels): {column: mean RMSE over seeds}}``, in row order."""
    acc = {}
    for r in rows:
        cell = acc.setdefault((r["task"], int(r["labels"])), {})
        cell.setdefault(r["config"], []).append(float(r["rmse"]))
    return {
        k: {c: float(np.mean(v)) for c, v in cols.items()} for k, cols in acc.items()
    }


def wide_table(means):
    """Task x regime rows, one column per configuration; best in bold."""
    table = []
    for (name, n), cols in means.items():
        best = min(cols.values())
        cells = [
            f"**{cols[c]:.4g}**" if cols[c] == best else f"{cols[c]:.4g}"
            for c in COLUMNS
        ]
        table.append([name, n, *cells])
    return C.md_table(["task", "labels", *COLUMNS], table)


def _geo(values):
    return float(np.exp(np.mean(np.log(values)))) if len(values) else float("nan")


def summary_table(means, rows):
    """Per column: geometric mean of RMSE / default's, cells where it is best
    (over every column), worst ratio, mean fit seconds."""
    seconds = {c: [] for c in COLUMNS}
    for r in rows:
        seconds[r["config"]].append(float(r["fit_s"]))
    best = [min(cols, key=cols.get) for cols in means.values()]
    table = []
    for c in COLUMNS:
        ratios = [cols[c] / cols[DEFAULT] for cols in means.values()]
        table.append(
            [
                c,
                STAGE.get(c, "ref"),
                f"{_geo(ratios):.3f}",
                f"{best.count(c)} / {len(means)}",
                f"{max(ratios):.3f}",
                f"{np.mean(seconds[c]):.2f}",
            ]
        )
    header = ["config", "stage", "geo. mean RMSE / default", "# best", "worst"]
    return C.md_table([*header, "mean fit s"], table)


def _group_of(name, n):
    kind = GROUPS.get(T.family(name), T.family(name))
    return kind, "10 labels" if n <= T.N_FEW else "40 / all"


def group_table(means):
    """Geometric mean ratio to the default per column, by task group (weather,
    spectra, synthetic) x few (10) or more (40 / all) labels."""
    groups = {}
    for (name, n), cols in means.items():
        groups.setdefault(_group_of(name, n), []).append(cols)
    keys = sorted(groups)
    head = [f"{kind}, {few} ({len(groups[(kind, few)])})" for kind, few in keys]
    table = []
    for c in COLUMNS:
        ratios = [_geo([cols[c] / cols[DEFAULT] for cols in groups[k]]) for k in keys]
        table.append([c, *(f"{r:.3f}" for r in ratios)])
    return C.md_table(["config (cells)", *head], table)


def report(rows, command, seconds, seeds):
    """The Markdown report: summary, grouped ratios, then the wide table."""
    means = cell_means(rows)
    intro = (
        f"Command: `{command}` ({seconds:.0f} s wall clock). Target test RMSE, "
        f"mean over {seeds} seed(s); {len(means)} task x regime cells. Default: "
        f"`{DEFAULT}` (`finetune='full'`, `l2sp='auto'` = 0.1, `backbone_lr=0.1`, "
        "100 epochs, no early stopping). `ES`: `early_stopping=True` "
        "(`validation_fraction=0.1`, `n_iter_no_change=10`; with 10 labels it "
        "holds out 1 row, so its 10-label cells are meaningless). `blr`: "
        "`backbone_lr`. `# best`: cells where the column has the lowest RMSE "
        "of every column (references included). `mean fit s`: the fit alone "
        "(for `source as is`, the source model's fit)."
    )
    return "\n".join(
        [
            "# Fine-tuning defaults",
            "",
            intro,
            "",
            "## Summary over every task x regime",
            "",
            summary_table(means, rows),
            "",
            "## Geometric mean ratio to the default, by task group and labels",
            "",
            group_table(means),
            "",
            "## Per task x regime (mean RMSE; best in bold)",
            "",
            wide_table(means),
            "",
        ]
    )


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--quick", action="store_true")
    here = Path(__file__).resolve().parent / "results"
    parser.add_argument("--out", default=str(here / "finetune_defaults.md"))
    args = parser.parse_args(argv)
    seeds = 1 if args.quick else args.seeds
    start = time.perf_counter()
    rows = run(_task_names(args.quick), seeds, args.jobs)
    seconds = time.perf_counter() - start
    command = "python benchmarks/finetune_defaults.py" + (
        " --quick" if args.quick else f" --seeds {seeds} --jobs {args.jobs}"
    )
    text = report(rows, command, seconds, seeds)
    print(text)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    C.write_csv(rows, out.with_suffix(".csv"))


if __name__ == "__main__":
    main()
