"""Ensembles of transferred models with few target labels (issue 14).

Run: ``python benchmarks/ensemble.py`` (3 seeds, 2 processes of one torch
thread each; about 2.5 minutes on 2 cores; ``--quick`` for a smoke run of 1
seed). Writes ``benchmarks/results/ensemble.md`` and ``.csv`` (``--out``).

Tasks: weather-temp Chicago->Beijing and corn-oil m5->mp5 of the accuracy
suite (``benchmarks/accuracy/tasks.py``), with the suite's splits. Per task x
seed, the source model is fitted once with the library's defaults
(``TransferRegressor(random_state=seed)``: MLP 128-128, 100 epochs); then, for
10 and 40 labelled target rows (one permutation of the pool per seed, nested,
as in ``benchmarks/accuracy/common.py``):

- ``full``, ``linear_probe``: ``TransferRegressor(source, finetune=...)``,
  library defaults otherwise;
- ``linear``: ``TransferRegressor("linear")`` on the target rows alone (closed
  form, penalty by leave-one-out);
- ``VotingRegressor``: ``sklearn.ensemble.VotingRegressor`` of those three
  (the recipe of docs/user_guide.md); the three columns above are its fitted
  members, so the vote is their mean;
- ``TransferEnsemble(5 seeds)``: ``TransferEnsemble(TransferRegressor(source),
  n_members=5)``: five full fine-tunings of the one source that differ by
  seed;
- ``TransferEnsemble(5 sources)``: the same, with ``member_params=[{"backbone":
  s} for s in sources]``: five source models fitted with different seeds (the
  first is ``source``), each fine-tuned by one member (a deep ensemble).

Cells: target test RMSE, mean ± standard deviation over seeds; the best
mean of each row in bold. ``spread``: the mean over test rows of
``predict(X, return_std=True)``'s standard deviation, to set against the
ensemble's RMSE.
"""

import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
import tasks as T

TASKS = ("weather-temp Chicago->Beijing", "corn-oil m5->mp5")
LABELS = (T.N_FEW, T.N_MID)
ENSEMBLES = ("TransferEnsemble(5 seeds)", "TransferEnsemble(5 sources)")
COLUMNS = ("full", "linear_probe", "linear", "VotingRegressor", *ENSEMBLES)
N_MEMBERS = 5


def _fits(sources, seed, X, y, X_test):
    """``{column: test predictions}`` and ``{ensemble column: its mean spread
    on the test rows}``."""
    from sklearn.ensemble import VotingRegressor

    from sktransfer import TransferEnsemble, TransferRegressor

    source = sources[0]
    vote = VotingRegressor(
        [
            ("full", TransferRegressor(source, random_state=seed)),
            (
                "linear_probe",
                TransferRegressor(source, finetune="linear_probe", random_state=seed),
            ),
            ("linear", TransferRegressor("linear", random_state=seed)),
        ]
    ).fit(X, y)
    pred = {name: m.predict(X_test) for name, m in vote.named_estimators_.items()}
    pred["VotingRegressor"] = vote.predict(X_test)
    by_source = [{"backbone": s} for s in sources]
    spread = {}
    for column, member_params in zip(ENSEMBLES, (None, by_source)):
        ensemble = TransferEnsemble(
            TransferRegressor(source),
            n_members=N_MEMBERS,
            member_params=member_params,
            random_state=seed,
        ).fit(X, y)
        pred[column], std = ensemble.predict(X_test, return_std=True)
        spread[column] = float(np.mean(std))
    return pred, spread


def run_unit(name, seed):
    """Every column, both regimes, for one task x seed: a list of row dicts."""
    import torch

    from sktransfer import TransferRegressor

    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    task = T.all_task_builders()[name]()
    sources = [
        TransferRegressor(random_state=seed if k == 0 else 1000 * seed + k).fit(
            task.X_source, task.y_source
        )
        for k in range(N_MEMBERS)
    ]
    rows = []
    for n in sorted({min(n, len(task.y_pool)) for n in LABELS}):
        idx = C.labelled_rows(task, seed, n)
        start = time.perf_counter()
        pred, spread = _fits(
            sources, seed, task.X_pool[idx], task.y_pool[idx], task.X_test
        )
        seconds = time.perf_counter() - start
        for column in COLUMNS:
            rows.append(
                {
                    "task": name,
                    "seed": seed,
                    "labels": n,
                    "model": column,
                    "rmse": C.rmse(pred[column], task.y_test),
                    "spread": spread.get(column, ""),
                    "fit_s": seconds,
                }
            )
    return rows


def cell_table(acc, spreads):
    """Task x labels rows: each column's RMSE (mean ± sd; the best mean in
    bold), then the ensembles' mean spreads."""
    table = []
    for (name, n), cols in acc.items():
        best = min(np.mean(cols[c]) for c in COLUMNS)
        row = [name, n]
        for col in COLUMNS:
            text = C.stat(cols[col])
            row.append(f"**{text}**" if np.mean(cols[col]) == best else text)
        row += [C.stat(spreads[(name, n, col)]) for col in ENSEMBLES]
        table.append(row)
    header = ["task", "labels", *COLUMNS, "spread (5 seeds)", "spread (5 sources)"]
    return C.md_table(header, table)


def report(rows, command, seconds, seeds):
    """The Markdown report."""
    acc = C.per_cell(rows, "model")
    spreads = {}
    for r in rows:
        if r["model"] in ENSEMBLES:
            key = (r["task"], int(r["labels"]), r["model"])
            spreads.setdefault(key, []).append(float(r["spread"]))
    intro = (
        f"Command: `{command}` ({seconds:.0f} s wall clock). A source MLP "
        "(library defaults) transferred with 10 and 40 labelled target rows: "
        "each member alone (`full`, `linear_probe` fine-tuning, a target-only "
        "`linear` model), their `VotingRegressor`, and `TransferEnsemble` of "
        "five full fine-tunings: of the one source, differing by seed, or of "
        "five sources fitted with different seeds (`member_params=[{'backbone': "
        "s} for s in sources]`). Target test RMSE, mean ± sd over "
        f"{seeds} "
        "seed(s); the best mean of each row in bold. `spread`: mean over the "
        "test rows of `predict(X, return_std=True)`'s standard deviation "
        "(units of the RMSE)."
    )
    return "\n".join(
        [
            "# Ensembles of transferred models",
            "",
            intro,
            "",
            cell_table(acc, spreads),
            "",
        ]
    )


def run(quick, seeds, jobs):
    """Rows of every task x seed unit, in task then seed order."""
    units = [(name, seed) for name in TASKS for seed in range(seeds)]
    return C.run_units(run_unit, units, jobs)


def main():
    C.run_script("ensemble", __doc__, run, report)


if __name__ == "__main__":
    main()
