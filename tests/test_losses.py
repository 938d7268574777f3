"""Property tests of the loss functions (``sktransfer.losses``): the
divergences, the adversarial loss and the stable SVD. What the adaptation
methods do with them is tested over the method registry in test_adaptation.py."""

import numpy as np
import pytest
import torch
from daregram_reference import daregram_loss_reference
from hypothesis import given, settings
from hypothesis import strategies as st

from sktransfer.losses import (
    DomainDiscriminator,
    coral_loss,
    dann_loss,
    daregram_loss,
    grad_reverse,
    mmd_loss,
    rsd_loss,
    stable_svd,
)

DIVERGENCES = {
    "coral": coral_loss,
    "daregram": daregram_loss,
    "mmd": mmd_loss,
    "rsd": rsd_loss,
}
NAMES = sorted(DIVERGENCES)

batches = st.tuples(
    st.integers(3, 24),  # n_source
    st.integers(3, 24),  # n_target
    st.integers(1, 12),  # d
    st.integers(0, 2**31 - 1),  # seed
    st.floats(0.0, 3.0),  # shift
)


def _features(n_s, n_t, d, seed, shift):
    gen = torch.Generator().manual_seed(seed)
    fs = torch.randn(n_s, d, generator=gen)
    ft = torch.randn(n_t, d, generator=gen) * (1 + shift) + shift
    return fs, ft


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=40, deadline=None)
@given(batches)
def test_non_negative_finite_gradients(name, batch):
    fs, ft = _features(*batch)
    fs.requires_grad_(True)
    ft.requires_grad_(True)
    loss = DIVERGENCES[name](fs, ft)
    assert loss.dim() == 0
    assert float(loss.detach()) >= -1e-6
    loss.backward()
    assert torch.isfinite(fs.grad).all()
    assert torch.isfinite(ft.grad).all()


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(batches)
def test_near_zero_for_identical_batches(name, batch):
    n_s, _, d, seed, _ = batch
    fs, _ = _features(n_s, n_s, d, seed, 0.0)
    fs.requires_grad_(True)
    loss = DIVERGENCES[name](fs, fs.detach().clone())
    assert abs(float(loss.detach())) < 2e-3
    loss.backward()
    assert torch.isfinite(fs.grad).all()


@pytest.mark.parametrize("name", NAMES)
@settings(max_examples=30, deadline=None)
@given(batches, st.randoms(use_true_random=False))
def test_row_order_invariance(name, batch, rnd):
    fs, ft = _features(*batch)
    ps = list(range(len(fs)))
    pt = list(range(len(ft)))
    rnd.shuffle(ps)
    rnd.shuffle(pt)
    a = DIVERGENCES[name](fs, ft)
    b = DIVERGENCES[name](fs[ps], ft[pt])
    assert float(a) == pytest.approx(float(b), rel=1e-3, abs=1e-4)


@pytest.mark.parametrize("name", NAMES)
def test_shift_increases_divergence(name):
    """Each divergence notices a real difference between the batches."""
    fs, _ = _features(64, 64, 8, 0, 0.0)
    same = DIVERGENCES[name](fs[:32], fs[32:])
    gen = torch.Generator().manual_seed(1)
    mix = torch.randn(8, 8, generator=gen)
    shifted = DIVERGENCES[name](fs[:32], fs[32:] @ mix * 3 + 2)
    assert float(shifted) > float(same)


def test_dann_discriminator_has_gradient_and_features_get_reversed():
    torch.manual_seed(0)
    disc = DomainDiscriminator(4, hidden_size=8)
    fs = torch.randn(16, 4, requires_grad=True)
    ft = (torch.randn(16, 4) + 2).requires_grad_(True)
    loss = dann_loss(fs, ft, disc)
    assert float(loss.detach()) >= 0
    loss.backward()
    grads = [p.grad for p in disc.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert sum(float(g.abs().sum()) for g in grads) > 0
    # the features' gradient is the negative of the plain (non-reversed) one
    fs2 = fs.detach().clone().requires_grad_(True)
    logits = disc(torch.cat([fs2, ft.detach()]))
    plain = 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(
        logits[:16], torch.ones(16)
    ) + 0.5 * torch.nn.functional.binary_cross_entropy_with_logits(
        logits[16:], torch.zeros(16)
    )
    plain.backward()
    assert torch.allclose(fs.grad, -fs2.grad, atol=1e-6)
    assert float(fs.grad.abs().sum()) > 0


@settings(max_examples=30, deadline=None)
@given(st.floats(0.0, 5.0), st.integers(1, 8))
def test_grad_reverse(coeff, n):
    x = torch.randn(n, 3, requires_grad=True)
    y = grad_reverse(x, coeff)
    assert torch.equal(y, x)
    y.sum().backward()
    assert torch.allclose(x.grad, torch.full_like(x, -coeff))


@pytest.mark.parametrize("shape", [(7, 4), (4, 7), (5, 5)])
def test_stable_svd_matches_torch_where_well_conditioned(shape):
    gen = torch.Generator().manual_seed(0)
    a = torch.randn(*shape, generator=gen, dtype=torch.float64, requires_grad=True)
    weights = torch.randn(min(shape), generator=gen, dtype=torch.float64)

    def objective(svd):
        u, s, vh = svd(a)
        return (u[:, 0].abs() * 2).sum() + (s * weights).sum() + vh[0].abs().sum()

    ours = torch.autograd.grad(objective(stable_svd), a)[0]
    ref = torch.autograd.grad(
        objective(lambda m: torch.linalg.svd(m, full_matrices=False)), a
    )[0]
    np.testing.assert_allclose(ours.numpy(), ref.numpy(), atol=1e-4)


def test_stable_svd_finite_on_repeated_singular_values():
    a = torch.eye(4, dtype=torch.float64).requires_grad_(True)
    u, s, vh = stable_svd(a)
    (u.abs().sum() + vh.abs().sum() + s.sum()).backward()
    assert torch.isfinite(a.grad).all()


def test_mmd_kernel_settings_and_unequal_batches():
    fs, ft = _features(20, 7, 4, 0, 1.0)
    default = float(mmd_loss(fs, ft))
    assert default > 0
    assert float(mmd_loss(fs, ft, kernel_mul=3.0, n_kernels=3)) != default
    assert float(mmd_loss(fs, fs.clone())) == pytest.approx(0.0, abs=1e-6)


def test_daregram_keeps_the_dtype_of_the_features():
    fs, ft = _features(16, 16, 4, 0, 1.0)
    assert daregram_loss(fs, ft).dtype == torch.float32
    assert daregram_loss(fs.double(), ft.double()).dtype == torch.float64


def test_domain_discriminator_ends_in_one_logit():
    disc = DomainDiscriminator(5, hidden_size=3)
    assert disc(torch.zeros(7, 5)).shape == (7,)
    linears = [m for m in disc.modules() if isinstance(m, torch.nn.Linear)]
    assert [m.out_features for m in linears] == [3, 3, 1]


def _daregram_inputs(kind, n_s, n_t, d, seed):
    """Feature batches of a given kind: random, rank-deficient (a few ReLU
    directions), or with duplicate rows (and an identical target)."""
    gen = torch.Generator().manual_seed(seed)
    fs = torch.randn(n_s, d, generator=gen, dtype=torch.float64)
    ft = torch.randn(n_t, d, generator=gen, dtype=torch.float64) * 2 + 1
    if kind == "rank_deficient":
        r = max(1, d // 4)
        fs = torch.relu(fs[:, :r] @ torch.randn(r, d, generator=gen).double())
        ft = ft[:, :r] @ torch.randn(r, d, generator=gen).double()
    elif kind == "duplicate_rows":
        fs = fs[torch.arange(n_s) % max(1, n_s // 3)]
        ft = fs.clone() if n_s == n_t else ft[torch.arange(n_t) % 2]
    return fs, ft


def _loss_and_grads(loss_fn, fs, ft):
    fs = fs.clone().requires_grad_(True)
    ft = ft.clone().requires_grad_(True)
    loss = loss_fn(fs, ft)
    loss.backward()
    return loss.detach(), fs.grad, ft.grad


@pytest.mark.parametrize("kind", ["random", "rank_deficient", "duplicate_rows"])
@pytest.mark.parametrize(
    "n_s, n_t, d",
    [
        (64, 64, 128),  # the default: batch narrower than the features
        (64, 23, 128),  # a short target batch
        (40, 40, 16),  # batch wider than the features
        (7, 50, 12),  # one of each
        (3, 3, 1),
        (1, 5, 4),  # a single source row
    ],
)
def test_daregram_equals_the_reference_implementation(kind, n_s, n_t, d):
    """One eigh per domain (of the n x n kernel when the batch is narrower
    than the features) computes the loss and the gradient the two svdvals
    and two pinv did (tests/daregram_reference.py)."""
    fs, ft = _daregram_inputs(kind, n_s, n_t, d, seed=n_s * 1000 + d)
    ours = _loss_and_grads(daregram_loss, fs, ft)
    ref = _loss_and_grads(daregram_loss_reference, fs, ft)
    for a, b in zip(ours, ref):
        assert torch.isfinite(a).all()
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-9)


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from(["random", "rank_deficient", "duplicate_rows"]),
    st.integers(1, 40),
    st.integers(1, 40),
    st.integers(1, 48),
    st.integers(0, 2**31 - 1),
    st.booleans(),
)
def test_daregram_finite_and_equal_to_the_reference(kind, n_s, n_t, d, seed, single):
    fs, ft = _daregram_inputs(kind, n_s, n_t, d, seed)
    if single:
        fs, ft = fs.float(), ft.float()
    loss, g_s, g_t = _loss_and_grads(daregram_loss, fs, ft)
    assert loss.dtype == fs.dtype
    assert torch.isfinite(loss) and torch.isfinite(g_s).all()
    assert torch.isfinite(g_t).all()
    ref = _loss_and_grads(daregram_loss_reference, fs, ft)
    for a, b in zip((loss, g_s, g_t), ref):
        # absolute noise floor: a gradient of 1e-17 against an exact 0 is equal
        scale = float(b.abs().max())
        np.testing.assert_allclose(
            a.numpy(), b.numpy(), rtol=1e-4, atol=1e-5 * scale + 1e-12
        )
