"""The ``cnn1d`` backbone against the MLP on spectra and sensor windows.

Run: ``python benchmarks/cnn1d.py`` (a few minutes; one process, one torch
thread). Writes ``benchmarks/results/cnn1d.md`` (``--out``).

Tasks: the accuracy suite's spectra (``corn-oil m5->mp5``, ``m5->mp6``,
``fermentation-glucose lab->online``, 1-D rows of 700 and 128 wavelengths)
and its windowed sensor tasks (``window7-temp ...``: the last 7 days of the 9
weather columns -> tomorrow's mean temperature, rows of shape ``(9, 7)``), with
the suite's splits and seeds (``benchmarks/accuracy/tasks.py``).

Backbones: the default ``"mlp"``, the ``"cnn1d"`` of sktransfer 0.1.0
(global average pooling, rebuilt with ``backbone_params``) and today's
default ``"cnn1d"``; ``--extra NAME=JSON`` adds a ``cnn1d`` with other
``backbone_params`` and ``--backbones`` keeps some of the three (how the
defaults were tuned; keep ``mlp``, the summary's reference). Every model trains for the
suite's 30 epochs with the library's other defaults.

Regimes: the source model as is; a target-only model on 10 / 40 labelled
target rows (capped by the pool: 17 on fermentation); the source model
fine-tuned (``TransferRegressor(source)``, ``finetune="full"``) on the same
rows. Cells: target test RMSE, mean ± std over seeds.
"""

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
import tasks as T

from sktransfer import TransferRegressor

EPOCHS = 30
LABELS = (10, 40)
OLD = {
    "channels": (16, 32),
    "kernel_size": 5,
    "pool": 2,
    "batch_norm": True,
    "pooling": "global",
    "dense": None,
    "shortcut": False,
}
BACKBONES = {
    "mlp": ("mlp", None),
    "cnn1d, 0.1.0 (global pooling)": ("cnn1d", OLD),
    "cnn1d (default)": ("cnn1d", None),
}
TASKS = (
    "corn-oil m5->mp5",
    "corn-oil m5->mp6",
    "fermentation-glucose lab->online",
    *T.sequence_task_builders(),
)


def regimes(task):
    """(label, number of labelled rows): the source model, then 10 / 40."""
    pool = len(task.y_pool)
    out = [("source only", 0)]
    for kind in ("target only", "fine-tuned"):
        for n in LABELS:
            m = min(n, pool)
            out.append((f"{kind}, {m if m == n else f'{n} ({m})'}", m))
    return out


def fit_seed(task, seed, backbone, params):
    """One seed of one backbone: ``{regime label: RMSE}`` and fit seconds."""
    shape = task.input_shape if backbone != "mlp" else None
    kw = dict(max_epochs=EPOCHS, random_state=seed)
    start = time.perf_counter()
    source = TransferRegressor(
        backbone, backbone_params=params, input_shape=shape, **kw
    ).fit(task.X_source, task.y_source)
    seconds = time.perf_counter() - start
    scores = {"source only": C.rmse(source.predict(task.X_test), task.y_test)}
    for label, n in regimes(task)[1:]:
        idx = C.labelled_rows(task, seed, n)
        X, y = task.X_pool[idx], task.y_pool[idx]
        if label.startswith("target"):
            model = TransferRegressor(
                backbone, backbone_params=params, input_shape=shape, **kw
            )
        else:
            model = TransferRegressor(source, **kw)
        scores[label] = C.rmse(model.fit(X, y).predict(task.X_test), task.y_test)
    return scores, seconds


def run_task(name, backbones, seeds):
    """A Markdown table for one task: regimes x backbones, and seconds."""
    task = T.all_task_builders()[name]()
    cells, seconds = {}, {}
    for label, (backbone, params) in backbones.items():
        runs = [fit_seed(task, s, backbone, params) for s in seeds]
        cells[label] = {r: [run[0][r] for run in runs] for r in runs[0][0]}
        seconds[label] = np.mean([run[1] for run in runs])
    rows = []
    for regime, _ in regimes(task):
        means = {b: np.mean(cells[b][regime]) for b in backbones}
        best = min(means.values())
        row = [regime]
        for b in backbones:
            text = C.stat(cells[b][regime])
            row.append(f"**{text}**" if means[b] == best else text)
        rows.append(row)
    rows.append(["source fit, s", *(f"{seconds[b]:.2f}" for b in backbones)])
    shape = task.input_shape or (1, task.X_source.shape[1])
    head = f"### {name} (rows of shape {shape}, {len(task.y_source)} source rows)"
    return head + "\n\n" + C.md_table(["regime", *backbones], rows) + "\n", cells


def summary(all_cells, backbones, reference="mlp"):
    """Per backbone: in how many task x regime cells its mean RMSE is at most
    the reference's (and within 5 %), and the geometric mean of the ratios."""
    rows = []
    for b in backbones:
        if b == reference:
            continue
        ratios = [
            np.mean(cells[b][r]) / np.mean(cells[reference][r])
            for cells in all_cells.values()
            for r in cells[reference]
        ]
        ratios = np.asarray(ratios)
        rows.append(
            [
                b,
                f"{np.sum(ratios <= 1.0)} / {len(ratios)}",
                f"{np.sum(ratios <= 1.05)} / {len(ratios)}",
                f"{np.exp(np.log(ratios).mean()):.3f}",
                f"{ratios.max():.3f}",
            ]
        )
    header = [
        "backbone",
        f"cells <= {reference}",
        f"cells <= 1.05 x {reference}",
        f"geometric mean RMSE / {reference}",
        "worst ratio",
    ]
    return C.md_table(header, rows) + "\n"


def parse_extra(items):
    """``NAME=JSON`` -> ``{NAME: ("cnn1d", params)}`` (lists become tuples)."""
    out = {}
    for item in items:
        name, _, text = item.partition("=")
        params = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in json.loads(text).items()
        }
        out[name] = ("cnn1d", params)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--tasks", nargs="*", default=list(TASKS))
    parser.add_argument("--extra", nargs="*", default=[], metavar="NAME=JSON")
    parser.add_argument(
        "--backbones", nargs="*", default=list(BACKBONES), choices=list(BACKBONES)
    )
    parser.add_argument(
        "--out",
        default=str(Path(__file__).resolve().parent / "results" / "cnn1d.md"),
    )
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    backbones = {b: BACKBONES[b] for b in args.backbones}
    backbones.update(parse_extra(args.extra))
    seeds = list(range(args.seeds))
    start = time.perf_counter()
    sections, all_cells = [], {}
    for name in args.tasks:
        text, all_cells[name] = run_task(name, backbones, seeds)
        print(text, flush=True)
        sections.append(text)
    total = summary(all_cells, backbones)
    print(total)
    command = "python benchmarks/cnn1d.py" + (
        f" --seeds {args.seeds}" if args.seeds != 3 else ""
    )
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(
        "\n".join(
            [
                "# cnn1d against the MLP: spectra and sensor windows",
                "",
                f"Command: `{command}` (one process, one torch thread, "
                f"{time.perf_counter() - start:.0f} s). Target test RMSE, mean ± "
                f"std over {len(seeds)} seeds; {EPOCHS} epochs; the accuracy "
                "suite's splits; best per row in bold.",
                f"`cnn1d, 0.1.0 (global pooling)`: `backbone_params={OLD}`.",
                "",
                "## Summary over every task x regime",
                "",
                total,
                "## Per task",
                "",
                *sections,
            ]
        )
    )


if __name__ == "__main__":
    main()
