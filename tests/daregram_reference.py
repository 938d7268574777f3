"""The DARE-GRAM loss as implemented before issue 11 (two float64 ``svdvals``
and two ``pinv`` per call): the reference the faster
``sktransfer.losses.daregram_loss`` is tested against (test_losses.py) and
timed against (benchmarks/da_cost.py). Not part of the package."""

import torch
import torch.nn.functional as F


def daregram_loss_reference(
    features_source,
    features_target,
    threshold=0.9,
    angle_weight=0.05,
    scale_weight=0.001,
):
    """``sktransfer.losses.daregram_loss`` as of commit 71ce374 (comments dropped)."""
    ones_s = features_source.new_ones(features_source.shape[0], 1)
    ones_t = features_target.new_ones(features_target.shape[0], 1)
    a = torch.cat([ones_s, features_source], 1).double()
    b = torch.cat([ones_t, features_target], 1).double()
    gram_a = a.T @ a / a.shape[0]
    gram_b = b.T @ b / b.shape[0]
    lam_a = torch.linalg.svdvals(gram_a)
    lam_b = torch.linalg.svdvals(gram_b)

    def n_keep(lam):
        lam = lam.detach()
        ratio = torch.cumsum(lam, 0) / lam.sum().clamp_min(1e-12)
        t = max(float(ratio[1]), threshold) if lam.numel() > 1 else threshold
        keep = int((ratio <= t + 1e-6).sum())
        rank = int((lam > 1e-5 * lam[0]).sum())
        return keep, max(rank, 1)

    keep_a, rank_a = n_keep(lam_a)
    keep_b, rank_b = n_keep(lam_b)
    keep = max(1, min(max(keep_a, keep_b), rank_a, rank_b))
    rtol_a = (0.999 * lam_a[keep - 1] / lam_a[0].clamp_min(1e-12)).detach()
    rtol_b = (0.999 * lam_b[keep - 1] / lam_b[0].clamp_min(1e-12)).detach()
    pinv_a = torch.linalg.pinv(gram_a, rtol=rtol_a, hermitian=True)
    pinv_b = torch.linalg.pinv(gram_b, rtol=rtol_b, hermitian=True)
    cos = F.cosine_similarity(pinv_a, pinv_b, dim=0, eps=1e-6)
    angle = (1.0 - cos).abs().mean()
    scale = torch.linalg.vector_norm(lam_a[:keep] - lam_b[:keep]) / keep
    loss = angle_weight * angle + scale_weight * scale
    return loss.to(features_source.dtype)
