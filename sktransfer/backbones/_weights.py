"""The one weights loader: safetensors first, ``torch.load(weights_only=True)`` else."""

import os
from collections.abc import Mapping

import torch
from safetensors.torch import load_file

_PREFIXES = ("module.", "backbone.", "net_.module_.backbone.")


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
    """
    if isinstance(weights, Mapping):
        state = dict(weights)
    elif isinstance(weights, str | os.PathLike):
        path = os.fspath(weights)
        if not os.path.isfile(path):
            raise ValueError(
                f"weights={path!r} is not an existing file. Pass the path of a "
                "'.safetensors' file or of a torch.save(state_dict) file."
            )
        if path.endswith(".safetensors"):
            state = load_file(path, device="cpu")
        else:
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
            state = dict(state)
    else:
        raise TypeError(
            "weights must be None, a path to a .safetensors or torch.save file, or "
            f"a state-dict mapping; got {type(weights).__name__}."
        )
    bad = [k for k, v in state.items() if not isinstance(v, torch.Tensor)]
    if bad:
        raise ValueError(f"weights has entries that are not tensors: {bad[:5]}.")
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
    such as ``module.`` or ``backbone.`` is stripped). Otherwise a ``ValueError``
    names the missing and unexpected keys and the shape mismatches.

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
        if own[k].shape != state[k].shape
    ]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected}")
        if shapes:
            parts.append(f"shape mismatches [{'; '.join(shapes)}]")
        raise ValueError(
            "weights do not fit the backbone: "
            + ", ".join(parts)
            + ". Check backbone, backbone_params and input_shape against the "
            "model that produced the weights."
        )
    module.load_state_dict(state, strict=True)
    return module
