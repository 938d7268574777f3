"""Gaussian heads: does the predicted standard deviation follow the noise?

A toy with heteroscedastic noise: ``x ~ U(0, 1)``, ``y = sin(3 x) + e`` with
``e ~ N(0, (0.05 + x)^2)``, 400 training rows, 2000 test rows, MLP 32-32, 60
epochs. For one ``TransferRegressor(head="gaussian")``, a five-member
``TransferEnsemble`` of them (the mixture of their Gaussians) and the spread of
five squared-error members, it prints the coverage of ``mean ± 1.96 std`` on
the test rows, the mean Gaussian negative log-likelihood and the Spearman
correlation of the predicted std with the true noise std. Quoted in the user
guide, section 7.

    python benchmarks/gaussian_head.py     # about half a minute on 2 cores
"""

import warnings

import numpy as np
from scipy.stats import spearmanr

from sktransfer import TransferEnsemble, TransferRegressor

SETTINGS = dict(backbone_params={"hidden_sizes": (32, 32)}, max_epochs=60)


def toy(n, rng):
    x = rng.uniform(0, 1, size=(n, 1))
    noise = 0.05 + x[:, 0]
    return x, np.sin(3 * x[:, 0]) + noise * rng.normal(size=n), noise


def scores(mean, std, y, noise):
    lower, upper = mean - 1.96 * std, mean + 1.96 * std
    nll = 0.5 * np.log(2 * np.pi * std**2) + (y - mean) ** 2 / (2 * std**2)
    return (
        float(((y >= lower) & (y <= upper)).mean()),
        float(nll.mean()),
        float(spearmanr(std, noise).statistic),
    )


def main():
    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X, y, _ = toy(400, rng)
    X_test, y_test, noise = toy(2000, rng)
    models = {
        "one Gaussian model": TransferRegressor(
            head="gaussian", random_state=0, **SETTINGS
        ),
        "five Gaussian members (mixture)": TransferEnsemble(
            TransferRegressor(head="gaussian", **SETTINGS), n_members=5, random_state=0
        ),
        "spread of five squared-error members": TransferEnsemble(
            TransferRegressor(**SETTINGS), n_members=5, random_state=0
        ),
    }
    print("| model | coverage of mean ± 1.96 std | mean NLL | Spearman(std, noise) |")
    print("|---|---|---|---|")
    for name, model in models.items():
        mean, std = model.fit(X, y).predict(X_test, return_std=True)
        cover, nll, rho = scores(mean, np.maximum(std, 1e-12), y_test, noise)
        print(f"| {name} | {cover:.1%} | {nll:.2f} | {rho:.3f} |")


if __name__ == "__main__":
    main()
