"""Regression heads: map backbone features ``(n, d)`` to outputs ``(n, n_outputs)``."""

import copy

from torch import nn

__all__ = [
    "MLPHead",
    "make_head",
]


HEAD_OPTIONS = ("auto", "linear", "mlp")


class MLPHead(nn.Module):
    """A one-hidden-layer head: ``Linear -> ReLU -> Linear``.

    Parameters
    ----------
    in_features : int
        Width of the backbone's features.
    n_outputs : int
        Number of targets.
    hidden_size : int, default=64
        Width of the hidden layer.
    """

    def __init__(self, in_features, n_outputs, hidden_size=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, n_outputs),
        )

    def forward(self, x):
        return self.net(x)


def make_head(head, in_features: int, n_outputs: int) -> nn.Module:
    """Build a new head.

    Parameters
    ----------
    head : {"linear", "mlp"} or torch.nn.Module
        A name builds a freshly initialised head; a module is deep-copied.
    in_features : int
        Feature width of the backbone.
    n_outputs : int
        Number of regression targets.
    """
    if isinstance(head, nn.Module):
        return copy.deepcopy(head)
    if head in ("linear", "auto"):
        return nn.Linear(in_features, n_outputs)
    if head == "mlp":
        return MLPHead(in_features, n_outputs)
    raise ValueError(
        f"head={head!r} is not supported. Use one of {list(HEAD_OPTIONS)} or a "
        "torch.nn.Module mapping features to outputs."
    )
