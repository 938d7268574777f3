"""sktransfer: transfer learning and domain adaptation for regression.

scikit-learn estimators on PyTorch through skorch.
"""

from sktransfer._transfer import TransferRegressor

__version__ = "0.1.0"

__all__ = ["TransferRegressor", "__version__"]
