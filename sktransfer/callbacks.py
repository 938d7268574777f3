"""Deprecated: the training callbacks are internal (``sktransfer._callbacks``).

The names below still resolve, with a ``FutureWarning``, until sktransfer 0.3.
"""

from sktransfer import _callbacks
from sktransfer._warnings import moved

__getattr__ = moved(
    "sktransfer.callbacks",
    {
        name: (
            lambda name=name: getattr(_callbacks, name),
            "the estimators' parameters (the callbacks are internal)",
        )
        for name in (
            "UnfreezeSchedule",
            "DAWeightSchedule",
            "LossTermRecorder",
            "dann_ramp",
        )
    },
)
