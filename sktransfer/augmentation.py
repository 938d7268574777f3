"""Data augmentation of training batches: ``augment=`` of both estimators.

An augmentation is a small object (:class:`Augmentation`) called on each
training mini-batch, as torch tensors, with a torch generator:
``X, y, weight = augmentation(X, y, weight, generator)``. The estimators apply
the ones given as ``augment`` (one, or a list applied in order) to every
training batch and never to a validation batch or in ``predict``. Built in:

- :class:`GaussianJitter`, :class:`RandomScaling`: noise and per-row scale
  for tabular data and sequences.
- :class:`BaselineShift`, :class:`MultiplicativeScatter`,
  :class:`WavelengthShift`: the spectral augmentations of Bjerrum et al.
  ("Data Augmentation of Spectral Data for Convolutional Neural Network (CNN)
  Based Deep Chemometrics", arXiv:1710.01927, 2017): a random offset (and
  tilt), a random multiplicative scatter with offset, a sub-pixel shift along
  the wavelength axis.
- :class:`Mixup` (Zhang et al., "mixup: Beyond Empirical Risk Minimization",
  ICLR 2018) and :class:`CMixup` (Yao et al., "C-Mixup: Improving
  Generalization in Regression", NeurIPS 2022), which mixes rows with similar
  labels.
- :class:`ChemotoolsAugmentation`: any augmentation transformer of
  `chemotools <https://github.com/paucablop/chemotools>`_
  (``chemotools.augmentation``: ``ScatterShift``'s polynomial baselines,
  ``GaussianBroadening``, ``FractionalShift``'s spline shift...) applied to
  each batch on the CPU; chemotools is an optional dependency (the ``data``
  extra).

Where an augmentation acts (its ``space``):

- ``"scaled"``: on the batch as the network trains on it -- inputs
  standardised with the training statistics (``standardize_X``), targets
  standardised (``standardize_y``). Jitter and scaling amplitudes are then in
  units of each feature's standard deviation, and C-Mixup's ``bandwidth`` in
  units of the target's standard deviation.
- ``"raw"``: on the inputs in their original units (the batch is
  un-standardised in float64, augmented, and standardised again). The
  spectral augmentations act there: an offset, a scatter or a shift of a
  spectrum is one of the spectrum as measured. Under per-domain
  normalisation (``method="adabn"``, ``domain_norm=True``) "original units"
  are the target domain's, the units ``predict`` receives.

Row-wise augmentations (jitter, scaling, spectral) transform every row of the
batch and leave ``y`` and ``weight`` as they are. Mixing augmentations
(``mixes_rows = True``: :class:`Mixup`, :class:`CMixup`) combine labelled rows
(loss weight above 0) of the same side of a source/target batch only, and mix
their loss weights with the same coefficient as their inputs and targets, so a
row weighted twice weighs twice in the pairs it enters; unlabelled target rows
(which only feed an adaptation loss) are never mixed.

Examples
--------
>>> import torch
>>> from sktransfer.augmentation import GaussianJitter, Mixup
>>> X, y = torch.zeros(4, 3), torch.arange(4.0).reshape(4, 1)
>>> g = torch.Generator().manual_seed(0)
>>> X_aug, y_aug, w_aug = GaussianJitter(std=0.1)(X, y, None, g)
>>> X_aug.shape, bool((y_aug == y).all()), w_aug
(torch.Size([4, 3]), True, None)
>>> X_mix, y_mix, _ = Mixup(alpha=0.4)(X, y, None, g)
>>> bool(((y_mix >= 0) & (y_mix <= 3)).all())
True
"""

from numbers import Real

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone

__all__ = [
    "Augmentation",
    "BaselineShift",
    "CMixup",
    "ChemotoolsAugmentation",
    "GaussianJitter",
    "Mixup",
    "MultiplicativeScatter",
    "RandomScaling",
    "WavelengthShift",
    "cmixup_probabilities",
]


def _normal(shape, like, generator):
    """Standard normal draws of ``shape`` from ``generator`` (on its device),
    as ``like``'s dtype and device."""
    draw = torch.randn(shape, generator=generator, device=generator.device)
    return draw.to(device=like.device, dtype=like.dtype)


def _uniform(shape, like, generator):
    """Uniform draws on [0, 1) of ``shape``, as ``like``'s dtype and device."""
    draw = torch.rand(shape, generator=generator, device=generator.device)
    return draw.to(device=like.device, dtype=like.dtype)


def _row_shape(X):
    """A shape that broadcasts one value per row of ``X`` over the rest."""
    return (X.shape[0],) + (1,) * (X.dim() - 1)


def _spectrum_shape(X):
    """One value per spectrum: per row and channel, constant along the last
    axis (2-D rows are one spectrum each)."""
    return (*X.shape[:-1], 1)


def _check_positive(name, value, owner, allow_zero=True):
    """``value`` as a float; a ValueError naming ``owner``'s parameter."""
    ok = isinstance(value, Real) and not isinstance(value, bool) and np.isfinite(value)
    if ok:
        ok = value >= 0 if allow_zero else value > 0
    if not ok:
        bound = "non-negative" if allow_zero else "positive"
        raise ValueError(
            f"{type(owner).__name__}({name}={value!r}): {name} must be a "
            f"{bound} finite number, for example {name}=0.1."
        )
    return float(value)


class Augmentation(BaseEstimator):
    """Base class of the augmentations of training batches.

    Subclasses store their parameters in ``__init__`` (as scikit-learn
    estimators, so ``get_params``, ``clone``, ``repr`` and pickling work and
    ``GridSearchCV`` can tune them through ``augment__<name>``) and implement
    :meth:`__call__`. Class attributes say where and how they act.

    Attributes
    ----------
    space : {"scaled", "raw"}
        ``"scaled"``: the batch as the network trains on it (standardised);
        ``"raw"``: inputs in their original units.
    mixes_rows : bool
        The augmentation combines rows (mixup): the estimators call it on
        groups of labelled rows from one side of a source/target batch.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import Augmentation
    >>> class SignFlip(Augmentation):
    ...     '''Flip the sign of the inputs of random rows.'''
    ...     def __call__(self, X, y, weight, generator):
    ...         flip = torch.rand(X.shape[0], generator=generator) < 0.5
    ...         sign = 1 - 2 * flip.to(X.dtype).reshape(-1, *[1] * (X.dim() - 1))
    ...         return X * sign, y, weight
    >>> X_aug, _, _ = SignFlip()(torch.ones(3, 2), torch.zeros(3, 1), None,
    ...                          torch.Generator().manual_seed(0))
    >>> X_aug.abs().tolist()
    [[1.0, 1.0], [1.0, 1.0], [1.0, 1.0]]
    """

    space = "scaled"
    mixes_rows = False
    #: parameters that must be non-negative (True) or positive (False) numbers
    _bounded = {}

    def check(self):
        """Check the parameters (``fit`` calls this before it builds anything).

        Raises
        ------
        ValueError
            If a parameter is out of its range.
        """
        for name, allow_zero in self._bounded.items():
            _check_positive(name, getattr(self, name), self, allow_zero)

    def __call__(self, X, y, weight, generator):
        """Augment one batch; the inputs are not modified.

        Parameters
        ----------
        X : torch.Tensor of shape (n, ...)
            Inputs of the batch (2-D rows, or ``(n, channels, length)``).
        y : torch.Tensor of shape (n, n_outputs)
            Targets.
        weight : torch.Tensor of shape (n,) or None
            Loss weight of each row (None: all weigh 1).
        generator : torch.Generator
            Where the random draws come from (the fit's own generator, so the
            same ``random_state`` gives the same augmented batches).

        Returns
        -------
        X, y, weight : torch.Tensor, torch.Tensor, torch.Tensor or None
            Of the same shapes, dtypes and devices as given.
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement __call__(X, y, weight, generator)."
        )


class GaussianJitter(Augmentation):
    """Add independent Gaussian noise to every input value.

    ``X + std * N(0, 1)``, in the standardised space the network trains in,
    so ``std`` is in units of each feature's standard deviation.

    Parameters
    ----------
    std : float, default=0.05
        Standard deviation of the noise.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import GaussianJitter
    >>> X = torch.zeros(1000, 2)
    >>> X_aug, _, _ = GaussianJitter(std=0.1)(X, torch.zeros(1000, 1), None,
    ...                                       torch.Generator().manual_seed(0))
    >>> round(float(X_aug.std()), 1)
    0.1
    """

    _bounded = {"std": True}

    def __init__(self, std=0.05):
        self.std = std

    def __call__(self, X, y, weight, generator):
        std = _check_positive("std", self.std, self)
        return X + std * _normal(X.shape, X, generator), y, weight


class RandomScaling(Augmentation):
    """Multiply each row by one random factor ``1 + std * N(0, 1)``.

    In the standardised space, so each row is scaled about the mean of the
    training rows (its deviation from the typical row grows or shrinks).

    Parameters
    ----------
    std : float, default=0.05
        Standard deviation of the factor around 1.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import RandomScaling
    >>> X = torch.ones(3, 4)
    >>> X_aug, _, _ = RandomScaling(std=0.1)(X, torch.zeros(3, 1), None,
    ...                                      torch.Generator().manual_seed(0))
    >>> bool((X_aug == X_aug[:, :1]).all())  # one factor per row
    True
    """

    _bounded = {"std": True}

    def __init__(self, std=0.05):
        self.std = std

    def __call__(self, X, y, weight, generator):
        std = _check_positive("std", self.std, self)
        factor = 1.0 + std * _normal(_row_shape(X), X, generator)
        return X * factor, y, weight


def _spectrum_spread(X):
    """Standard deviation of each spectrum along its last axis (kept dims);
    1 for a flat spectrum, so offsets relative to it stay defined."""
    spread = X.std(dim=-1, keepdim=True, correction=0) if X.shape[-1] > 1 else None
    if spread is None:
        return torch.ones(_spectrum_shape(X), dtype=X.dtype, device=X.device)
    return torch.where(spread > 0, spread, torch.ones_like(spread))


def _axis(X):
    """The positions along the last axis mapped to [-1, 1]."""
    n = X.shape[-1]
    return torch.linspace(-1.0, 1.0, n, dtype=X.dtype, device=X.device)


class BaselineShift(Augmentation):
    """Add a random offset (and tilt) to each spectrum, in original units.

    ``x + (a + b * t) * s`` with ``a ~ N(0, std^2)``, ``b ~ N(0,
    slope_std^2)`` drawn per spectrum, ``t`` the position along the last axis
    mapped to [-1, 1] and ``s`` the spectrum's own standard deviation along
    that axis, so the amplitudes are free of units (Bjerrum et al., 2017,
    used offsets of 0.1 standard deviation). A 3-D batch ``(n, channels,
    length)`` gets one offset per channel.

    Parameters
    ----------
    std : float, default=0.1
        Standard deviation of the offset, relative to the spectrum's spread.
    slope_std : float, default=0.0
        Standard deviation of the tilt from one end to the middle, relative to
        the spectrum's spread.

    See Also
    --------
    ChemotoolsAugmentation : chemotools' ``BaselineShift`` (one-sided uniform
        offsets in original units) and ``ScatterShift`` (polynomial
        baselines).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import BaselineShift
    >>> X = torch.linspace(0, 1, 10).repeat(2, 1)
    >>> X_aug, _, _ = BaselineShift(std=0.1)(X, torch.zeros(2, 1), None,
    ...                                      torch.Generator().manual_seed(0))
    >>> diff = X_aug - X
    >>> bool(torch.allclose(diff, diff[:, :1].expand_as(diff)))  # a constant offset
    True
    """

    space = "raw"

    _bounded = {"std": True, "slope_std": True}

    def __init__(self, std=0.1, slope_std=0.0):
        self.std = std
        self.slope_std = slope_std

    def __call__(self, X, y, weight, generator):
        std = _check_positive("std", self.std, self)
        slope_std = _check_positive("slope_std", self.slope_std, self)
        shape = _spectrum_shape(X)
        baseline = std * _normal(shape, X, generator)
        if slope_std > 0:
            baseline = baseline + slope_std * _normal(shape, X, generator) * _axis(X)
        return X + baseline * _spectrum_spread(X), y, weight


class MultiplicativeScatter(Augmentation):
    """Random multiplicative scatter and offset of each spectrum.

    ``(1 + m) * x + a * s`` with ``m ~ N(0, std^2)`` and ``a ~ N(0,
    offset_std^2)`` per spectrum and ``s`` the spectrum's standard deviation
    along its last axis: the model that multiplicative scatter correction
    (MSC) removes, run forward -- light scatter changes a spectrum's slope and
    offset against the mean spectrum (Bjerrum et al., 2017). In original
    units, so the spectrum is scaled about zero absorbance.

    Parameters
    ----------
    std : float, default=0.05
        Standard deviation of the multiplicative factor around 1.
    offset_std : float, default=0.05
        Standard deviation of the offset, relative to the spectrum's spread.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import MultiplicativeScatter
    >>> X = torch.linspace(1, 2, 8).repeat(3, 1)
    >>> X_aug, _, _ = MultiplicativeScatter()(X, torch.zeros(3, 1), None,
    ...                                       torch.Generator().manual_seed(0))
    >>> X_aug.shape
    torch.Size([3, 8])
    """

    space = "raw"

    _bounded = {"std": True, "offset_std": True}

    def __init__(self, std=0.05, offset_std=0.05):
        self.std = std
        self.offset_std = offset_std

    def __call__(self, X, y, weight, generator):
        std = _check_positive("std", self.std, self)
        offset_std = _check_positive("offset_std", self.offset_std, self)
        shape = _spectrum_shape(X)
        factor = 1.0 + std * _normal(shape, X, generator)
        offset = offset_std * _normal(shape, X, generator) * _spectrum_spread(X)
        return X * factor + offset, y, weight


class WavelengthShift(Augmentation):
    """Shift each spectrum along its last axis by a random sub-pixel amount.

    The shift is drawn uniformly from ``[-max_shift, max_shift]`` positions
    per spectrum (one per channel of a 3-D batch) and applied by linear
    interpolation between neighbouring positions; beyond the ends the end
    values are repeated. It mimics a small wavelength-calibration difference
    between instruments (Bjerrum et al., 2017, shifted spectra by whole
    positions; chemotools' ``FractionalShift`` does it with cubic splines,
    see :class:`ChemotoolsAugmentation`). In original units.

    Parameters
    ----------
    max_shift : float, default=1.0
        Largest shift, in positions along the last axis.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import WavelengthShift
    >>> X = torch.arange(6.0).repeat(2, 1)
    >>> X_aug, _, _ = WavelengthShift(max_shift=0.5)(X, torch.zeros(2, 1), None,
    ...                                              torch.Generator().manual_seed(0))
    >>> bool(((X_aug[:, 1:-1] - X[:, 1:-1]).abs() <= 0.5).all())
    True
    """

    space = "raw"

    _bounded = {"max_shift": True}

    def __init__(self, max_shift=1.0):
        self.max_shift = max_shift

    def __call__(self, X, y, weight, generator):
        max_shift = _check_positive("max_shift", self.max_shift, self)
        n = X.shape[-1]
        if n < 2 or max_shift == 0:
            return X, y, weight
        shift = (2.0 * _uniform(_spectrum_shape(X), X, generator) - 1.0) * max_shift
        where = torch.arange(n, dtype=X.dtype, device=X.device) + shift
        where = where.clamp(0, n - 1)
        left = where.floor().clamp(max=n - 2)
        frac = where - left
        left = left.long()
        lo = torch.gather(X, -1, left)
        hi = torch.gather(X, -1, left + 1)
        return lo + frac * (hi - lo), y, weight


def _seed(generator):
    """A 31-bit seed drawn from ``generator``."""
    draw = torch.randint(2**31 - 1, (1,), generator=generator, device=generator.device)
    return int(draw)


def _beta(alpha, n, like, generator):
    """``n`` draws of Beta(alpha, alpha) seeded from ``generator``, as ``like``
    (numpy draws them: torch's Beta sampler takes no generator)."""
    lam = np.random.default_rng(_seed(generator)).beta(alpha, alpha, size=n)
    return torch.from_numpy(lam).to(device=like.device, dtype=like.dtype)


def _mix(X, y, weight, partner, lam):
    """Rows mixed with their partners: ``lam * row + (1 - lam) * partner``."""
    lx = lam.reshape(_row_shape(X))
    X_mix = lx * X + (1 - lx) * X[partner]
    ly = lam.reshape(-1, 1).to(y.dtype)
    y_mix = ly * y + (1 - ly) * y[partner]
    if weight is None:
        return X_mix, y_mix, None
    lw = lam.to(weight.dtype)
    return X_mix, y_mix, lw * weight + (1 - lw) * weight[partner]


class Mixup(Augmentation):
    """mixup for regression (Zhang et al., ICLR 2018).

    Each row ``i`` is replaced by ``lam_i * row_i + (1 - lam_i) * row_j`` --
    inputs, targets and loss weights alike -- with ``lam_i ~ Beta(alpha,
    alpha)`` and the partner ``j`` a random other row of the batch (a random
    permutation of the rows). Small ``alpha`` keeps most rows close to one of
    the pair. On regression, mixing rows whose targets differ much may teach
    the network a wrong, linear interpolation between them; :class:`CMixup`
    mixes only rows with similar targets.

    Parameters
    ----------
    alpha : float, default=0.2
        Parameter of the Beta distribution of the mixing coefficient.

    See Also
    --------
    CMixup : partners chosen by label similarity.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import Mixup
    >>> X = torch.tensor([[0.0], [1.0]])
    >>> X_mix, y_mix, _ = Mixup(alpha=1.0)(X, X.clone(), None,
    ...                                    torch.Generator().manual_seed(0))
    >>> bool(torch.allclose(X_mix, y_mix))  # inputs and targets mixed alike
    True
    """

    mixes_rows = True

    _bounded = {"alpha": False}

    def __init__(self, alpha=0.2):
        self.alpha = alpha

    def _partners(self, y, generator):
        """Each row's partner: a random permutation of the rows."""
        perm = torch.randperm(y.shape[0], generator=generator, device=generator.device)
        return perm.to(y.device)

    def __call__(self, X, y, weight, generator):
        alpha = _check_positive("alpha", self.alpha, self, allow_zero=False)
        if X.shape[0] < 2:
            return X, y, weight
        partner = self._partners(y, generator)
        lam = _beta(alpha, X.shape[0], X, generator)
        return _mix(X, y, weight, partner, lam)


def cmixup_probabilities(y, bandwidth):
    """C-Mixup's partner probabilities: row ``i`` picks row ``j`` with
    probability proportional to ``exp(-||y_i - y_j||^2 / (2 bandwidth^2))``.

    A row never picks itself (a single row has no partner and keeps itself).
    Computed with a log-sum-exp, so a tiny bandwidth picks the nearest label
    (ties shared) rather than dividing zero by zero.

    Parameters
    ----------
    y : torch.Tensor of shape (n, n_outputs)
        Targets of the rows.
    bandwidth : float
        Kernel bandwidth, in the units of ``y``.

    Returns
    -------
    probabilities : torch.Tensor of shape (n, n)
        Rows sum to 1; the diagonal is 0 (for ``n > 1``).

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import cmixup_probabilities
    >>> p = cmixup_probabilities(torch.tensor([[0.0], [0.1], [5.0]]), 0.5)
    >>> p.argmax(dim=1).tolist()  # the nearest label is the likeliest partner
    [1, 0, 1]
    """
    y = y.reshape(y.shape[0], -1).to(torch.float64)
    n = y.shape[0]
    if n < 2:
        return torch.ones((n, n), dtype=torch.float64, device=y.device)
    dist2 = torch.cdist(y, y).pow(2)
    dist2.fill_diagonal_(torch.inf)
    # relative to each row's nearest partner, and never divided by an
    # underflowed 0: a tiny bandwidth picks the nearest label, as it should
    nearest = dist2.min(dim=1, keepdim=True).values
    scale = max(2.0 * float(bandwidth) ** 2, torch.finfo(torch.float64).tiny)
    logits = -(dist2 - nearest) / scale
    return torch.softmax(logits, dim=1)


class CMixup(Mixup):
    """C-Mixup: mixup between rows with similar targets (Yao et al., NeurIPS 2022).

    For each row ``i`` a partner ``j != i`` is drawn from the labelled rows of
    the batch with probability proportional to ``exp(-||y_i - y_j||^2 / (2
    bandwidth^2))`` (:func:`cmixup_probabilities`), then the pair is mixed as
    in :class:`Mixup` with ``lam ~ Beta(alpha, alpha)``. Targets are the
    standardised ones (``standardize_y=True``), so ``bandwidth`` is in units
    of the target's standard deviation: a large one gives plain mixup, a small
    one mixes each row with its nearest labels only. The paper samples
    partners from the whole training set; here they come from the batch (with
    few labels, a batch often holds all of them).

    Parameters
    ----------
    alpha : float, default=2.0
        Parameter of the Beta distribution of the mixing coefficient (the
        paper's choice for regression tasks).
    bandwidth : float, default=0.5
        Bandwidth of the Gaussian kernel on the targets.

    See Also
    --------
    Mixup : partners drawn uniformly.

    Examples
    --------
    >>> import torch
    >>> from sktransfer.augmentation import CMixup
    >>> y = torch.tensor([[0.0], [0.01], [10.0], [10.01]])
    >>> _, y_mix, _ = CMixup(alpha=1.0, bandwidth=0.1)(y.clone(), y, None,
    ...                                                torch.Generator().manual_seed(0))
    >>> bool(((y_mix - y).abs() < 0.02).all())  # only near labels are mixed
    True
    """

    _bounded = {"alpha": False, "bandwidth": False}

    def __init__(self, alpha=2.0, bandwidth=0.5):
        self.alpha = alpha
        self.bandwidth = bandwidth

    def _partners(self, y, generator):
        """Each row's partner, drawn from :func:`cmixup_probabilities`."""
        bandwidth = _check_positive("bandwidth", self.bandwidth, self, False)
        prob = cmixup_probabilities(y.detach(), bandwidth).to(generator.device)
        partner = torch.multinomial(prob, 1, generator=generator).reshape(-1)
        return partner.to(y.device)


class ChemotoolsAugmentation(Augmentation):
    """Apply a chemotools augmentation transformer to each batch.

    ``chemotools.augmentation`` ships spectral augmentations as scikit-learn
    transformers on numpy arrays (``AddNoise``, ``BaselineShift``,
    ``FractionalShift``, ``GaussianBroadening``, ``IndexShift``,
    ``ScatterShift``, ``SpectrumScale``). This adapter fits a clone of one on
    each batch, in original units, on the CPU in float64, with its
    ``random_state`` drawn from the fit's generator (so the same
    ``random_state`` of the estimator gives the same result), and returns the
    result as a tensor of the batch's dtype and device. A 3-D batch is
    transformed channel by channel. Any transformer with a ``random_state``
    parameter that maps ``(n, n_features)`` to the same shape works; chemotools
    itself is an optional dependency (``pip install sktransfer[data]``).

    Converting every batch to numpy costs time and a device round trip: the
    built-in torch augmentations (:class:`BaselineShift`,
    :class:`MultiplicativeScatter`, :class:`WavelengthShift`) cover the
    common cases on the device; use this adapter for what they do not
    (polynomial baselines, peak broadening, spline shifts).

    Parameters
    ----------
    transformer : scikit-learn transformer
        An unfitted transformer with a ``random_state`` parameter, e.g.
        ``chemotools.augmentation.ScatterShift(order=2,
        multiplicative_scale=0.05, additive_scale=0.01)``. It is cloned, never
        fitted itself.

    Examples
    --------
    >>> import torch
    >>> from chemotools.augmentation import BaselineShift  # doctest: +SKIP
    >>> from sktransfer.augmentation import ChemotoolsAugmentation
    >>> aug = ChemotoolsAugmentation(BaselineShift(scale=0.1))  # doctest: +SKIP
    >>> X_aug, _, _ = aug(torch.zeros(4, 5), torch.zeros(4, 1), None,
    ...                   torch.Generator().manual_seed(0))  # doctest: +SKIP
    >>> X_aug.shape  # doctest: +SKIP
    torch.Size([4, 5])
    """

    space = "raw"

    def __init__(self, transformer):
        self.transformer = transformer

    def check(self):
        """Check the transformer (``fit`` calls this before it builds anything).

        Raises
        ------
        TypeError
            If ``transformer`` is not a transformer with ``random_state``.
        """
        self._checked()

    def _checked(self):
        tr = self.transformer
        ok = hasattr(tr, "fit_transform") and hasattr(tr, "get_params")
        if not ok or "random_state" not in tr.get_params(deep=False):
            raise TypeError(
                "ChemotoolsAugmentation(transformer=...) needs a scikit-learn "
                "transformer with a random_state parameter, such as "
                "chemotools.augmentation.BaselineShift(scale=0.1); got "
                f"{tr!r}."
            )
        return tr

    def __call__(self, X, y, weight, generator):
        tr = clone(self._checked())
        tr.set_params(random_state=_seed(generator))
        values = X.detach().cpu().to(torch.float64).numpy()
        flat = values.reshape(-1, values.shape[-1])  # one spectrum per row
        out = np.asarray(tr.fit_transform(flat), dtype=np.float64)
        if out.shape != flat.shape:
            raise ValueError(
                f"The transformer {tr!r} returned shape {out.shape} for a batch "
                f"of shape {flat.shape}; an augmentation must keep the shape."
            )
        out = torch.from_numpy(out.reshape(values.shape))
        return out.to(device=X.device, dtype=X.dtype), y, weight


def as_augmentations(augment):
    """The estimators' ``augment`` parameter as a tuple of augmentations.

    Parameters
    ----------
    augment : None, Augmentation or list of Augmentation
        The parameter's value.

    Returns
    -------
    augmentations : tuple of Augmentation
        Empty for None.

    Raises
    ------
    TypeError
        If ``augment`` or an element of it is not an :class:`Augmentation`.
    ValueError
        If an element's parameters are out of range (its ``check``).
    """
    if augment is None:
        return ()
    items = list(augment) if isinstance(augment, (list, tuple)) else [augment]
    for i, item in enumerate(items):
        if not isinstance(item, Augmentation):
            where = "augment" if items == [augment] else f"augment[{i}]"
            raise TypeError(
                f"{where} must be an augmentation from sktransfer.augmentation "
                f"(an Augmentation instance such as GaussianJitter(std=0.05)); got "
                f"{item!r} of type {type(item).__name__}. Pass None, one "
                "augmentation or a list of them."
            )
        item.check()
    return tuple(items)
