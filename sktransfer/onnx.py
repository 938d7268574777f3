"""Export fitted estimators, and pipelines ending in one, to ONNX.

:func:`to_onnx` converts a fitted :class:`~sktransfer.TransferRegressor` or
:class:`~sktransfer.DomainAdaptRegressor`, or a scikit-learn
:class:`~sklearn.pipeline.Pipeline` ending in one (with scikit-learn
preprocessing in front), into one ``onnx.ModelProto`` that onnxruntime runs
without Python, PyTorch or sktransfer. It is the ecosystem's way: the
estimators get skl2onnx converters (:func:`register_converters`), so
skl2onnx converts the pipeline's other steps with its own converters, and
ours embeds the network exported by ``torch.onnx.export`` (the
``torch.export``-based exporter, which needs onnxscript) between the steps of
:meth:`~sktransfer.TransferRegressor.predict`:

1. the estimator's own input standardisation, in float64 as ``predict``
   computes it, then a cast to float32;
2. clipping to the training range when the model was fitted with
   ``clip_inputs=True``;
3. the network: the reshaping of flat rows to ``input_shape`` (``cnn1d`` and
   ``gru`` read ``(n, channels, length)``), the backbone and the head (for
   ``head="gaussian"`` the mean only);
4. the target de-standardisation back to the user's units, in float64, and
   the output shape of ``predict``: ``(n,)`` for a model fitted on a 1-D
   ``y``, ``(n, n_outputs)`` for a 2-D ``y``.

The graph's input ``"X"`` has the dtype of the sample given to
:func:`to_onnx`: float64 (what scikit-learn computes in) or float32; the
output ``"variable"`` (skl2onnx's name for a regressor's output) has the same
dtype. The network itself always runs in float32, as in ``predict``.

What the graph does not do: it cannot warn about inputs far outside the
training range (``predict`` does), and it cannot refuse inputs beyond the
float32 range (they become infinite). A ``DomainAdaptRegressor`` predicts
as ``predict(X)`` does, for the target domain; ``sample_domain=d`` exports
``predict(X, sample_domain=[d] * n)`` for one domain ``d`` seen in ``fit``
(under per-domain standardisation) -- one graph per domain, since the graph
has one input.

Needs the ``onnx`` extra: ``pip install "sktransfer[onnx]"`` (onnx,
onnxruntime, skl2onnx, onnxscript).
"""

import contextlib
import copy
import io
import logging
import warnings
from numbers import Integral

import numpy as np
import torch
from sklearn.exceptions import NotFittedError
from sklearn.pipeline import Pipeline

from sktransfer._base import BaseTransferEstimator
from sktransfer._domain_adapt import DomainAdaptRegressor
from sktransfer._transfer import TransferRegressor
from sktransfer.heads import predicts_variance

__all__ = ["register_converters", "to_onnx"]

#: the default ONNX opset: the one ``torch.onnx.export`` writes natively
_DEFAULT_OPSET = 20
#: the oldest opset the ``torch.export``-based exporter writes
_MIN_OPSET = 18
_ALIASES = {
    TransferRegressor: "SktransferTransferRegressor",
    DomainAdaptRegressor: "SktransferDomainAdaptRegressor",
}


def _require():
    """``(onnx, skl2onnx)``, or an ImportError naming the extra to install."""
    try:
        import onnx
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) needs it)
        import skl2onnx
    except ImportError as exc:  # pragma: no cover - depends on the extra
        raise ImportError(
            f"Exporting to ONNX needs onnx, skl2onnx and onnxscript ({exc}). "
            'Install them with: pip install "sktransfer[onnx]".'
        ) from exc
    return onnx, skl2onnx


def register_converters():
    """Register the skl2onnx converters of both estimators.

    After this, ``skl2onnx.to_onnx`` and ``skl2onnx.convert_sklearn``
    convert a fitted :class:`~sktransfer.TransferRegressor` or
    :class:`~sktransfer.DomainAdaptRegressor`, alone or as the last step of a
    pipeline. :func:`to_onnx` calls it; calling it again changes nothing.
    ``DomainAdaptRegressor`` takes the skl2onnx option ``sample_domain``
    (an int, see :func:`to_onnx`), for example
    ``options={DomainAdaptRegressor: {"sample_domain": -1}}``.

    Returns
    -------
    None
    """
    _, skl2onnx = _require()
    for cls, alias in _ALIASES.items():
        options = {"sample_domain": None} if cls is DomainAdaptRegressor else None
        skl2onnx.update_registered_converter(
            cls,
            alias,
            _shape_calculator,
            _converter,
            overwrite=True,
            options=options,
        )


def to_onnx(model, X, *, sample_domain=None, target_opset=None):
    """Convert a fitted estimator, or a pipeline ending in one, to ONNX.

    Parameters
    ----------
    model : TransferRegressor, DomainAdaptRegressor or Pipeline
        A fitted estimator, or a fitted :class:`~sklearn.pipeline.Pipeline`
        whose last step is one; skl2onnx converts the steps before it
        (``StandardScaler``, ``PCA``, ...) with its own converters.
    X : array-like of shape (n_samples, n_features) or \
``(n_samples, *input_shape)``
        A few input rows, as ``model.predict`` takes them. Only their
        per-sample shape and dtype are read: float64 gives a graph with
        float64 input and output, float32 one with float32 input and output.
    sample_domain : int or None, default=None
        For a ``DomainAdaptRegressor`` fitted with per-domain standardisation
        (``method="adabn"`` or ``domain_norm=True``): export
        ``predict(X, sample_domain=[sample_domain] * n)``, standardising
        inputs with that domain's statistics from ``fit``. None: the target
        domain, as ``predict(X)``. Without per-domain statistics every domain
        is predicted alike, as in ``predict``.
    target_opset : int or None, default=None
        The ONNX opset of the model (18 or more); None: 20, the opset
        ``torch.onnx.export`` writes natively.

    Returns
    -------
    onnx.ModelProto
        One input ``"X"``, one output ``"variable"`` of the predictions in
        the estimator's units, shaped as ``predict``'s.

    Raises
    ------
    TypeError
        If ``model`` is neither a transfer estimator nor a pipeline ending in
        one, ``X`` is not float32 or float64, or ``sample_domain`` is not an
        int.
    ValueError
        If the model cannot be represented: fitted with ``precision`` other
        than ``"fp32"`` (``predict`` runs the network in reduced precision,
        the graph in float32), an unknown ``sample_domain``, or a network that
        ``torch.onnx.export`` cannot export (the message says why).
    sklearn.exceptions.NotFittedError
        If the estimator is not fitted.

    Examples
    --------
    >>> import numpy as np
    >>> import onnxruntime as ort
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from sktransfer import TransferRegressor
    >>> from sktransfer.onnx import to_onnx
    >>> rng = np.random.default_rng(0)
    >>> X = rng.normal(size=(40, 3))
    >>> y = X @ [1.0, -2.0, 0.5]
    >>> pipe = make_pipeline(StandardScaler(), TransferRegressor(
    ...     "mlp", backbone_params={"hidden_sizes": (8,)}, max_epochs=2,
    ...     random_state=0)).fit(X, y)
    >>> onx = to_onnx(pipe, X[:5])
    >>> session = ort.InferenceSession(onx.SerializeToString(),
    ...                                providers=["CPUExecutionProvider"])
    >>> pred = session.run(None, {"X": X})[0]
    >>> pred.shape, pred.dtype
    ((40,), dtype('float64'))
    >>> bool(np.allclose(pred, pipe.predict(X), rtol=1e-5, atol=1e-6))
    True
    """
    _, skl2onnx = _require()
    final = _final_estimator(model)
    X = _check_sample(X)
    if not isinstance(model, Pipeline) and X.shape[1:] != final.sample_shape_:
        raise ValueError(
            f"X has samples of shape {X.shape[1:]}, but this "
            f"{type(final).__name__} was fitted on samples of shape "
            f"{final.sample_shape_}; pass rows like those predict takes."
        )
    opset = _check_opset(target_opset)
    options = None
    if sample_domain is not None:
        if not isinstance(final, DomainAdaptRegressor):
            raise ValueError(
                f"sample_domain={sample_domain!r} only applies to a "
                f"DomainAdaptRegressor, not a {type(final).__name__}, whose "
                "predictions do not depend on the domain. Pass sample_domain=None."
            )
        _input_statistics(final, sample_domain)  # a clear error before converting
        options = {id(final): {"sample_domain": sample_domain}}
    register_converters()
    tensor_type = (
        skl2onnx.common.data_types.DoubleTensorType
        if X.dtype == np.float64
        else skl2onnx.common.data_types.FloatTensorType
    )
    return skl2onnx.convert_sklearn(
        model,
        initial_types=[("X", tensor_type([None, *X.shape[1:]]))],
        target_opset={"": opset, "ai.onnx.ml": 3},
        options=options,
    )


# --------------------------------------------------------------- checks
def _final_estimator(model):
    """The fitted transfer estimator ``model`` is or ends in."""
    final = model.steps[-1][1] if isinstance(model, Pipeline) else model
    if not isinstance(final, BaseTransferEstimator):
        what = (
            f"a Pipeline ending in {type(final).__name__}"
            if isinstance(model, Pipeline)
            else type(model).__name__
        )
        raise TypeError(
            "model must be a fitted TransferRegressor or DomainAdaptRegressor, or "
            f"a Pipeline whose last step is one; got {what}. For other "
            "scikit-learn models use skl2onnx.to_onnx directly."
        )
    if not final.__sklearn_is_fitted__():
        raise NotFittedError(
            f"This {type(final).__name__} instance is not fitted yet. Call 'fit' "
            "before exporting it to ONNX."
        )
    return final


def _check_sample(X):
    X = np.asarray(X)
    if X.dtype not in (np.float32, np.float64):
        raise TypeError(
            f"X must be a float32 or float64 array (its dtype is the dtype of the "
            f"graph's input); got dtype {X.dtype}. Convert it, for example "
            "X.astype(np.float64)."
        )
    if X.ndim < 2:
        raise ValueError(
            f"X must hold rows, shape (n_samples, n_features) or (n_samples, "
            f"*input_shape); got shape {X.shape}. Reshape it, for example "
            "X.reshape(1, -1) for one row."
        )
    return X


def _check_opset(target_opset):
    if target_opset is None:
        return _DEFAULT_OPSET
    if (
        not isinstance(target_opset, Integral)
        or isinstance(target_opset, bool)
        or target_opset < _MIN_OPSET
    ):
        raise ValueError(
            f"target_opset must be an int >= {_MIN_OPSET} (torch.onnx.export "
            f"writes opset {_MIN_OPSET} or later); got {target_opset!r}. Use "
            f"target_opset=None for {_DEFAULT_OPSET}."
        )
    return int(target_opset)


def _check_representable(est):
    """Refuse what the graph would not compute as ``predict`` does."""
    if est.precision_ != "fp32":
        raise ValueError(
            f"This {type(est).__name__} was fitted with precision="
            f"{est.precision_!r}: predict runs its network under "
            f"{est.precision_} autocast, which an ONNX graph does not reproduce "
            "(it computes in float32, so its predictions would differ from "
            "predict's). Refit with precision='fp32' to export it."
        )


def _input_statistics(est, sample_domain):
    """The mean and scale ``predict`` standardises with (None, None: none)."""
    if sample_domain is None:
        return est.input_mean_, est.input_scale_
    if not isinstance(sample_domain, Integral) or isinstance(sample_domain, bool):
        raise TypeError(
            "sample_domain must be one int (the domain the graph predicts) or "
            f"None; got {sample_domain!r} of type {type(sample_domain).__name__}. "
            "Export one graph per domain."
        )
    stats = getattr(est, "domain_stats_", None)
    if not stats or est.input_mean_ is None:
        return est.input_mean_, est.input_scale_  # predict ignores the domain too
    if int(sample_domain) not in stats:
        raise ValueError(
            f"sample_domain={sample_domain!r} is a domain that fit did not see "
            f"(seen: {sorted(stats)}); its input statistics are unknown. Pass one "
            "of those, or sample_domain=None for the target domain."
        )
    return stats[int(sample_domain)]


# ------------------------------------------------------ skl2onnx converter
def _shape_calculator(operator):
    """The output type: the input's element type, ``predict``'s shape."""
    est = operator.raw_operator
    input_type = operator.inputs[0].type
    shape = list(input_type.shape)
    if len(shape) > 1 and all(isinstance(d, Integral) for d in shape[1:]):
        if tuple(shape[1:]) != tuple(est.sample_shape_):
            raise ValueError(
                f"The {type(est).__name__} in this model takes samples of shape "
                f"{est.sample_shape_}, but its input in the graph has samples of "
                f"shape {tuple(shape[1:])}."
            )
    out = [shape[0]] if est._y_1d else [shape[0], est.n_outputs_]
    operator.outputs[0].type = type(input_type)(out)


class _MeanNetwork(torch.nn.Module):
    """The fitted network on standardised float32 inputs, means only."""

    def __init__(self, module, n_outputs):
        super().__init__()
        self.module = module
        self.n_outputs = n_outputs if predicts_variance(module.head) else None

    def forward(self, x):
        out = self.module(x, True)
        return out if self.n_outputs is None else out[:, : self.n_outputs]


@contextlib.contextmanager
def _quiet_export():
    """``torch.onnx.export``'s warnings, log lines and printed graphs stay
    inside (torch logs through its own loggers, with their own levels, and
    prints the graph it traced to stderr when an export fails; the error
    raised says what failed)."""
    loggers = [logging.getLogger("torch")] + [
        logger
        for name, logger in list(logging.root.manager.loggerDict.items())
        if name.startswith("torch.") and isinstance(logger, logging.Logger)
    ]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stderr(io.StringIO()),
            contextlib.redirect_stdout(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _export_network(est, opset):
    """The network as an ONNX model (input ``x``, output ``y``, float32)."""
    module = copy.deepcopy(est.net_.module_).cpu().eval()
    wrapper = _MeanNetwork(module, est.n_outputs_).eval()
    example = torch.zeros((2, *est.sample_shape_), dtype=torch.float32)
    batch = torch.export.Dim("batch")
    try:
        with _quiet_export(), torch.no_grad():
            program = torch.onnx.export(
                wrapper,
                (example,),
                dynamo=True,
                input_names=["x"],
                output_names=["y"],
                dynamic_shapes=({0: batch},),
                opset_version=opset,
                optimize=True,
                verbose=False,
            )
    except Exception as exc:
        root = exc
        while root.__cause__ is not None:  # torch's own error, not its wrappers
            root = root.__cause__
        reason = (str(root).strip().splitlines() or [""])[0]
        raise ValueError(
            f"torch.onnx.export could not export the network of this "
            f"{type(est).__name__} (backbone {type(module.backbone).__name__}, "
            f"head {type(module.head).__name__}): {type(root).__name__}: "
            f"{reason} "
            "A network whose forward pass depends on the values of its input, "
            "or that uses operations without an ONNX equivalent, cannot be "
            "exported (the full error is this one's __cause__)."
        ) from exc
    onx = program.model_proto
    if onx.functions or any(
        attr.type in (attr.GRAPH, attr.GRAPHS)
        for node in onx.graph.node
        for attr in node.attribute
    ):
        raise ValueError(
            f"The network of this {type(est).__name__} (backbone "
            f"{type(module.backbone).__name__}) exports to ONNX with local "
            "functions or control flow (If/Loop/Scan), which skl2onnx cannot "
            "embed in a larger graph. Export the network alone with "
            "torch.onnx.export instead."
        )
    return onx


class _Builder:
    """Adds uniquely named nodes and constants to a skl2onnx container."""

    def __init__(self, scope, container):
        self.scope = scope
        self.container = container

    def name(self, hint):
        return self.scope.get_unique_variable_name(hint)

    def constant(self, hint, values, dtype):
        from onnx import numpy_helper

        tensor = numpy_helper.from_array(
            np.asarray(values, dtype=dtype), self.name(hint)
        )
        self.container.initializers.append(tensor)
        return tensor.name

    def node(self, op_type, inputs, output=None, **attrs):
        output = self.name(op_type.lower()) if output is None else output
        unique = self.scope.get_unique_operator_name(op_type)
        self.container.add_node(op_type, inputs, [output], name=unique, **attrs)
        return output


def _converter(scope, operator, container):
    """Standardise, clip, run the embedded network, de-standardise."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType

    est = operator.raw_operator
    _check_representable(est)
    domain = None
    if isinstance(est, DomainAdaptRegressor):
        domain = container.get_options(est, {"sample_domain": None})["sample_domain"]
    mean, scale = _input_statistics(est, domain)
    opset = container.target_opset
    if opset is not None and opset < _MIN_OPSET:
        raise ValueError(
            f"The {type(est).__name__} converter needs target_opset >= "
            f"{_MIN_OPSET} (torch.onnx.export writes opset {_MIN_OPSET} or later); "
            f"got {opset}."
        )
    network = _export_network(est, opset or _DEFAULT_OPSET)
    double_out = isinstance(operator.inputs[0].type, DoubleTensorType)
    g = _Builder(scope, container)
    x = operator.inputs[0].full_name
    # 1. predict's input scaling: float64, then float32
    if not double_out:
        x = g.node("Cast", [x], to=TensorProto.DOUBLE)
    if mean is not None:
        x = g.node("Sub", [x, g.constant("input_mean", mean, np.float64)])
        x = g.node("Div", [x, g.constant("input_scale", scale, np.float64)])
    x = g.node("Cast", [x], to=TensorProto.FLOAT)
    # 2. clip_inputs: np.clip(x, low, high) = min(max(x, low), high)
    if est.clip_inputs_:
        low, high = est.input_range_
        x = g.node("Max", [x, g.constant("input_low", low, np.float32)])
        x = g.node("Min", [x, g.constant("input_high", high, np.float32)])
    # 3. the network, exported by torch.onnx.export
    scaled = g.name("scaled_outputs")
    _embed(g, network, x, scaled)
    # 4. back to the user's units, in float64, shaped as predict's
    y = g.node("Cast", [scaled], to=TensorProto.DOUBLE)
    y = g.node("Mul", [y, g.constant("y_scale", est.y_scale_, np.float64)])
    y = g.node("Add", [y, g.constant("y_mean", est.y_mean_, np.float64)])
    if est._y_1d:
        y = g.node("Reshape", [y, g.constant("flat", [-1], np.int64)])
    out_type = TensorProto.DOUBLE if double_out else TensorProto.FLOAT
    g.node("Cast", [y], operator.outputs[0].full_name, to=out_type)


#: ONNX recurrent nodes, whose optional input 4 is ``sequence_lens``
_RECURRENT = ("GRU", "LSTM", "RNN")


def _full_lengths(g, node):
    """``sequence_lens`` of a recurrent node, every sequence at full length.

    torch exports ``nn.GRU`` with ``sequence_lens`` omitted (an empty input
    name) before ``initial_h``; skl2onnx cannot order a node with an empty
    input, so the omitted input is given its meaning explicitly.
    """
    from onnx import TensorProto

    layout = next((a.i for a in node.attribute if a.name == "layout"), 0)
    seq_axis, batch_axis = (1, 0) if layout else (0, 1)
    shape = g.node("Shape", [node.input[0]])
    length = g.node("Gather", [shape, g.constant("axis", [seq_axis], np.int64)])
    batch = g.node("Gather", [shape, g.constant("axis", [batch_axis], np.int64)])
    lengths = g.node("Expand", [length, batch])
    return g.node("Cast", [lengths], to=TensorProto.INT32)


def _embed(g, onx, input_name, output_name):
    """Add the nodes and weights of the one-input, one-output model ``onx``,
    renamed to unique names, between ``input_name`` and ``output_name``.

    skl2onnx's ``add_onnx_graph`` does the same but cannot rename an omitted
    optional input (the empty name, as in the ``GRU`` node of a ``gru``
    backbone).
    """
    from onnx import NodeProto, TensorProto

    graph = onx.graph
    mapping = {"": ""}  # an omitted optional input or output stays omitted
    for value in [*graph.input, *graph.output, *graph.initializer]:
        mapping[value.name] = g.name(value.name)
    for node in graph.node:
        for out in node.output:
            if out not in mapping:
                mapping[out] = g.name(out)
    g.node("Identity", [input_name], mapping[graph.input[0].name])
    g.node("Identity", [mapping[graph.output[0].name]], output_name)
    for node in graph.node:
        copied = NodeProto()
        copied.CopyFrom(node)
        copied.name = g.scope.get_unique_operator_name(node.op_type)
        copied.input[:] = [mapping[name] for name in node.input]
        if node.op_type in _RECURRENT and len(node.input) > 5 and not node.input[4]:
            copied.input[4] = _full_lengths(g, copied)
        copied.output[:] = [mapping[name] for name in node.output]
        g.container.nodes.append(copied)
    for tensor in graph.initializer:
        copied = TensorProto()
        copied.CopyFrom(tensor)
        copied.name = mapping[tensor.name]
        g.container.initializers.append(copied)
    for opset in onx.opset_import:
        g.container.node_domain_version_pair_sets.add((opset.domain, opset.version))
