"""Before/after table of two accuracy-benchmark runs.

Run: ``python benchmarks/accuracy/compare.py [BEFORE.csv] [AFTER.csv]``
(defaults: ``results/results_before.csv`` and ``results/results.csv``).
Writes ``results/before_after.md``: for every method whose mean RMSE moved by
more than 1 % in some (task, regime), the mean over seeds before and after and
the ratio, plus which method family was best in each (task, regime) before and
after.
"""

import argparse
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402

RESULTS = HERE / "results"


def load(path):
    cells = defaultdict(list)
    for row in C.read_rows(path):
        if row["status"] != "ok" or not row["rmse"]:
            continue
        key = (row["task"], row["regime"], row["method"])
        cells[key].append(float(row["rmse"]))
    return {k: float(np.mean(v)) for k, v in cells.items()}


def _is_ours(method, groups):
    """Our transfer/adaptation methods and our source models."""
    return groups.get(method) in ("ours: transfer", "ours: DA") or method.startswith(
        "source: TR"
    )


def _mean(value):
    return "failed" if value is None else f"{value:.4g}"


def _best(pick):
    """A (mean, method) pick, or "-"."""
    return "-" if pick is None else f"{pick[0]:.4g} ({pick[1]})"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("before", nargs="?", default=RESULTS / "results_before.csv")
    parser.add_argument("after", nargs="?", default=RESULTS / "results.csv")
    parser.add_argument("--out", default=RESULTS / "before_after.md")
    args = parser.parse_args(argv)
    before, after = load(args.before), load(args.after)
    groups = {row["method"]: row["group"] for row in C.read_rows(args.after)}

    moved = []
    for key in sorted(set(before) | set(after)):
        b, a = before.get(key), after.get(key)
        if b is not None and a is not None and abs(a / b - 1) <= 0.01:
            continue
        ratio = "" if a is None or b is None else f"{a / b:.2f}"
        moved.append([*key, _mean(b), _mean(a), ratio])

    def best(means, mine, task, regime):
        pool = [
            (v, m)
            for (t, r, m), v in means.items()
            if t == task and r == regime and _is_ours(m, groups) == mine
        ]
        return min(pool) if pool else None

    wins_before = wins_after = total = 0
    bests = []
    for task, regime in sorted({(t, r) for t, r, _ in after}):
        ob, oa = best(before, True, task, regime), best(after, True, task, regime)
        other = best(after, False, task, regime)
        if oa is None or other is None:
            continue
        total += 1
        wins_after += oa[0] <= other[0]
        if ob is not None:
            wins_before += ob[0] <= best(before, False, task, regime)[0]
        bests.append([task, regime, _best(ob), _best(oa), _best(other)])
    lines = [
        "# Accuracy benchmark: before and after",
        "",
        f"Before: `{Path(args.before).name}`; after: `{Path(args.after).name}`. "
        "Mean target test RMSE over seeds; ratio = after / before. Rows where a "
        "method moved by more than 1 %.",
        "",
        C.md_table(["task", "labels", "method", "before", "after", "ratio"], moved),
        "",
        "## Best of ours against the best peer or baseline",
        "",
        C.md_table(
            ["task", "labels", "our best before", "our best after", "best other"],
            bests,
        ),
        "",
        f"Our best method is at or below the best peer/baseline in {wins_before} of "
        f"{total} (task, labels) cells before and {wins_after} of {total} after.",
        "",
    ]
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines[-2:]))


if __name__ == "__main__":
    main()
