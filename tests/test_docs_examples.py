"""The extension recipes of docs/architecture.md run as written."""

import re
from pathlib import Path

import numpy as np
import torch

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import make_domain_shift

DOC = Path(__file__).resolve().parents[1] / "docs" / "architecture.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_the_three_recipes():
    assert len(BLOCKS) == 3


def test_recipes_register_and_fit(restore_registries):
    for block in BLOCKS:
        exec(compile(block, str(DOC), "exec"), {})
    Xs, ys, Xt, yt = make_domain_shift(120, 60, n_features=8, random_state=0)
    tiny = dict(max_epochs=3, random_state=0)
    cnn = TransferRegressor(
        "small_cnn", input_shape=(1, 8), backbone_params={"channels": 2}, **tiny
    ).fit(Xs, ys)
    assert cnn.n_backbone_features_ == 16
    source = TransferRegressor(backbone_params={"hidden_sizes": (8, 8)}, **tiny)
    source.fit(Xs, ys)
    tuned = TransferRegressor(source, finetune="top_block", **tiny).fit(Xt, yt)
    blocks = [b.net_.module_.backbone.blocks for b in (source, tuned)]
    assert torch.equal(blocks[0][0][0].weight, blocks[1][0][0].weight)  # frozen
    assert not torch.equal(blocks[0][1][0].weight, blocks[1][1][0].weight)
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(len(Xt), np.nan)])
    est = DomainAdaptRegressor(
        method="mean", backbone_params={"hidden_sizes": (8,)}, **tiny
    ).fit(X, y)
    assert est.da_weight_ == 1.0
    assert "train_da_loss" in est.history_[-1]
