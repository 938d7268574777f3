"""The network ``net_.module_`` (``sktransfer._module``): the input normaliser,
reshaping, features and outputs."""

import numpy as np
import torch

from sktransfer._module import Standardize, TransferModule


def test_standardize_is_inactive_until_set():
    norm = Standardize()
    x = torch.randn(4, 3)
    assert not norm.active and norm(x) is x
    norm.set(np.array([1.0, 2.0, 3.0]), np.array([2.0, 4.0, 8.0]))
    assert norm.active
    torch.testing.assert_close(
        norm(x), (x - torch.tensor([1.0, 2.0, 3.0])) / torch.tensor([2.0, 4.0, 8.0])
    )
    norm.set(np.zeros(0), np.ones(0))
    assert not norm.active  # empty statistics switch it off


def test_standardize_state_dict_round_trip_switches_it_on():
    norm = Standardize().set(np.array([1.0, -1.0]), np.array([0.5, 2.0]))
    other = Standardize()
    other.mean, other.scale = torch.zeros(2), torch.ones(2)  # buffers of the shape
    other.load_state_dict(norm.state_dict())
    assert other.active
    x = torch.randn(3, 2)
    torch.testing.assert_close(other(x), norm(x))
    # the derived buffers are not saved
    assert set(norm.state_dict()) == {"mean", "scale"}


def test_transfer_module_reshapes_rows_before_the_backbone():
    seen = []

    class Record(torch.nn.Module):
        def forward(self, x):
            seen.append(tuple(x.shape))
            return x.flatten(1)

    module = TransferModule(Record(), torch.nn.Linear(6, 2), 6, reshape_to=(2, 3))
    out, features = module.forward_with_features(torch.ones(4, 6))
    assert seen == [(4, 2, 3)]
    assert out.shape == (4, 2) and features.shape == (4, 6)
    torch.testing.assert_close(module(torch.ones(4, 6)), out)
    # n-D samples pass as they are
    module(torch.ones(4, 2, 3))
    assert seen[-1] == (4, 2, 3)
    assert module.reshape_to == (2, 3) and module.n_features == 6


def test_transfer_module_flattens_nd_features_and_normalises_first():
    module = TransferModule(torch.nn.Identity(), torch.nn.Linear(6, 1), 6)
    assert module.features(torch.ones(4, 2, 3)).shape == (4, 6)
    module.normalizer.set(np.ones((2, 3)), np.full((2, 3), 2.0))
    torch.testing.assert_close(
        module.features(torch.full((1, 2, 3), 5.0)), torch.full((1, 6), 2.0)
    )
    assert (
        TransferModule(torch.nn.Flatten(), torch.nn.Linear(3, 1), 3).reshape_to is None
    )
