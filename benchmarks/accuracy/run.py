"""Accuracy benchmark on real transfer tasks, against the libraries users would pick.

Run::

    python benchmarks/accuracy/run.py [--quick] [--out benchmarks/accuracy/results]

It runs every task x regime x method x seed (see ``tasks.py`` and
``methods.py``) and writes, under ``--out``:

- ``results.csv``: one row per task x regime x method x seed (target test
  RMSE, fit seconds, status and error text);
- ``results.md``: mean +- std over seeds of the target RMSE, best per row in
  bold, failures written as "failed: <reason>";
- ``<task>.png``: target RMSE against the number of target labels, one line
  per method (needs matplotlib; skipped with a message otherwise);
- ``meta.json``: command, machine, versions, runtime.

Work is split into (task, seed) units run by ``--jobs`` worker processes with
``--threads`` torch threads each (default: 2 processes x 1 thread, which was
faster than 1 process x 2 threads on 2 cores; see README.md).
"""

import argparse
import csv
import json
import os
import platform
import shlex
import sys
import time
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402
import methods as M  # noqa: E402
import numpy as np  # noqa: E402
import report  # noqa: E402
import tasks as T  # noqa: E402

FIELDS = [
    "task",
    "family",
    "regime",
    "n_labels",
    "pool_size",
    "method",
    "group",
    "seed",
    "rmse",
    "fit_s",
    "status",
    "error",
    "epochs",
]
EPOCHS = 30  # the one epoch budget of every neural method (library default: 100)
# relative cost of one (task, seed) unit, to start the long ones first
COST = {"weather": 10, "synthetic": 8, "soft sensor": 3, "calibration": 2}


def regime_label(n, pool):
    return f"all ({pool})" if n == pool else str(n)


def _init_worker(threads, peers):
    """One worker process: set its threads, and import the heavy libraries now
    so that their import time is not counted as the first fit's time."""
    import torch

    torch.set_num_threads(threads)
    import numpy as np

    from sktransfer import TransferRegressor

    # the first optimizer step imports torch._dynamo (~3 s): pay it here
    rng = np.random.default_rng(0)
    TransferRegressor(max_epochs=1).fit(rng.normal(size=(8, 2)), rng.normal(size=8))

    if peers:
        try:
            M._tf()  # TensorFlow threads must be set before its first op
        except Exception:  # reported per method, as a failed row
            pass
        for module in ("skada.deep", "adapt.feature_based"):
            try:
                __import__(module)
            except Exception:
                pass


def run_unit(task_name, seed, epochs, method_names):
    """Run every applicable method of one task for one seed; return CSV rows."""
    import warnings

    warnings.filterwarnings("ignore", category=DeprecationWarning)
    task = T.all_task_builders()[task_name]()
    ctx = M.Context(task=task, seed=seed, epochs=epochs)
    pool = len(task.y_pool)
    chosen = [m for m in M.METHODS if m.name in method_names]
    rows = []

    def record(method, n, rmse, fit_s, status, error):
        rows.append(
            {
                "task": task.name,
                "family": task.family,
                "regime": regime_label(n, pool),
                "n_labels": n,
                "pool_size": pool,
                "method": method.name,
                "group": method.group,
                "seed": seed,
                "rmse": "" if rmse is None else f"{rmse:.6g}",
                "fit_s": f"{fit_s:.3f}",
                "status": status,
                "error": error,
                "epochs": epochs,
            }
        )

    def evaluate(method, n):
        idx = C.labelled_rows(task, seed, n)
        ctx.labelled = idx
        X_lab, y_lab = task.X_pool[idx], task.y_pool[idx]
        start = time.perf_counter()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")  # warnings are not results
                pred = method.fn(ctx, X_lab, y_lab)
            pred = np.asarray(pred, dtype=float).ravel()
            if pred.shape != task.y_test.shape:
                raise ValueError(f"predictions of shape {pred.shape}")
            if not np.isfinite(pred).all():
                raise ValueError("non-finite predictions")
            return C.rmse(pred, task.y_test), time.perf_counter() - start, "ok", ""
        except M.NotApplicable:  # not a result: no row, the cell reads "—"
            return None
        except Exception as exc:  # a failure is a result, written down
            msg = f"{type(exc).__name__}: {exc}".replace("\n", " ")
            tb = traceback.extract_tb(exc.__traceback__)
            where = f" [{Path(tb[-1].filename).name}:{tb[-1].lineno}]" if tb else ""
            return None, time.perf_counter() - start, "failed", msg[:300] + where

    for method in chosen:
        if method.constant and M.applicable(method, task, 0):
            out = evaluate(method, 0)
            for n in task.regimes if out else ():
                record(method, n, *out)
    for n in task.regimes:
        for method in chosen:
            if method.constant or not M.applicable(method, task, n):
                continue
            out = evaluate(method, n)
            if out:
                record(method, n, *out)
    return rows


def _machine():
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    system = f"{platform.system()} {platform.release()}"
    return f"{cpu}, {os.cpu_count()} logical cores, {system}"


def _versions():
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": platform.python_version()}
    for pkg in (
        "torch",
        "scikit-learn",
        "skorch",
        "sktransfer",
        "skada",
        "adapt",
        "tensorflow",
        "keras",
    ):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def write_csv(rows, path):
    order = {name: i for i, name in enumerate(M.METHOD_NAMES)}
    task_order = {name: i for i, name in enumerate(T.all_task_builders())}
    rows = sorted(
        rows,
        key=lambda r: (
            task_order.get(r["task"], 99),
            int(r["n_labels"]),
            order.get(r["method"], 99),
            int(r["seed"]),
        ),
    )
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def _merge(csv_path, meta_path, new_rows, new_meta):
    """Existing rows of other methods + the new rows; the run is logged in meta."""
    old_rows = C.read_rows(csv_path)
    replaced = set(new_meta["methods"])
    tasks = set(new_meta["tasks"])
    rows = [
        r for r in old_rows if not (r["method"] in replaced and r["task"] in tasks)
    ] + new_rows
    meta = json.loads(meta_path.read_text())
    meta.setdefault("merged_runs", []).append(
        {k: new_meta[k] for k in ("command", "methods", "tasks", "runtime_s")}
    )
    known = set(meta["methods"]) | replaced
    meta["methods"] = [m for m in M.METHOD_NAMES if m in known]
    return rows, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="3 tasks, 2 seeds, 10 epochs"
    )
    parser.add_argument("--out", default=str(HERE / "results"))
    parser.add_argument("--seeds", type=int, default=None, help="default 5 (quick: 2)")
    parser.add_argument(
        "--epochs", type=int, default=None, help="default 30 (quick: 10)"
    )
    parser.add_argument("--tasks", nargs="*", default=None, help="task names")
    parser.add_argument("--methods", nargs="*", default=None, help="method names")
    parser.add_argument("--no-peers", action="store_true", help="skip skada and ADAPT")
    parser.add_argument("--jobs", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="torch threads each")
    parser.add_argument(
        "--report-only", action="store_true", help="rebuild results.md/plots from CSV"
    )
    parser.add_argument(
        "--merge",
        action="store_true",
        help="add the rows of --methods to the existing results.csv (replacing "
        "those methods' rows) instead of starting a new table",
    )
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    csv_path = out / "results.csv"
    if args.report_only:
        meta = (
            json.loads((out / "meta.json").read_text())
            if (out / "meta.json").exists()
            else {}
        )
        report.make_report(csv_path, out, meta)
        return

    seeds = args.seeds or (2 if args.quick else 5)
    epochs = args.epochs or (10 if args.quick else EPOCHS)
    names = list(T.task_builders())
    if args.tasks:
        known = list(T.all_task_builders())
        unknown = set(args.tasks) - set(known)
        if unknown:
            parser.error(f"unknown tasks {sorted(unknown)}; choose from {known}")
        names = [n for n in known if n in args.tasks]
    elif args.quick:
        names = list(T.QUICK_TASKS)
    method_names = args.methods or M.METHOD_NAMES
    if args.no_peers:
        method_names = [m for m in method_names if not m.startswith(("skada", "ADAPT"))]
    unknown = set(method_names) - set(M.METHOD_NAMES)
    if unknown:
        parser.error(f"unknown methods {sorted(unknown)}; choose from {M.METHOD_NAMES}")

    families = {n: T.family(n) for n in names}
    units = sorted(
        [(n, s) for n in names for s in range(seeds)],
        key=lambda u: -COST.get(families[u[0]], 1),
    )
    meta = {
        "command": "python " + shlex.join([os.path.relpath(__file__), *sys.argv[1:]])
        if argv is None
        else "run.main(" + repr(argv) + ")",
        "machine": _machine(),
        "versions": _versions(),
        "seeds": seeds,
        "epochs": epochs,
        "jobs": args.jobs,
        "threads_per_job": args.threads,
        "tasks": names,
        "methods": method_names,
    }
    print(
        f"{len(units)} units ({len(names)} tasks x {seeds} seeds), {len(method_names)} "
        f"methods, {epochs} epochs, {args.jobs} jobs x {args.threads} threads",
        flush=True,
    )
    start = time.perf_counter()
    rows = []
    partial = out / "results.partial.csv"
    with ProcessPoolExecutor(
        max_workers=args.jobs,
        mp_context=get_context("spawn"),
        initializer=_init_worker,
        initargs=(
            args.threads,
            any(m.startswith(("skada", "ADAPT")) for m in method_names),
        ),
    ) as pool:
        futures = {
            pool.submit(run_unit, n, s, epochs, method_names): (n, s) for n, s in units
        }
        for i, fut in enumerate(as_completed(futures), 1):
            n, s = futures[fut]
            try:
                got = fut.result()
            except Exception as exc:  # the whole unit died: say so, keep going
                got = []
                print(f"unit {n} seed {s} crashed: {exc!r}", flush=True)
            rows.extend(got)
            write_csv(rows, partial)
            failed = sum(r["status"] != "ok" for r in got)
            print(
                f"[{time.perf_counter() - start:7.1f} s] {i}/{len(units)} "
                f"{n} seed {s}: "
                f"{len(got)} rows, {failed} failed",
                flush=True,
            )
    meta["runtime_s"] = elapsed = round(time.perf_counter() - start, 1)
    if args.merge:
        rows, meta = _merge(csv_path, out / "meta.json", rows, meta)
    write_csv(rows, csv_path)
    partial.unlink(missing_ok=True)
    (out / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
    report.make_report(csv_path, out, meta)
    print(
        f"done in {elapsed:.0f} s; wrote {csv_path} and results.md",
        flush=True,
    )


if __name__ == "__main__":
    main()
