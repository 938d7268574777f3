"""How cost grows: fit time and peak memory against rows and against workers.

Run: ``python benchmarks/scaling.py`` (a few minutes on 2 cores; ``--quick``
for a smoke run). Writes ``benchmarks/results/scaling.md``, ``.csv`` and the
figure ``docs/images/scaling.png`` (matplotlib).

Rows: each fit runs in a fresh process (so its peak resident memory, the
kernel's ``VmHWM``, is its own) on ``make_domain_shift``-style data of 20
float32 features, for ``--rows`` (default 10^3 .. 10^6), with two models:

- ``TransferRegressor()`` (the default MLP 128-128, batch 64) trained for
  ``--epochs`` epochs (default 1: one epoch's cost; a fit at the default
  100 epochs costs about 100 times the epoch part);
- ``TransferRegressor(backbone="linear")``: the closed-form linear model
  (one pass over the data, no epochs).

The data are made inside the timed process; the table reports the fit's
wall time (data creation excluded) and the process's peak RSS, and the peak
RSS of a process that only makes the data (the floor), so the difference is
what the fit adds.

Workers: ``GridSearchCV`` over 8 candidates x 2 folds of the MLP
(``--search-rows`` rows, default 20,000, ``--search-epochs`` epochs, default
10) and of the closed-form linear model (10 times the rows, 8 penalties)
through joblib's Dask backend on a local cluster of 1,
2 and 4 worker processes with one thread each (loopback), against the same
search with ``n_jobs=1``. With 2 cores, 4 workers cannot beat 2: the table
shows what oversubscription costs. Median of ``--reps`` searches (default 3).

Timings are noisy: compare ratios within one run.
"""

import argparse
import csv
import json
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "results" / "scaling.md"
FIGURE = HERE.parent / "docs" / "images" / "scaling.png"
N_FEATURES = 20

_CHILD = r"""
import json, sys, time
import numpy as np, torch
torch.set_num_threads(int(sys.argv[4]))
from sktransfer import TransferRegressor

def vmhwm():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    return 0

n, model, epochs = int(sys.argv[1]), sys.argv[2], int(sys.argv[3])
rng = np.random.default_rng(0)
d = int(sys.argv[5])
X = rng.standard_normal((n, d), dtype=np.float32)
w = rng.standard_normal(d).astype(np.float32)
y = (X @ w + 0.1 * rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
# warm-up: the first fit of a process pays one-off costs (imports, torch's
# first kernels); time the second
warm = "linear" if model == "linear" else "mlp"
TransferRegressor(backbone=warm, max_epochs=1).fit(X[:100], y[:100])
floor = vmhwm()
start = time.perf_counter()
if model == "mlp":
    TransferRegressor(max_epochs=epochs, random_state=0).fit(X, y)
elif model == "linear":
    TransferRegressor(backbone="linear", random_state=0).fit(X, y)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "peak": vmhwm(), "floor": floor}))
"""


def measure_rows(n, model, epochs, threads):
    """Fit time and peak RSS of one fit, in a fresh process."""
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            str(n),
            model,
            str(epochs),
            str(threads),
            str(N_FEATURES),
        ],
        check=True,
        capture_output=True,
        text=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def _search(model, epochs, n_rows):
    import numpy as np
    from sklearn.model_selection import GridSearchCV

    from sktransfer import TransferRegressor

    rng = np.random.default_rng(0)
    X = rng.standard_normal((n_rows, N_FEATURES), dtype=np.float32)
    y = X @ rng.standard_normal(N_FEATURES).astype(np.float32)
    if model == "linear":  # closed form: 8 ridge penalties
        est = TransferRegressor(backbone="linear", random_state=0)
        grid = {"weight_decay": [0.0, 1e-4, 1e-3, 1e-2, 0.1, 1.0, 10.0, 100.0]}
    else:
        est = TransferRegressor(max_epochs=epochs, random_state=0)
        grid = {
            "lr": [1e-3, 3e-3],
            "weight_decay": [0.0, 1e-4],
            "batch_size": [64, 256],
        }
    return GridSearchCV(est, grid, cv=2), X, y


def _warm_up():
    """Import and run sktransfer once in a worker (a cluster is long-lived:
    its workers pay this once, not per search)."""
    import numpy as np

    from sktransfer import TransferRegressor

    X = np.zeros((64, N_FEATURES), dtype=np.float32)
    TransferRegressor(max_epochs=1).fit(X, X[:, 0])


def measure_workers(model, n_workers, epochs, n_rows):
    """Wall time of one search; ``n_workers=0``: ``n_jobs=1``, no cluster."""
    import joblib

    search, X, y = _search(model, epochs, n_rows)
    if n_workers == 0:
        start = time.perf_counter()
        search.fit(X, y)
        return time.perf_counter() - start
    from distributed import Client, LocalCluster

    with (
        LocalCluster(
            n_workers=n_workers,
            threads_per_worker=1,
            processes=True,
            host="127.0.0.1",
            dashboard_address=":0",
        ) as cluster,
        Client(cluster) as client,
    ):
        client.run(_warm_up)
        search.set_params(n_jobs=-1)
        start = time.perf_counter()
        with joblib.parallel_config(backend="dask"):
            search.fit(X, y)
        return time.perf_counter() - start


MEMMAP_MD = HERE / "results" / "memmap.md"


def memmap_run():
    """The whole-file, memory-capped run of ``benchmarks/memmap.py`` (read from
    its results, not re-run): rows, MiB of data, fit rows/s, peak RssAnon MiB
    and the cap; None when that benchmark has not run."""
    if not MEMMAP_MD.exists():
        return None
    text = MEMMAP_MD.read_text()
    row = next((ln for ln in text.splitlines() if "whole file, capped" in ln), None)
    cap = re.search(r"memory cap: ([\d,]+) MiB", text)
    if row is None or cap is None:
        return None
    cells = [c.strip() for c in row.strip("|").split("|")]

    def number(cell):
        return float(re.sub(r"[^\d.]", "", cell))

    return {
        "rows": int(number(cells[1])),
        "data_mb": number(cells[2]),
        "rows_per_s": number(cells[3]),
        "rss_anon_mb": number(cells[6]),
        "cap_mb": number(cap.group(1)),
    }


def figure(row_results, worker_results, disk=None):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(13, 3.8))
    for model, label in (("mlp", "MLP, one epoch"), ("linear", "linear, closed form")):
        rs = [r for r in row_results if r["model"] == model]
        n = [r["rows"] for r in rs]
        axes[0].loglog(n, [r["seconds"] for r in rs], "o-", label=label)
        axes[1].loglog(n, [r["peak_mb"] for r in rs], "o-", label=label)
    floor = [r for r in row_results if r["model"] == "mlp"]
    axes[1].loglog(
        [r["rows"] for r in floor],
        [r["floor_mb"] for r in floor],
        "k:",
        label="the data alone",
    )
    if disk is not None:
        axes[1].loglog(
            [disk["rows"]],
            [disk["rss_anon_mb"]],
            "rs",
            label=f"memmap of {disk['data_mb'] / 1024:.1f} GiB, capped at "
            f"{disk['cap_mb']:.0f} MiB (anon. RSS)",
        )
    axes[0].set(xlabel="rows", ylabel="fit time (s)", title="Fit time")
    axes[1].set(xlabel="rows", ylabel="peak RSS (MB)", title="Peak memory")
    for model, label in (("mlp", "MLP"), ("linear", "linear, closed form")):
        ws = [w for w in worker_results if w["model"] == model]
        base = next(w["seconds"] for w in ws if w["workers"] == 0)
        ws = [w for w in ws if w["workers"] > 0]
        axes[2].plot(
            [w["workers"] for w in ws],
            [base / w["seconds"] for w in ws],
            "o-",
            label=label,
        )
    axes[2].axhline(1.0, color="k", ls=":", label="n_jobs=1")
    axes[2].set(
        xlabel="local Dask workers (1 thread each)",
        ylabel="speed-up over n_jobs=1",
        title="GridSearchCV, 16 fits",
        xticks=sorted({w["workers"] for w in worker_results if w["workers"]}),
    )
    for ax in axes:
        ax.legend(fontsize=8)
        ax.grid(True, which="both", alpha=0.3)
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000]
    )
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--threads", type=int, default=1, help="torch threads per fit")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--search-rows", type=int, default=20_000)
    parser.add_argument("--search-epochs", type=int, default=10)
    parser.add_argument("--reps", type=int, default=3, help="searches per backend")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-figure", action="store_true")
    args = parser.parse_args(argv)
    if args.quick:
        args.rows, args.workers = [1000, 10_000], [1, 2]
        args.search_rows, args.search_epochs, args.reps = 2000, 1, 1
    started = time.perf_counter()
    row_results = []
    for n in args.rows:
        for model in ("mlp", "linear"):
            r = measure_rows(n, model, args.epochs, args.threads)
            row_results.append(
                {
                    "rows": n,
                    "model": model,
                    "seconds": r["seconds"],
                    "peak_mb": r["peak"] / 2**20,
                    "floor_mb": r["floor"] / 2**20,
                    "data_mb": n * (N_FEATURES + 1) * 4 / 2**20,
                }
            )
            print(row_results[-1], flush=True)
    _warm_up()
    worker_results = []
    for model, n_rows in (
        ("mlp", args.search_rows),
        ("linear", 10 * args.search_rows),
    ):
        for k in [0, *args.workers]:
            seconds = statistics.median(
                measure_workers(model, k, args.search_epochs, n_rows)
                for _ in range(args.reps)
            )
            worker_results.append(
                {"model": model, "rows": n_rows, "workers": k, "seconds": seconds}
            )
            print(worker_results[-1], flush=True)
    total = time.perf_counter() - started
    OUT.parent.mkdir(exist_ok=True)
    with open(OUT.with_suffix(".csv"), "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(row_results[0]))
        writer.writeheader()
        writer.writerows(row_results)
    cmd = "python benchmarks/scaling.py" + (" --quick" if args.quick else "")
    lines = [
        "# How cost grows",
        "",
        f"Command: `{cmd}` ({total:.0f} s wall clock, {args.threads} torch "
        f"thread(s) per fit, MLP trained {args.epochs} epoch(s)). "
        "Protocol: the docstring of `benchmarks/scaling.py`.",
        "",
        "## Against rows (20 float32 features)",
        "",
        "| rows | model | fit time (s) | rows / s | peak RSS (MB) | "
        "the data alone (MB) | data size (MB) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in row_results:
        lines.append(
            f"| {r['rows']:,} | {r['model']} | {r['seconds']:.2f} | "
            f"{r['rows'] / r['seconds']:,.0f} | {r['peak_mb']:.0f} | "
            f"{r['floor_mb']:.0f} | {r['data_mb']:.1f} |"
        )
    lines += [
        "",
        "## Against workers (GridSearchCV, 8 candidates x 2 folds)",
        "",
        f"MLP: {args.search_rows:,} rows, {args.search_epochs} epochs, a grid "
        "over lr, weight_decay and batch_size; linear: "
        f"{10 * args.search_rows:,} rows, closed form, 8 values of weight_decay. "
        "`n_jobs=1`: the search in this process with torch's default threads; "
        "Dask: a local cluster of worker processes with one thread each, "
        "warmed up (sktransfer imported and run once in each worker). "
        f"Median of {args.reps} searches each.",
        "",
        "| model | backend | wall time (s) | speed-up over n_jobs=1 |",
        "|---|---|---|---|",
    ]
    for w in worker_results:
        base = next(
            b["seconds"]
            for b in worker_results
            if b["model"] == w["model"] and b["workers"] == 0
        )
        name = "n_jobs=1" if w["workers"] == 0 else f"Dask, {w['workers']} worker(s)"
        lines.append(
            f"| {w['model']} | {name} | {w['seconds']:.2f} | "
            f"{base / w['seconds']:.2f} |"
        )
    disk = memmap_run()
    if disk is not None:
        lines += [
            "",
            "## Beyond memory (read from `benchmarks/results/memmap.md`)",
            "",
            f"`python benchmarks/memmap.py`: a float32 memmap of {disk['rows']:,} "
            f"rows ({disk['data_mb']:,.0f} MiB, 512 features) fitted under a "
            f"{disk['cap_mb']:.0f} MiB memory cap: {disk['rows_per_s']:,.0f} rows/s "
            f"(MLP 512-32-1, one epoch), peak anonymous RSS "
            f"{disk['rss_anon_mb']:.0f} MiB.",
        ]
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    if not args.no_figure:
        figure(row_results, worker_results, disk)


if __name__ == "__main__":
    main()
