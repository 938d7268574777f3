"""Helpers shared by the estimators and the self-supervised pre-trainer.

Building a backbone (the registry call, the dry run that finds its width,
the per-sample shapes), the optimizers by name, and the data-validation
messages that name the argument and the fix. Nothing here knows an
estimator, so :mod:`sktransfer._base` and :mod:`sktransfer.pretraining` both
import it.
"""

import contextlib
import inspect
from dataclasses import dataclass
from numbers import Integral

import numpy as np
import torch

from sktransfer.backbones import get_backbone_factory

OPTIMIZERS = {
    "adamw": torch.optim.AdamW,
    "adam": torch.optim.Adam,
    "sgd": torch.optim.SGD,
}


@dataclass(frozen=True)
class Shapes:
    """``sample``: per-sample shape of ``X``; ``input``: what the backbone gets."""

    sample: tuple
    input: tuple

    @property
    def reshape_to(self):
        """The shape 2-D rows are reshaped to, or None when no reshape is needed."""
        return None if self.input == self.sample else self.input


_NOT_NUMBERS = (
    "{name} holds values that are not numbers ({msg}); convert {name} to "
    "numbers first (encode text and categories, for example with "
    "sklearn.preprocessing.OneHotEncoder in a pipeline)."
)
#: scikit-learn data-validation messages that do not name the argument or the
#: fix: (what the message contains, how it is rewritten)
_DATA_ERRORS = (
    (
        "Complex data not supported",
        "{name} holds complex numbers (Complex data not supported); pass real "
        "values, for example {name}.real or np.abs({name}).",
    ),
    (
        "could not convert",
        _NOT_NUMBERS,
    ),
    (
        "argument must be a string or a",  # float() of a dict, a list...
        _NOT_NUMBERS,
    ),
    (
        "contains infinity",
        "{msg} Replace or drop the infinite values of {name} (numpy.isfinite "
        "finds them).",
    ),
    ("Found array with", "{name}: {msg}"),
    (
        "sample_weight contains NaN",
        "{msg} Give every row a finite, non-negative weight.",
    ),
)


@contextlib.contextmanager
def named_errors(name):
    """Re-raise scikit-learn's data-validation errors naming ``name`` and the
    fix (scikit-learn's wording stays in the message, so matches on it hold)."""
    try:
        yield
    except (ValueError, TypeError) as exc:
        msg = str(exc)
        kind = TypeError if isinstance(exc, TypeError) else ValueError
        for pattern, template in _DATA_ERRORS:
            if pattern in msg:
                raise kind(template.format(name=name, msg=msg)) from exc
        raise


def call_factory(name, input_shape, params):
    """Build the registry backbone ``name``; blame what failed, clearly."""
    factory = get_backbone_factory(name)
    try:
        inspect.signature(factory).bind(input_shape, **params)
    except TypeError as exc:
        raise ValueError(
            f"backbone_params={params!r} are not accepted by the {name!r} "
            f"backbone: {exc}. See the factory's signature."
        ) from exc
    except ValueError:  # no signature (a builtin): let the call tell
        pass
    try:
        backbone = factory(input_shape, **params)
    except Exception as exc:
        # keep the kind of error (a wrong type stays a TypeError)
        kind = type(exc) if isinstance(exc, (TypeError, ValueError)) else ValueError
        raise kind(
            f"The {name!r} backbone could not be built for input_shape="
            f"{input_shape} with backbone_params={params!r}: {exc}"
        ) from exc
    if not isinstance(backbone, torch.nn.Module):
        raise TypeError(
            f"The factory registered as backbone {name!r} returned a "
            f"{type(backbone).__name__}, not a torch.nn.Module; a factory must "
            "return a module that maps inputs to features."
        )
    return backbone


def dry_run(module, shape, what):
    """Output shape of ``module`` on a zero batch of two samples of ``shape``."""
    was_training = module.training
    module.eval()
    try:
        with torch.no_grad():
            out = module(torch.zeros((2, *shape)))
    except Exception as exc:
        raise ValueError(
            f"The {what} could not process a batch of shape {(2, *shape)}: "
            f"{exc}. Check backbone, backbone_params and input_shape."
        ) from exc
    finally:
        module.train(was_training)
    if not isinstance(out, torch.Tensor) or out.dim() < 2 or out.shape[0] != 2:
        raise ValueError(
            f"The {what} must return a tensor of shape (n, d); for a batch of 2 "
            f"it returned {getattr(out, 'shape', type(out).__name__)}."
        )
    return out.shape


def resolve_shapes(X, input_shape, inherited=None):
    """The :class:`Shapes` of ``X`` for the parameter ``input_shape``.

    Parameters
    ----------
    X : ndarray of shape (n_samples, ...)
        Validated inputs.
    input_shape : tuple of int or None
        The ``input_shape`` parameter.
    inherited : Shapes or None, default=None
        The shapes of a fitted model used as backbone: its ``input_shape`` is
        inherited when ``input_shape`` is None and its samples have the shape
        of ``X``'s.

    Returns
    -------
    Shapes
    """
    sample = tuple(X.shape[1:])
    if X.ndim > 2:
        if input_shape is not None and tuple(input_shape) != sample:
            raise ValueError(
                f"input_shape={input_shape} does not match the per-sample "
                f"shape {sample} of the 3-D X; set input_shape=None."
            )
        return Shapes(sample, sample)
    if input_shape is None:
        if inherited is not None and inherited.sample == sample:
            return Shapes(sample, inherited.input)  # inherit input_shape
        return Shapes(sample, sample)
    shape = tuple(int(s) for s in input_shape)
    if int(np.prod(shape)) != X.shape[1]:
        raise ValueError(
            f"input_shape={input_shape} holds {int(np.prod(shape))} values "
            f"per sample but X has {X.shape[1]} features; choose a shape whose "
            "product is the number of features."
        )
    return Shapes(sample, shape)


def check_input_shape(input_shape):
    """Refuse an ``input_shape`` that is not a tuple of positive ints."""
    if input_shape is not None and not all(
        isinstance(s, Integral) and s > 0 for s in input_shape
    ):
        raise ValueError(
            f"input_shape must be a tuple of positive ints such as (channels, "
            f"length); got {input_shape!r}."
        )


def check_optimizer(optimizer):
    """Refuse an optimizer class that cannot train a network's dense weights."""
    if isinstance(optimizer, type) and (
        not issubclass(optimizer, torch.optim.Optimizer)
        or optimizer is torch.optim.Optimizer
        or issubclass(optimizer, torch.optim.SparseAdam)
    ):
        raise ValueError(
            f"optimizer={optimizer.__name__} is not an optimizer for the "
            "dense gradients of a network (a torch.optim.Optimizer subclass "
            f"such as AdamW); use one of {sorted(OPTIMIZERS)} or such a class."
        )


def _resettable(module):
    """Submodules that reset their own parameters, and whether they cover
    every parameter of ``module``."""
    resets = [
        m for m in module.modules() if callable(getattr(m, "reset_parameters", None))
    ]
    covered = {id(p) for m in resets for p in m.parameters(recurse=False)}
    return resets, all(id(p) in covered for p in module.parameters())


def can_reinitialise(module):
    """Whether :func:`reinitialise` gives every parameter of ``module`` a
    fresh value (each parameter belongs to a module with
    ``reset_parameters``, as in ``torch.nn``'s layers)."""
    return _resettable(module)[1]


def reinitialise(module):
    """Fresh parameters (and batch-norm statistics) for ``module``, in place,
    from torch's current random state: the same network, untrained."""
    for m in _resettable(module)[0]:
        m.reset_parameters()
    for m in module.modules():
        if callable(getattr(m, "reset_running_stats", None)):
            m.reset_running_stats()
    return module
