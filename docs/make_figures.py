"""Draw the figures of docs/images/ with ``sktransfer.plotting``.

A synthetic instrument shift (``make_domain_shift``: the target's inputs are
the source's through another instrument's gain and offset), fitted with
``source_only`` and ``adabn``. Offline, CPU, a few minutes (most of it
the label curve's 24 fits)::

    pip install -e ".[plot]"
    python docs/make_figures.py            # writes docs/images/*.png

The numbers in the figures are those of this seed and these settings, not a
benchmark (see docs/benchmarks.md for measurements).
"""

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift
from sktransfer.plotting import (
    DomainShiftDisplay,
    LabelCurveDisplay,
    ParityDisplay,
    TrainingHistoryDisplay,
)

IMAGES = Path(__file__).resolve().parent / "images"
SETTINGS = dict(max_epochs=30, early_stopping=True, random_state=0)


def shift_data(seed=0):
    """Source rows, a target pool, held-out target rows; stacked for fit."""
    Xs, ys, Xt, yt = make_domain_shift(600, 400, shift="instrument", random_state=seed)
    pool, test = (Xt[:200], yt[:200]), (Xt[200:], yt[200:])
    X = np.vstack([Xs, pool[0]])
    y = np.concatenate([ys, np.full(len(pool[0]), np.nan)])
    domain = np.r_[np.zeros(len(Xs), int), -np.ones(len(pool[0]), int)]
    return (Xs, ys), pool, test, (X, y, domain)


def save(display, name, out):
    path = out / name
    display.figure_.savefig(path, dpi=100)
    plt.close(display.figure_)
    return path


def main(out=IMAGES, n_seeds=3):
    out.mkdir(parents=True, exist_ok=True)
    (Xs, ys), pool, test, (X, y, domain) = shift_data()
    fits = {
        method: DomainAdaptRegressor(method=method, **SETTINGS).fit(X, y, domain)
        for method in ("source_only", "adabn", "coral")
    }
    written = [
        save(
            DomainShiftDisplay.from_estimator(
                fits["adabn"], X, domain, before=fits["source_only"]
            ),
            "domain_shift.png",
            out,
        ),
        save(TrainingHistoryDisplay.from_estimator(fits["coral"]), "history.png", out),
    ]
    X_eval = np.vstack([Xs, test[0]])
    y_eval = np.concatenate([ys, test[1]])
    d_eval = np.r_[np.zeros(len(Xs), int), -np.ones(len(test[0]), int)]
    parity = ParityDisplay.from_estimator(
        fits["adabn"], X_eval, y_eval, sample_domain=d_eval
    )
    written.append(save(parity, "parity.png", out))
    curve = LabelCurveDisplay.from_estimator(
        {
            m: DomainAdaptRegressor(method=m, **SETTINGS)
            for m in ("source_only", "adabn")
        },
        Xs,
        ys,
        *pool,
        *test,
        n_labels=(0, 10, 20, 40),
        seeds=tuple(range(n_seeds)),
    )
    written.append(save(curve, "label_curve.png", out))
    return written


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=IMAGES)
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args()
    for path in main(args.out, args.seeds):
        print(path)
