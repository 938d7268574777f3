"""Warnings that point at the user's call, not at library internals."""

import os
import sys
import warnings

import sklearn

_SKIP = (
    os.path.dirname(os.path.abspath(__file__)),
    os.path.join(os.path.dirname(os.path.abspath(sklearn.__file__)), "base.py"),
)


def warn(message, category=UserWarning):
    """``warnings.warn`` with the stack level of the first frame outside
    sktransfer (and outside scikit-learn's ``fit`` wrapper)."""
    level, frame = 2, sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(
        _SKIP
    ):
        frame = frame.f_back
        level += 1
    warnings.warn(message, category, stacklevel=level)
