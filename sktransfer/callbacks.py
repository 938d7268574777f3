"""Deprecated: the training callbacks are internal (``sktransfer._callbacks``).

The names below still resolve, with a ``FutureWarning``, until sktransfer 0.3.
"""

from sktransfer._callbacks import DAWeightSchedule as _DAWeightSchedule
from sktransfer._callbacks import LossTermRecorder as _LossTermRecorder
from sktransfer._callbacks import UnfreezeSchedule as _UnfreezeSchedule
from sktransfer._callbacks import dann_ramp as _dann_ramp
from sktransfer._warnings import moved

__getattr__ = moved(
    "sktransfer.callbacks",
    {
        name: (
            lambda obj=obj: obj,
            "the estimators' parameters (the callbacks are internal)",
        )
        for name, obj in (
            ("UnfreezeSchedule", _UnfreezeSchedule),
            ("DAWeightSchedule", _DAWeightSchedule),
            ("LossTermRecorder", _LossTermRecorder),
            ("dann_ramp", _dann_ramp),
        )
    },
)
