"""How often ImportanceWeightedScorer picks the better of source_only and adabn.

On the synthetic instrument shift (each target feature a gain and offset of
the source's), per-domain statistics (adabn) are right. For each backbone
(linear, MLP) and 6 seeds, both methods are fitted on 300 source rows and 150
unlabelled target rows, scored by the scorer under each ``shift`` assumption,
and checked against their RMSE on 150 held-out labelled target rows.

    python benchmarks/iws_shift.py        # about 1 minute on 2 cores
"""

import warnings

import numpy as np

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift
from sktransfer.model_selection import ImportanceWeightedScorer

SEEDS = range(6)
SCORERS = {
    "covariate": ImportanceWeightedScorer(),
    "per_domain": ImportanceWeightedScorer(shift="per_domain"),
    "per_domain, n_se=0": ImportanceWeightedScorer(shift="per_domain", n_se=0),
}


def one_fit(backbone, seed):
    Xs, ys, Xt, yt = make_domain_shift(300, 300, shift="instrument", random_state=seed)
    X = np.vstack([Xs, Xt[:150]])
    y = np.r_[ys, np.full(150, np.nan)]
    errors, scores = {}, {name: {} for name in SCORERS}
    for method in ("source_only", "adabn"):
        est = DomainAdaptRegressor(
            backbone, method=method, max_epochs=30, random_state=0
        ).fit(X, y)
        errors[method] = np.sqrt(np.mean((est.predict(Xt[150:]) - yt[150:]) ** 2))
        for name, scorer in SCORERS.items():
            scores[name][method] = scorer(est, X, y)
    best = min(errors, key=errors.get)
    return {name: max(s, key=s.get) == best for name, s in scores.items()}


def main():
    warnings.simplefilter("ignore")
    right = {name: 0 for name in SCORERS}
    n = 0
    for backbone in ("linear", "mlp"):
        for seed in SEEDS:
            for name, ok in one_fit(backbone, seed).items():
                right[name] += ok
            n += 1
    print("| scorer | picks the better of source_only and adabn |")
    print("|---|---|")
    for name, count in right.items():
        print(f"| {name} | {count} of {n} fits |")


if __name__ == "__main__":
    main()
