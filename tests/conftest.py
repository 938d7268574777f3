"""Test-session settings."""

import pytest
import torch


@pytest.fixture(scope="session", autouse=True)
def _one_torch_thread_per_worker():
    """pytest -n 2 runs two workers on two cores: one torch thread each avoids
    oversubscription, which makes small fits many times slower."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)
