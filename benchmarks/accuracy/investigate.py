"""Small experiments behind the default-change recommendations in docs/benchmarks.md.

Run: ``python benchmarks/accuracy/investigate.py [--seeds 3] [--only A B ...]``
(about 2 minutes; one process, one torch thread). Writes
``benchmarks/accuracy/results/investigation.md`` (``--out``).

Each experiment changes one setting against the benchmark's configuration
(library defaults, ``max_epochs=30``) on the benchmark's own splits, and
reports the target test RMSE, mean ± std over seeds.

- A: the ``"linear"`` backbone trained by AdamW (``solver="gradient"``) at
  ``lr=1e-3`` for 30 epochs, against a larger learning rate, more epochs, a
  hand-written closed-form ridge, and the library's closed-form solver (the
  default for a linear model since the solver parameter was added).
- B: fine-tuning on 10 / 40 target labels: 30 epochs are 30 optimizer steps
  (one batch per epoch); what more steps do.
- C: spectra: per-feature input standardisation (the default) against none,
  and a ``cnn1d`` on the (1, 700) spectrum.
- D: optimizer steps per epoch of ``DomainAdaptRegressor`` without target
  labels. ``source_only`` / ``adabn`` used to iterate over every row,
  unlabelled target rows included, while the divergence methods iterate over
  the source rows; they now iterate over the labelled rows, like the others.
- E: the adaptation weight (``da_weight="auto"`` against smaller and larger
  values) without target labels.
- F: reference constant predictions (source mean, mean of the labelled rows).
- G: ``method="daregram"`` on the fermentation task, seed by seed (it failed
  with a ``LinAlgError`` on seed 4 in the benchmark run, before commit
  86c07e4 moved its Gram algebra to float64).
- H: spectra: ``standardize_X`` per feature (default), ``"global"`` (one scale
  for all wavelengths) and off, for the source model, fine-tuning on 10
  labels, and ``adabn`` without labels.
- I: ``DomainAdaptRegressor("linear", method="adabn")`` on corn with 0, 10 and
  60 labelled target rows, and a small ridge (``weight_decay``): why it gets
  worse with labels.
- J: the demo's linear probe (Chicago -> Beijing, 40 labels, MLP 64-64 source,
  100 epochs): AdamW against the exact closed-form probe, with and without
  ``l2sp`` -- why ``solver="auto"`` leaves linear probes to the optimizer.

How it is written: every experiment is data, an :class:`Experiment` (its
title, column header, tasks and rows), and :func:`run_experiment` is the one
loop that runs them all: for each task and row, each :class:`Col` cell is
fitted for every seed, scored (target test RMSE) and summarised over the
seeds (``mean ± std``), and the rows become one Markdown table. A cell's fit
is built from :func:`tr` (a ``TransferRegressor``) or :func:`dar` (a
``DomainAdaptRegressor`` on the source + target stack); :func:`fitted_once`
shares a fit (a source model) between the cells that use it, and ``SEED``
stands for the seed in a model's arguments.
"""

import argparse
import sys
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from operator import attrgetter
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import common as C  # noqa: E402
import tasks as T  # noqa: E402

from sktransfer import DomainAdaptRegressor, TransferRegressor  # noqa: E402
from sktransfer.datasets import load_weather  # noqa: E402

EPOCHS = 30
WEATHER = "weather-temp Chicago->Beijing"
CORN = "corn-oil m5->mp5"
FERMENTATION = "fermentation-glucose lab->online"


# ------------------------------------------------------------- the harness
@dataclass
class Run:
    """What a cell's fit sees: one task, one seed, and the fits it shares."""

    task: T.Task
    seed: int
    fitted: dict  # (fit, seed) -> what fitted_once(fit) returned, for this task

    def rows(self, which):
        """Training rows: ``"source"``, or the seed's ``which`` labelled
        target rows (the benchmark's split): ``X, y``."""
        if which == "source":
            return self.task.X_source, self.task.y_source
        idx = C.labelled_rows(self.task, self.seed, which)
        return self.task.X_pool[idx], self.task.y_pool[idx]

    def resolve(self, arg):
        """A model argument: a callable (``SEED``, another cell's fit) is
        called with this run; anything else is used as it is."""
        return arg(self) if callable(arg) else arg

    def make(self, cls, args, kw):
        """``cls(*args, **kw)``, every argument resolved."""
        return cls(
            *map(self.resolve, args), **{k: self.resolve(v) for k, v in kw.items()}
        )


#: in a model's arguments: the run's seed
SEED = attrgetter("seed")


def score(out, task):
    """Target test RMSE of what a fit returned: a fitted model, predictions
    on the test rows, or a constant prediction."""
    pred = out.predict(task.X_test) if hasattr(out, "predict") else out
    return C.rmse(pred, task.y_test)


@dataclass(frozen=True)
class Col:
    """A cell: ``fit(run)`` for each seed, scored, then ``show`` over the seeds.

    ``scored=False``: ``fit`` returns the value itself (a count, seconds, a
    text). ``once``: the value does not depend on the seed (first seed only).
    ``seed``: this one seed instead of the ``--seeds``.
    """

    fit: Callable
    show: Callable = C.stat
    scored: bool = True
    once: bool = False
    seed: int | None = None

    def seeds(self, seeds):
        if self.seed is not None:
            return [self.seed]
        return seeds[:1] if self.once else seeds

    def measure(self, run):
        out = self.fit(run)
        return score(out, run.task) if self.scored else out


def first(values):
    return values[0]


def last(values):
    return values[-1]


def g4(values):
    """A seed-independent number, 4 significant digits."""
    return f"{values[0]:.4g}"


def value(fn, show=first, **kw):
    """A cell that shows ``fn(run)`` as it is (not a RMSE)."""
    return Col(fn, show=show, scored=False, **kw)


@dataclass(frozen=True)
class Experiment:
    """One table: its rows are repeated for each task (in a first ``task``
    column when ``task_column``). A row is a tuple of cells: a :class:`Col`,
    or a constant written as it is."""

    key: str
    title: str
    header: tuple
    tasks: tuple
    rows: list
    task_column: bool = True


def run_experiment(exp, seeds):
    """The one loop: tasks x rows x cells x seeds -> a Markdown section."""
    table = []
    for name in exp.tasks:
        task = TASKS[name]()
        fitted = {}
        for row in exp.rows:
            cells = [
                c.show([c.measure(Run(task, s, fitted)) for s in c.seeds(seeds)])
                if isinstance(c, Col)
                else c
                for c in row
            ]
            table.append([name, *cells] if exp.task_column else cells)
    header = ["task", *exp.header] if exp.task_column else list(exp.header)
    return f"### {exp.key}. {exp.title}\n\n{C.md_table(header, table)}\n"


# ------------------------------------------------------------- the fits
def fitted_once(fit):
    """``fit``, fitted once per task and seed for every cell that uses it."""

    def shared(run):
        key = (shared, run.seed)
        if key not in run.fitted:
            run.fitted[key] = fit(run)
        return run.fitted[key]

    return shared


def tr(rows, *args, **kw):
    """Fit ``TransferRegressor(*args, **kw)`` on ``rows`` (see :meth:`Run.rows`)."""

    def fit(run):
        return run.make(TransferRegressor, args, kw).fit(*run.rows(rows))

    return fit


def dar(n, *args, domain=False, **kw):
    """Fit ``DomainAdaptRegressor(*args, **kw)`` on the source rows and every
    target row, the seed's ``n`` labelled ones with their label; ``domain``:
    pass ``sample_domain`` (otherwise the rows without a label are the target)."""

    def fit(run):
        X, y, sample_domain = C.task_stack(
            run.task, C.labelled_rows(run.task, run.seed, n)
        )
        model = run.make(DomainAdaptRegressor, args, kw)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            if domain:
                return model.fit(X, y, sample_domain=sample_domain)
            return model.fit(X, y)

    return fit


def timed(fit):
    """``fit`` that returns ``(what fit returned, seconds)``."""

    def fit_timed(run):
        start = time.perf_counter()
        out = fit(run)
        return out, time.perf_counter() - start

    return fit_timed


# ---------------------------------------------------------------- A: linear
def _linear_row(label, source_kw, transfer_kw):
    """A linear source model, and linear+l2sp toward it on 10 labels."""
    source = fitted_once(tr("source", "linear", **source_kw))
    return (label, Col(source), Col(tr(10, source, **transfer_kw)))


def _adamw_row(label, **kw):
    """Trained by AdamW (``solver="gradient"``) with ``kw``; l2sp=0.01."""
    kw = dict(kw, solver="gradient", random_state=SEED)
    return _linear_row(label, kw, dict(kw, l2sp=0.01))


def _closed_form_row(l2sp):
    """The library's closed-form solver (solver="auto" for a linear model)."""
    return _linear_row(
        "sktransfer solver='auto' (closed form): source weight_decay="
        f"2/n (Ridge alpha=1); l2sp={l2sp}",
        dict(weight_decay=lambda run: 2 / len(run.task.y_source)),
        dict(l2sp=l2sp),
    )


def _ridge_source(run):
    return make_pipeline(StandardScaler(), Ridge()).fit(*run.rows("source"))


def _l2sp_toward_ridge(ridge, l2sp, n=10):
    """Closed-form L2-SP toward the ridge source (what a converged optimiser
    reaches): argmin sum (a b - y)^2 + lam ||b - b_src||^2 in standardised
    units, intercept included (ADAPT's RegularTransferLR). Our loss is a
    mean, so l2sp corresponds to lam = n * l2sp / 2. Returns predictions."""

    def fit(run):
        task, pipeline = run.task, ridge(run)
        scaler, reg = pipeline[0], pipeline[1]
        mu, sd = task.y_source.mean(), task.y_source.std()
        b_src = np.concatenate([[reg.intercept_ - mu], reg.coef_]) / sd
        X, y = run.rows(n)
        A = np.column_stack([np.ones(len(X)), scaler.transform(X)])
        lam = len(X) * l2sp / 2
        b = np.linalg.solve(
            A.T @ A + lam * np.eye(A.shape[1]),
            A.T @ ((y - mu) / sd) + lam * b_src,
        )
        A_test = np.column_stack(
            [np.ones(len(task.X_test)), scaler.transform(task.X_test)]
        )
        return (A_test @ b) * sd + mu

    return fit


def _ridge_row(ridge, l2sp, n=10):
    """A ridge source (sklearn, closed form) and L2-SP toward it."""
    return (
        f"closed form: Ridge(alpha=1) source; L2-SP l2sp={l2sp} (lam={n * l2sp / 2:g})",
        Col(ridge, show=g4, once=True),
        Col(_l2sp_toward_ridge(ridge, l2sp, n)),
    )


A_ADAMW = {
    "AdamW lr=1e-3, 30 epochs (the default before the closed form)": dict(
        lr=1e-3, max_epochs=EPOCHS
    ),
    "AdamW lr=1e-2, 30 epochs": dict(lr=1e-2, max_epochs=EPOCHS),
    "AdamW lr=1e-3, 300 epochs": dict(lr=1e-3, max_epochs=300),
    "AdamW lr=1e-2, 300 epochs": dict(lr=1e-2, max_epochs=300),
}
RIDGE = fitted_once(_ridge_source)
EXP_A = Experiment(
    "A",
    "backbone='linear': source model and linear+l2sp (10 labels)",
    ("training", "source-only RMSE", "linear+l2sp, 10 labels"),
    (WEATHER, CORN),
    [
        *(_adamw_row(label, **kw) for label, kw in A_ADAMW.items()),
        *(_closed_form_row(l2sp) for l2sp in (0.01, 0.1, 0.2)),
        *(_ridge_row(RIDGE, l2sp) for l2sp in (0.01, 0.2)),
    ],
)


# ------------------------------------------------------------ B: fine-tune
B_SOURCE = fitted_once(tr("source", max_epochs=EPOCHS, random_state=SEED))
B_BUDGETS = {
    "30 epochs (benchmark)": dict(max_epochs=EPOCHS),
    "100 epochs (library default)": dict(max_epochs=100),
    "300 epochs": dict(max_epochs=300),
    "30 epochs, batch_size=8": dict(max_epochs=EPOCHS, batch_size=8),
    "30 epochs, backbone_lr=1.0": dict(max_epochs=EPOCHS, backbone_lr=1.0),
}


def _budget_row(n, label, kw):
    """Fine-tuning B_SOURCE (full, lp_ft) and a target-only model on ``n``
    labels, all with the budget ``kw``."""
    return (
        n,
        label,
        Col(tr(n, B_SOURCE, finetune="full", random_state=SEED, **kw)),
        Col(tr(n, B_SOURCE, finetune="lp_ft", random_state=SEED, **kw)),
        Col(tr(n, random_state=SEED, **kw)),
    )


EXP_B = Experiment(
    "B",
    "fine-tuning budget: optimizer steps on few target labels",
    ("labels", "budget", "TR full", "TR lp_ft", "target-only TR mlp"),
    (WEATHER, "synthetic-concept"),
    [
        *(
            _budget_row(n, label, kw)
            for n in (10, 40)
            for label, kw in B_BUDGETS.items()
        ),
        ("-", "source model as is", Col(B_SOURCE), "", ""),
    ],
)


# --------------------------------------------------------------- C: spectra
def _spectra_row(label, **kw):
    """A source model with ``kw`` and full fine-tuning on 10 labels."""
    kw = {"max_epochs": EPOCHS, **kw}
    source = fitted_once(tr("source", random_state=SEED, **kw))
    # input_shape is not inherited from a fitted backbone: repeat it
    ft = tr(
        10,
        source,
        input_shape=kw.get("input_shape"),
        max_epochs=kw["max_epochs"],
        random_state=SEED,
    )
    return (label, Col(source), Col(ft))


C_SOURCES = {
    "mlp, standardize_X=True (default)": dict(),
    "mlp, standardize_X=False": dict(standardize_X=False),
    "mlp, standardize_X=True, 300 epochs": dict(max_epochs=300),
    "mlp, standardize_X=False, 300 epochs": dict(standardize_X=False, max_epochs=300),
    "cnn1d, input_shape=(1, 700)": dict(backbone="cnn1d", input_shape=(1, 700)),
}
EXP_C = Experiment(
    "C",
    "corn m5->mp5 spectra: input scaling and backbone",
    ("source model", "source-only RMSE", "TR full, 10 labels"),
    (CORN,),
    [_spectra_row(label, **kw) for label, kw in C_SOURCES.items()],
    task_column=False,
)


# ------------------------------------------------------------ D: DA epochs
def _steps_row(method):
    """One fit without labels: its steps per epoch, seconds and RMSE."""
    fit = fitted_once(
        timed(dar(0, method=method, max_epochs=EPOCHS, random_state=SEED))
    )
    return (
        method,
        value(lambda run: len(run.task.y_source), once=True),
        value(lambda run: len(run.task.X_target_unlabelled), once=True),
        value(lambda run: len(fit(run)[0].history_[-1, "batches"]), show=last),
        value(lambda run: fit(run)[1], show=lambda v: f"{np.mean(v):.2f}"),
        Col(lambda run: fit(run)[0]),
    )


EXP_D = Experiment(
    "D",
    "DomainAdaptRegressor, 0 labels: optimizer steps per epoch",
    ("method", "source rows", "target rows", "steps/epoch", "fit s", "RMSE"),
    (FERMENTATION, WEATHER),
    [_steps_row(method) for method in ("source_only", "adabn", "coral")],
)


# ------------------------------------------------------------ E: da_weight
def _weight_row(method, w):
    base = C.default_da_weight(method)
    weight = {"auto": "auto", "auto/10": base / 10, "auto*10": base * 10}.get(w, w)
    fit = dar(0, method=method, da_weight=weight, max_epochs=EPOCHS, random_state=SEED)
    return (method, f"{w} ({weight if w != 'auto' else base})", Col(fit))


EXP_E = Experiment(
    "E",
    "adaptation weight, 0 target labels",
    ("method", "da_weight", "RMSE"),
    (WEATHER, "weather-temp Mumbai->San Diego", "synthetic-instrument"),
    [
        _weight_row(method, w)
        for method in ("coral", "mmd", "dann")
        for w in ("auto", 0.0, "auto/10", "auto*10")
    ],
)


# ------------------------------------------------- F: constant references
EXP_F = Experiment(
    "F",
    "reference: constant predictions (no model)",
    (
        "std of test y",
        "source mean",
        "mean of 10 labelled target rows",
        "mean of the whole target pool",
    ),
    tuple(T.task_builders()),
    [
        (
            value(lambda run: run.task.y_test.std(), show=g4, once=True),
            Col(lambda run: run.task.y_source.mean(), show=g4, once=True),
            Col(lambda run: run.rows(10)[1].mean()),
            Col(lambda run: run.task.y_pool.mean(), show=g4, once=True),
        )
    ],
)


# --------------------------------------------- G: DARE-GRAM failure check
def _daregram_result(n):
    """The RMSE of one fit, or the exception it raised."""
    fit = dar(n, method="daregram", max_epochs=EPOCHS, random_state=SEED, domain=True)

    def result(run):
        try:
            return f"ok, RMSE {score(fit(run), run.task):.4g}"
        except Exception as exc:
            return f"{type(exc).__name__}: {str(exc)[:90]}"

    return result


EXP_G = Experiment(
    "G",
    "DomainAdaptRegressor(method='daregram') on the fermentation task, "
    "seeds 0-4 (21 source rows, 128 features)",
    ("labels", "seed", "result"),
    (FERMENTATION,),
    [(n, s, value(_daregram_result(n), seed=s)) for n in (0, 10) for s in range(5)],
    task_column=False,
)


# ---------------------------------------------------- H: spectra scaling
def _scaling_row(mode):
    kw = dict(max_epochs=EPOCHS, random_state=SEED)
    source = fitted_once(tr("source", standardize_X=mode, **kw))
    return (
        {True: "per feature (default)", False: "off"}.get(mode, mode),
        Col(source),
        Col(tr(10, source, **kw)),
        Col(dar(0, method="adabn", standardize_X=mode, **kw)),
    )


EXP_H = Experiment(
    "H",
    "spectra: standardize_X",
    ("standardize_X", "source-only", "TR full, 10 labels", "adabn, 0"),
    (CORN, "corn-oil m5->mp6", FERMENTATION),
    [_scaling_row(mode) for mode in (True, "global", False)],
)


# --------------------------------------------- I: linear adabn with labels
EXP_I = Experiment(
    "I",
    "corn m5->mp5: DomainAdaptRegressor('linear', method='adabn') with "
    "labelled target rows",
    ("target labels", "weight_decay", "RMSE"),
    (CORN,),
    [
        (n, wd, Col(dar(n, "linear", method="adabn", weight_decay=wd, domain=True)))
        for n in (0, 10, 60)
        for wd in (0.0, 1e-4, 1e-3, 1e-2)
    ],
    task_column=False,
)


# ------------------------------------------- J: closed-form linear probe
DEMO = "demo: Chicago->Beijing, first 40 days labelled"


def _demo_task():
    """The demo's split: Chicago (both years) -> Beijing; its first 40 days
    labelled, its second year the test rows."""
    Xs, ys = load_weather("Chicago", "avg_temp")
    Xt, yt = load_weather("Beijing", "avg_temp")
    return T.Task(DEMO, "weather", Xs, ys, Xt[:40], yt[:40], Xt[365:], yt[365:])


J_SOURCE = fitted_once(
    tr(
        "source",
        max_epochs=100,
        backbone_params={"hidden_sizes": (64, 64)},
        random_state=SEED,
    )
)
J_PROBES = {
    "AdamW, 100 epochs (solver='auto')": dict(),
    "closed form, l2sp=0": dict(solver="closed_form"),
    "closed form, l2sp=0.1": dict(solver="closed_form", l2sp=0.1),
    "closed form, l2sp=1": dict(solver="closed_form", l2sp=1.0),
}
EXP_J = Experiment(
    "J",
    "the demo's linear probe: Chicago -> Beijing, 40 labels, MLP 64-64",
    ("probe", "RMSE on Beijing's second year"),
    (DEMO,),
    [
        (
            label,
            Col(
                tr(
                    40,  # the whole pool: the first 40 days, in order
                    J_SOURCE,
                    finetune="linear_probe",
                    max_epochs=100,
                    random_state=SEED,
                    **kw,
                )
            ),
        )
        for label, kw in J_PROBES.items()
    ],
    task_column=False,
)

TASKS = {**T.task_builders(), DEMO: _demo_task}
EXPERIMENTS = {
    exp.key: exp
    for exp in (EXP_A, EXP_B, EXP_C, EXP_D, EXP_E, EXP_F, EXP_G, EXP_H, EXP_I, EXP_J)
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument(
        "--only", nargs="*", default=list(EXPERIMENTS), choices=list(EXPERIMENTS)
    )
    parser.add_argument("--out", default=str(HERE / "results" / "investigation.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    parts = [
        "# Investigation: default settings on the benchmark's tasks",
        "",
        f"Command: `python benchmarks/accuracy/investigate.py --seeds {args.seeds}` "
        "(one process, one torch thread; `--only` reruns some sections).",
        f"Target test RMSE, mean ± std over {len(seeds)} seeds; benchmark splits.",
        "",
    ]
    for key in args.only:
        start = time.perf_counter()
        parts.append(run_experiment(EXPERIMENTS[key], seeds))
        print(f"experiment {key}: {time.perf_counter() - start:.0f} s", flush=True)
        print(parts[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = {p[4] if p.startswith("### ") else "": p for p in parts[5:]}
    if out.exists() and args.only != list(EXPERIMENTS):
        # keep the other experiments' sections, in letter order
        for old in out.read_text().split("\n### ")[1:]:
            sections.setdefault(old[0], "### " + old)
    body = [sections[k].rstrip("\n") + "\n" for k in sorted(sections)]
    out.write_text("\n".join(parts[:5] + body))


if __name__ == "__main__":
    main()
