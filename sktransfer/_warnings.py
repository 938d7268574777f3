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


def moved(module_name, names):
    """A module ``__getattr__`` for names that moved: warn, then hand them over.

    Parameters
    ----------
    module_name : str
        The module the names used to be public in.
    names : dict of str -> (callable, str)
        Old name -> (a function returning the object, what to use instead).
    """

    def __getattr__(name):
        if name not in names:
            raise AttributeError(f"module {module_name!r} has no attribute {name!r}")
        get, instead = names[name]
        warn(
            f"{module_name}.{name} is deprecated and will be removed in sktransfer "
            f"0.3; use {instead}.",
            FutureWarning,
        )
        return get()

    return __getattr__
