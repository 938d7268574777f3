"""Backbone registry, built-in backbones and safe weight loading.

A backbone maps one sample (shape ``input_shape``) to a flat feature vector.
Registry factories are called as ``factory(input_shape, **backbone_params)``
where ``input_shape`` is the per-sample shape: ``(n_features,)`` for tabular
rows, ``(channels, length)`` for sequences and spectra.
"""

from sktransfer.backbones._registry import (
    get_backbone_factory,
    list_backbones,
    register_backbone,
)
from sktransfer.backbones._spec import load_spec
from sktransfer.backbones._weights import load_weights, read_state_dict
from sktransfer.backbones._zoo import CNN1d, GRUBackbone, MLPBackbone

__all__ = [
    "CNN1d",
    "GRUBackbone",
    "MLPBackbone",
    "get_backbone_factory",
    "list_backbones",
    "load_spec",
    "load_weights",
    "read_state_dict",
    "register_backbone",
]
