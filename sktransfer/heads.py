"""Regression heads: map backbone features ``(n, d)`` to outputs ``(n, n_outputs)``.

:class:`GaussianHead` maps them to ``(n, 2 * n_outputs)``: a mean and a
variance per output, trained by the Gaussian negative log-likelihood
(Lakshminarayanan et al., NeurIPS 2017).
"""

import copy

import torch
from torch import nn
from torch.nn import functional as F

__all__ = [
    "GaussianHead",
    "MLPHead",
    "make_head",
    "predicts_variance",
]


HEAD_OPTIONS = ("auto", "linear", "mlp", "gaussian")

#: added to the softplus of the raw variance, as in the paper
MIN_VARIANCE = 1e-6


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


class GaussianHead(nn.Module):
    """A linear head that predicts a mean and a variance per output.

    One ``Linear(in_features, 2 * n_outputs)``: its first ``n_outputs``
    columns are the means, the others raw variance parameters, mapped to
    ``softplus(raw) + 1e-6`` (Lakshminarayanan et al., NeurIPS 2017). The
    output is ``(n, 2 * n_outputs)``: the means, then the variances. The
    estimators train it with the Gaussian negative log-likelihood.

    Parameters
    ----------
    in_features : int
        Width of the backbone's features (the linear layer's input).
    n_outputs : int
        Number of targets; the head returns twice as many columns.
    """

    #: the estimators read ``(mean, variance)`` columns from this head
    predicts_variance = True

    def __init__(self, in_features, n_outputs):
        super().__init__()
        self.n_outputs = int(n_outputs)
        self.linear = nn.Linear(in_features, 2 * self.n_outputs)

    def forward(self, x):
        # the mean and the raw variance as two products with halves of the
        # one weight matrix: the means are then computed as a linear head's,
        # whose result for a row does not depend on the other rows of the
        # batch (one product with 2 * n_outputs columns may sum in another
        # order for another batch size)
        k = self.n_outputs
        weight, bias = self.linear.weight, self.linear.bias
        mean = F.linear(x, weight[:k], bias[:k])
        raw = F.linear(x, weight[k:], bias[k:])
        return torch.cat([mean, F.softplus(raw) + MIN_VARIANCE], dim=1)


def predicts_variance(head) -> bool:
    """Whether ``head`` returns ``(mean, variance)`` columns.

    Parameters
    ----------
    head : torch.nn.Module
        A head: a :class:`GaussianHead`, or any module with a class attribute
        ``predicts_variance = True``, returns the means, then the variances.

    Returns
    -------
    bool
        True for such a head.
    """
    return bool(getattr(head, "predicts_variance", False))


def make_head(head, in_features: int, n_outputs: int) -> nn.Module:
    """Build a new head.

    Parameters
    ----------
    head : {"linear", "mlp", "gaussian"} or torch.nn.Module
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
    if head == "gaussian":
        return GaussianHead(in_features, n_outputs)
    raise ValueError(
        f"head={head!r} is not supported. Use one of {list(HEAD_OPTIONS)} or a "
        "torch.nn.Module mapping features to outputs."
    )
