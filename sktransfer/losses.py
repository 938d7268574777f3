"""Functional divergences between source and target feature batches.

Every function takes ``features_source`` of shape ``(n_s, d)`` and
``features_target`` of shape ``(n_t, d)`` and returns a scalar tensor that is
differentiable in both. They are invariant to the order of rows.

- :func:`coral_loss` -- Deep CORAL, Sun & Saenko, ECCV-W 2016.
- :func:`mmd_loss` -- multi-kernel MMD as in DAN, Long et al., ICML 2015.
- :func:`rsd_loss` -- Representation Subspace Distance, Chen et al., "Representation
  Subspace Distance for Domain Adaptation Regression", ICML 2021.
- :func:`daregram_loss` -- DARE-GRAM, Nejjar et al., "DARE-GRAM: Unsupervised
  Domain Adaptation Regression by Aligning Inverse Gram Matrices", WACV 2024
  (arXiv 2023).
- :func:`dann_loss` with :class:`DomainDiscriminator` and :func:`grad_reverse`
  -- DANN, Ganin et al., JMLR 2016.

One loss serves self-supervised pre-training (:mod:`sktransfer.pretraining`)
instead: :func:`nt_xent_loss` takes two views of the same rows.

- :func:`nt_xent_loss` -- InfoNCE (van den Oord et al., "Representation
  Learning with Contrastive Predictive Coding", arXiv 2018) in SimCLR's
  normalised-temperature form (Chen et al., "A Simple Framework for
  Contrastive Learning of Visual Representations", ICML 2020), as SCARF uses it.
"""

import torch
import torch.nn.functional as F
from torch import nn

from sktransfer._docs import fill_doc
from sktransfer._warnings import moved

__all__ = [
    "DomainDiscriminator",
    "coral_loss",
    "dann_loss",
    "daregram_loss",
    "grad_reverse",
    "mmd_loss",
    "nt_xent_loss",
    "rsd_loss",
    "stable_svd",
]


def _covariance(f):
    n = f.shape[0]
    centred = f - f.mean(dim=0, keepdim=True)
    return centred.T @ centred / max(n - 1, 1)


@fill_doc
def coral_loss(features_source, features_target):
    """Deep CORAL: ``||C_s - C_t||_F^2 / (4 d^2)`` between feature covariances.

    Non-negative, zero when both batches have the same covariance.

    Parameters
    ----------
    %(features)s

    Returns
    -------
    loss : scalar tensor

    Examples
    --------
    >>> import torch
    >>> from sktransfer.losses import coral_loss
    >>> f = torch.randn(16, 4)
    >>> float(coral_loss(f, f))
    0.0
    """
    d = features_source.shape[1]
    diff = _covariance(features_source) - _covariance(features_target)
    return diff.pow(2).sum() / (4.0 * d * d)


def nt_xent_loss(z1, z2, temperature=1.0):
    """NT-Xent: InfoNCE over the ``2n`` views of ``n`` rows (SimCLR's loss).

    Each view's positive is the other view of its row; the other ``2n - 2``
    views of the batch are its negatives. Embeddings are L2-normalised and
    their cosine similarities divided by ``temperature``; the loss is the
    mean cross-entropy of picking the positive. Symmetric in ``z1`` and
    ``z2``, invariant to the order of rows and to the scale of each
    embedding; ``log(2n - 1)`` when all embeddings point the same way.

    Parameters
    ----------
    z1, z2 : tensor of shape (n, d)
        Embeddings of two views of the same ``n`` rows (row ``i`` of ``z1``
        and row ``i`` of ``z2`` are a positive pair).
    temperature : float, default=1.0
        Divides the cosine similarities (SCARF's default is 1; smaller values
        weigh hard negatives more).

    Returns
    -------
    loss : scalar tensor

    Examples
    --------
    >>> import math, torch
    >>> from sktransfer.losses import nt_xent_loss
    >>> z = torch.ones(4, 3)
    >>> round(float(nt_xent_loss(z, z)), 4) == round(math.log(7), 4)
    True
    """
    n = z1.shape[0]
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    sim = z @ z.T / temperature
    self_pairs = torch.eye(2 * n, dtype=torch.bool, device=z.device)
    sim = sim.masked_fill(self_pairs, float("-inf"))
    positives = torch.cat([torch.arange(n, 2 * n), torch.arange(n)]).to(z.device)
    return F.cross_entropy(sim, positives)


def _sq_distances(a, b):
    d = (a * a).sum(1, keepdim=True) + (b * b).sum(1).unsqueeze(0) - 2.0 * a @ b.T
    return d.clamp_min(0.0)


@fill_doc
def mmd_loss(features_source, features_target, kernel_mul=2.0, n_kernels=5):
    """Multi-kernel maximum mean discrepancy (biased estimate, squared).

    A sum of ``n_kernels`` Gaussian kernels with bandwidths
    ``base * kernel_mul**k`` centred on the mean pairwise squared distance of
    the pooled batch (``base``, not differentiated). The biased estimate is the
    squared RKHS distance of the mean embeddings, so it is non-negative and zero
    for identical batches.

    Parameters
    ----------
    %(features)s
    kernel_mul : float, default=2.0
        Ratio between neighbouring bandwidths.
    n_kernels : int, default=5
        Number of Gaussian kernels.

    Returns
    -------
    loss : scalar tensor
    """
    pooled = torch.cat([features_source, features_target])
    dist = _sq_distances(pooled, pooled)
    n = pooled.shape[0]
    base = dist.detach().sum() / max(n * n - n, 1)
    base = base.clamp_min(1e-12) / (kernel_mul ** (n_kernels // 2))
    kernel = sum(torch.exp(-dist / (base * kernel_mul**k)) for k in range(n_kernels))
    n_s = features_source.shape[0]
    k_ss = kernel[:n_s, :n_s].mean()
    k_tt = kernel[n_s:, n_s:].mean()
    k_st = kernel[:n_s, n_s:].mean()
    return (k_ss + k_tt - 2.0 * k_st).clamp_min(0.0)


class _StableSVD(torch.autograd.Function):
    """Thin SVD of an (m, n) matrix, m >= n, with a regularised backward.

    The textbook SVD gradient (Townsend, 2016) divides by ``s_j^2 - s_i^2`` and
    by ``s_i``; repeated or zero singular values (identical batches, dead
    units) make it infinite. Both divisions are replaced by their Tikhonov
    forms ``x / (x^2 + eps)``, which agree with the exact gradient wherever
    it is well conditioned and stay finite elsewhere.
    """

    @staticmethod
    def forward(ctx, a):
        u, s, vh = torch.linalg.svd(a, full_matrices=False)
        ctx.save_for_backward(u, s, vh)
        return u, s, vh

    @staticmethod
    def backward(ctx, g_u, g_s, g_vh):
        u, s, vh = ctx.saved_tensors
        v = vh.T
        g_u = torch.zeros_like(u) if g_u is None else g_u
        g_s = torch.zeros_like(s) if g_s is None else g_s
        g_v = torch.zeros_like(v) if g_vh is None else g_vh.T
        s2 = s * s
        eps = (1e-6 * s2.max()).pow(2) + 1e-30
        diff = s2.unsqueeze(0) - s2.unsqueeze(1)  # s_j^2 - s_i^2
        f = diff / (diff * diff + eps)
        s_inv = s / (s2 + eps**0.5)
        j = f * (u.T @ g_u - g_u.T @ u)
        k = f * (v.T @ g_v - g_v.T @ v)
        inner = j * s.unsqueeze(0) + torch.diag(g_s) + s.unsqueeze(1) * k
        grad = u @ inner @ vh
        grad = grad + ((g_u - u @ (u.T @ g_u)) * s_inv.unsqueeze(0)) @ vh
        grad = grad + u @ (s_inv.unsqueeze(1) * (g_v.T - (g_v.T @ v) @ vh))
        return grad


def stable_svd(a):
    """Thin SVD ``a = u @ diag(s) @ vh`` with a gradient that stays finite.

    Parameters
    ----------
    a : tensor of shape (m, n)
        The matrix.

    Returns
    -------
    u, s, vh : tensors
        As ``torch.linalg.svd(a, full_matrices=False)``.
    """
    if a.shape[0] >= a.shape[1]:
        return _StableSVD.apply(a)
    u, s, vh = _StableSVD.apply(a.T)
    return vh.T, s, u.T


def _subspace(f, k):
    """Orthonormal basis (d, k) of the top-k left singular directions of f.T."""
    u, _, _ = stable_svd(f.T)
    return u[:, :k]


@fill_doc
def rsd_loss(features_source, features_target, base_weight=0.01, eps=1e-6):
    """Representation Subspace Distance (Chen et al., ICML 2021).

    The principal angles ``theta_i`` between the subspaces spanned by the
    source and target feature batches give ``sum_i sin(theta_i)``; a base
    term ``base_weight * ||abs(P_s) - abs(P_t)||_F`` penalises mismatched
    principal vectors (``P_s``, ``P_t`` from the SVD of ``U_s^T U_t``).
    Subspaces keep ``k = min(n_s, n_t, d // 2)`` directions so that the
    distance stays informative when the batch is wider than the features
    (the original uses ``k = n`` with ``d >> n``). ``sin`` is computed as
    ``sqrt(max(1 - cos^2, eps))`` so the gradient stays finite when the
    subspaces coincide.

    Non-negative; near zero for identical batches.

    Parameters
    ----------
    %(features)s
    base_weight : float, default=0.01
        Weight of the base-mismatch term.
    eps : float, default=1e-6
        Floor under ``1 - cos^2`` and the base term.

    Returns
    -------
    loss : scalar tensor
    """
    d = features_source.shape[1]
    k = max(1, min(features_source.shape[0], features_target.shape[0], d // 2 or 1))
    u_s = _subspace(features_source, k)
    u_t = _subspace(features_target, k)
    p_s, cos, p_t_h = stable_svd(u_s.T @ u_t)
    sin = torch.sqrt((1.0 - cos.pow(2)).clamp_min(eps))
    sin = sin - eps**0.5  # exactly 0 for coinciding subspaces
    base = (p_s.abs() - p_t_h.T.abs()).pow(2).sum().clamp_min(eps).sqrt()
    return sin.sum() + base_weight * (base - eps**0.5)


def _gram_eigh(a):
    """Eigen-decomposition of the Gram matrix ``G = a^T a / n`` (not differentiated).

    A batch narrower than its width (n < D) is decomposed through its n x n
    kernel ``a a^T / n``, which has the same non-zero eigenvalues and is
    cheaper. Returns the absolute eigenvalues in descending order, padded with
    zeros to D, and the eigenvectors of the decomposed matrix (in that order).

    The two domains are decomposed one call each: a batched ``eigh`` is no
    faster on CPU and rounds the second matrix differently, so identical
    batches would no longer give identical spectra.
    """
    n, width = a.shape
    lam, vec = torch.linalg.eigh(a.T @ a / n if n >= width else a @ a.T / n)
    lam, vec = lam.flip(0).abs(), vec.flip(1)
    return F.pad(lam, (0, width - lam.numel())), vec


def _n_keep(lam, threshold):
    """Leading eigenvalues holding ``threshold`` of the spectrum, and the
    numerical rank (noise eigenvalues would make G^+ explode)."""
    ratio = torch.cumsum(lam, 0) / lam.sum().clamp_min(1e-12)
    t = max(float(ratio[1]), threshold) if lam.numel() > 1 else threshold
    keep = int((ratio <= t + 1e-6).sum())
    rank = int((lam > 1e-5 * lam[0]).sum())
    return keep, max(rank, 1)


def _principal(a, lam, vec, m):
    """The m leading eigenvectors (D, m) of ``G = a^T a / n``."""
    if vec.shape[0] == a.shape[1]:  # decomposed G itself
        return vec[:, :m]
    # decomposed the kernel K = a a^T / n: G a^T u = lam a^T u, |a^T u|^2 = n lam
    return a.T @ vec[:, :m] / torch.sqrt(len(a) * lam[:m])


class _InverseGram(torch.autograd.Function):
    """From ``A`` (n, D) and the leading eigenpairs of ``G = A^T A / n``: the
    first ``keep`` eigenvalues and the pseudo-inverse of G truncated to the
    given m >= keep directions.

    The backward is the one of ``torch.linalg.svdvals`` and
    ``torch.linalg.pinv(hermitian=True)`` (the constant-rank derivative of the
    pseudo-inverse, Golub & Pereyra 1973), written in the m kept directions.
    It never divides by a gap between eigenvalues, so repeated eigenvalues
    (duplicate rows, identical batches) leave it finite.
    """

    @staticmethod
    def forward(ctx, a, vec, lam, keep):
        ctx.save_for_backward(a, vec, lam)
        ctx.keep = keep
        return lam[:keep].clone(), (vec / lam) @ vec.T

    @staticmethod
    def backward(ctx, g_lam, g_pinv):
        a, v, lam = ctx.saved_tensors
        s = 1.0 / lam
        # the symmetrised gradient g_G + g_G^T of X = G^+ = V S V^T (P = V V^T,
        # gs = g + g^T) is -X gs X + (I - P) gs X^2 + X^2 gs (I - P)
        # = -V S Bs S V^T + E S^2 V^T + V S^2 E^T (W = gs V, Bs = V^T W,
        # E = W - V Bs); the eigenvalues add 2 V diag(g_lam) V^T; and
        # G = A^T A / n turns it into g_A = A (g_G + g_G^T) / n
        if g_pinv is None:
            g_pinv = v.new_zeros(v.shape[0], v.shape[0])
        w = (g_pinv + g_pinv.T) @ v
        bs = v.T @ w
        e = w - v @ bs
        inner = -(s.unsqueeze(1) * bs * s.unsqueeze(0))
        if g_lam is not None:
            inner = inner + torch.diag(F.pad(2.0 * g_lam, (0, lam.numel() - ctx.keep)))
        av = a @ v
        g_a = (av @ inner + (a @ e) * s.pow(2)) @ v.T + (av * s.pow(2)) @ e.T
        return g_a / len(a), None, None, None


@fill_doc
def daregram_loss(
    features_source,
    features_target,
    threshold=0.9,
    angle_weight=0.05,
    scale_weight=0.001,
):
    """DARE-GRAM: align the inverse Gram matrices of source and target features.

    With ``A = [1, F]`` (a bias column added) and Gram matrices ``G = A^T A / n``
    (divided by the batch size so unequal source/target batches compare), the
    loss is ``angle_weight * mean(1 - cos(G_s^+, G_t^+))`` over columns of the
    pseudo-inverses plus ``scale_weight * ||lambda_s[:k] - lambda_t[:k]|| / k``
    over the leading eigenvalues, where ``k`` keeps ``threshold`` of the
    spectrum (both as in Nejjar et al.; pseudo-inverses are truncated at
    ``k``, and ``k`` never exceeds the numerical rank of either Gram matrix,
    so small target batches stay stable).

    One ``eigh`` per domain gives both the eigenvalues and the pseudo-inverse
    (of the n x n kernel ``A A^T / n`` when the batch is narrower than the
    features), in float64.

    Parameters
    ----------
    %(features)s
    threshold : float, default=0.9
        Share of the spectrum the kept eigenvalues hold.
    angle_weight : float, default=0.05
        Weight of the angle term.
    scale_weight : float, default=0.001
        Weight of the eigenvalue-scale term.

    Returns
    -------
    loss : scalar tensor
    """
    ones_s = features_source.new_ones(features_source.shape[0], 1)
    ones_t = features_target.new_ones(features_target.shape[0], 1)
    # Gram algebra in float64: eigh on nearly singular float32 Gram
    # matrices can fail to converge (seen on real spectra)
    a = torch.cat([ones_s, features_source], 1).double()
    b = torch.cat([ones_t, features_target], 1).double()
    lam_a, vec_a = _gram_eigh(a.detach())
    lam_b, vec_b = _gram_eigh(b.detach())
    keep_a, rank_a = _n_keep(lam_a, threshold)
    keep_b, rank_b = _n_keep(lam_b, threshold)
    keep = max(1, min(max(keep_a, keep_b), rank_a, rank_b))
    terms = []
    for m, lam, vec in ((a, lam_a, vec_a), (b, lam_b, vec_b)):
        # as pinv(rtol=0.999 lam[keep-1] / lam[0]): the kept eigenvalues and
        # any within 0.1 % below the last one
        n_inv = int((lam > 0.999 * lam[keep - 1]).sum())
        v = _principal(m.detach(), lam, vec, n_inv)
        terms.append(_InverseGram.apply(m, v, lam[:n_inv], keep))
    (top_a, pinv_a), (top_b, pinv_b) = terms
    cos = F.cosine_similarity(pinv_a, pinv_b, dim=0, eps=1e-6)
    angle = (1.0 - cos).abs().mean()
    scale = torch.linalg.vector_norm(top_a - top_b) / keep
    loss = angle_weight * angle + scale_weight * scale
    return loss.to(features_source.dtype)


class _GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, coeff):
        ctx.coeff = coeff
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -ctx.coeff * grad, None


def grad_reverse(x, coeff=1.0):
    """Identity forward; multiplies the gradient by ``-coeff`` backward.

    Parameters
    ----------
    x : tensor
        The input.
    coeff : float, default=1.0
        Size of the reversed gradient.

    Returns
    -------
    tensor
        ``x``, viewed.
    """
    return _GradientReversal.apply(x, coeff)


class DomainDiscriminator(nn.Module):
    """Source-vs-target classifier on features, ending in ONE logit.

    A single logit trained with binary cross-entropy has a gradient; a softmax
    over one output (skada's default) is constant and has none.

    Parameters
    ----------
    in_features : int
        Width of the features.
    hidden_size : int, default=64
        Width of the two hidden layers.
    """

    def __init__(self, in_features, hidden_size=64):
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(in_features, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, hidden_size),
            nn.ReLU(),
            nn.Linear(hidden_size, 1),
        )

    def forward(self, x):
        return self.net(x).squeeze(-1)


@fill_doc
def dann_loss(features_source, features_target, discriminator):
    """Domain-adversarial loss through a gradient reversal layer.

    The discriminator learns to tell source (label 1) from target (label 0);
    the reversed gradient pushes the features to make that impossible. Each
    domain's cross-entropy is averaged separately so unequal batches weigh
    the same. Non-negative.

    Parameters
    ----------
    %(features)s
    discriminator : torch.nn.Module
        Maps features to one logit per row (:class:`DomainDiscriminator`).

    Returns
    -------
    loss : scalar tensor
    """
    f = grad_reverse(torch.cat([features_source, features_target]))
    logits = discriminator(f)
    n_s = features_source.shape[0]
    loss_s = F.binary_cross_entropy_with_logits(
        logits[:n_s], torch.ones_like(logits[:n_s])
    )
    loss_t = F.binary_cross_entropy_with_logits(
        logits[n_s:], torch.zeros_like(logits[n_s:])
    )
    return 0.5 * (loss_s + loss_t)


__getattr__ = moved(
    "sktransfer.losses",
    {
        "DIVERGENCES": (
            lambda: {
                "coral": coral_loss,
                "mmd": mmd_loss,
                "rsd": rsd_loss,
                "daregram": daregram_loss,
            },
            "sktransfer.adaptation.get_method(name).loss",
        )
    },
)
