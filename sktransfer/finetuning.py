"""Fine-tuning strategies -> optimizer parameter groups and callbacks.

Strategies:

- ``"full"``: every parameter trains from the start.
- ``"linear_probe"``: the backbone is frozen (weights and batch-norm
  statistics); only the head trains.
- ``"lp_ft"``: linear probe for the first half of the epochs, then full
  fine-tuning (Kumar et al., "Fine-Tuning can Distort Pretrained Features and
  Underperform Out-of-Distribution", ICLR 2022).
- ``"gradual"``: the head first, then backbone blocks unfrozen one at a time
  from the top (Howard & Ruder, "Universal Language Model Fine-tuning", 2018).

``backbone_lr`` multiplies the learning rate of pretrained backbone parameters
(discriminative learning rates). ``l2sp`` adds ``l2sp / 2 * ||w - w0||^2`` over
pretrained parameters (Li et al., "Explicit Inductive Bias for Transfer
Learning with Convolutional Networks", ICML 2018); those parameters are then
exempt from ``weight_decay``, which would pull them toward zero instead.
"""

from dataclasses import dataclass, field

import torch

from sktransfer.callbacks import UnfreezeSchedule

FINETUNE_OPTIONS = ("full", "linear_probe", "lp_ft", "gradual")


def backbone_blocks(module: torch.nn.Module) -> list[torch.nn.Module]:
    """Trainable blocks of a backbone, from the input side to the output side.

    Descends through wrappers with a single parameterised child, then returns
    the parameterised children; a module without such children is one block.
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


@dataclass
class FinetunePlan:
    """What a strategy asks of the optimizer and the training loop."""

    param_groups: list = field(default_factory=list)
    callbacks: list = field(default_factory=list)
    anchors: list = field(default_factory=list)  # [(param, pretrained value)]


def plan_finetuning(
    network,
    *,
    strategy,
    lr,
    backbone_lr,
    weight_decay,
    l2sp,
    max_epochs,
    backbone_pretrained,
    head_pretrained,
):
    """Turn a strategy into parameter groups, callbacks and L2-SP anchors.

    Parameters
    ----------
    network : TransferNetwork
    strategy : {"full", "linear_probe", "lp_ft", "gradual"}
    lr, backbone_lr, weight_decay, l2sp : float
    max_epochs : int
    backbone_pretrained, head_pretrained : bool
        Whether those parts hold pretrained weights (``backbone_lr`` and
        ``l2sp`` act on pretrained parameters only).

    Returns
    -------
    FinetunePlan
    """
    plan = FinetunePlan()
    groups = {}

    def add(params, pretrained, multiplier):
        decay = 0.0 if (pretrained and l2sp > 0) else weight_decay
        key = (lr * multiplier, decay)
        groups.setdefault(key, []).extend(params)
        if pretrained and l2sp > 0:
            plan.anchors.extend((p, p.detach().clone()) for p in params)

    bb_params = list(network.backbone.parameters())
    head_params = list(network.head.parameters())
    add(bb_params, backbone_pretrained, backbone_lr if backbone_pretrained else 1.0)
    add(head_params, head_pretrained, 1.0)
    plan.param_groups = [
        {"params": ps, "lr": g_lr, "weight_decay": decay}
        for (g_lr, decay), ps in groups.items()
        if ps
    ]

    if strategy == "full" or not bb_params:
        return plan
    if strategy == "linear_probe":
        plan.callbacks.append(
            ("unfreeze", UnfreezeSchedule([[], [network.backbone]], None))
        )
    elif strategy == "lp_ft":
        plan.callbacks.append(
            (
                "unfreeze",
                UnfreezeSchedule([[], [network.backbone]], max(1, max_epochs // 2)),
            )
        )
    elif strategy == "gradual":
        blocks = backbone_blocks(network.backbone)[::-1]  # top first
        per_phase = max(1, max_epochs // (len(blocks) + 1))
        plan.callbacks.append(
            ("unfreeze", UnfreezeSchedule([[]] + [[b] for b in blocks], per_phase))
        )
    return plan


def l2sp_penalty(anchors):
    """``sum ||w - w0||^2`` over the anchored parameters (a scalar tensor)."""
    total = None
    for p, p0 in anchors:
        term = (p - p0).pow(2).sum()
        total = term if total is None else total + term
    return total
