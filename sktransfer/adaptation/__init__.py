"""Domain-adaptation methods: one protocol, one registry.

``DomainAdaptRegressor(method=name)`` looks the method up here. Each method is
an :class:`AdaptationMethod`: the loss between source and target features, the
extra trainable modules it owns, its callbacks and the batching it needs.

Examples
--------
>>> from sktransfer.adaptation import get_method, list_methods
>>> list_methods()
['source_only', 'adabn', 'dann', 'coral', 'mmd', 'rsd', 'daregram']
>>> get_method("coral").has_loss
True
"""

from sktransfer.adaptation._builtin import (
    BUILTIN,
    CORAL,
    DANN,
    DAREGRAM,
    MMD,
    RSD,
    AdaBN,
    Divergence,
    SourceOnly,
)
from sktransfer.adaptation._method import (
    AdaptationMethod,
    get_method,
    list_methods,
    reestimate_batch_norm,
    register_method,
)

for _builtin_method in BUILTIN:
    register_method(_builtin_method)
del _builtin_method

__all__ = [
    "CORAL",
    "DANN",
    "DAREGRAM",
    "MMD",
    "RSD",
    "AdaBN",
    "AdaptationMethod",
    "Divergence",
    "SourceOnly",
    "get_method",
    "list_methods",
    "reestimate_batch_norm",
    "register_method",
]
