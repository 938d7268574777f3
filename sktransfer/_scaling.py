"""Input and target scaling: one object prepares the training arrays and
configures the network's normaliser.

Statistics are computed, and inputs centred and scaled, in float64; only the
scaled values are cast to float32 (one float32 copy of ``X``). So a feature
with a large offset (a timestamp, a counter at 1e7 plus small changes) keeps
its variation, and values beyond the float32 range are fine as long as their
scaled values are not. Prediction centres its inputs the same way, chunk by
chunk (:meth:`Scaling.transform`); the network's
:class:`~sktransfer._module.Standardize` layer holds the same statistics so
that ``net_.module_`` also works on its own (in float32). The layer is
inactive while training and is switched on when training ends, so steps that
run the trained network on the (already scaled) training rows -- AdaBN's
batch-norm re-estimation -- run before :meth:`Scaling.configure`.
"""

import numpy as np

from sktransfer._outofcore import check_chunk, chunk_rows, read_rows

#: input scaling modes (``standardize_X`` after ``"auto"`` is resolved)
INPUT_MODES = ("per_feature", "global", "off", "inherit")
#: a feature whose standard deviation is at most this fraction of its mean's
#: size (or exactly 0) is constant
CONSTANT_RTOL = 1e-12
_F32_MAX = float(np.finfo(np.float32).max)
_CHUNK = 4096


def _column_max(X, chunk=_CHUNK):
    """Largest absolute value per feature, float64 (1 where it is 0)."""
    top = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, X.shape[0], chunk):
        block = np.abs(X[start : start + chunk].astype(np.float64))
        np.maximum(top, block.max(axis=0), out=top)
    top[top == 0] = 1.0
    return top


def _settle(mean, std):
    """Round the statistics to a grid far finer than their estimation error
    (the mean to 2**-24 of its feature's spread, the spread to 24 bits), so
    that inputs that are the same data -- a weight of k or k repeated rows --
    give identical statistics despite float64 rounding in another order."""
    spread = np.where(std > 0, std, np.abs(mean))
    grid = np.where(spread > 0, spread, 1.0) * 2.0**-24
    with np.errstate(all="ignore"):  # a grid that underflows leaves the mean as is
        settled = np.round(mean / grid) * grid
    mean = np.where((grid > 0) & np.isfinite(settled), settled, mean)
    mantissa, exponent = np.frexp(std)
    return mean, np.ldexp(np.round(mantissa * 2.0**24) / 2.0**24, exponent)


def feature_stats(X, weight=None, chunk=_CHUNK, constant_scale=1.0):
    """Per-feature (weighted) mean and standard deviation, float64.

    Two passes over row chunks in float64, each feature divided by its largest
    absolute value first, so values up to the float64 range do not overflow
    and no temporary is the size of ``X``. A constant feature (standard
    deviation at most ``CONSTANT_RTOL`` times the mean's size) gets the scale
    ``constant_scale``, or ``CONSTANT_RTOL`` times the mean's size when that is
    larger (None keeps the raw value). Weights that sum to zero
    are ignored (every row counts once).
    """
    n = X.shape[0]
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    if not w.sum() > 0:
        w = np.ones(n)
    with np.errstate(over="ignore"):
        huge = not np.isfinite(w.sum())
    if huge:
        w = w / w.max()  # huge weights: only their ratios matter
    total = w.sum()
    top = _column_max(X, chunk)
    acc = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64) / top
        acc += np.tensordot(w[start : start + chunk], block, axes=1)
    mean = acc / total
    acc = np.zeros_like(mean)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64) / top - mean
        acc += np.tensordot(w[start : start + chunk], block * block, axes=1)
    std = np.sqrt(acc / total)
    return finish_stats(mean, std, top, constant_scale)


def finish_stats(mean, std, top, constant_scale=1.0):
    """The statistics :func:`feature_stats` returns, from the mean and
    standard deviation in units of ``top`` (each feature's largest absolute
    value): constant features found, values rounded (:func:`_settle`)."""
    constant = ~(std > CONSTANT_RTOL * np.abs(mean))
    mean, std = _settle(mean * top, std * top)
    constant |= ~(std > 0)  # a spread below the float64 range is no spread
    if constant_scale is not None:
        # a near-constant feature far from 0 (1e60 +- 1e46) keeps its tiny
        # variation within the float32 range: at least CONSTANT_RTOL * |mean|
        floor = CONSTANT_RTOL * np.abs(mean[constant])
        std[constant] = np.maximum(constant_scale, floor)
    return mean, std


class Moments:
    """Per-feature weighted mean and spread, accumulated chunk by chunk.

    One pass: each chunk's mean and sum of squared deviations are merged into
    the running ones (Chan, Golub and LeVeque's pairwise update), in float64,
    in units of each feature's largest absolute value so far (rescaled when
    it grows), so values up to the float64 range do not overflow.
    :meth:`finish` returns what :func:`feature_stats`
    returns for all the rows at once, to float64 rounding (which its final
    rounding to 24 bits then removes).

    Parameters
    ----------
    shape : tuple of int
        The per-row shape of the features.
    """

    def __init__(self, shape):
        self.total = 0.0
        self.mean = np.zeros(shape, dtype=np.float64)
        self.m2 = np.zeros(shape, dtype=np.float64)
        self.top = np.zeros(shape, dtype=np.float64)

    def update(self, block, weight=None):
        """Add the rows ``block`` (weights ``weight``, None: 1 each).

        One float64 copy of the chunk is the only temporary the size of the
        chunk (``block`` is not changed).
        """
        if len(block) == 0:
            return self
        scaled = np.array(block, dtype=np.float64)  # the one copy, then in place
        top = np.maximum(self.top, np.maximum(scaled.max(axis=0), -scaled.min(axis=0)))
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = np.where(top > 0, self.top / top, 1.0)
        self.mean *= ratio
        self.m2 *= ratio * ratio
        self.top = top
        scaled /= np.where(top > 0, top, 1.0)
        if weight is None:
            w_sum = float(len(scaled))
            mean = scaled.mean(axis=0)
            scaled -= mean
            m2 = np.einsum("i...,i...->...", scaled, scaled)
        else:
            weight = np.asarray(weight, dtype=np.float64)
            w_sum = float(weight.sum())
            if not w_sum > 0:
                return self
            mean = np.tensordot(weight, scaled, axes=1) / w_sum
            scaled -= mean
            m2 = np.einsum("i,i...,i...->...", weight, scaled, scaled)
        total = self.total + w_sum
        delta = mean - self.mean
        self.mean += delta * (w_sum / total)
        self.m2 += m2 + delta * delta * (self.total * w_sum / total)
        self.total = total
        return self

    def finish(self, constant_scale=1.0):
        """``(mean, std)`` as :func:`feature_stats`
        gives them (constant features, rounding, ``constant_scale``)."""
        top = np.where(self.top > 0, self.top, 1.0)
        total = self.total if self.total > 0 else 1.0
        std = np.sqrt(np.maximum(self.m2, 0.0) / total)
        return finish_stats(self.mean, std, top, constant_scale)


def effective_weights(weight):
    """The weights :func:`feature_stats` uses: all ones
    when they sum to zero, divided by their largest when their sum overflows
    (None stays None: every row counts once)."""
    if weight is None:
        return None
    w = np.asarray(weight, dtype=np.float64)
    if not w.sum() > 0:
        return None
    with np.errstate(over="ignore"):
        huge = not np.isfinite(w.sum())
    return w / w.max() if huge else w


def _input_stats(X, weight, mode):
    """Centre and scale per feature, or one scale for all (``"global"``,
    which keeps the relative sizes of the features -- a spectrum's shape).
    ``X`` may be a :class:`~sktransfer._outofcore.Moments` accumulated
    over the rows (``weight`` is then unused)."""
    if isinstance(X, Moments):
        stats = X.finish
    else:

        def stats(constant_scale=1.0):
            return feature_stats(X, weight, constant_scale=constant_scale)

    if mode != "global":
        return stats()
    mean, std = stats(constant_scale=None)
    varying = std > CONSTANT_RTOL * np.abs(mean)  # constants must not set the scale
    rms = np.sqrt(np.mean(np.square(std[varying]))) if varying.any() else 1.0
    return mean, np.full_like(std, rms)


def _to_float32(block, what):
    """``block`` as float32; refuse values beyond the float32 range."""
    big = (block > _F32_MAX) | (block < -_F32_MAX)  # no temporary |block|
    if big.any():
        columns = np.flatnonzero(big.reshape(len(block), -1).any(axis=0))
        raise ValueError(
            f"{what} has values beyond the float32 range (about 3.4e38) in "
            f"column(s) {columns[:10].tolist()}, which the network computes in. "
            "Rescale those columns (for example with a StandardScaler in the "
            "pipeline) or keep standardize_X on."
        )
    return block.astype(np.float32)


def _scale(X, mean, scale):
    """``(X - mean) / scale`` in float64 (``X`` as it is when mean is None)."""
    if mean is None:
        return X.astype(np.float64, copy=False)
    block = np.array(X, dtype=np.float64)  # a copy, then in place
    block -= mean
    block /= scale
    return block


class Scaling:
    """How one ``fit`` scales inputs and targets.

    Parameters
    ----------
    inputs : {"per_feature", "global", "off", "inherit"}
        Input scaling; ``"inherit"`` reuses ``inherited``'s statistics.
    standardize_y : bool
        Standardise the targets over the labelled rows.
    per_domain : bool, default=False
        Scale each domain's rows with that domain's own statistics
        (``inputs`` other than ``"global"`` mean per feature); prediction
        then uses the statistics of the target domain numbered closest to 0.
    inherited : fitted estimator or None, default=None
        A fitted source estimator whose input scaling (``"inherit"``) and,
        with ``inherit_y``, target scaling are reused.
    inherit_y : bool, default=False
        Reuse ``inherited``'s target scaling (its head is reused).
    labelled_only : bool, default=False
        Compute the input statistics (when not per domain) over the labelled
        rows only -- the rows the model learns from when no adaptation loss
        uses the others.

    Attributes
    ----------
    input_mean_, input_scale_ : float64 ndarray or None
        What inputs are centred and divided by at prediction (None: nothing).
    domain_stats_ : dict of int -> (mean, scale), or None
        Per-domain statistics when ``per_domain``.
    y_mean_, y_scale_ : ndarray of shape (n_outputs,)
        Target scaling, undone at prediction.
    """

    def __init__(
        self,
        inputs,
        standardize_y,
        *,
        per_domain=False,
        inherited=None,
        inherit_y=False,
        labelled_only=False,
    ):
        self.labelled_only = labelled_only
        self.inputs = inputs
        self.standardize_y = standardize_y
        self.per_domain = per_domain
        self.inherited = inherited
        self.inherit_y = inherit_y

    def fit_transform(self, X, y, masks, sample_weight=None):
        """Fit the statistics and return the training arrays.

        Parameters
        ----------
        X : ndarray of shape (n_samples, ...)
            Inputs, float32 or float64.
        y : ndarray of shape (n_samples, n_outputs)
            NaN where a row is unlabelled.
        masks : DomainMasks
            The rows' domains.
        sample_weight : ndarray of shape (n_samples,) or None
            Weights of the statistics.

        Returns
        -------
        X_train : float32 ndarray
            The scaled inputs (the one copy of ``X`` that ``fit`` makes).
        y_train : float32 ndarray of shape (n_samples, n_outputs)
            Scaled targets, 0 on unlabelled rows.
        """
        X_train = np.empty(X.shape, dtype=np.float32)
        self._fit_transform_inputs(X, X_train, masks, sample_weight)
        return X_train, self._fit_transform_targets(y, masks, sample_weight)

    def fit_stream(self, X, y, masks, sample_weight=None):
        """Fit the statistics of an ``X`` read on demand, in one pass.

        The statistics, the per-feature range of the scaled inputs and the
        check that every value is finite come from one streaming pass over
        row chunks of ``X``; no copy of ``X`` is made. The range is mapped
        through the scaling from the raw minimum and maximum (scaling is
        increasing per feature), so it equals the range of the scaled
        inputs that :meth:`fit_transform` returns.

        Parameters
        ----------
        X : array-like of shape (n_samples, ...)
            An out-of-core array (``np.memmap``, h5py dataset, zarr array).
        y, masks, sample_weight
            As for :meth:`fit_transform`.

        Returns
        -------
        y_train : float32 ndarray of shape (n_samples, n_outputs)
            Scaled targets, 0 on unlabelled rows.
        input_range : (ndarray, ndarray)
            Per-feature float32 minimum and maximum of the scaled inputs.
        """
        self.domain_stats_ = None
        self.input_mean_ = self.input_scale_ = None
        with_stats = self.per_domain or self.inputs not in ("inherit", "off")
        codes = np.asarray(masks.domain) if self.per_domain else None
        groups = [0] if codes is None else [int(d) for d in np.unique(codes)]
        weight = None
        if with_stats:
            weight = self._stream_weights(masks, sample_weight, codes, groups)
        moments, low, high = _stream(X, codes, groups, weight, with_stats)
        if self.per_domain:
            stats = {g: _input_stats(moments[g], None, self.inputs) for g in groups}
            self.domain_stats_ = stats
            self.input_mean_, self.input_scale_ = stats[max(d for d in stats if d < 0)]
        elif self.inputs == "inherit":
            stats = {0: (self.inherited.input_mean_, self.inherited.input_scale_)}
            self.input_mean_, self.input_scale_ = stats[0]
        elif self.inputs == "off":
            stats = {0: (None, None)}
        else:
            stats = {0: _input_stats(moments[0], None, self.inputs)}
            self.input_mean_, self.input_scale_ = stats[0]
        # scaling is increasing per feature: the scaled range is the raw
        # range scaled (and float32 rounding keeps the order)
        lows = [_to_float32(_scale(low[g][None], *stats[g]), "X")[0] for g in groups]
        highs = [_to_float32(_scale(high[g][None], *stats[g]), "X")[0] for g in groups]
        input_range = (np.min(lows, axis=0), np.max(highs, axis=0))
        self._codes = codes
        return self._fit_transform_targets(y, masks, sample_weight), input_range

    def _stream_weights(self, masks, sample_weight, codes, groups):
        """Per row, the weight :func:`feature_stats` would give it among its
        group's rows (0: not counted); None when every row counts once."""
        counted = None  # rows the statistics count (None: all)
        if not self.per_domain and self.labelled_only and not masks.labelled.all():
            counted = masks.labelled
        if sample_weight is None and counted is None:
            return None
        n = len(masks.labelled)
        weight = np.zeros(n)
        for g in groups:
            rows = np.ones(n, bool) if codes is None else codes == g
            if counted is not None:
                rows &= counted
            w = effective_weights(
                None if sample_weight is None else sample_weight[rows]
            )
            weight[rows] = 1.0 if w is None else w
        return weight

    def transform_rows(self, block, rows):
        """The training inputs of the raw rows ``block`` at positions ``rows``
        of the ``X`` given to :meth:`fit_stream` (each row scaled with its
        domain's statistics when per domain), float32.

        Parameters
        ----------
        block : ndarray of shape (m, ...)
        rows : slice or int ndarray
            Positions of the rows in ``X``.

        Returns
        -------
        float32 ndarray of shape (m, ...)
        """
        if self.domain_stats_ is None:
            return self.transform(block)
        codes = self._codes[rows]
        out = np.empty(block.shape, dtype=np.float32)
        for dom in np.unique(codes):
            sel = codes == dom
            out[sel] = _to_float32(_scale(block[sel], *self.domain_stats_[dom]), "X")
        return out

    def _fit_transform_inputs(self, X, out, masks, weight):
        self.domain_stats_ = None
        self.input_mean_ = self.input_scale_ = None
        if self.per_domain:
            stats = {}
            for dom in np.unique(masks.domain):
                rows = np.flatnonzero(masks.domain == dom)
                w = None if weight is None else weight[rows]
                mean, scale = _input_stats(X[rows], w, self.inputs)
                for start in range(0, len(rows), _CHUNK):
                    part = rows[start : start + _CHUNK]
                    out[part] = _to_float32(_scale(X[part], mean, scale), "X")
                stats[int(dom)] = (mean, scale)
            self.domain_stats_ = stats
            # predict() sees target data: the target domain numbered closest to 0
            self.input_mean_, self.input_scale_ = stats[max(d for d in stats if d < 0)]
            return
        if self.inputs == "inherit":
            self.input_mean_ = self.inherited.input_mean_
            self.input_scale_ = self.inherited.input_scale_
        elif self.inputs != "off":
            rows = masks.labelled
            if self.labelled_only and not rows.all():
                w = None if weight is None else weight[rows]
                stats = _input_stats(X[rows], w, self.inputs)
            else:
                stats = _input_stats(X, weight, self.inputs)
            self.input_mean_, self.input_scale_ = stats
        for start in range(0, X.shape[0], _CHUNK):
            out[start : start + _CHUNK] = self.transform(X[start : start + _CHUNK])

    def transform(self, X):
        """Inputs centred and scaled in float64, then cast to float32.

        Parameters
        ----------
        X : ndarray of shape (n, ...)
            Raw inputs (a chunk).

        Returns
        -------
        float32 ndarray of the same shape
        """
        return scale_inputs(X, self.input_mean_, self.input_scale_)

    def _fit_transform_targets(self, y, masks, weight):
        n_outputs = y.shape[1]
        lab = masks.labelled
        if self.inherit_y and self.standardize_y:
            y_mean, y_scale = self.inherited.y_mean_, self.inherited.y_scale_
        elif self.standardize_y:
            y_mean, y_scale = feature_stats(
                y[lab], None if weight is None else weight[lab]
            )
        else:
            y_mean, y_scale = np.zeros(n_outputs), np.ones(n_outputs)
        self.y_mean_ = np.asarray(y_mean, dtype=np.float64)
        self.y_scale_ = np.asarray(y_scale, dtype=np.float64)
        y_train = np.zeros(y.shape, dtype=np.float32)
        y_train[lab] = _to_float32(_scale(y[lab], self.y_mean_, self.y_scale_), "y")
        return y_train

    def configure(self, network):
        """Switch the network's normaliser on with the input statistics."""
        if self.input_mean_ is not None:
            network.normalizer.set(self.input_mean_, self.input_scale_)
        return network


def _stream(X, codes, groups, weight, with_stats):
    """One pass over row chunks of ``X``: each group's :class:`Moments`
    (``with_stats``) and raw per-feature minimum and maximum (float64, exact);
    every value is checked to be finite. ``codes``: each row's group (None:
    one group, 0)."""
    shape = tuple(X.shape[1:])
    moments = {g: Moments(shape) for g in groups}
    low = {g: np.full(shape, np.inf) for g in groups}
    high = {g: np.full(shape, -np.inf) for g in groups}
    n, step = X.shape[0], chunk_rows(X)
    for start in range(0, n, step):
        stop = min(start + step, n)
        block = check_chunk(read_rows(X, slice(start, stop)))
        for g in groups:
            if codes is None:
                part, sel = block, slice(start, stop)
            else:
                sel = start + np.flatnonzero(codes[start:stop] == g)
                if not sel.size:
                    continue
                part = block[sel - start]
            np.minimum(low[g], part.min(axis=0), out=low[g])
            np.maximum(high[g], part.max(axis=0), out=high[g])
            if with_stats:
                moments[g].update(part, None if weight is None else weight[sel])
    return moments, low, high


def scale_inputs(X, mean, scale):
    """``(X - mean) / scale`` computed in float64, as float32 (range-checked);
    ``X`` only cast when ``mean`` is None."""
    if mean is None and X.dtype == np.float32:
        return X if X.flags.writeable else X.copy()  # torch needs a writable buffer
    return _to_float32(_scale(X, mean, scale), "X")


def standardize_by_domain(flat, domains, stats):
    """Each row of ``flat`` standardised with its own domain's statistics.

    Parameters
    ----------
    flat : ndarray of shape (n_samples, n_values)
    domains : array-like of int of shape (n_samples,)
    stats : dict of int -> (mean, scale)
        Per-domain input statistics (``domain_stats_``); every domain in
        ``domains`` must have an entry.

    Returns
    -------
    standardised : ndarray of shape (n_samples, n_values), float64
        A new array; ``flat`` is not changed.
    """
    out = np.array(flat, dtype=np.float64, copy=True)
    domains = np.asarray(domains)
    for dom in np.unique(domains):
        rows = domains == dom
        mean, scale = (np.asarray(v, dtype=np.float64).ravel() for v in stats[dom])
        out[rows] = (out[rows] - mean) / scale
    return out
