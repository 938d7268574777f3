"""Input and target scaling: one object prepares the training arrays and
configures the network's normaliser.

Training arrays are scaled once, in numpy, before training (one float32 copy of
``X``); the network's :class:`~sktransfer._module.Standardize` layer stays
inactive while training and is switched on with the same statistics when
training ends, so prediction takes raw inputs. Steps that run the trained
network on the (already scaled) training rows -- AdaBN's batch-norm
re-estimation -- therefore run before :meth:`Scaling.configure`.
"""

import numpy as np

#: input scaling modes (``standardize_X`` after ``"auto"`` is resolved)
INPUT_MODES = ("per_feature", "global", "off", "inherit")


def feature_stats(X, weight=None, chunk=4096, constant_scale=1.0):
    """Per-feature (weighted) mean and standard deviation, float32.

    Two passes over row chunks in float64: no temporary the size of ``X``.
    Constant features get the scale ``constant_scale`` (None keeps the raw,
    zero value).
    """
    n = X.shape[0]
    w = np.ones(n) if weight is None else np.asarray(weight, dtype=np.float64)
    total = w.sum()
    acc = np.zeros(X.shape[1:], dtype=np.float64)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64)
        acc += np.tensordot(w[start : start + chunk], block, axes=1)
    mean = acc / total
    acc = np.zeros_like(mean)
    for start in range(0, n, chunk):
        block = X[start : start + chunk].astype(np.float64) - mean
        acc += np.tensordot(w[start : start + chunk], block * block, axes=1)
    std = np.sqrt(acc / total)
    if constant_scale is not None:
        std[~(std > 1e-12)] = constant_scale
    return mean.astype(np.float32), std.astype(np.float32)


def _input_stats(X, weight, mode):
    """Centre and scale per feature, or one scale for all (``"global"``,
    which keeps the relative sizes of the features -- a spectrum's shape)."""
    if mode != "global":
        return feature_stats(X, weight)
    mean, std = feature_stats(X, weight, constant_scale=None)
    varying = std > 1e-12  # constant features must not set the scale
    rms = np.sqrt(np.mean(np.square(std[varying]))) if varying.any() else 1.0
    return mean, np.full_like(std, rms)


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

    Attributes
    ----------
    input_mean_, input_scale_ : ndarray or None
        What the network's normaliser applies at prediction (None: nothing).
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
    ):
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
        y : ndarray of shape (n_samples, n_outputs)
            NaN where a row is unlabelled.
        masks : DomainMasks
        sample_weight : ndarray of shape (n_samples,) or None
            Weights of the statistics.

        Returns
        -------
        X_train : float32 ndarray
            A scaled copy of ``X`` (the one copy ``fit`` makes).
        y_train : float32 ndarray of shape (n_samples, n_outputs)
            Scaled targets, 0 on unlabelled rows.
        """
        X_train = np.array(X, dtype=np.float32, copy=True, order="C")
        self._fit_transform_inputs(X_train, masks, sample_weight)
        return X_train, self._fit_transform_targets(y, masks, sample_weight)

    def _fit_transform_inputs(self, X, masks, weight):
        self.domain_stats_ = None
        self.input_mean_ = self.input_scale_ = None
        if self.per_domain:
            stats = {}
            for dom in np.unique(masks.domain):
                rows = masks.domain == dom
                w = None if weight is None else weight[rows]
                mean, scale = _input_stats(X[rows], w, self.inputs)
                X[rows] = (X[rows] - mean) / scale
                stats[int(dom)] = (mean, scale)
            self.domain_stats_ = stats
            # predict() sees target data: the target domain numbered closest to 0
            self.input_mean_, self.input_scale_ = stats[max(d for d in stats if d < 0)]
            return
        if self.inputs == "off":
            return
        if self.inputs == "inherit":
            mean, scale = self.inherited.input_mean_, self.inherited.input_scale_
            if mean is None:
                return
        else:
            mean, scale = _input_stats(X, weight, self.inputs)
        X -= mean
        X /= scale
        self.input_mean_, self.input_scale_ = mean, scale

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
        y_train = ((y - y_mean) / y_scale).astype(np.float32)
        y_train[~lab] = 0.0
        self.y_mean_ = np.asarray(y_mean, dtype=np.float64)
        self.y_scale_ = np.asarray(y_scale, dtype=np.float64)
        return y_train

    def configure(self, network):
        """Switch the network's normaliser on with the input statistics."""
        if self.input_mean_ is not None:
            network.normalizer.set(self.input_mean_, self.input_scale_)
        return network
