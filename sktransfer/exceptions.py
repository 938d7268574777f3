"""Exceptions the estimators raise besides ValueError and TypeError."""

__all__ = ["TrainingDivergedError"]


class TrainingDivergedError(FloatingPointError):
    """Training produced a non-finite loss; raised from ``fit``.

    The message names the epoch and the remedies (a lower ``lr``,
    ``standardize_y=True``, a lower ``weight_decay``, ``grad_clip``); the
    estimator is left as it was before the call.
    """
