"""Exact solution of the training objective when only a linear head trains.

With a frozen (or parameter-free) backbone, a ``torch.nn.Linear`` head and no
adaptation loss, the objective the gradient loop minimises is a convex
quadratic in the head's parameters ``theta = [W, b]``::

    J(theta) = 1/K * sum_k sum_i w_i (y_ik - f_i W_k - b_k)^2 / sum_i w_i
               + l2sp / 2 * ||theta - theta0||^2      (pretrained head)
               + weight_decay / 2 * ||theta||^2        (new head)

with ``f_i`` the backbone's features (eval mode) and ``K`` the number of
outputs. Setting the gradient to zero gives, per output,
``(G + a I) theta_k = c_k + a * anchor_k`` with ``G = F' D F / sum(w)`` (``F``
augmented by a column of ones), ``c = F' D y / sum(w)`` and
``a = K * strength / 2``. When ``a = 0`` and ``G`` is singular (fewer rows than
features) the solution nearest the pretrained head is returned -- the one
gradient descent from it converges to -- or, for a new head, the minimum-norm
solution. With fewer rows than parameters the same solution comes from the
n x n system of the rows (the dual form), which is far cheaper for wide
inputs such as spectra.

Weight decay is treated as the L2 penalty above; AdamW's decoupled decay
reaches a slightly different point, so ``solver="gradient"`` with a nonzero
``weight_decay`` approximates, not reproduces, this solution.
"""

import numpy as np
import torch

_CHUNK = 4096
_RCOND = 1e-10
#: ``solver="auto"`` solves in closed form while the smaller of the two systems
#: (features + 1, or rows) has at most this size (a float64 matrix of 134 MB
#: and an eigendecomposition of seconds on a CPU)
AUTO_MAX_FEATURES = 4096
#: "auto" penalties are scored by exact leave-one-out while the rows'
#: coordinates (rows x parameters) hold at most this many values (128 MB),
#: else by generalised cross-validation
LOO_MAX_VALUES = 2**24
_TRAIN_DEPENDENT = (
    torch.nn.modules.batchnorm._BatchNorm,
    torch.nn.modules.dropout._DropoutNd,
)


def linear_head_applicable(network, *, frozen_backbone, feature_loss):
    """'' when the closed form is exact for this set-up, else the reason it is not.

    Parameters
    ----------
    network : TransferModule
    frozen_backbone : bool
        The fine-tuning strategy keeps the backbone frozen (a linear probe).
    feature_loss : bool
        A loss on the features (domain adaptation) is trained too.
    """
    if feature_loss:
        return "an adaptation loss is trained (method uses a divergence)"
    if type(network.head) is not torch.nn.Linear:
        return f"the head is a {type(network.head).__name__}, not a torch.nn.Linear"
    if not all(p.requires_grad for p in network.head.parameters()):
        return "some head parameters are frozen (requires_grad=False)"
    has_params = any(True for _ in network.backbone.parameters())
    trainable = any(p.requires_grad for p in network.backbone.parameters())
    if trainable and not frozen_backbone:
        return "the backbone has trainable parameters and the strategy trains them"
    # the closed form uses eval-mode features; the gradient loop runs the
    # backbone in train mode unless a linear probe freezes it
    frozen_in_eval = frozen_backbone and has_params
    if not frozen_in_eval and any(
        isinstance(m, _TRAIN_DEPENDENT) for m in network.backbone.modules()
    ):
        return (
            "the backbone has batch-norm or dropout layers, which act "
            "differently in training"
        )
    return ""


def _finite_features(network, X):
    """The backbone's float64 features of ``X``; refuse NaN or infinity (the
    eigensolver would fail with a message that does not say why)."""
    f = network.features(X).double()
    if not bool(torch.isfinite(f).all()):
        raise ValueError(
            "The backbone returns NaN or infinite features for some training "
            "rows, so the linear head cannot be solved. Check the backbone on "
            "the (standardised) inputs -- a log, a division or a large weight "
            "-- or standardise the inputs (standardize_X=True)."
        )
    return f


def _chunks(X, rows):
    """Index selectors of the training rows, ``_CHUNK`` rows at a time."""
    n = X.shape[0] if rows is None else int(rows.numel())
    for start in range(0, n, _CHUNK):
        if rows is None:
            yield slice(start, start + _CHUNK)
        else:
            yield rows[start : start + _CHUNK]


@torch.no_grad()
def _moments(network, X, y, weight, rows):
    """Weighted float64 ``F'DF``, ``F'DY`` and ``Y'DY`` (per output) of the
    augmented features."""
    gram = cross = yy = None
    for idx in _chunks(X, rows):
        f = _finite_features(network, X[idx])
        f = torch.cat([f, torch.ones_like(f[:, :1])], dim=1)
        yb = y[idx].double()
        fw = f if weight is None else f * weight[idx, None].double()
        yw = yb if weight is None else yb * weight[idx, None].double()
        if gram is None:
            gram, cross, yy = fw.T @ f, fw.T @ yb, (yw * yb).sum(0)
        else:
            gram += fw.T @ f
            cross += fw.T @ yb
            yy += (yw * yb).sum(0)
    gram = gram.cpu().numpy()
    return (gram + gram.T) / 2.0, cross.cpu().numpy(), yy.cpu().numpy()


class _Spectrum:
    """The weighted least-squares problem ``min ||r - A delta||^2 + lam ||delta||^2``
    in one eigendecomposition, with ``A = D^(1/2) F`` and ``r`` the weighted
    residual of an expansion point ``e``: the (d+1)-square Gram matrix
    ``A'A`` for at least as many rows as parameters, else the n-square kernel
    ``AA'`` (the dual form, far cheaper for wide inputs). Solves for any
    ``lam`` and scores any ``lam`` by exact leave-one-out cross-validation
    (generalised cross-validation when the rows are too many to keep).

    The fit at ``lam`` is ``A delta = U diag(s/(s + lam)) U'r`` with ``U``
    the rows' coordinates in the orthonormal eigenbasis (``A V S^(-1/2)`` in
    the primal, the kernel's eigenvectors in the dual), and row ``i``'s
    leverage is ``sum_j U_ij^2 s_j/(s_j + lam)``, so every ``lam`` is scored
    from the one decomposition. ``unit`` is how many rows one unit of loss weight stands
    for (the weights are frequencies): leaving out one copy of a row of
    frequency ``m`` has leverage ``h_ii / m``, which makes a weight of 2 score
    like a duplicated row, as scikit-learn's sample-weight convention asks.
    """

    def __init__(self, network, X, y, weight, rows, bias, expansion, unit=1.0):
        n = X.shape[0] if rows is None else int(rows.numel())
        self.n = n
        self.unit = float(unit)
        self.rows_kept = None  # U of the class doc, when the rows are kept
        if n < expansion.shape[0]:
            self._dual(network, X, y, weight, rows, bias, expansion)
        else:
            self._primal(network, X, y, weight, rows, bias, expansion)
        keep = self.s > _RCOND * max(self.s.max(initial=0.0), 1e-300)
        self.s, self.basis = self.s[keep], self.basis[:, keep]
        self.proj = self.basis.T @ self.rhs  # U'r, scaled by sqrt(s) below
        if self.primal:
            fitted = self.proj / np.sqrt(self.s)[:, None]
        else:
            fitted = self.proj
        self.coef = fitted  # U'r, the residual's coordinates in A's range
        if self.primal:
            self.unfit = np.maximum(self.r_norm - (fitted**2).sum(0), 0.0)
        else:  # directly: a difference of near-equal norms would be noise
            outside = self.rhs - self.basis @ self.proj
            self.unfit = (outside * outside).sum(0)
        self._keep_rows(network, X, y, weight, rows, bias, expansion)

    def _primal(self, network, X, y, weight, rows, bias, e):
        gram, cross, yy = _moments(network, X, y, weight, rows)
        if not bias:
            gram, cross = gram[:-1, :-1], cross[:-1]
        self.primal = True
        self.total = _total(X, weight, rows)
        self.s, self.basis = np.linalg.eigh(gram)
        self.rhs = cross - gram @ e  # A'r
        self.r_norm = yy - 2.0 * (e * cross).sum(0) + (e * (gram @ e)).sum(0)

    @torch.no_grad()
    def _dual(self, network, X, y, weight, rows, bias, e):
        F, Y, w = _rows(network, X, y, weight, rows, bias)
        root = np.sqrt(w)[:, None]
        self.primal = False
        self.total = float(w.sum())
        self.A = root * F
        r = root * (Y - F @ e)
        self.s, self.basis = np.linalg.eigh(self.A @ self.A.T)
        self.rhs = r
        self.r_norm = (r * r).sum(0)

    def _keep_rows(self, network, X, y, weight, rows, bias, e):
        """The rows' coordinates, residuals and frequencies for leave-one-out
        (skipped for more than ``LOO_MAX_VALUES`` coordinates)."""
        if self.n * max(len(self.s), 1) > LOO_MAX_VALUES:
            return
        if self.primal:  # U = A V S^(-1/2), the left singular vectors
            F, Y, w = _rows(network, X, y, weight, rows, bias)
            root = np.sqrt(w)[:, None]
            self.r_rows = root * (Y - F @ e)
            U = (root * F) @ (self.basis / np.sqrt(self.s))
        else:
            w = self._weights(weight, rows)
            self.r_rows = self.rhs
            U = self.basis
        self.rows_kept = U
        self.r_coef = U.T @ self.r_rows
        # what of each row and its residual lies outside A's range: computed
        # once, so that small penalties do not cancel (1 - h) to noise
        self.r_outside = self.r_rows - U @ self.r_coef
        self.h_outside = np.maximum(1.0 - (U * U).sum(1), 0.0)
        # frequencies: the weights in units of rows (at least one copy);
        # the loss weights are float32, so near-whole counts are made whole
        copies = w * self.unit
        whole = np.round(copies)
        copies = np.where(np.abs(copies - whole) <= 1e-5 * whole, whole, copies)
        self.copies = np.maximum(copies, 1.0)

    def _weights(self, weight, rows):
        if weight is None:
            return np.ones(self.n)
        idx = slice(None) if rows is None else rows
        return weight[idx].double().cpu().numpy()

    def delta(self, lam):
        """The step from the expansion point for the penalty ``lam``."""
        inv = 1.0 / (self.s + lam)
        if self.primal:
            return self.basis @ (inv[:, None] * self.proj)
        return self.A.T @ (self.basis @ (inv[:, None] * self.proj))

    def score(self, lam):
        """Cross-validation score of ``lam`` (lower is better): the
        frequency-weighted leave-one-out error, else the GCV score."""
        if self.rows_kept is None:
            return self.gcv(lam)
        return float(self.loo_errors(lam).sum())

    def loo_errors(self, lam):
        """Per row, its frequency times its squared leave-one-out error.

        With ``U`` the rows' coordinates in the orthonormal eigenbasis and
        ``q = lam / (s + lam)``, the residual is ``U diag(q) U'r`` plus the
        part of ``r`` outside the range, and ``1 - h_ii / m`` (one of ``m``
        copies left out) is ``((m - 1) + (1 - |U_i|^2) + U_i^2 q) / m``: sums
        of non-negative terms, exact at small penalties.
        """
        q = lam / (self.s + lam)
        U = self.rows_kept
        resid = U @ (q[:, None] * self.r_coef) + self.r_outside
        spare = (self.copies - 1.0) + self.h_outside + (U * U) @ q
        loo = resid * (self.copies / np.maximum(spare, 1e-300))[:, None]
        # r_rows holds sqrt(w) * residual: w * residual^2 per row, times unit
        return self.unit * (loo * loo).sum(1)

    def gcv(self, lam):
        """Generalised cross-validation score of ``lam`` (lower is better),
        with the number of rows the weights stand for."""
        shrink = lam / (self.s + lam)
        residual = ((shrink[:, None] * self.coef) ** 2).sum() + self.unfit.sum()
        dof = (self.s / (self.s + lam)).sum()
        n = self.total * self.unit
        return n * residual / max(n - dof, 1e-12) ** 2


@torch.no_grad()
def _rows(network, X, y, weight, rows, bias):
    """The float64 (augmented) features, targets and weights of the rows."""
    idx = slice(None) if rows is None else rows
    parts = []
    for sel in _chunks(X, rows):
        f = _finite_features(network, X[sel])
        if bias:
            f = torch.cat([f, torch.ones_like(f[:, :1])], dim=1)
        parts.append(f.cpu().numpy())
    F = np.concatenate(parts)
    Y = y[idx].double().cpu().numpy()
    w = np.ones(len(F)) if weight is None else weight[idx].double().cpu().numpy()
    return F, Y, w


def _total(X, weight, rows):
    if weight is None:
        return float(X.shape[0] if rows is None else rows.numel())
    return float((weight if rows is None else weight[rows]).double().sum())


#: the penalty strengths "auto" chooses from (by leave-one-out cross-validation)
AUTO_STRENGTHS = tuple(float(v) for v in np.logspace(-6, 3, 28))


@torch.no_grad()
def solve_linear_head(
    network, X, y, weight, rows, *, strength, anchored, pretrained, unit=1.0
):
    """Set ``network.head`` to the minimiser of the objective in the module doc.

    Parameters
    ----------
    network : TransferModule
        In eval mode; ``X`` is already scaled as the training loop sees it.
    X, y : tensors
        Inputs and standardised targets.
    weight : tensor of shape (n,) or None
        Loss weights.
    rows : int64 tensor or None
        The training rows (those with a positive weight); None: all rows.
    strength : float or sequence of float
        ``l2sp`` when ``anchored`` else ``weight_decay``; a sequence is a grid
        to choose from by leave-one-out cross-validation (one decomposition
        serves every value, as in scikit-learn's ``RidgeCV``).
    anchored : bool
        Penalise the distance to the head's current parameters (L2-SP) rather
        than to zero.
    pretrained : bool
        The head holds pretrained parameters: an underdetermined problem is
        solved nearest to them. A new head's random start is ignored: the
        minimum-norm solution is returned, as ``numpy.linalg.lstsq`` would.
    unit : float, default=1.0
        How many rows one unit of ``weight`` stands for (the user's weights
        are frequencies); it only matters when choosing from a grid.

    Returns
    -------
    strength : float
        The strength used (the chosen one for a grid).
    """
    head = network.head
    n_outputs = head.out_features
    W0 = head.weight.detach().double().cpu().numpy()
    b0 = head.bias.detach().double().cpu().numpy() if head.bias is not None else None
    theta0 = np.vstack([W0.T, (b0 if b0 is not None else np.zeros(n_outputs))[None]])
    if not pretrained:
        theta0 = np.zeros_like(theta0)  # a new head's random start means nothing
    bias = head.bias is not None
    if not bias:  # no intercept: no column of ones, no bias entry
        theta0 = theta0[:-1]
    target = theta0 if anchored else np.zeros_like(theta0)
    grid = np.atleast_1d(np.asarray(strength, dtype=np.float64))
    # a penalty pulls toward its target; without one, the solution nearest
    # theta0 (the limit of gradient descent from it) is returned
    expansion = target if grid.min() > 0 else theta0
    spectrum = _Spectrum(network, X, y, weight, rows, bias, expansion, unit)

    def lam(value):  # objective / W: lam = a * W with a = K * strength / 2
        return n_outputs * value / 2.0 * spectrum.total

    chosen = float(grid[0])
    if len(grid) > 1:
        chosen = float(grid[np.argmin([spectrum.score(lam(v)) for v in grid])])
    theta = expansion + spectrum.delta(lam(chosen))
    d = W0.shape[1]
    head.weight.copy_(torch.from_numpy(np.ascontiguousarray(theta[:d].T)))
    if head.bias is not None:
        head.bias.copy_(torch.from_numpy(theta[d]))
    return chosen
