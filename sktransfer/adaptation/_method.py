"""The protocol of adaptation methods and their registry."""

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from sktransfer._callbacks import DAWeightSchedule
from sktransfer._registry import Registry


class AdaptationMethod:
    """Base class of domain-adaptation methods.

    A method is a small, picklable object that tells
    :class:`~sktransfer.DomainAdaptRegressor` four things:

    - :meth:`loss`: the adaptation loss between the source and target
      features of a mini-batch (None for a method without one);
    - :meth:`modules`: extra trainable modules it owns (a domain
      discriminator); the skorch net builds them as its own modules
      (``net_.<name>_``) and trains them with the head's learning rate;
    - :meth:`callbacks`: extra skorch callbacks (by default the ramp of the
      adaptation weight when there is a loss);
    - its batching: a method with a loss trains on source/target balanced
      batches over all rows; one without trains on the labelled rows only.

    ``per_domain_scaling`` asks for each domain's inputs to be standardised
    with that domain's statistics (and batch-norm statistics re-estimated on
    the target after training); ``default_weight`` is the adaptation weight
    used by ``da_weight="auto"``.

    To add a method, subclass this, set ``name``, override :meth:`loss`, and
    :func:`register_method` it.
    """

    name = None
    default_weight = 0.0
    per_domain_scaling = False

    @property
    def has_loss(self):
        """Whether the method trains an adaptation loss."""
        return type(self).loss is not AdaptationMethod.loss

    def loss(self, features_source, features_target, modules):
        """Adaptation loss between feature batches (a scalar tensor).

        Parameters
        ----------
        features_source : tensor of shape (n_source, n_features)
            Source features of the batch.
        features_target : tensor of shape (n_target, n_features)
            Target features of the batch.
        modules : dict of str -> torch.nn.Module
            The trained instances of the modules from :meth:`modules`.
        """
        raise NotImplementedError

    def modules(self, n_features):
        """Extra trainable modules, built when the net is initialised.

        Parameters
        ----------
        n_features : int
            Width of the backbone's features.

        Returns
        -------
        modules : dict of str -> torch.nn.Module
        """
        return {}

    def callbacks(self, *, da_ramp, max_epochs):
        """Extra skorch callbacks for one fit.

        Parameters
        ----------
        da_ramp : {"dann", "linear", "constant"}
            Schedule of the adaptation weight.
        max_epochs : int
            The epoch budget.

        Returns
        -------
        callbacks : list of (str, skorch.callbacks.Callback)
        """
        if not self.has_loss:
            return []
        return [("da_schedule", DAWeightSchedule(da_ramp, max_epochs))]


@torch.no_grad()
def reestimate_batch_norm(network, X_target, chunk=1024):
    """AdaBN's second half: batch-norm statistics re-estimated on target rows.

    All target rows fit in one chunk: one pass in training mode, each layer's
    statistics those of its input batch. More rows: one layer at a time, in
    the order of ``network.modules()``, each layer's input mean and variance
    accumulated exactly over every chunk (in float64) with the layers before
    it already re-estimated.

    Parameters
    ----------
    network : TransferModule
        Trained; its normaliser still inactive (``X_target`` is scaled).
    X_target : tensor of shape (n_target, ...)
        Scaled target rows.
    chunk : int, default=1024
        Rows per forward pass.
    """
    bns = [m for m in network.modules() if isinstance(m, _BatchNorm)]
    if not bns or X_target.shape[0] < 2:
        return
    saved = [(m.momentum, m.training) for m in bns]
    if X_target.shape[0] <= chunk:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # the statistics of this one batch
            m.train()
        network.features(X_target)
    else:
        for m in bns:
            m.eval()
        for m in bns:
            _exact_statistics(network, m, X_target, chunk)
    for m, (momentum, training) in zip(bns, saved):
        m.momentum = momentum
        m.train(training)


def _exact_statistics(network, bn, X, chunk):
    """Set ``bn``'s running mean and (unbiased) variance to those of its input
    over all rows of ``X``, run through ``network`` in chunks."""
    total = {"n": 0, "sum": 0.0, "sq": 0.0}

    def accumulate(module, args):
        x = args[0].double().transpose(0, 1).reshape(args[0].shape[1], -1)
        total["n"] += x.shape[1]
        total["sum"] = total["sum"] + x.sum(dim=1)
        total["sq"] = total["sq"] + (x * x).sum(dim=1)

    handle = bn.register_forward_pre_hook(accumulate)
    try:
        for start in range(0, X.shape[0], chunk):
            network.features(X[start : start + chunk])
    finally:
        handle.remove()
    n = total["n"]
    mean = total["sum"] / n
    var = (total["sq"] - n * mean * mean).clamp_min(0.0) / max(n - 1, 1)
    bn.running_mean.copy_(mean.to(bn.running_mean.dtype))
    bn.running_var.copy_(var.to(bn.running_var.dtype))
    bn.num_batches_tracked.fill_(1)


_METHODS = Registry(
    "adaptation method", "method", "sktransfer.adaptation.register_method"
)


def register_method(method, *, overwrite=False):
    """Add an adaptation method to the registry.

    Parameters
    ----------
    method : AdaptationMethod subclass or instance
        Its ``name`` is the registry key (``DomainAdaptRegressor(method=name)``).
    overwrite : bool, default=False
        Replace an existing entry of the same name.

    Returns
    -------
    method : the argument, unchanged (usable as a class decorator).
    """
    return _METHODS.add_named(method, AdaptationMethod, overwrite)


def list_methods():
    """Names of the registered adaptation methods, in registration order."""
    return _METHODS.names()


def get_method(name):
    """The registered adaptation method called ``name``.

    Parameters
    ----------
    name : str
        A registered method name.

    Returns
    -------
    method : AdaptationMethod

    Raises
    ------
    ValueError
        If no method of that name is registered; the message lists them.
    """
    return _METHODS.get(name)
