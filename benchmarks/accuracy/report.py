"""Turn ``results.csv`` into ``results.md`` and one plot per task."""

import math
import re
from collections import defaultdict
from pathlib import Path

import common as C
import methods as M

GROUPS = ("source-only", "target-only", "ours: transfer", "ours: DA", "peer")


def aggregate(rows):
    """{(task, n_labels): {method: cell}} with mean/std/failures per cell."""
    cells = defaultdict(lambda: defaultdict(list))
    info = {}
    for r in rows:
        key = (r["task"], int(r["n_labels"]))
        cells[key][r["method"]].append(r)
        info[r["task"]] = (r["family"], int(r["pool_size"]))
    out = {}
    for key, by_method in cells.items():
        out[key] = {}
        for method, rs in by_method.items():
            ok = [float(r["rmse"]) for r in rs if r["status"] == "ok"]
            errors = [r["error"] for r in rs if r["status"] != "ok"]
            mean = sum(ok) / len(ok) if ok else None
            std = (
                math.sqrt(sum((v - mean) ** 2 for v in ok) / (len(ok) - 1))
                if len(ok) > 1
                else 0.0
            )
            fit = [float(r["fit_s"]) for r in rs]
            out[key][method] = {
                "mean": mean,
                "std": std,
                "n": len(rs),
                "n_ok": len(ok),
                "errors": errors,
                "group": rs[0]["group"],
                "fit_s": sum(fit) / len(fit),
                "regime": rs[0]["regime"],
            }
    return out, info


def _ranked(cell):
    """Only cells where every seed ran are ranked (bold, best of family)."""
    return cell["n_ok"] == cell["n"] and cell["mean"] is not None


def _short_error(errors):
    """A readable reason: the exception type and the start of its message."""
    text = errors[0]
    text = re.sub(r"\s*\[[^\]]*\]$", "", text)  # drop the file:line tag
    text = text.replace("|", "/")
    return text if len(text) <= 90 else text[:87] + "..."


def _decimals(values):
    vals = [abs(v) for v in values if v]
    if not vals:
        return 3
    scale = min(vals)
    return max(0, 2 - math.floor(math.log10(scale)))


def fmt_cell(cell, dec, bold=False, reason=True):
    if cell is None:
        return "—"
    if cell["n_ok"] == 0:
        return f"failed: {_short_error(cell['errors'])}"
    text = f"{cell['mean']:.{dec}f} ± {cell['std']:.{dec}f}"
    if bold:
        text = f"**{text}**"
    if cell["n_ok"] < cell["n"]:
        failed = f"{cell['n'] - cell['n_ok']}/{cell['n']} failed"
        if reason:
            failed += f": {_short_error(cell['errors'])}"
        text += f" ({failed}; mean of the others)"
    return text


def _tasks_in_order(info):
    import tasks as T

    order = list(T.all_task_builders())
    return sorted(info, key=lambda t: order.index(t) if t in order else 99)


def _task_keys(agg, task):
    """The label counts of ``task``, and the decimals its cells are shown with."""
    keys = sorted(n for (t, n) in agg if t == task)
    dec = _decimals(
        [c["mean"] for n in keys for c in agg[(task, n)].values() if c["mean"]]
    )
    return keys, dec


def summary_table(agg, info):
    """Rows: task x regime. Columns: the best of each method group."""
    rows = []
    for task in _tasks_in_order(info):
        keys, dec = _task_keys(agg, task)
        for n in keys:
            row = agg[(task, n)]
            picks = []
            for groups in (
                ("source-only",),
                ("target-only",),
                ("ours: transfer", "ours: DA"),
                ("peer",),
            ):
                cands = [
                    (m, c)
                    for m, c in row.items()
                    if c["group"] in groups and _ranked(c)
                ]
                if cands:
                    m, c = min(cands, key=lambda mc: mc[1]["mean"])
                    picks.append((c, m))
                else:
                    failed = [m for m, c in row.items() if c["group"] in groups]
                    picks.append((None, "all failed" if failed else ""))
            means = [c["mean"] for c, _ in picks if c and _ranked(c)]
            best = min(means) if means else None
            cells = []
            for c, name in picks:
                if c is None:
                    cells.append(name or "—")
                    continue
                text = fmt_cell(c, dec, bold=c["mean"] == best, reason=False)
                cells.append(f"{text} {name}".strip())
            rows.append([task, next(iter(row.values()))["regime"], *cells])
    header = [
        "task",
        "target labels",
        "best source-only",
        "best target-only",
        "best of ours",
        "best peer",
    ]
    return C.md_table(header, rows)


def task_table(agg, task, method_names):
    keys, dec = _task_keys(agg, task)
    present = [m for m in method_names if any(m in agg[(task, n)] for n in keys)]
    rows = []
    for n in keys:
        row = agg[(task, n)]
        means = [c["mean"] for c in row.values() if _ranked(c)]
        best = min(means) if means else None
        regime = next(iter(row.values()))["regime"]
        cells = [
            fmt_cell(
                row.get(m), dec, bold=row.get(m) is not None and row[m]["mean"] == best
            )
            for m in present
        ]
        rows.append([regime, *cells])
    return C.md_table(["target labels", *present], rows)


def win_counts(agg, info):
    """Number of task x regime rows in which each method has the lowest mean."""
    wins = defaultdict(int)
    for row in agg.values():
        means = {m: c["mean"] for m, c in row.items() if _ranked(c)}
        if means:
            wins[min(means, key=means.get)] += 1
    return dict(sorted(wins.items(), key=lambda kv: -kv[1]))


def comparisons(agg):
    """Head-to-head counts over the task x regime rows (fully-run cells only)."""
    lines = []
    zero = [row for (t, n), row in agg.items() if n == 0]
    base = "DA source_only"
    counts = []
    for m in M.METHOD_NAMES:
        pairs = [
            (row[m]["mean"], row[base]["mean"])
            for row in zero
            if m != base
            and m in row
            and base in row
            and _ranked(row[m])
            and _ranked(row[base])
        ]
        if pairs:
            lower = sum(a < b for a, b in pairs)
            higher = sum(a > b for a, b in pairs)
            counts.append([m, lower, higher])
    lines += [
        "Without target labels, against `DA source_only` on the same splits "
        "(number of tasks where the method's mean RMSE is lower / higher):",
        "",
        C.md_table(["method", "lower", "higher"], counts),
    ]
    labelled = [row for (t, n), row in agg.items() if n > 0]
    ft = [m.name for m in M.METHODS if m.name.startswith("TR ")]
    da = [m.name for m in M.METHODS if m.name.startswith("DA ")]

    def best(row, names):
        vals = [row[m]["mean"] for m in names if m in row and _ranked(row[m])]
        return min(vals) if vals else None

    n_rows = len(labelled)
    da_wins = sum(
        best(r, da) is not None
        and best(r, ft) is not None
        and best(r, da) <= best(r, ft)
        for r in labelled
    )
    st_wins = sum(
        "DA source_only" in r
        and "TR full" in r
        and r["DA source_only"]["mean"] <= r["TR full"]["mean"]
        for r in labelled
    )
    lines += [
        "",
        f"With target labels ({n_rows} task x regime rows): the best semi-supervised "
        f"`DA` method is at or below the best `TR` fine-tuning strategy in "
        f"{da_wins} rows (a best of {len(da)} against a best of {len(ft)}); "
        f"`DA source_only` (source and labelled target rows trained together) "
        f"is at or below `TR full` in {st_wins} rows.",
    ]
    return "\n".join(lines)


def fit_time_table(rows):
    """Mean and total fit seconds per method; a source-only model is fitted
    once per task and seed, though its row repeats in every regime."""
    per = defaultdict(list)
    seen = set()
    for r in rows:
        if r["group"] == "source-only":
            key = (r["task"], r["seed"], r["method"])
            if key in seen:
                continue
            seen.add(key)
        per[r["method"]].append(float(r["fit_s"]))
    table = [
        [m, f"{sum(per[m]) / len(per[m]):.2f}", f"{sum(per[m]):.0f}"]
        for m in M.METHOD_NAMES
        if m in per
    ]
    return C.md_table(["method", "mean fit s", "total s"], table)


def _group_of(name):
    return next(m.group for m in M.METHODS if m.name == name)


def slug(task):
    return re.sub(r"[^A-Za-z0-9]+", "_", task).strip("_").lower()


def plot_task(agg, task, info, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = sorted(n for (t, n) in agg if t == task)
    _family, pool = info[task]
    styles = {
        "source-only": dict(ls=":", lw=1.5),
        "target-only": dict(ls="--", lw=1.5),
        "ours: transfer": dict(ls="-", lw=2.0),
        "ours: DA": dict(ls="-", lw=1.2),
        "peer": dict(ls="-.", lw=1.2),
    }
    palettes = {
        "source-only": ["#000000", "#666666", "#aaaaaa"],
        "target-only": ["#8c564b", "#c49c94", "#bcbd22"],
        "ours: transfer": ["#08306b", "#2171b5", "#4292c6", "#6baed6", "#17becf"],
        "ours: DA": [
            "#00441b",
            "#238b45",
            "#74c476",
            "#9467bd",
            "#c5b0d5",
            "#e377c2",
            "#7f7f00",
        ],
        "peer": ["#d62728", "#ff7f0e", "#ff9896", "#ffbb78", "#a50f15", "#fd8d3c"],
    }
    color = {}
    for m in M.METHODS:
        pal = palettes[m.group]
        color[m.name] = pal[sum(1 for k in color if _group_of(k) == m.group) % len(pal)]
    fig, ax = plt.subplots(figsize=(9.5, 4.8), dpi=80)
    for m in M.METHOD_NAMES:
        pts = [
            (n, agg[(task, n)][m]["mean"])
            for n in keys
            if m in agg[(task, n)] and agg[(task, n)][m]["mean"] is not None
        ]
        if not pts:
            continue
        xs, ys = zip(*pts)
        group = next(agg[(task, n)][m]["group"] for n in keys if m in agg[(task, n)])
        ax.plot(
            xs,
            ys,
            marker="o",
            ms=3.5,
            color=color[m],
            label=m,
            **styles.get(group, {}),
        )
    ax.set_xscale("symlog", linthresh=10)
    ax.set_xticks(keys)
    ax.set_xticklabels([str(k) if k != pool else f"all ({k})" for k in keys])
    ax.set_yscale("log")
    from matplotlib.ticker import FormatStrFormatter

    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.tick_params(axis="y", which="minor", labelsize=7)
    ax.set_xlabel("labelled target rows")
    ax.set_ylabel("target test RMSE (log scale)")
    ax.set_title(f"{task}: mean over seeds")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.01, 0.5), ncol=1)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


#: the source-only model with the same (default) backbone as each default
SAME_BACKBONE = {"TR": "source: TR mlp", "DA": "DA source_only"}


def _worse(cell, other):
    """Worse beyond noise: by more than the two seed spreads."""
    return cell["mean"] > other["mean"] + other["std"] + cell["std"]


def _default_names():
    return {m.default: m.name for m in M.METHODS if m.default}


def defaults_table(agg, info):
    """Rows: task x regime. What each estimator gives at its defaults, next to
    the source-only and target-only baselines and the best of ours."""
    defaults = _default_names()
    rows, losses = [], {"same": [], "best": []}
    for task in _tasks_in_order(info):
        keys, dec = _task_keys(agg, task)
        for n in keys:
            row = agg[(task, n)]

            def best(groups, row=row):
                cands = [
                    (m, c)
                    for m, c in row.items()
                    if c["group"] in groups and _ranked(c)
                ]
                return min(cands, key=lambda mc: mc[1]["mean"]) if cands else None

            src = best(("source-only",))
            cells = []
            for key in ("TR", "DA"):
                c = row.get(defaults.get(key))
                if c is None or not _ranked(c):
                    cells.append("—")
                    continue
                cells.append(fmt_cell(c, dec, reason=False))
                where = f"{defaults[key]} on {task} ({n} labels)"
                same = row.get(SAME_BACKBONE[key])
                if same and _ranked(same) and _worse(c, same):
                    losses["same"].append(
                        f"{where}: {c['mean']:.4g} vs {same['mean']:.4g}"
                    )
                if src and _worse(c, src[1]):
                    losses["best"].append(where)
            for pick in (
                src,
                best(("target-only",)),
                best(("ours: transfer", "ours: DA")),
                best(("peer",)),
            ):
                cells.append(
                    f"{fmt_cell(pick[1], dec, reason=False)} {pick[0]}" if pick else "—"
                )
            rows.append([task, next(iter(row.values()))["regime"], *cells])
    header = [
        "task",
        "target labels",
        f"default TR ({defaults.get('TR', '?')})",
        f"default DA ({defaults.get('DA', '?')})",
        "best source-only",
        "best target-only",
        "best of ours",
        "best peer",
    ]
    return C.md_table(header, rows), losses


def standing(agg):
    """How often the best of ours is below the best peer, at or below the best
    of every other method, and within the two seed spreads of it."""
    peers = others = noise = 0
    for row in agg.values():
        ranked = {m: c for m, c in row.items() if _ranked(c)}
        ours = [c for c in ranked.values() if c["group"].startswith("ours")]
        rest = [c for c in ranked.values() if not c["group"].startswith("ours")]
        peer = [c for c in rest if c["group"] == "peer"]
        if not ours or not rest:
            continue
        best = min(ours, key=lambda c: c["mean"])
        other = min(rest, key=lambda c: c["mean"])
        peers += bool(peer) and best["mean"] < min(c["mean"] for c in peer)
        others += best["mean"] <= other["mean"]
        noise += best["mean"] <= other["mean"] + other["std"] + best["std"]
    return (
        f"Best of ours below the best peer in {peers} of {len(agg)} cells; at or "
        f"below the best of every other method (peers, PLS, boosting, source- "
        f"and target-only) in {others}; within the two seed spreads of it in "
        f"{noise}."
    )


#: what each "auto" chooses among, as benchmark methods (TR auto also tries
#: full with L2-SP 1.0, which the suite does not run on its own)
AUTO_CANDIDATES = {
    "DA auto": ("DA source_only", "DA adabn", "DA rsd"),
    "TR auto": ("TR full", "TR lp_ft", "TR linear_probe"),
}


def auto_choices(rows):
    """How often each ``auto`` reached the best of its candidates, seed by
    seed: its RMSE equals the lowest candidate RMSE of the same task, labels
    and seed (it refits the chosen candidate with the same seed)."""
    by_key = {}
    for r in rows:
        if r["status"] == "ok" and r["rmse"]:
            key = (r["task"], int(r["n_labels"]), int(r["seed"]))
            by_key.setdefault(key, {})[r["method"]] = float(r["rmse"])
    out = []
    for auto, names in AUTO_CANDIDATES.items():
        for labels in ("0", "10", "40", "more"):
            hits = total = 0
            regret = []
            for (_, n, _), got in by_key.items():
                bucket = str(n) if n in (0, 10, 40) else "more"
                if bucket != labels or auto not in got:
                    continue
                cands = [got[m] for m in names if m in got]
                if len(cands) != len(names):
                    continue
                total += 1
                hits += got[auto] <= min(cands) * (1 + 1e-6)
                regret.append(got[auto] / min(cands))
            if total:
                out.append(
                    [
                        auto,
                        labels if labels != "more" else "more than 40",
                        f"{hits} of {total}",
                        f"{C.geo_mean(regret):.3f}",
                        f"{max(regret):.3f}",
                    ]
                )
    header = ["auto", "target labels", "best candidate reached", "RMSE / best", "worst"]
    return C.md_table(header, out)


def _defaults_section(agg, info):
    table, losses = defaults_table(agg, info)
    same = ", ".join(SAME_BACKBONE.values())
    if losses["same"]:
        verdict = (
            f"Worse than the source-only model of the same backbone ({same}) "
            "by more than the two seed spreads: " + "; ".join(losses["same"]) + "."
        )
    else:
        verdict = (
            f"No default is worse than the source-only model of the same "
            f"backbone ({same}) by more than the two seed spreads."
        )
    best = (
        "Worse than the best source-only model of any family (a linear model "
        "or PLS) by more than the two spreads, in "
        f"{len(losses['best'])} of the cells: "
        + ("; ".join(losses["best"]) or "none")
        + "."
    )
    return [table, "", verdict, "", best, ""]


def make_report(csv_path, out_dir, meta):
    rows = C.read_rows(csv_path)
    agg, info = aggregate(rows)
    out_dir = Path(out_dir)
    head = ["# Accuracy benchmark results", ""]
    if meta:
        v = meta.get("versions", {})
        head += [
            f"Command: `{meta.get('command', '?')}`  ",
            f"Machine: {meta.get('machine', '?')}; "
            f"{meta.get('jobs')} worker processes x "
            f"{meta.get('threads_per_job')} torch thread(s).  ",
            f"Versions: {', '.join(f'{k} {val}' for k, val in v.items())}.  ",
            f"Seeds: {meta.get('seeds')}; epochs for every neural method: "
            f"{meta.get('epochs')}; wall time: {meta.get('runtime_s', '?')} s.",
            "",
        ]
        for run in meta.get("merged_runs", []):
            subset = set(run["tasks"]) != set(meta.get("tasks", run["tasks"]))
            where = f"on {', '.join(run['tasks'])}, same" if subset else "same tasks,"
            head += [
                f"Rows of {', '.join(run['methods'])} added by `{run['command']}` "
                f"({run['runtime_s']} s), {where} seeds and splits.",
                "",
            ]
    head += [
        "Cells: target test RMSE, mean ± std over seeds (the seed draws the "
        "labelled target rows and the model initialisation). Bold: best in the "
        "row among the cells where every seed ran (a cell with a failed seed "
        "shows the mean of the others and is not ranked). — : the method does "
        "not apply in this regime. Source-only models "
        "do not see target labels, so their value repeats across regimes. "
        "Protocols: `benchmarks/accuracy/README.md`.",
        "",
        "## Defaults: what a user gets without tuning",
        "",
        "`TransferRegressor(TransferRegressor().fit(X_source, y_source))"
        ".fit(X_target, y_target)` and `DomainAdaptRegressor().fit(X, y, "
        "sample_domain)`, at the suite's epochs, next to the baselines and "
        "the best configuration.",
        "",
        *_defaults_section(agg, info),
        'How often `method="auto"` and `finetune="auto"` reached the best '
        "of their candidates, per task and seed (RMSE / best: geometric mean "
        "of the ratio to the best candidate of the same fit; with 0 labels "
        "`DA auto` is `source_only` by rule):",
        "",
        auto_choices(rows),
        "",
        "## Summary: best of each family",
        "",
        summary_table(agg, info),
        "",
        f"Rank-1 counts over the {len(agg)} task x regime rows: "
        + ", ".join(f"{m} {k}" for m, k in win_counts(agg, info).items())
        + ".",
        "",
        standing(agg),
        "",
        "## Head to head",
        "",
        comparisons(agg),
        "",
    ]
    body = []
    plots = []
    have_mpl = True
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        have_mpl = False
        print("matplotlib is not installed: skipping the plots", flush=True)
    for task in _tasks_in_order(info):
        body += [f"## {task}", "", task_table(agg, task, M.METHOD_NAMES), ""]
        if have_mpl:
            png = f"{slug(task)}.png"
            plot_task(agg, task, info, out_dir / png)
            plots.append(png)
            body += [f"![{task}]({png})", ""]
    body += [
        "## Mean fit time per method (seconds, one fit)",
        "",
        fit_time_table(rows),
        "",
    ]
    (out_dir / "results.md").write_text("\n".join(head + body))
    return plots
