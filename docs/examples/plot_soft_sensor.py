"""
A soft sensor moved to a new analyser
=====================================

A soft sensor predicts a quality variable from eight process measurements.
It was trained on one plant (the source); a second plant measures the same
process through analysers with other gains and offsets (the target, a
synthetic instrument shift from ``make_domain_shift``). We adapt with the
second plant's unlabelled rows, look at the backbone's features before and
after, and measure how the target error changes as target labels arrive.
"""

# %%
# Data: source rows, unlabelled target rows, held-out target rows
# ---------------------------------------------------------------
import matplotlib.pyplot as plt
import numpy as np

from sktransfer import DomainAdaptRegressor
from sktransfer.datasets import make_domain_shift
from sktransfer.plotting import DomainShiftDisplay, LabelCurveDisplay

X_source, y_source, X_target, y_target = make_domain_shift(
    600, 400, shift="instrument", random_state=0
)
X_pool, y_pool = X_target[:200], y_target[:200]
X_test, y_test = X_target[200:], y_target[200:]
X = np.vstack([X_source, X_pool])
y = np.concatenate([y_source, np.full(len(X_pool), np.nan)])
domain = np.r_[np.zeros(len(X_source), int), -np.ones(len(X_pool), int)]

# %%
# Features before and after adaptation
# ------------------------------------
# A source-only model sees the target rows apart from the source's;
# per-domain normalisation (``adabn``) lines them up.
settings = dict(max_epochs=30, random_state=0)
source_only = DomainAdaptRegressor(method="source_only", **settings)
source_only.fit(X, y, domain)
adabn = DomainAdaptRegressor(method="adabn", **settings).fit(X, y, domain)
DomainShiftDisplay.from_estimator(adabn, X, domain, before=source_only)

# %%
# Target error against the number of target labels
# ------------------------------------------------
# Each point is a fit with that many labelled target rows; the unlabelled
# ones still take part in the adaptation. One seed here: use several
# (``seeds=``) before reading differences between the points.
methods = {
    name: DomainAdaptRegressor(method=name, max_epochs=20)
    for name in ("source_only", "adabn")
}
LabelCurveDisplay.from_estimator(
    methods, X_source, y_source, X_pool, y_pool, X_test, y_test, n_labels=(0, 10, 40)
)
plt.show()
