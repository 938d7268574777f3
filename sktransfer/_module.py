"""The network ``net_.module_``: input standardisation -> backbone -> head."""

import torch
from torch import nn


class Standardize(nn.Module):
    """Fixed affine input scaling ``(x - mean) / scale`` held in buffers.

    Inactive (identity, no cost) until :meth:`set` is called. The scaling runs
    as one fused ``addcmul``, which matters for single-row prediction.
    """

    def __init__(self):
        super().__init__()
        self.register_buffer("mean", torch.zeros(0))
        self.register_buffer("scale", torch.ones(0))
        self.register_buffer("_shift", torch.zeros(0), persistent=False)
        self.register_buffer("_inv", torch.ones(0), persistent=False)
        self.active = False

    def set(self, mean, scale):
        device = self.mean.device
        self.mean = torch.as_tensor(mean, dtype=torch.float32, device=device).clone()
        self.scale = torch.as_tensor(scale, dtype=torch.float32, device=device).clone()
        self._inv = 1.0 / self.scale
        self._shift = -self.mean * self._inv
        self.active = self.mean.numel() > 0
        return self

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)
        self.set(self.mean, self.scale)

    def forward(self, x):
        if not self.active:
            return x
        return torch.addcmul(self._shift, x, self._inv)


class TransferModule(nn.Module):
    """``head(backbone(reshape(normalizer(x))))``.

    Parameters
    ----------
    backbone : nn.Module
        Maps ``(n, *input_shape)`` to features ``(n, n_features)``.
    head : nn.Module
        Maps features ``(n, n_features)`` to ``(n, n_outputs)``.
    n_features : int
        Width of the backbone's features.
    reshape_to : tuple or None, default=None
        When set, 2-D batches are reshaped to ``(n, *reshape_to)`` before the
        backbone (the estimators' ``input_shape``).
    """

    def __init__(self, backbone, head, n_features, reshape_to=None):
        super().__init__()
        self.normalizer = Standardize()
        self.backbone = backbone
        self.head = head
        self.n_features = int(n_features)
        self.reshape_to = None if reshape_to is None else tuple(reshape_to)

    def features(self, x, scaled=False):
        """Backbone features ``(n, n_features)`` of a batch (``scaled``: the
        inputs are already standardised, the normaliser is skipped)."""
        if not scaled:
            x = self.normalizer(x)
        if self.reshape_to is not None and x.dim() == 2:
            x = x.reshape(x.shape[0], *self.reshape_to)
        f = self.backbone(x)
        if f.dim() != 2:
            f = f.flatten(1)
        return f

    def forward_with_features(self, x):
        """``(outputs, features)`` of a batch."""
        f = self.features(x)
        return self.head(f), f

    def forward(self, x, scaled=False):
        return self.head(self.features(x, scaled))
