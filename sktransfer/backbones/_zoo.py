"""Built-in backbones: ``linear``, ``mlp``, ``cnn1d``, ``gru``."""

import math

import torch
from torch import nn

from sktransfer.backbones._registry import register_backbone

_ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "tanh": nn.Tanh, "silu": nn.SiLU}


def _activation(name):
    if name not in _ACTIVATIONS:
        raise ValueError(
            f"activation={name!r} is not supported; use one of {sorted(_ACTIVATIONS)}."
        )
    return _ACTIVATIONS[name]


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
    n_features : int
        Input width (samples of other shapes are flattened).
    hidden_sizes : sequence of int, default=(128, 128)
        Width of each hidden layer; the last one is the feature width.
    activation : {"relu", "gelu", "tanh", "silu"}, default="relu"
        Activation after each hidden layer.
    dropout : float, default=0.0
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
        act = _activation(activation)
        layers = []
        width = int(n_features)
        for size in hidden_sizes:
            block = [nn.Linear(width, int(size))]
            if batch_norm:
                block.append(nn.BatchNorm1d(int(size)))
            block.append(act())
            if dropout:
                block.append(nn.Dropout(float(dropout)))
            layers.append(nn.Sequential(*block))
            width = int(size)
        self.blocks = nn.Sequential(*layers)
        self.out_features = width

    def forward(self, x):
        return self.blocks(x.flatten(1))


class CNN1d(nn.Module):
    """1-D convolutional feature extractor for multichannel sequences and spectra.

    Features are the global average of the last block (width ``channels[-1]``).

    Parameters
    ----------
    in_channels : int
        Channels of the input sequence.
    channels : sequence of int, default=(16, 32)
        Output channels of each convolution block (conv -> activation -> pool).
    kernel_size : int, default=5
        Width of every convolution ("same" padding).
    pool : int, default=2
        Max-pooling factor after each block (skipped where the sequence is
        already too short).
    activation : {"relu", "gelu", "tanh", "silu"}, default="relu"
        Activation after each convolution.
    batch_norm : bool, default=True
        Add ``BatchNorm1d`` after each convolution.
    length : int or None, default=None
        Sequence length, used only to size the pooling.
    """

    def __init__(
        self,
        in_channels,
        channels=(16, 32),
        kernel_size=5,
        pool=2,
        activation="relu",
        batch_norm=True,
        length=None,
    ):
        super().__init__()
        act = _activation(activation)
        blocks = []
        width = int(in_channels)
        current = length if length is not None else math.inf
        for ch in channels:
            block = [nn.Conv1d(width, int(ch), int(kernel_size), padding="same")]
            if batch_norm:
                block.append(nn.BatchNorm1d(int(ch)))
            block.append(act())
            if pool > 1 and current >= 2 * pool:
                block.append(nn.MaxPool1d(int(pool)))
                current = current // pool
            blocks.append(nn.Sequential(*block))
            width = int(ch)
        self.blocks = nn.Sequential(*blocks)
        self.out_features = width

    def forward(self, x):
        return self.blocks(x).mean(dim=-1)


class GRUBackbone(nn.Module):
    """GRU feature extractor; features are the last hidden state of the top layer.

    Input batches have shape ``(n, channels, length)`` (the same layout as
    :class:`CNN1d`) and are read along ``length``.

    Parameters
    ----------
    in_channels : int
        Channels of the input sequence (the GRU's input size).
    hidden_size : int, default=32
        Width of the hidden state.
    num_layers : int, default=1
        Stacked GRU layers.
    dropout : float, default=0.0
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
        self.gru = nn.GRU(
            int(in_channels),
            int(hidden_size),
            num_layers=int(num_layers),
            dropout=float(dropout) if num_layers > 1 else 0.0,
            batch_first=True,
            bidirectional=bool(bidirectional),
        )
        self.out_features = int(hidden_size) * (2 if bidirectional else 1)

    def forward(self, x):
        _, h = self.gru(x.transpose(1, 2))
        if self.gru.bidirectional:
            return torch.cat([h[-2], h[-1]], dim=1)
        return h[-1]


def _linear(input_shape):
    return nn.Flatten()


def _mlp(input_shape, **params):
    return MLPBackbone(math.prod(input_shape), **params)


def _cnn1d(input_shape, **params):
    channels, length = _as_sequence_shape(input_shape)
    params.setdefault("length", length)
    return _SequenceView(CNN1d(channels, **params), (channels, length))


def _gru(input_shape, **params):
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
