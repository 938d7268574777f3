"""Built-in backbones: ``linear``, ``mlp``, ``cnn1d``, ``gru``.

Every parameter is checked before torch sees it: a wrong type raises a
``TypeError`` and a value out of range a ``ValueError``, each naming the
backbone, the parameter, the value and the valid range.
"""

import inspect
import math
import numbers
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn

from sktransfer.backbones._registry import register_backbone

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _activation(name, owner="backbone"):
    if not isinstance(name, str):
        raise TypeError(
            f"{owner}: activation must be a str, one of {sorted(_ACTIVATIONS)}; got "
            f"{name!r} of type {type(name).__name__}."
        )
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"{owner}: activation={name!r} is not supported; use one of "
            f"{sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]


def _is_int(value):
    return isinstance(value, numbers.Integral) and not isinstance(
        value, bool | np.bool_
    )


def _check_int(owner, name, value, minimum=1):
    """``value`` as an int ``>= minimum``; TypeError or ValueError otherwise."""
    if not _is_int(value):
        raise TypeError(
            f"{owner}: {name} must be an int >= {minimum}; got {value!r} of type "
            f"{type(value).__name__}."
        )
    if value < minimum:
        raise ValueError(
            f"{owner}: {name}={value!r} is out of range; {name} must be an int >= "
            f"{minimum}."
        )
    return int(value)


def _check_sizes(owner, name, value, example):
    """``value`` as a tuple of ints >= 1 (one per layer)."""
    if isinstance(value, str | bytes) or not isinstance(value, Sequence | np.ndarray):
        hint = f" (for one layer pass {name}=({value},))" if _is_int(value) else ""
        raise TypeError(
            f"{owner}: {name} must be a sequence of ints >= 1, one per layer, such "
            f"as {name}={example}; got {value!r} of type "
            f"{type(value).__name__}{hint}."
        )
    sizes = list(value)
    for i, size in enumerate(sizes):
        if not _is_int(size):
            raise TypeError(
                f"{owner}: {name}={value!r} must hold ints >= 1; entry {i} is "
                f"{size!r} of type {type(size).__name__}. Pass, e.g., {name}={example}."
            )
        if size < 1:
            raise ValueError(
                f"{owner}: {name}={value!r} must hold ints >= 1; entry {i} is "
                f"{size!r}. Pass, e.g., {name}={example}."
            )
    return tuple(int(size) for size in sizes)


def _check_dropout(owner, value):
    """``value`` as a float in [0, 1)."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, numbers.Real):
        raise TypeError(
            f"{owner}: dropout must be a float in [0, 1); got {value!r} of type "
            f"{type(value).__name__}."
        )
    if not 0.0 <= float(value) < 1.0:  # also refuses NaN
        raise ValueError(
            f"{owner}: dropout={value!r} is out of range; dropout must be a float "
            "in [0, 1) (0: no dropout)."
        )
    return float(value)


def _check_bool(owner, name, value):
    if not isinstance(value, bool | np.bool_):
        raise TypeError(
            f"{owner}: {name} must be True or False; got {value!r} of type "
            f"{type(value).__name__}."
        )
    return bool(value)


def _check_keys(backbone, params, cls, positional):
    """Refuse ``backbone_params`` keys that ``cls`` does not take."""
    valid = sorted(set(inspect.signature(cls).parameters) - {positional})
    unknown = sorted(set(params) - set(valid), key=str)
    if unknown:
        raise TypeError(
            f"backbone_params has unknown key(s) {unknown} for the {backbone!r} "
            f"backbone; valid keys are {valid}."
        )


def _as_sequence_shape(input_shape):
    """(n_features,) -> (1, n_features); (C, L) stays."""
    if len(input_shape) == 1:
        return 1, int(input_shape[0])
    if len(input_shape) == 2:
        return int(input_shape[0]), int(input_shape[1])
    raise ValueError(
        f"Sequence backbones need samples of shape (channels, length); got "
        f"{tuple(input_shape)}. Set input_shape=(channels, length)."
    )


class MLPBackbone(nn.Module):
    """Fully connected feature extractor for tabular rows.

    Parameters
    ----------
    n_features : int >= 1
        Input width (samples of other shapes are flattened).
    hidden_sizes : sequence of int >= 1, default=(128, 128)
        Width of each hidden layer; the last one is the feature width.
    activation : {"relu", "gelu", "tanh", "silu"}, default="relu"
        Activation after each hidden layer.
    dropout : float in [0, 1), default=0.0
        Dropout after each hidden layer (0: none).
    batch_norm : bool, default=False
        Add ``BatchNorm1d`` after each linear layer (its statistics are
        re-estimated per domain by ``DomainAdaptRegressor(method="adabn")``).
    """

    def __init__(
        self,
        n_features,
        hidden_sizes=(128, 128),
        activation="relu",
        dropout=0.0,
        batch_norm=False,
    ):
        super().__init__()
        owner = "MLPBackbone"
        width = _check_int(owner, "n_features", n_features)
        hidden_sizes = _check_sizes(owner, "hidden_sizes", hidden_sizes, (128, 128))
        act = _activation(activation, owner)
        dropout = _check_dropout(owner, dropout)
        batch_norm = _check_bool(owner, "batch_norm", batch_norm)
        layers = []
        for size in hidden_sizes:
            block = [nn.Linear(width, size)]
            if batch_norm:
                block.append(nn.BatchNorm1d(size))
            block.append(act())
            if dropout:
                block.append(nn.Dropout(dropout))
            layers.append(nn.Sequential(*block))
            width = size
        self.blocks = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x):
        return self.blocks(x.flatten(1))


class _GlobalMean(nn.Module):
    """Average over the sequence axis: ``(n, C, L) -> (n, C)``."""

    def forward(self, x):
        return x.mean(dim=-1)


_POOLINGS = ("positions", "flatten", "global")


def _check_choice(owner, name, value, choices):
    """``value`` if it is one of the strings ``choices``."""
    if not isinstance(value, str):
        raise TypeError(
            f"{owner}: {name} must be a str, one of {list(choices)}; got "
            f"{value!r} of type {type(value).__name__}."
        )
    if value not in choices:
        raise ValueError(
            f"{owner}: {name}={value!r} is not supported; use one of {list(choices)}."
        )
    return value


class CNN1d(nn.Module):
    """1-D convolutional feature extractor that keeps position along the sequence.

    Convolution blocks (conv -> batch norm -> activation -> max pool), then a
    readout that keeps *where* along the sequence a feature is: the last
    block's map (average-pooled down to at most ``positions`` positions) is
    flattened into one dense layer of width ``dense`` whose output are the
    features, as in the chemometrics 1-D CNNs for spectra (Cui & Fearn 2018;
    Bjerrum et al. 2017). Defaults measured against the ``"mlp"`` backbone on
    NIR spectra and weather-sensor windows by ``benchmarks/cnn1d.py``.

    The ``"auto"`` defaults depend on the sequence ``length``. A long
    sequence (a spectrum: ``length >= 32``, or ``length`` unknown) is
    max-pooled by 2 and batch-normalised in every block. A short one (a sensor
    window, ``length < 32``) keeps every position (no pooling, no batch
    norm), and its raw values join the dense layer's input next to the
    convolution features (a wide-and-deep ``shortcut``), so the dense layer
    also sees the window as the MLP does.

    Parameters
    ----------
    in_channels : int >= 1
        Channels of the input sequence.
    channels : sequence of int >= 1, default=(16, 32)
        Output channels of each convolution block.
    kernel_size : int >= 1, default=7
        Width of every convolution ("same" padding, so any length works).
    pool : int >= 1 or "auto", default="auto"
        Max-pooling factor after each block (1: none; skipped where the
        sequence is already shorter than ``2 * pool``). ``"auto"``: 2 for a
        long sequence, 1 for a short one.
    activation : {"relu", "gelu", "tanh", "silu"}, default="relu"
        Activation after each convolution and after the dense layer.
    batch_norm : bool or "auto", default="auto"
        Add ``BatchNorm1d`` after each convolution. ``"auto"``: for a long
        sequence only.
    length : int >= 1 or None, default=None
        Sequence length (the registry passes it), used to size the pooling
        and the dense layer and to choose the ``"auto"`` settings. Required
        for ``pooling="flatten"`` and ``shortcut=True``.
    pooling : {"positions", "flatten", "global"}, default="positions"
        Readout of the last block: ``"positions"`` averages it down to
        ``positions`` positions (fewer when the sequence is shorter),
        ``"flatten"`` keeps every position, ``"global"`` averages over the
        whole sequence (position is lost: only for inputs where it does not
        matter).
    positions : int >= 1, default=256
        Most positions kept by ``pooling="positions"``: a shorter map is kept
        whole (as ``"flatten"``), a longer one averaged down to ``positions``
        (which bounds the dense layer's size for long sequences).
    dense : int >= 1 or None, default=128
        Width of the dense layer after the readout (the feature width); None:
        no dense layer, the features are the flattened readout.
    shortcut : bool or "auto", default="auto"
        Concatenate the flattened input (``in_channels * length`` values) to
        the readout before the dense layer. ``"auto"``: for a short sequence
        only.

    Notes
    -----
    Up to sktransfer 0.1.0 the network was ``kernel_size=5, pool=2,
    batch_norm=True, pooling="global", dense=None, shortcut=False`` (global
    average of the last block, which discards position: about a constant's
    error on spectra): pass those to rebuild it; its weights files and state
    dicts load into that setting.
    """

    def __init__(
        self,
        in_channels,
        channels=(16, 32),
        kernel_size=7,
        pool="auto",
        activation="relu",
        batch_norm="auto",
        length=None,
        pooling="positions",
        positions=256,
        dense=128,
        shortcut="auto",
    ):
        super().__init__()
        owner = "CNN1d"
        width = _check_int(owner, "in_channels", in_channels)
        channels = _check_sizes(owner, "channels", channels, (16, 32))
        kernel_size = _check_int(owner, "kernel_size", kernel_size)
        act = _activation(activation, owner)
        if length is not None:
            length = _check_int(owner, "length", length)
        pooling = _check_choice(owner, "pooling", pooling, _POOLINGS)
        positions = _check_int(owner, "positions", positions)
        if dense is not None:
            dense = _check_int(owner, "dense", dense)
        pool, batch_norm, shortcut = _by_length(
            owner, length, pool, batch_norm, shortcut
        )
        for name, needed in (
            ("pooling='flatten'", pooling == "flatten"),
            ("shortcut=True", shortcut),
        ):
            if needed and length is None:
                raise ValueError(
                    f"{owner}: {name} needs the sequence length; pass "
                    "length=... (the 'cnn1d' registry backbone passes it)."
                )
        inputs = width * length if shortcut else 0
        blocks, current = _conv_blocks(
            width, channels, kernel_size, pool, act, batch_norm, length
        )
        readout, width = _readout(pooling, positions, channels[-1], current)
        join = len(readout) if shortcut else None
        width += inputs
        if dense is not None:
            readout += [nn.Linear(width, dense), act()]
            width = dense
        blocks.append(_Readout(*readout, join=join))
        self.blocks = nn.Sequential(*blocks)
        self.out_features = width

    def forward(self, x):
        h = x
        for block in self.blocks[:-1]:
            h = block(h)
        return self.blocks[-1](h, x)


SHORT_SEQUENCE = 32
"""``CNN1d``'s ``"auto"`` settings treat a sequence shorter than this as a
sensor window (no pooling, no batch norm, a shortcut from the input)."""


def _by_length(owner, length, pool, batch_norm, shortcut):
    """Checked ``pool, batch_norm, shortcut``, ``"auto"`` resolved by length."""
    short = length is not None and length < SHORT_SEQUENCE
    auto = {"pool": 1 if short else 2, "batch_norm": not short, "shortcut": short}
    given = {"pool": pool, "batch_norm": batch_norm, "shortcut": shortcut}
    out = []
    for name, value in given.items():
        if isinstance(value, str) and value == "auto":
            out.append(auto[name])
        elif name == "pool" and _is_int(value):
            out.append(_check_int(owner, name, value))
        elif name != "pool" and isinstance(value, bool | np.bool_):
            out.append(bool(value))
        else:
            kind = "an int >= 1" if name == "pool" else "True, False"
            raise TypeError(
                f"{owner}: {name} must be {kind} or 'auto'; got {value!r} of "
                f"type {type(value).__name__}."
            )
    return out


class _Readout(nn.Sequential):
    """The readout's modules in order; with ``join`` set, the flattened input
    is concatenated to the features before module number ``join``."""

    def __init__(self, *modules, join=None):
        super().__init__(*modules)
        self.join = join

    def forward(self, h, x=None):
        for i, module in enumerate(self):
            if i == self.join:
                h = torch.cat([h, x.flatten(1)], dim=1)
            h = module(h)
        if self.join == len(self):
            h = torch.cat([h, x.flatten(1)], dim=1)
        return h


def _conv_blocks(width, channels, kernel_size, pool, act, batch_norm, length):
    """Convolution blocks, and the length after them (inf when unknown)."""
    blocks = []
    current = length if length is not None else math.inf
    for ch in channels:
        block = [nn.Conv1d(width, ch, kernel_size, padding="same")]
        if batch_norm:
            block.append(nn.BatchNorm1d(ch))
        block.append(act())
        if pool > 1 and current >= 2 * pool:
            block.append(nn.MaxPool1d(pool))
            current = current // pool
        blocks.append(nn.Sequential(*block))
        width = ch
    return blocks, current


def _readout(pooling, positions, n_channels, length):
    """Modules mapping ``(n, C, L)`` to ``(n, d)``, and ``d``."""
    if pooling == "global":
        return [_GlobalMean()], n_channels
    if pooling == "flatten":
        return [nn.Flatten()], n_channels * length
    kept = int(min(positions, length))
    return [nn.AdaptiveAvgPool1d(kept), nn.Flatten()], n_channels * kept


class GRUBackbone(nn.Module):
    """GRU feature extractor; features are the last hidden state of the top layer.

    Input batches have shape ``(n, channels, length)`` (the same layout as
    :class:`CNN1d`) and are read along ``length``.

    Parameters
    ----------
    in_channels : int >= 1
        Channels of the input sequence (the GRU's input size).
    hidden_size : int >= 1, default=32
        Width of the hidden state.
    num_layers : int >= 1, default=1
        Stacked GRU layers.
    dropout : float in [0, 1), default=0.0
        Dropout between stacked layers (ignored for one layer).
    bidirectional : bool, default=False
        Read the sequence in both directions (features twice as wide).
    """

    def __init__(
        self,
        in_channels,
        hidden_size=32,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    ):
        super().__init__()
        owner = "GRUBackbone"
        in_channels = _check_int(owner, "in_channels", in_channels)
        hidden_size = _check_int(owner, "hidden_size", hidden_size)
        num_layers = _check_int(owner, "num_layers", num_layers)
        dropout = _check_dropout(owner, dropout)
        bidirectional = _check_bool(owner, "bidirectional", bidirectional)
        self.gru = nn.GRU(
            in_channels,
            hidden_size,
            num_layers=num_layers,
            dropout=dropout if num_layers > 1 else 0.0,
            batch_first=True,
            bidirectional=bidirectional,
        )
        self.out_features = hidden_size * (2 if bidirectional else 1)

    def forward(self, x):
        _, h = self.gru(x.transpose(1, 2))
        if self.gru.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=1)
        return h[-1]


def _linear(input_shape, **params):
    if params:
        raise TypeError(
            f"the 'linear' backbone takes no backbone_params; got {sorted(params)}. "
            "Pass backbone_params=None (or use backbone='mlp' for hidden layers)."
        )
    return nn.Flatten()


def _mlp(input_shape, **params):
    _check_keys("mlp", params, MLPBackbone, "n_features")
    return MLPBackbone(math.prod(input_shape), **params)


def _cnn1d(input_shape, **params):
    _check_keys("cnn1d", params, CNN1d, "in_channels")
    channels, length = _as_sequence_shape(input_shape)
    params.setdefault("length", length)
    return _SequenceView(CNN1d(channels, **params), (channels, length))


def _gru(input_shape, **params):
    _check_keys("gru", params, GRUBackbone, "in_channels")
    channels, length = _as_sequence_shape(input_shape)
    return _SequenceView(GRUBackbone(channels, **params), (channels, length))


class _SequenceView(nn.Module):
    """Give 2-D rows a channel axis so sequence backbones accept them."""

    def __init__(self, net, shape):
        super().__init__()
        self.net = net
        self.shape = tuple(shape)
        self.out_features = net.out_features

    def forward(self, x):
        if x.dim() == 2:
            x = x.reshape(x.shape[0], *self.shape)
        return self.net(x)


register_backbone("linear", _linear)
register_backbone("mlp", _mlp)
register_backbone("cnn1d", _cnn1d)
register_backbone("gru", _gru)
