"""Regression heads (``sktransfer.heads``) and the ``head`` parameter."""

import pytest
import torch
from conftest import linear_problem, network, state, states_equal

from sktransfer import TransferRegressor
from sktransfer.heads import GaussianHead, MLPHead, make_head


def test_mlp_head():
    head = MLPHead(6, 2, hidden_size=5)
    assert head(torch.zeros(3, 6)).shape == (3, 2)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(6, 5), (5, 2)]
    assert MLPHead(4, 1).net[0].out_features == 64


def test_make_head():
    for name in ("linear", "auto"):
        head = make_head(name, 7, 3)
        assert type(head) is torch.nn.Linear
        assert (head.in_features, head.out_features) == (7, 3)
    assert isinstance(make_head("mlp", 7, 3), MLPHead)
    gaussian = make_head("gaussian", 7, 3)
    assert isinstance(gaussian, GaussianHead) and gaussian.linear.out_features == 6
    module = torch.nn.Linear(7, 3)
    copy = make_head(module, 7, 3)
    assert copy is not module and states_equal(copy, module)
    with pytest.raises(ValueError, match="head='bogus' is not supported"):
        make_head("bogus", 7, 3)


def test_module_head_is_copied():
    X, y = linear_problem(n=80, n_features=5)
    head = torch.nn.Linear(8, 1)
    before = state(head)
    est = TransferRegressor(
        torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh()),
        head=head,
        max_epochs=3,
        random_state=0,
    ).fit(X, y)
    assert network(est).head is not head
    assert states_equal(head, before)
    assert not states_equal(network(est).head, before)  # the copy trained
    with pytest.raises(ValueError, match="one column per output"):
        TransferRegressor(
            torch.nn.Sequential(torch.nn.Linear(5, 8), torch.nn.Tanh()),
            head=torch.nn.Linear(8, 3),
            max_epochs=1,
        ).fit(X, y)


def test_mlp_head_option_trains_by_gradient():
    X, y = linear_problem(n=60, n_features=4)
    est = TransferRegressor("linear", head="mlp", max_epochs=3, random_state=0)
    est.fit(X, y)
    assert est.solver_ == "gradient" and est.n_iter_ == 3
    assert isinstance(network(est).head, MLPHead)
