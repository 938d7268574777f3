"""sktransfer: transfer learning and domain adaptation for regression.

scikit-learn estimators on PyTorch through skorch.
"""

from sktransfer._domain_adapt import DomainAdaptRegressor
from sktransfer._transfer import TransferRegressor
from sktransfer.conformal import ShiftConformalRegressor
from sktransfer.ensemble import TransferEnsemble
from sktransfer.pretraining import SelfSupervisedPretrainer

__version__ = "0.1.0"

__all__ = [
    "DomainAdaptRegressor",
    "SelfSupervisedPretrainer",
    "ShiftConformalRegressor",
    "TransferEnsemble",
    "TransferRegressor",
    "__version__",
]
