"""A backbone saved without pickle: ``backbone.safetensors`` + ``backbone.json``.

The weights file holds the backbone's ``state_dict`` with its own keys (no
prefix), so ``weights=`` of the estimators loads it into the backbone that
``backbone=`` and ``backbone_params=`` build. The JSON file says how to build
that backbone: the registry name and its arguments, the per-sample input
shape, the feature width, and the input statistics it was trained with.
"""

import json
import os

from safetensors.torch import save_file

WEIGHTS_FILE = "backbone.safetensors"
SPEC_FILE = "backbone.json"
FORMAT = "sktransfer-backbone"


def _jsonable(value, what):
    """``value`` with tuples as lists; a TypeError naming ``what`` if it is
    not plain JSON data (str, numbers, bool, None, lists, str-keyed dicts)."""
    if isinstance(value, dict):
        bad = [k for k in value if not isinstance(k, str)]
        if bad:
            raise TypeError(f"{what} has keys that are not str: {bad!r}.")
        return {k: _jsonable(v, f"{what}[{k!r}]") for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v, what) for v in value]
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if hasattr(value, "item") and getattr(value, "ndim", None) == 0:
        return value.item()  # a numpy or torch scalar
    raise TypeError(
        f"{what}={value!r} (of type {type(value).__name__}) cannot be written to "
        "JSON; backbone_params must hold str, numbers, bools, None and lists "
        "of them to be saved without pickle."
    )


def write_backbone(directory, module, spec):
    """Write ``module``'s weights and ``spec`` into ``directory``.

    Parameters
    ----------
    directory : str or path-like
        Created if missing; existing files of the same names are replaced.
    module : torch.nn.Module
        The backbone; its ``state_dict`` is saved as it is (keys unprefixed).
    spec : dict
        JSON-able description (``backbone``, ``backbone_params``,
        ``input_shape``, ...); ``format`` and ``weights`` are added.

    Returns
    -------
    path : str
        The path of the JSON file.
    """
    directory = os.fspath(directory)
    os.makedirs(directory, exist_ok=True)
    state = {
        k: v.detach().to("cpu", copy=True).contiguous()
        for k, v in module.state_dict().items()
    }
    # the spec is checked before anything is written, and both files replace
    # the old ones only once both are complete: a failed save leaves a saved
    # backbone already in the directory as it was
    spec = {"format": FORMAT, "weights": WEIGHTS_FILE, **_jsonable(spec, "spec")}
    weights = os.path.join(directory, WEIGHTS_FILE)
    path = os.path.join(directory, SPEC_FILE)
    save_file(state, weights + ".partial")
    with open(path + ".partial", "w", encoding="utf-8") as fh:
        json.dump(spec, fh, indent=2)
        fh.write("\n")
    os.replace(weights + ".partial", weights)
    os.replace(path + ".partial", path)
    return path


def read_spec(path):
    """The JSON spec of a saved backbone and the path of its weights file.

    Parameters
    ----------
    path : str or path-like
        The directory written by ``save``, or its ``backbone.json``.

    Returns
    -------
    spec : dict
    weights : str
    """
    path = os.fspath(path)
    if os.path.isdir(path):
        path = os.path.join(path, SPEC_FILE)
    if not os.path.isfile(path):
        raise ValueError(
            f"path={path!r} is not a saved backbone: there is no such file. Pass "
            f"the directory written by SelfSupervisedPretrainer.save (holding "
            f"{SPEC_FILE} and {WEIGHTS_FILE}) or its {SPEC_FILE}."
        )
    try:
        with open(path, encoding="utf-8") as fh:
            spec = json.load(fh)
    except (OSError, ValueError) as exc:
        raise ValueError(f"path={path!r} is not a readable JSON file: {exc}") from exc
    if not isinstance(spec, dict) or spec.get("format") != FORMAT:
        raise ValueError(
            f"path={path!r} is not a backbone spec written by sktransfer (its "
            f"'format' entry is not {FORMAT!r})."
        )
    weights = os.path.join(os.path.dirname(path), spec.get("weights", WEIGHTS_FILE))
    return spec, weights


def _as_tuples(value):
    """JSON lists back to tuples (nested), the form the estimators document."""
    if isinstance(value, list):
        return tuple(_as_tuples(v) for v in value)
    if isinstance(value, dict):
        return {k: _as_tuples(v) for k, v in value.items()}
    return value


def load_spec(path) -> dict:
    """Estimator arguments that rebuild a backbone saved without pickle.

    ``SelfSupervisedPretrainer.save`` writes ``backbone.safetensors`` (the
    backbone's weights) and ``backbone.json`` (the registry name, its
    arguments and the input shape). This returns them as the keyword
    arguments ``backbone``, ``backbone_params``, ``input_shape`` and
    ``weights`` of :class:`~sktransfer.TransferRegressor` and
    :class:`~sktransfer.DomainAdaptRegressor`, which build the same backbone
    and load the weights into it, and ``standardize_X``, the kind of input
    scaling the backbone was pre-trained on (none, per feature or global).
    Those estimators then compute that scaling from their own training rows;
    ``SelfSupervisedPretrainer.load`` restores the pre-trainer itself, whose
    statistics travel with it when it is passed as ``backbone=``.

    Parameters
    ----------
    path : str or path-like
        The directory written by ``save``, or its ``backbone.json``.

    Returns
    -------
    kwargs : dict
        ``{"backbone": str, "backbone_params": dict or None, "input_shape":
        tuple, "weights": str}``, and ``"standardize_X"`` for a spec written
        by a pre-trainer.

    Raises
    ------
    ValueError
        If ``path`` holds no spec written by sktransfer, or the backbone was a
        user module rather than a registry name (its weights alone are saved:
        pass the module as ``backbone=`` and ``weights=`` the weights file).

    Examples
    --------
    >>> import tempfile
    >>> import numpy as np
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.backbones import load_spec
    >>> from sktransfer.pretraining import SelfSupervisedPretrainer
    >>> X = np.random.RandomState(0).normal(size=(64, 5))
    >>> pre = SelfSupervisedPretrainer(backbone_params={"hidden_sizes": (8,)},
    ...                                max_epochs=2, random_state=0).fit(X)
    >>> folder = tempfile.mkdtemp()
    >>> _ = pre.save(folder)
    >>> kwargs = load_spec(folder)
    >>> sorted(kwargs)
    ['backbone', 'backbone_params', 'input_shape', 'standardize_X', 'weights']
    >>> model = TransferRegressor(**kwargs, max_epochs=2).fit(X, X[:, 0])
    """
    spec, weights = read_spec(path)
    if spec.get("backbone") is None:
        raise ValueError(
            f"The backbone saved at {os.fspath(path)!r} was a user module (a "
            f"{spec.get('module_class', 'torch.nn.Module')}), not a registry "
            "name, so only its weights were saved: build the same module and "
            f"pass it as backbone= with weights={weights!r}."
        )
    params = spec.get("backbone_params")
    kwargs = {
        "backbone": spec["backbone"],
        "backbone_params": None if params is None else _as_tuples(params),
        "input_shape": _as_tuples(spec["input_shape"]),
        "weights": weights,
    }
    mode = spec.get("pretrainer", {}).get("standardize_X")
    if mode is not None:  # the kind of scaling the backbone was trained on
        kwargs["standardize_X"] = mode
    return kwargs
