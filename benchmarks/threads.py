"""Fit time against torch's intra-op threads, on an idle and a busy machine.

Run: ``python benchmarks/threads.py`` (about a minute; ``--reps N``). Writes
``benchmarks/results/threads.md``.

A ``DomainAdaptRegressor(method="coral")`` fit (default MLP, 20 epochs, 1500
rows) is timed with torch's default number of threads and with one thread
(``threadpoolctl.threadpool_limits(1)``), interleaved, median of ``--reps``
repetitions; then again while one other process keeps one core busy (as a
second fit or a notebook would). Compare the ratios within one run.
"""

import argparse
import multiprocessing as mp
import statistics
import time
from pathlib import Path

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift

OUT = Path(__file__).resolve().parent / "results" / "threads.md"


def _burn(stop):
    x = 0.0
    while not stop.is_set():
        for i in range(10000):
            x += i * 0.5


def _data():
    Xs, ys, Xt, _ = make_domain_shift(1000, 500, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.r_[ys, np.full(len(Xt), np.nan)]
    return X, y


def _fit_seconds(X, y, threads):
    est = DomainAdaptRegressor(method="coral", max_epochs=20, random_state=0)
    start = time.perf_counter()
    if threads is None:
        est.fit(X, y)
    else:
        with threadpool_limits(limits=threads):
            est.fit(X, y)
    return time.perf_counter() - start


def _measure(X, y, reps):
    times = {"default": [], "1": []}
    for _ in range(reps):
        times["default"].append(_fit_seconds(X, y, None))
        times["1"].append(_fit_seconds(X, y, 1))
    return {k: statistics.median(v) for k, v in times.items()}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args(argv)
    X, y = _data()
    rows = []
    for load in ("idle", "one core busy"):
        stop = mp.Event()
        burner = None
        if load != "idle":
            burner = mp.Process(target=_burn, args=(stop,), daemon=True)
            burner.start()
        try:
            t = _measure(X, y, args.reps)
        finally:
            stop.set()
            if burner is not None:
                burner.join()
        rows.append((load, t["default"], t["1"], t["default"] / t["1"]))
    lines = [
        "# Fit time against torch threads",
        "",
        f"Output of `python benchmarks/threads.py --reps {args.reps}`; "
        f"{mp.cpu_count()} CPU cores, torch default threads "
        f"{torch.get_num_threads()}; median seconds of a "
        "`DomainAdaptRegressor(method='coral', max_epochs=20)` fit (1500 rows).",
        "",
        "| machine | default threads s | 1 thread s | default / 1 thread |",
        "|---|---|---|---|",
        *[f"| {a} | {b:.2f} | {c:.2f} | {d:.2f} |" for a, b, c, d in rows],
        "",
    ]
    OUT.write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
