"""Save and load fitted estimators without pickle: safetensors and JSON.

:func:`save` writes one zip file that holds two members:

- ``model.safetensors``: every network's ``state_dict`` and every numpy
  array among the fitted attributes (input and target statistics, training
  ranges, per-domain statistics), as tensors;
- ``estimator.json``: the format name and version, the estimator's class
  and parameters, its other fitted attributes (numbers, strings, tuples,
  the training history) and, for each network, how to build it: the
  registry name of its backbone with ``backbone_params`` and the input
  shape, and the kind of its head.

:func:`load` never unpickles and never imports a module named by the file:
classes come from fixed allow-lists (the sktransfer estimators, the
augmentations of :mod:`sktransfer.augmentation`, the optimizers of
``torch.optim``), backbones are built by their registry name and the
weights are read with safetensors. A backbone registered by the user loads
where the same name is registered again before :func:`load`. A file that
does not follow the format, or whose tensors do not fit the networks it
describes, raises a ValueError.

What is not plain data is refused by :func:`save` with a TypeError that
says what to do, and nothing is written: a ``torch.nn.Module`` passed as
``backbone`` or ``head`` (register a backbone factory instead, or use a
named head), optimizer classes outside ``torch.optim``, a
``numpy.random.RandomState`` as ``random_state``, augmentations of other
classes (``ChemotoolsAugmentation`` holds a transformer). Metadata
requests (``set_fit_request``...) and ``set_output`` settings are not saved.
"""

import json
import math
import os
import zipfile
from numbers import Integral

import numpy as np
import torch
from safetensors import SafetensorError
from safetensors.torch import load as _load_tensors
from safetensors.torch import save as _save_tensors
from skorch.history import History

import sktransfer
from sktransfer import augmentation as _augmentation
from sktransfer._base import (
    BaseTransferEstimator,
    SourceNotSaved,
    _backbone_spec,
    _is_fitted_source,
    _unfrozen,
)
from sktransfer._domain_adapt import DomainAdaptRegressor
from sktransfer._module import TransferModule
from sktransfer._net import TransferNet
from sktransfer._shared import OPTIMIZERS, call_factory, dry_run
from sktransfer._transfer import TransferRegressor
from sktransfer._warnings import warn
from sktransfer.backbones._registry import _REGISTRY
from sktransfer.ensemble import TransferEnsemble
from sktransfer.heads import GaussianHead, MLPHead

__all__ = ["load", "save"]

#: the name in the ``format`` entry of ``estimator.json``
FORMAT = "sktransfer-estimator"
#: the version of the file format this sktransfer writes (and the newest it reads)
FORMAT_VERSION = 1

JSON_FILE = "estimator.json"
TENSORS_FILE = "model.safetensors"

#: the classes a file may name, and nothing else
_ESTIMATORS = {
    cls.__name__: cls
    for cls in (TransferRegressor, DomainAdaptRegressor, TransferEnsemble)
}
_AUGMENTATIONS = {
    name: getattr(_augmentation, name)
    for name in (
        "BaselineShift",
        "CMixup",
        "GaussianJitter",
        "Mixup",
        "MultiplicativeScatter",
        "RandomScaling",
        "WavelengthShift",
    )
}
_TORCH_OPTIMIZERS = {
    name: getattr(torch.optim, name)
    for name in (
        "ASGD",
        "Adadelta",
        "Adagrad",
        "Adam",
        "AdamW",
        "Adamax",
        "NAdam",
        "RAdam",
        "RMSprop",
        "Rprop",
        "SGD",
    )
    if hasattr(torch.optim, name)
}
_SCALAR_KINDS = "biuf"  # numpy scalars and arrays of bool, int, uint, float
#: private fitted attributes that are saved (besides those ending in "_")
_PRIVATE_FITTED = ("_y_1d",)
#: fitted attributes rebuilt rather than saved
_REBUILT = ("net_", "history_")


def _tampered(what):
    return ValueError(
        f"The file is not a valid sktransfer estimator file: {what}. It was not "
        "written by sktransfer.persistence.save, or it was changed since."
    )


# --------------------------------------------------------------------- save
def _head_spec(head, owner):
    """``{"kind", ...}`` for the heads save can rebuild."""
    if type(head) is torch.nn.Linear and head.bias is not None:
        return {"kind": "linear", "n_outputs": int(head.out_features)}
    if type(head) is MLPHead:
        first, last = head.net[0], head.net[-1]
        return {
            "kind": "mlp",
            "n_outputs": int(last.out_features),
            "hidden_size": int(first.out_features),
        }
    if type(head) is GaussianHead:
        return {"kind": "gaussian", "n_outputs": int(head.n_outputs)}
    raise TypeError(
        f"The head of this {owner} is a {type(head).__name__} module; saving "
        "without pickle rebuilds the heads 'linear', 'mlp' and 'gaussian' only. "
        "Fit with one of them, or keep this model with pickle or joblib."
    )


class _Writer:
    """Encodes values to JSON data; arrays and weights go to ``tensors``."""

    def __init__(self):
        self.tensors = {}
        self.records = {}  # id(estimator) -> record number

    def array(self, value, where):
        if value.dtype.kind not in _SCALAR_KINDS:
            if value.dtype.kind in "OU" and all(isinstance(v, str) for v in value.flat):
                return {
                    "$": "str_array",
                    "dtype": "object" if value.dtype.kind == "O" else "str",
                    "shape": list(value.shape),
                    "items": [str(v) for v in value.flat],
                }
            raise TypeError(
                f"{where} is an array of dtype {value.dtype}, which cannot be "
                "saved without pickle (numbers, booleans and strings can)."
            )
        key = f"array/{len(self.tensors)}"
        self.tensors[key] = torch.from_numpy(np.ascontiguousarray(value).copy())
        return {"$": "array", "key": key}

    def value(self, value, where):
        """JSON data for ``value``; a TypeError naming ``where`` otherwise."""
        if value is None or type(value) in (bool, str):
            return value
        if isinstance(value, str):  # a str subclass (numpy's str_)
            return str(value)
        if isinstance(value, np.generic):
            if value.dtype.kind not in _SCALAR_KINDS:
                raise TypeError(f"{where}={value!r} cannot be saved without pickle.")
            return {
                "$": "scalar",
                "dtype": value.dtype.str,
                "value": self.value(value.item(), where),
            }
        if isinstance(value, int) and not isinstance(value, bool):
            return int(value)
        if isinstance(value, float):
            if math.isfinite(value):
                return float(value)
            return {"$": "float", "value": repr(value)}
        if isinstance(value, np.ndarray):
            return self.array(value, where)
        if isinstance(value, tuple):
            return {
                "$": "tuple",
                "items": [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)],
            }
        if isinstance(value, list):
            return [self.value(v, f"{where}[{i}]") for i, v in enumerate(value)]
        if type(value) is dict:
            items = []
            for k, v in value.items():
                if not isinstance(k, str | int) or isinstance(k, bool):
                    raise TypeError(
                        f"{where} has the key {k!r}; only str and int keys can "
                        "be saved without pickle."
                    )
                items.append([k, self.value(v, f"{where}[{k!r}]")])
            return {"$": "dict", "items": items}
        return self._object(value, where)

    def _object(self, value, where):
        """JSON data for an object of an allow-listed class."""
        if isinstance(value, torch.device):
            return {"$": "device", "value": str(value)}
        if isinstance(value, type):
            name = value.__name__
            if _TORCH_OPTIMIZERS.get(name) is value:
                return {"$": "optimizer", "name": name}
            raise TypeError(
                f"{where}={name} cannot be saved without pickle: only the "
                f"optimizers of torch.optim ({sorted(_TORCH_OPTIMIZERS)}) are "
                "known by name. Use one of them (or optimizer='adamw', 'adam', "
                "'sgd'), or keep this model with pickle or joblib."
            )
        if type(value) in _AUGMENTATIONS.values():
            return {
                "$": "augmentation",
                "class": type(value).__name__,
                "params": self.params(value.get_params(deep=False), where),
            }
        if isinstance(value, SourceNotSaved):
            return {"$": "source_not_saved", "estimator": value.estimator}
        if isinstance(value, BaseTransferEstimator | TransferEnsemble):
            return self.estimator(value, where)
        if isinstance(value, np.random.RandomState):
            raise TypeError(
                f"{where} is a numpy RandomState, which cannot be saved without "
                "pickle; set random_state to an int (or None) before fitting."
            )
        hint = (
            "register a factory that builds it with "
            "sktransfer.backbones.register_backbone and pass its name"
            if isinstance(value, torch.nn.Module)
            else "use plain values (str, numbers, bools, None, lists, dicts)"
        )
        raise TypeError(
            f"{where} is a {type(value).__name__}, which cannot be saved without "
            f"pickle; {hint}, or keep this model with pickle or joblib."
        )

    def params(self, params, where):
        return {
            name: self.value(v, f"{where}.{name}") for name, v in sorted(params.items())
        }

    def estimator(self, est, where):
        """The record of an estimator (once per object; then a reference)."""
        if id(est) in self.records:
            return {"$": "ref", "id": self.records[id(est)]}
        number = len(self.records)
        self.records[id(est)] = number
        name = type(est).__name__
        if _ESTIMATORS.get(name) is not type(est):
            raise TypeError(
                f"{where} is a {name}; only {sorted(_ESTIMATORS)} can be saved "
                "without pickle."
            )
        params = est.get_params(deep=False)
        if isinstance(est, BaseTransferEstimator):
            params["backbone"] = self._source(est, params["backbone"])
        elif params.get("member_params"):
            template = params.get("estimator")
            keep = getattr(template, "keep_source", False)
            params["member_params"] = [
                {**p, "backbone": p["backbone"] if keep else _light(p["backbone"])}
                if isinstance(p, dict) and "backbone" in p
                else p
                for p in params["member_params"]
            ]
        fitted = est.__sklearn_is_fitted__()
        network = None
        if fitted and isinstance(est, BaseTransferEstimator):
            network = self._network(est, number)  # first: it says what to change
        return {
            "$": "estimator",
            "id": number,
            "class": name,
            "params": self.params(params, f"{where}({name}).params"),
            "fitted": self.params(self._fitted(est), f"{where}({name})")
            if fitted
            else None,
            "network": network,
        }

    @staticmethod
    def _source(est, backbone):
        """A fitted source as the parameter ``backbone``: kept with
        ``keep_source=True``, else a :class:`SourceNotSaved` (as in a pickle)."""
        if est.keep_source:
            if _is_fitted_source(backbone) and not isinstance(
                backbone, BaseTransferEstimator
            ):
                raise TypeError(
                    f"backbone is a fitted {type(backbone).__name__} and "
                    "keep_source=True, but only a fitted TransferRegressor or "
                    "DomainAdaptRegressor source can be saved along without "
                    "pickle; set keep_source=False (the model predicts and "
                    "transfers without its source)."
                )
            return backbone
        return _light(backbone)

    @staticmethod
    def _fitted(est):
        return {
            name: value
            for name, value in vars(est).items()
            if name not in _REBUILT
            and (
                name in _PRIVATE_FITTED
                or (name.endswith("_") and not name.startswith("_"))
            )
        }

    def _network(self, est, number):
        module = est.net_.module_
        owner = type(est).__name__
        spec = _backbone_spec(est)
        prefix = f"net/{number}/"
        for key, tensor in module.state_dict().items():
            tensor = tensor.detach().to("cpu", copy=True)
            self.tensors[prefix + key] = tensor.contiguous()
        return {
            "backbone": {
                "name": spec["name"],
                "params": self.value(spec["params"], f"{owner}.backbone_params"),
            },
            "input_shape": list(est.input_shape_),
            "reshape_to": None
            if module.reshape_to is None
            else list(module.reshape_to),
            "n_features": int(module.n_features),
            "head": _head_spec(module.head, owner),
            "frozen": [n for n, p in module.named_parameters() if not p.requires_grad],
            "tensors": prefix,
            "history": self.value(
                [dict(row) for row in est.net_.history], f"{owner}.history_"
            ),
        }


def _light(backbone):
    """:class:`SourceNotSaved` for a fitted source estimator, else itself."""
    if _is_fitted_source(backbone):
        return SourceNotSaved(type(_unfrozen(backbone)).__name__)
    return backbone


def save(estimator, path):
    """Save a fitted estimator to one file, without pickle.

    The file is a zip archive holding ``model.safetensors`` (the network
    weights and the fitted arrays) and ``estimator.json`` (the class, the
    parameters, the other fitted attributes, how to build each network and
    the format version). :func:`load` reads it back without executing code
    from it. A fitted source passed as ``backbone`` is left out (a
    :class:`~sktransfer._base.SourceNotSaved` placeholder stands in, as in
    a pickle) unless ``keep_source=True``, where it is saved along.

    Parameters
    ----------
    estimator : TransferRegressor, DomainAdaptRegressor or TransferEnsemble
        A fitted estimator whose backbone was built from a registry name
        (directly, or through the fitted sources it was transferred from)
        and whose head is ``"linear"``, ``"mlp"`` or ``"gaussian"``.
    path : str or path-like
        The file to write (replaced if it exists), for example
        ``"model.skt"``.

    Returns
    -------
    path : str
        The path written.

    Raises
    ------
    TypeError
        If the estimator holds something that cannot be saved without pickle
        (a user module as backbone or head, an optimizer class outside
        ``torch.optim``, a ``RandomState``, an augmentation of another
        class); the message says what to change. Nothing is written and the
        estimator is not changed.
    ValueError
        If the estimator is not fitted.

    See Also
    --------
    load : read the file back.

    Examples
    --------
    >>> import tempfile, os
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.datasets import make_domain_shift
    >>> from sktransfer.persistence import load, save
    >>> X, y, _, _ = make_domain_shift(n_source=60, n_target=1, random_state=0)
    >>> model = TransferRegressor(max_epochs=2, random_state=0).fit(X, y)
    >>> path = save(model, os.path.join(tempfile.mkdtemp(), "model.skt"))
    >>> bool((load(path).predict(X) == model.predict(X)).all())
    True
    """
    if _ESTIMATORS.get(type(estimator).__name__) is not type(estimator):
        raise TypeError(
            f"estimator must be a TransferRegressor, DomainAdaptRegressor or "
            f"TransferEnsemble; got {type(estimator).__name__}."
        )
    if not estimator.__sklearn_is_fitted__():
        raise ValueError(
            f"This {type(estimator).__name__} is not fitted; fit it before "
            "saving (save writes a fitted model)."
        )
    writer = _Writer()
    document = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "sktransfer_version": sktransfer.__version__,
        "estimator": writer.estimator(estimator, "estimator"),
    }
    text = json.dumps(document, indent=1, allow_nan=False)
    blob = _save_tensors(writer.tensors) if writer.tensors else b""
    path = os.fspath(path)
    partial = path + ".partial"
    try:
        with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED) as archive:
            archive.writestr(JSON_FILE, text)
            archive.writestr(TENSORS_FILE, blob)
        os.replace(partial, path)
    finally:
        if os.path.exists(partial):
            os.remove(partial)
    return path


# --------------------------------------------------------------------- load
class _Reader:
    """Decodes JSON data; checks every entry as it goes."""

    def __init__(self, tensors):
        self.tensors = tensors
        self.used = set()
        self.records = {}

    def tensor(self, key):
        if not isinstance(key, str) or key not in self.tensors:
            raise _tampered(f"the tensor {key!r} is missing from {TENSORS_FILE}")
        if key in self.used:
            raise _tampered(f"the tensor {key!r} is used twice")
        self.used.add(key)
        return self.tensors[key]

    def value(self, data):
        if data is None or isinstance(data, bool | str | int | float):
            return data
        if isinstance(data, list):
            return [self.value(v) for v in data]
        if not isinstance(data, dict) or not isinstance(data.get("$"), str):
            raise _tampered(f"an entry {_short(data)} has no known type")
        kind = data["$"]
        decode = getattr(self, "_decode_" + kind, None)
        if decode is None:
            raise _tampered(f"the type {kind!r} is unknown")
        try:
            return decode(data)
        except (KeyError, TypeError, AttributeError) as exc:
            raise _tampered(f"the {kind!r} entry {_short(data)} is malformed") from exc

    @staticmethod
    def _expect(data, *keys):
        if set(data) != {"$", *keys}:
            raise _tampered(f"the {data['$']!r} entry has keys {sorted(data)}")

    def _decode_tuple(self, data):
        self._expect(data, "items")
        return tuple(self.value(v) for v in _listed(data["items"]))

    def _decode_dict(self, data):
        self._expect(data, "items")
        out = {}
        for item in _listed(data["items"]):
            if not isinstance(item, list) or len(item) != 2:
                raise _tampered("a dict item is not a [key, value] pair")
            key = item[0]
            if not isinstance(key, str | int) or isinstance(key, bool):
                raise _tampered(f"a dict key {key!r} is not a str or an int")
            out[key] = self.value(item[1])
        return out

    def _decode_float(self, data):
        self._expect(data, "value")
        if data["value"] not in ("nan", "inf", "-inf"):
            raise _tampered(f"the float {data['value']!r} is not nan or inf")
        return float(data["value"])

    def _decode_scalar(self, data):
        self._expect(data, "dtype", "value")
        dtype = np.dtype(_checked_dtype(data["dtype"]))
        value = data["value"]
        if isinstance(value, dict):
            value = self._decode_float(value)
        if not isinstance(value, bool | int | float):
            raise _tampered(f"the scalar {value!r} is not a number")
        return dtype.type(value)

    def _decode_array(self, data):
        self._expect(data, "key")
        tensor = self.tensor(data["key"])
        if not str(data["key"]).startswith("array/"):
            raise _tampered(f"the array key {data['key']!r} is not an array's")
        return tensor.numpy()

    def _decode_str_array(self, data):
        self._expect(data, "dtype", "shape", "items")
        items = _listed(data["items"])
        if not all(isinstance(v, str) for v in items):
            raise _tampered("a string array holds values that are not str")
        dtype = {"object": object, "str": str}.get(data["dtype"])
        if dtype is None:
            raise _tampered(f"the string array dtype {data['dtype']!r} is unknown")
        shape = tuple(_int(s, "a string array's shape") for s in _listed(data["shape"]))
        if math.prod(shape) != len(items):
            raise _tampered("a string array's shape does not fit its items")
        return np.array(items, dtype=dtype).reshape(shape)

    def _decode_device(self, data):
        self._expect(data, "value")
        try:
            return torch.device(data["value"])
        except (RuntimeError, TypeError) as exc:
            raise _tampered(f"the device {data['value']!r} is unknown") from exc

    def _decode_optimizer(self, data):
        self._expect(data, "name")
        optimizer = _TORCH_OPTIMIZERS.get(data["name"])
        if optimizer is None:
            raise _tampered(f"the optimizer {data['name']!r} is not allowed")
        return optimizer

    def _decode_augmentation(self, data):
        self._expect(data, "class", "params")
        cls = _AUGMENTATIONS.get(data["class"])
        if cls is None:
            raise _tampered(f"the augmentation class {data['class']!r} is not allowed")
        return cls(**self._params(cls, data["params"]))

    def _decode_source_not_saved(self, data):
        self._expect(data, "estimator")
        if not isinstance(data["estimator"], str):
            raise _tampered("a SourceNotSaved names no estimator")
        return SourceNotSaved(data["estimator"])

    def _decode_ref(self, data):
        self._expect(data, "id")
        if data["id"] not in self.records:
            raise _tampered(f"the reference {data['id']!r} names no earlier estimator")
        return self.records[data["id"]]

    def _params(self, cls, data):
        if not isinstance(data, dict):
            raise _tampered(f"the parameters of a {cls.__name__} are not a mapping")
        names = set(cls._get_param_names())
        unknown = sorted(set(data) - names)
        if unknown:
            raise _tampered(f"{cls.__name__} has no parameters {unknown}")
        return {name: self.value(v) for name, v in data.items()}

    def _decode_estimator(self, data):
        self._expect(data, "id", "class", "params", "fitted", "network")
        cls = _ESTIMATORS.get(data["class"])
        if cls is None:
            raise _tampered(
                f"the class {data['class']!r} is not one of {sorted(_ESTIMATORS)}"
            )
        number = data["id"]
        if not isinstance(number, int) or number in self.records:
            raise _tampered(f"the estimator id {number!r} is not new")
        est = cls(**self._params(cls, data["params"]))
        self.records[number] = est
        try:
            est._validate_params()
        except ValueError as exc:
            raise _tampered(f"a {cls.__name__} parameter is invalid ({exc})") from exc
        fitted, network = data["fitted"], data["network"]
        if fitted is None:
            if network is not None:
                raise _tampered("an unfitted estimator has a network")
            return est
        if not isinstance(fitted, dict):
            raise _tampered("the fitted attributes are not a mapping")
        for name, value in fitted.items():
            if not isinstance(name, str) or not (
                name in _PRIVATE_FITTED
                or (
                    name.isidentifier()
                    and name.endswith("_")
                    and not name.startswith("_")
                    and name not in _REBUILT
                    and not hasattr(cls, name)
                )
            ):
                raise _tampered(f"{name!r} is not a fitted attribute")
            setattr(est, name, self.value(value))
        if isinstance(est, BaseTransferEstimator):
            if network is None:
                raise _tampered(f"the fitted {cls.__name__} has no network")
            _attach_network(est, self, network)
        elif network is not None:
            raise _tampered(f"a {cls.__name__} has no network")
        return est


_NETWORK_KEYS = {
    "backbone",
    "input_shape",
    "reshape_to",
    "n_features",
    "head",
    "frozen",
    "tensors",
    "history",
}


def _attach_network(est, reader, spec):
    """Build ``est.net_`` from its spec and load its weights."""
    if not isinstance(spec, dict) or set(spec) != _NETWORK_KEYS:
        raise _tampered("a network spec does not have the expected entries")
    name, params, network = _build_network(est, reader, spec)
    prefix = spec["tensors"]
    if not isinstance(prefix, str) or not prefix.startswith("net/"):
        raise _tampered(f"the tensor prefix {prefix!r} is not a network's")
    _load_network_weights(network, reader, prefix, name)
    parameters = dict(network.named_parameters())
    for pname in _listed(spec["frozen"]):
        if pname not in parameters:
            raise _tampered(f"the frozen parameter {pname!r} does not exist")
        parameters[pname].requires_grad_(False)
    network.eval()
    history = reader.value(spec["history"])
    if not isinstance(history, list) or not all(isinstance(r, dict) for r in history):
        raise _tampered("a network's history is not a list of epochs")
    est.net_ = _net(est, network, History(history))
    est.history_ = est.net_.history
    if not isinstance(est.backbone, str):
        # the parameter no longer says how the network was built (a
        # placeholder or a saved source): the loaded model keeps it, so that
        # it saves again
        est._sktransfer_backbone_spec = {"name": name, "params": params}


def _build_network(est, reader, spec):
    """``(backbone name, backbone_params, TransferModule)`` of a network
    spec, the backbone built by its registry name."""
    backbone = spec["backbone"]
    if not isinstance(backbone, dict) or set(backbone) != {"name", "params"}:
        raise _tampered("a backbone spec does not have the expected entries")
    name, params = backbone["name"], reader.value(backbone["params"])
    if not isinstance(name, str) or not isinstance(params, dict | type(None)):
        raise _tampered("a backbone spec names no backbone")
    if name not in _REGISTRY.entries:
        raise ValueError(
            f"The saved model's backbone {name!r} is not a registered backbone in "
            f"this process (registered: {sorted(_REGISTRY.names())}). Register "
            f"the factory it was built with before loading: "
            f"sktransfer.backbones.register_backbone({name!r}, factory)."
        )
    input_shape = tuple(_int(s, "input_shape") for s in _listed(spec["input_shape"]))
    reshape = spec["reshape_to"]
    if reshape is not None:
        reshape = tuple(_int(s, "reshape_to") for s in _listed(reshape))
    n_features = _int(spec["n_features"], "n_features")
    module = call_factory(name, input_shape, dict(params or {}))
    width = dry_run(module, input_shape, "backbone")[1:].numel()
    if width != n_features:
        raise ValueError(
            f"The backbone {name!r} registered in this process gives {width} "
            f"features, but the saved model's gave {n_features}: the factory "
            "registered under this name is not the one the model was built with."
        )
    head = _build_head(spec["head"], n_features)
    if spec["head"]["n_outputs"] != getattr(est, "n_outputs_", None):
        raise _tampered("the head's outputs are not the estimator's n_outputs_")
    return name, params, TransferModule(module, head, n_features, reshape)


def _load_network_weights(network, reader, prefix, name):
    """Load the tensors under ``prefix`` into ``network``, strictly."""
    expected = network.state_dict()
    stored = {k[len(prefix) :] for k in reader.tensors if k.startswith(prefix)}
    if stored != set(expected):
        missing, extra = sorted(set(expected) - stored), sorted(stored - set(expected))
        raise ValueError(
            f"The saved weights do not fit the network that the {name!r} backbone "
            f"registered in this process builds (missing from the file: "
            f"{missing[:5]}, not in the network: {extra[:5]}): the factory "
            "registered under this name is not the one the model was built with, "
            "or the file was changed."
        )
    state = {key: reader.tensor(prefix + key) for key in expected}
    # the normaliser's buffers have the size of what it was set to
    mean, scale = state["normalizer.mean"], state["normalizer.scale"]
    if mean.shape != scale.shape or not mean.is_floating_point():
        raise _tampered("the input normaliser's mean and scale do not match")
    network.normalizer.set(mean, scale)
    try:
        network.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        raise ValueError(
            f"The saved weights do not fit the network the {name!r} backbone "
            f"builds in this process: {str(exc).splitlines()[-1].strip()}"
        ) from exc


def _net(est, network, history):
    """The skorch net of a loaded estimator, on its device (the CPU, with a
    warning, where that device is missing)."""
    device = str(est.device_) if hasattr(est, "device_") else "cpu"
    if not _device_available(device):
        warn(
            f"This {type(est).__name__} was fitted on {device!r}, which this "
            "machine does not have; it predicts on 'cpu'."
        )
        device = "cpu"
        est.device_ = device
    optimizer = est.optimizer
    if isinstance(optimizer, str):
        optimizer = OPTIMIZERS[optimizer]
    net = TransferNet(
        module=network,
        criterion=torch.nn.MSELoss,
        optimizer=optimizer,
        lr=est.lr,
        max_epochs=est.max_epochs,
        batch_size=est.batch_size,
        train_split=None,
        device=device,
        verbose=0,
        precision=est.precision,
    )
    net.initialize()
    net.module_.eval()
    net.history = history
    return net


def _build_head(spec, n_features):
    if not isinstance(spec, dict):
        raise _tampered("a head spec is not a mapping")
    kind = spec.get("kind")
    keys = {"linear": {"kind", "n_outputs"}, "gaussian": {"kind", "n_outputs"}}
    keys["mlp"] = {"kind", "n_outputs", "hidden_size"}
    if kind not in keys or set(spec) != keys[kind]:
        raise _tampered(f"the head {_short(spec)} is not one save writes")
    n_outputs = _int(spec["n_outputs"], "n_outputs")
    if kind == "linear":
        return torch.nn.Linear(n_features, n_outputs)
    if kind == "gaussian":
        return GaussianHead(n_features, n_outputs)
    hidden = _int(spec["hidden_size"], "hidden_size")
    return MLPHead(n_features, n_outputs, hidden_size=hidden)


def _device_available(device):
    try:
        device = torch.device(device)
    except (RuntimeError, TypeError):
        return False
    if device.type == "cpu":
        return True
    if device.type == "cuda":
        return torch.cuda.is_available() and (
            device.index is None or device.index < torch.cuda.device_count()
        )
    backend = getattr(torch.backends, device.type, None)
    return bool(backend is not None and backend.is_available())


def _checked_dtype(text):
    if not isinstance(text, str):
        raise _tampered(f"the dtype {text!r} is not a str")
    try:
        dtype = np.dtype(text)
    except TypeError as exc:
        raise _tampered(f"the dtype {text!r} is unknown") from exc
    if dtype.kind not in _SCALAR_KINDS:
        raise _tampered(f"the dtype {text!r} is not a number type")
    return dtype


def _int(value, what):
    if not isinstance(value, Integral) or isinstance(value, bool) or value < 0:
        raise _tampered(f"{what} holds {value!r}, not a non-negative int")
    return int(value)


def _listed(value):
    if not isinstance(value, list):
        raise _tampered(f"{_short(value)} is not a list")
    return value


def _short(value):
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def load(path):
    """Load an estimator written by :func:`save`, without pickle.

    Nothing in the file is executed or imported: the JSON names classes from
    fixed allow-lists (the sktransfer estimators, the augmentations of
    :mod:`sktransfer.augmentation`, the optimizers of ``torch.optim``), each
    network is built from its backbone's registry name, ``backbone_params``
    and input shape, and its weights are read with safetensors and loaded
    strictly. The loaded estimator predicts as the saved one did, scores,
    and can be passed as ``backbone=`` of a new estimator.

    Parameters
    ----------
    path : str or path-like
        A file written by :func:`save`.

    Returns
    -------
    estimator : TransferRegressor, DomainAdaptRegressor or TransferEnsemble
        The fitted estimator. A fitted source left out when saving is a
        :class:`~sktransfer._base.SourceNotSaved` placeholder in its
        ``backbone`` parameter; to fit the loaded model again, pass the
        source back with ``set_params(backbone=source)``.

    Raises
    ------
    ValueError
        If the file is not one :func:`save` writes (not a zip with those two
        members, an unknown class, type or parameter, tensors that are
        missing, extra or do not fit the network), was written by a newer
        format version, or names a backbone that is not registered in this
        process (the message says how to register it).

    See Also
    --------
    save : write the file.
    """
    path = os.fspath(path)
    try:
        with zipfile.ZipFile(path) as archive:
            names = sorted(archive.namelist())
            if names != sorted([JSON_FILE, TENSORS_FILE]):
                raise _tampered(
                    f"the archive holds {names[:5]}, not {JSON_FILE} and {TENSORS_FILE}"
                )
            text = archive.read(JSON_FILE)
            blob = archive.read(TENSORS_FILE)
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(
            f"path={path!r} is not a file written by sktransfer.persistence.save "
            f"(a zip of {JSON_FILE} and {TENSORS_FILE}): {exc}"
        ) from exc
    try:
        document = json.loads(text, parse_constant=_no_constant)
    except (ValueError, RecursionError) as exc:
        raise _tampered(f"{JSON_FILE} is not valid JSON ({exc})") from exc
    if not isinstance(document, dict) or document.get("format") != FORMAT:
        raise _tampered(f"its 'format' entry is not {FORMAT!r}")
    version = document.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _tampered(f"its format version {version!r} is not a positive int")
    if version > FORMAT_VERSION:
        raise ValueError(
            f"path={path!r} was written in format version {version} (by "
            f"sktransfer {document.get('sktransfer_version')!r}); this sktransfer "
            f"({sktransfer.__version__}) reads versions up to {FORMAT_VERSION}. "
            "Upgrade sktransfer to load it."
        )
    if set(document) != {"format", "version", "sktransfer_version", "estimator"}:
        raise _tampered(f"it has the entries {sorted(document)}")
    try:
        tensors = _load_tensors(blob) if blob else {}
    except (SafetensorError, ValueError, RuntimeError) as exc:
        raise _tampered(f"{TENSORS_FILE} is not a safetensors file ({exc})") from exc
    reader = _Reader(tensors)
    record = document["estimator"]
    if not isinstance(record, dict) or record.get("$") != "estimator":
        raise _tampered("its 'estimator' entry is not an estimator")
    try:
        est = reader.value(record)
    except RecursionError as exc:
        raise _tampered("its entries are nested too deeply") from exc
    unused = sorted(set(tensors) - reader.used)
    if unused:
        raise _tampered(f"the tensors {unused[:5]} belong to nothing")
    return est


def _no_constant(name):
    raise ValueError(f"the constant {name} is not allowed")
