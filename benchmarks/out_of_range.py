"""Inputs outside the training range: the warning and ``clip_inputs``.

Run: ``python benchmarks/out_of_range.py`` (about a minute; ``--seeds N``).

For each task of the accuracy suite it fits the source-only models a user
would start from -- ``TransferRegressor()`` (the default MLP, 30 epochs) and
``TransferRegressor("linear")`` -- on the source rows, and predicts the target
test rows with ``clip_inputs=False`` (the default) and ``True``. It prints the
target test RMSE (mean over seeds), the share of test rows with a feature more
than 3 training standard deviations outside the training range (what makes
``predict`` warn), and the largest such distance.
"""

import argparse
import copy
import sys
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent / "accuracy"))

import common as C
from tasks import task_builders

from sktransfer import TransferRegressor
from sktransfer._scaling import scale_inputs

MODELS = {
    "mlp": lambda seed: TransferRegressor(max_epochs=30, random_state=seed),
    "linear": lambda seed: TransferRegressor("linear"),
}


def _far(est, X):
    """Per row: how far (scaled units) its furthest feature lies outside."""
    z = scale_inputs(X, est.input_mean_, est.input_scale_).reshape(len(X), -1)
    low, high = (v.reshape(-1) for v in est.input_range_)
    return np.maximum(z - high, low - z).max(axis=1)


def run(seeds):
    rows = []
    for name, build in task_builders().items():
        task = build()
        for label, make in MODELS.items():
            plain, clipped = [], []
            for seed in range(seeds if label == "mlp" else 1):
                est = make(seed).fit(task.X_source, task.y_source)
                plain.append(C.rmse(est.predict(task.X_test), task.y_test))
                bounded = copy.deepcopy(est)
                bounded.clip_inputs_ = True  # the same model, clipped
                clipped.append(C.rmse(bounded.predict(task.X_test), task.y_test))
            far = _far(est, task.X_test)
            rows.append(
                [
                    name,
                    label,
                    f"{np.mean(plain):.4g}",
                    f"{np.mean(clipped):.4g}",
                    f"{np.mean(far > 3.0):.0%}",
                    f"{far.max():.1f}",
                ]
            )
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    args = parser.parse_args(argv)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        rows = run(args.seeds)
    header = [
        "task",
        "source model",
        "RMSE",
        "RMSE clip_inputs",
        "rows > 3 sd",
        "max sd",
    ]
    print(C.md_table(header, rows))
    print(f"\n{args.seeds} seeds for the MLP (the linear model is exact)")


if __name__ == "__main__":
    main()
