"""One registry of backbone factories, keyed by name."""

import inspect
from collections.abc import Callable

import torch

from sktransfer._registry import Registry

_REGISTRY = Registry(
    "backbone",
    "backbone",
    "sktransfer.backbones.register_backbone",
    alternatives=", pass a torch.nn.Module or a fitted sktransfer estimator",
)


def register_backbone(
    name: str, factory: Callable[..., torch.nn.Module], *, overwrite: bool = False
) -> Callable[..., torch.nn.Module]:
    """Register a backbone factory under ``name``.

    Parameters
    ----------
    name : str
        Registry name, used as ``backbone=name`` in the estimators.
    factory : callable
        Called as ``factory(input_shape, **backbone_params)`` with the
        per-sample input shape (a tuple); returns a ``torch.nn.Module`` that
        maps a batch of shape ``(n, *input_shape)`` to features ``(n, d)``.
    overwrite : bool, default=False
        Replace an existing entry of the same name.

    Returns
    -------
    factory : callable
        The factory, unchanged, so this can be used as a decorator helper.

    Raises
    ------
    TypeError
        If ``name`` is not a non-empty str, ``factory`` is not callable, is a
        module instance rather than a function that builds one, or cannot take
        the input shape as its first positional argument.
    ValueError
        If ``name`` is taken and ``overwrite`` is False.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import register_backbone, list_backbones
    >>> def tiny(input_shape, width=4):
    ...     return torch.nn.Sequential(torch.nn.Flatten(),
    ...                                torch.nn.LazyLinear(width), torch.nn.Tanh())
    >>> _ = register_backbone("tiny_doc", tiny, overwrite=True)
    >>> "tiny_doc" in list_backbones()
    True
    """
    if not callable(factory):
        raise TypeError(f"factory must be callable, got {type(factory).__name__}.")
    if isinstance(factory, torch.nn.Module):
        raise TypeError(
            f"factory must build a backbone, not be one: got a "
            f"{type(factory).__name__} instance. Register a function "
            "factory(input_shape, **backbone_params) that returns a new module, or "
            "pass the module itself as backbone= to the estimator."
        )
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):  # some builtins have no signature
        signature = None
    if signature is not None:
        try:
            signature.bind_partial(())
        except TypeError as exc:
            raise TypeError(
                f"factory {getattr(factory, '__name__', factory)!r} cannot be "
                f"called as factory(input_shape, **backbone_params) ({exc}); its "
                "first positional parameter must take the per-sample input shape "
                "and the backbone_params must be keyword arguments."
            ) from None
    if not isinstance(overwrite, bool):
        raise TypeError(
            f"overwrite must be True or False; got {overwrite!r} of type "
            f"{type(overwrite).__name__}."
        )
    return _REGISTRY.add(name, factory, overwrite)


def list_backbones() -> list[str]:
    """Return the sorted names of all registered backbones."""
    return sorted(_REGISTRY.names())


def get_backbone_factory(name: str) -> Callable[..., torch.nn.Module]:
    """Return the factory registered under ``name``.

    Parameters
    ----------
    name : str
        A registered backbone name.

    Returns
    -------
    factory : callable
        Called as ``factory(input_shape, **backbone_params)``.

    Raises
    ------
    ValueError
        If no backbone of that name is registered; the message lists the
        registered names.
    """
    return _REGISTRY.get(name)
