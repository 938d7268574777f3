"""The one weights loader: safetensors first, ``torch.load(weights_only=True)`` else.

Every loaded tensor is checked: weights must be finite, and a tensor loaded into
a floating-point entry must itself be floating point (an integer, boolean or
complex tensor is refused rather than silently cast).
"""

import os
from collections.abc import Mapping

import torch
from safetensors.torch import load_file

_PREFIXES = ("module.", "backbone.", "net_.module_.backbone.")

_HOW_TO_SAVE = (
    "write weights with safetensors.torch.save_file(module.state_dict(), path) "
    "(a '.safetensors' file) or torch.save(module.state_dict(), path)."
)


def _listed(keys, limit=10):
    """``keys`` for a message: the first ``limit``, then how many more."""
    keys = list(keys)
    shown = repr(keys[:limit])
    if len(keys) > limit:
        shown += f" and {len(keys) - limit} more"
    return shown


def _kind(tensor):
    """The dtype family of ``tensor``: float, complex, bool or int."""
    if tensor.is_floating_point():
        return "floating-point"
    if tensor.is_complex():
        return "complex"
    if tensor.dtype == torch.bool:
        return "boolean"
    return "integer"


def _non_finite(named_tensors):
    """Names of the floating-point or complex tensors holding NaN or inf."""
    bad = []
    for name, tensor in named_tensors:
        if torch.nn.parameter.is_lazy(tensor) or tensor.device.type == "meta":
            continue  # no values yet
        if (tensor.is_floating_point() or tensor.is_complex()) and not bool(
            torch.isfinite(tensor).all()
        ):
            bad.append(name)
    return bad


def _check_finite_parameters(module, what):
    """Raise a ValueError naming ``module``'s parameters or buffers with NaN/inf.

    For user-supplied modules (a ``torch.nn.Module`` backbone or head): training
    from non-finite weights gives NaN predictions, so it is refused up front.
    Uninitialised (lazy) parameters are skipped.

    Parameters
    ----------
    module : torch.nn.Module
        The module to check.
    what : str
        How to name the module in the message, e.g. ``"backbone"``.

    Returns
    -------
    module : torch.nn.Module
        ``module``, unchanged.

    Raises
    ------
    ValueError
        If a floating-point parameter or buffer holds NaN or infinite values.
    """
    bad = _non_finite(
        [*module.named_parameters(), *module.named_buffers()]  # names, tensors
    )
    if bad:
        raise ValueError(
            f"{what} has NaN or infinite values in {_listed(bad)}. Pass a module "
            "with finite parameters and buffers (re-initialise it, or load it "
            "from a checkpoint saved before training diverged)."
        )
    return module


def read_state_dict(weights) -> dict:
    """Read a state dict from a path or mapping without executing pickled code.

    Parameters
    ----------
    weights : str, os.PathLike or mapping
        A ``.safetensors`` file, a file written by ``torch.save(state_dict)``
        (loaded with ``weights_only=True``), or a mapping of tensors.

    Returns
    -------
    state_dict : dict of str -> torch.Tensor

    Raises
    ------
    TypeError
        If ``weights`` is neither a path nor a mapping.
    ValueError
        If the file is missing or unreadable (a truncated or corrupt
        ``.safetensors`` file included), does not hold a state dict, or holds
        keys that are not str, values that are not tensors, or NaN or infinite
        values.
    """
    if isinstance(weights, Mapping):
        return _checked(dict(weights), "weights")
    if isinstance(weights, str | os.PathLike):
        path = os.fspath(weights)
        return _checked(_read_file(path), f"weights={path!r}")
    raise TypeError(
        "weights must be None, a path to a .safetensors or torch.save file, or "
        f"a state-dict mapping; got {type(weights).__name__}."
    )


def _read_file(path):
    """The mapping stored in a ``.safetensors`` or ``torch.save`` file."""
    if not os.path.isfile(path):
        raise ValueError(
            f"weights={path!r} is not an existing file. Pass the path of a "
            "'.safetensors' file or of a torch.save(state_dict) file."
        )
    if path.endswith(".safetensors"):
        try:
            return load_file(path, device="cpu")
        except Exception as exc:  # SafetensorError, OSError, ...
            raise ValueError(
                f"weights={path!r} is not a valid .safetensors file ({exc}); "
                "it may be truncated, corrupt or in another format; " + _HOW_TO_SAVE
            ) from exc
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # pickle errors come in many types
        raise ValueError(
            f"weights={path!r} could not be read as a state dict with "
            f"torch.load(weights_only=True): {exc}. Save weights with "
            "torch.save(module.state_dict(), path) or as .safetensors."
        ) from exc
    if isinstance(state, Mapping) and "state_dict" in state:
        state = state["state_dict"]
    if not isinstance(state, Mapping):
        raise ValueError(
            f"weights={path!r} holds a {type(state).__name__}, not a state "
            "dict. Save weights with torch.save(module.state_dict(), path)."
        )
    return dict(state)


def _checked(state, what):
    """``state`` if it maps str keys to finite tensors; else a clear error."""
    bad = [k for k in state if not isinstance(k, str)]
    if bad:
        raise ValueError(
            f"{what} has keys that are not str: {_listed(bad)}. A state dict maps "
            "parameter names (such as 'blocks.0.0.weight') to tensors; " + _HOW_TO_SAVE
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        kinds = sorted({type(state[k]).__name__ for k in bad})
        raise ValueError(
            f"{what} has entries that are not tensors: {_listed(bad)} (of type "
            f"{', '.join(kinds)}). A state dict maps parameter names to "
            "torch.Tensor values; " + _HOW_TO_SAVE
        )
    bad = _non_finite(state.items())
    if bad:
        raise ValueError(
            f"{what} has NaN or infinite values in {_listed(bad)}. Load weights "
            "from a checkpoint saved before training diverged, or check how the "
            "file was written."
        )
    return state


def _align_keys(state, expected):
    """Strip a wrapper prefix when that makes the keys match the module's."""
    if set(state) == expected:
        return state
    for prefix in _PREFIXES:
        if state and all(k.startswith(prefix) for k in state):
            stripped = {k[len(prefix) :]: v for k, v in state.items()}
            if set(stripped) == expected:
                return stripped
    return state


def load_weights(module: torch.nn.Module, weights) -> torch.nn.Module:
    """Load ``weights`` into ``module`` in place, strictly.

    Keys must match the module's ``state_dict`` exactly (a common wrapper prefix
    such as ``module.`` or ``backbone.`` is stripped) and every tensor must fit
    its entry: the same shape, and a floating-point tensor for a floating-point
    entry (an integer, boolean or complex tensor is never cast). Otherwise a
    ``ValueError`` names the missing and unexpected keys and the shape and dtype
    mismatches. Weights with NaN or infinite values are refused.

    Parameters
    ----------
    module : torch.nn.Module
        The module to load into.
    weights : str, os.PathLike or mapping
        As for :func:`read_state_dict`.

    Returns
    -------
    module : torch.nn.Module
        ``module`` itself, loaded.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.backbones import load_weights
    >>> src, dst = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    >>> _ = load_weights(dst, src.state_dict())
    >>> bool(torch.equal(src.weight, dst.weight))
    True
    """
    state = read_state_dict(weights)
    own = module.state_dict()
    state = _align_keys(state, set(own))
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [
        f"{k}: expected {tuple(own[k].shape)}, got {tuple(state[k].shape)}"
        for k in sorted(set(own) & set(state))
        if not torch.nn.parameter.is_lazy(own[k]) and own[k].shape != state[k].shape
    ]
    dtypes = [
        f"{k}: expected a {_kind(own[k])} tensor ({own[k].dtype}), got {state[k].dtype}"
        for k in sorted(set(own) & set(state))
        if _kind(own[k]) != _kind(state[k])
    ]
    if missing or unexpected or shapes or dtypes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        if dtypes:
            parts.append(
                f"dtype mismatches [{'; '.join(dtypes)}] (tensors are never cast "
                "between dtype families: convert them to the module's dtypes, e.g. "
                "tensor.float())"
            )
        raise ValueError(
            "weights do not fit the backbone: "
            + ", ".join(parts)
            + ". Check backbone, backbone_params and input_shape against the "
            "model that produced the weights."
        )
    module.load_state_dict(state, strict=True)
    return module
