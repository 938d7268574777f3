"""Fine-tuning strategies: which parameters train when, at which learning rate.

A strategy is a small object (:class:`FinetuneStrategy`) kept in one registry;
``TransferRegressor(finetune=name)`` looks it up. Built in:

- ``"full"``: every parameter trains from the start.
- ``"linear_probe"``: the backbone is frozen (weights and batch-norm
  statistics); only the head trains.
- ``"lp_ft"``: linear probe for the first half of the epochs, then full
  fine-tuning (Kumar et al., "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution", ICLR 2022).
- ``"gradual"``: the head first, then backbone blocks unfrozen one at a time
  from the top (Howard & Ruder, "Universal Language Model Fine-tuning for Text
  Classification", ACL 2018).

Whatever the strategy, :func:`parameter_groups` applies discriminative learning
rates (``backbone_lr`` multiplies the learning rate of pretrained backbone
parameters) and L2-SP (Li et al., "Explicit Inductive Bias for Transfer
Learning with Convolutional Networks", ICML 2018): ``l2sp / 2 * ||w - w0||^2``
over pretrained parameters, which are then exempt from ``weight_decay`` (it
would pull them toward zero instead).

Examples
--------
>>> from sktransfer.finetuning import list_strategies
>>> list_strategies()
['full', 'linear_probe', 'lp_ft', 'gradual']
"""

import torch

from sktransfer._callbacks import UnfreezeSchedule
from sktransfer._registry import Registry
from sktransfer._warnings import moved

__all__ = [
    "FinetuneStrategy",
    "Full",
    "Gradual",
    "LinearProbe",
    "LinearProbeThenFinetune",
    "backbone_blocks",
    "get_strategy",
    "l2sp_penalty",
    "list_strategies",
    "parameter_groups",
    "register_strategy",
]


def backbone_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Trainable blocks of a backbone, from the input side to the output side.

    Descends through wrappers with a single parameterised child, then returns
    the parameterised children; a module without such children is one block.

    Parameters
    ----------
    module : torch.nn.Module
        A backbone.

    Returns
    -------
    blocks : list of torch.nn.Module
        Empty when the module has no parameters.
    """

    def with_params(m):
        return [c for c in m.children() if any(True for _ in c.parameters())]

    current = module
    while True:
        children = with_params(current)
        if len(children) == 1 and not any(
            True for _ in current.parameters(recurse=False)
        ):
            current = children[0]
            continue
        break
    if not any(True for _ in current.parameters()):
        return []
    if children and not any(True for _ in current.parameters(recurse=False)):
        return children
    return [current]


class FinetuneStrategy:
    """Base class of fine-tuning strategies.

    Subclass it, set ``name``, override :meth:`callbacks` (and
    ``freezes_backbone`` when the backbone never trains), then
    :func:`register_strategy` it.

    Attributes
    ----------
    name : str
        The registry name, used as ``TransferRegressor(finetune=name)``.
    freezes_backbone : bool
        The backbone stays frozen for the whole fit (only the head trains), so
        an exact solver may replace the gradient loop.
    """

    name = None
    freezes_backbone = False

    def callbacks(self, network, max_epochs):
        """skorch callbacks that freeze and unfreeze parts of ``network``.

        Parameters
        ----------
        network : TransferModule
            The network to train; ``network.backbone`` has parameters.
        max_epochs : int
            The epoch budget.

        Returns
        -------
        callbacks : list of (str, skorch.callbacks.Callback)
        """
        return []


class Full(FinetuneStrategy):
    """Every parameter trains from the first epoch."""

    name = "full"


class LinearProbe(FinetuneStrategy):
    """The backbone stays frozen (weights and batch-norm statistics)."""

    name = "linear_probe"
    freezes_backbone = True

    def callbacks(self, network, max_epochs):
        return [("unfreeze", UnfreezeSchedule([[], [network.backbone]], None))]


class LinearProbeThenFinetune(FinetuneStrategy):
    """A linear probe for half of the epochs, then every parameter (LP-FT)."""

    name = "lp_ft"

    def callbacks(self, network, max_epochs):
        per_phase = max(1, max_epochs // 2)
        return [("unfreeze", UnfreezeSchedule([[], [network.backbone]], per_phase))]


class Gradual(FinetuneStrategy):
    """The head first, then backbone blocks one at a time from the top."""

    name = "gradual"

    def callbacks(self, network, max_epochs):
        blocks = backbone_blocks(network.backbone)[::-1]  # top first
        per_phase = max(1, max_epochs // (len(blocks) + 1))
        phases = [[]] + [[b] for b in blocks]
        return [("unfreeze", UnfreezeSchedule(phases, per_phase))]


_STRATEGIES = Registry(
    "fine-tuning strategy", "finetune", "sktransfer.finetuning.register_strategy"
)


def register_strategy(strategy, *, overwrite=False):
    """Add a fine-tuning strategy to the registry.

    Parameters
    ----------
    strategy : FinetuneStrategy subclass or instance
        Its ``name`` is the registry key.
    overwrite : bool, default=False
        Replace an existing entry of the same name.

    Returns
    -------
    strategy : the argument, unchanged (usable as a class decorator).
    """
    return _STRATEGIES.add_named(strategy, FinetuneStrategy, overwrite)


def list_strategies():
    """Names of the registered fine-tuning strategies, in registration order."""
    return _STRATEGIES.names()


def get_strategy(name):
    """The registered strategy called ``name``.

    Parameters
    ----------
    name : str
        A registered strategy name.

    Returns
    -------
    strategy : FinetuneStrategy

    Raises
    ------
    ValueError
        If no strategy of that name is registered; the message lists them.
    """
    return _STRATEGIES.get(name)


for _builtin_strategy in (Full, LinearProbe, LinearProbeThenFinetune, Gradual):
    register_strategy(_builtin_strategy)
del _builtin_strategy


def parameter_groups(
    network,
    *,
    lr,
    weight_decay,
    backbone_lr=1.0,
    l2sp=0.0,
    backbone_pretrained=False,
    head_pretrained=False,
):
    """Optimizer parameter groups (by parameter name) and L2-SP anchors.

    Parameters
    ----------
    network : TransferModule
        The assembled network (``backbone`` and ``head``).
    lr, weight_decay : float
        The base learning rate and weight decay.
    backbone_lr : float, default=1.0
        Multiplier of ``lr`` for a pretrained backbone.
    l2sp : float, default=0.0
        L2-SP strength; pretrained parameters are anchored (and get no weight
        decay) when it is positive.
    backbone_pretrained, head_pretrained : bool, default=False
        Whether those parts hold pretrained weights.

    Returns
    -------
    groups : list of dict
        ``{"params": [names], "lr": float, "weight_decay": float}``, names as in
        ``network.named_parameters()``.
    anchored : list of str
        Parameters pulled toward their values at the start of training.
    """
    groups, anchored = {}, []

    def add(prefix, part, pretrained, multiplier):
        names = [f"{prefix}.{n}" for n, _ in part.named_parameters()]
        decay = 0.0 if (pretrained and l2sp > 0) else weight_decay
        groups.setdefault((lr * multiplier, decay), []).extend(names)
        if pretrained and l2sp > 0:
            anchored.extend(names)

    bb_multiplier = backbone_lr if backbone_pretrained else 1.0
    add("backbone", network.backbone, backbone_pretrained, bb_multiplier)
    add("head", network.head, head_pretrained, 1.0)
    groups = [
        {"params": names, "lr": g_lr, "weight_decay": decay}
        for (g_lr, decay), names in groups.items()
        if names
    ]
    return groups, anchored


def l2sp_penalty(anchors):
    """``sum ||w - w0||^2`` over anchored parameters.

    Parameters
    ----------
    anchors : sequence of (torch.nn.Parameter, torch.Tensor)
        Pairs of a parameter and its value at the start of training.

    Returns
    -------
    penalty : scalar tensor
    """
    total = None
    for p, p0 in anchors:
        term = (p - p0).pow(2).sum()
        total = term if total is None else total + term
    return total


__getattr__ = moved(
    "sktransfer.finetuning",
    {"FINETUNE_OPTIONS": (lambda: tuple(list_strategies()), "list_strategies()")},
)
