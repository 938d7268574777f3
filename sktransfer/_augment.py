"""Augmenting training batches: how the net applies the estimators' ``augment``.

The net wraps its training iterator (never the validation one) in
:class:`AugmentedBatches`; each batch passes through a :class:`BatchAugmenter`,
which applies the augmentations in order: row-wise ones to every row (in the
standardised or the original units, each augmentation's ``space``), mixing ones
to the labelled rows of each side (source, target) of the batch separately.
"""

import torch

from sktransfer._batches import Batch, Target


class BatchAugmenter:
    """Apply augmentations to one training :class:`~sktransfer._batches.Batch`.

    Parameters
    ----------
    augmentations : tuple of Augmentation
    generator : torch.Generator
        Every random draw comes from it.
    stats : (tensor, tensor) or None, default=None
        Mean and scale (float64, the per-sample shape) that standardised the
        training inputs: ``"raw"`` augmentations see ``X * scale + mean``.
        None: the batch is in original units already.
    reshape_to : tuple or None, default=None
        The per-sample shape the backbone receives (``input_shape``): 2-D
        batches are shown to the augmentations in it (a spectrum per channel).
    """

    def __init__(self, augmentations, generator, stats=None, reshape_to=None):
        self.augmentations = tuple(augmentations)
        self.generator = generator
        self.stats = stats
        self.reshape_to = reshape_to

    def __call__(self, batch, side=None):
        """The augmented batch; ``side`` (bool per row, True on target rows, or
        None) keeps mixing within one side."""
        X, (y, weight, n_source) = batch
        for aug in self.augmentations:
            if aug.mixes_rows:
                X, y, weight = self._mix(aug, X, y, weight, side)
            else:
                X, y, weight = self._rowwise(aug, X, y, weight)
        return Batch(X, Target(y, weight, n_source))

    def _call(self, aug, X, y, weight):
        """``aug`` on ``X`` in the backbone's per-sample shape, checked."""
        shown = X
        if self.reshape_to is not None and X.dim() == 2:
            shown = X.reshape(X.shape[0], *self.reshape_to)
        X_new, y_new, w_new = aug(shown, y, weight, self.generator)
        if X_new.shape != shown.shape or y_new.shape != y.shape:
            raise ValueError(
                f"The augmentation {aug!r} changed the shape of a batch (X "
                f"{tuple(shown.shape)} -> {tuple(X_new.shape)}, y {tuple(y.shape)} "
                f"-> {tuple(y_new.shape)}); an augmentation must keep the shapes."
            )
        return X_new.reshape(X.shape), y_new.to(y.dtype), w_new

    def _rowwise(self, aug, X, y, weight):
        if aug.space != "raw" or self.stats is None:
            X_new, y, weight = self._call(aug, X, y, weight)
            return X_new.to(X.dtype), y, weight
        mean, scale = self.stats
        raw = X.to(torch.float64) * scale + mean
        raw, y, weight = self._call(aug, raw, y, weight)
        return ((raw - mean) / scale).to(X.dtype), y, weight

    def _mix(self, aug, X, y, weight, side):
        """``aug`` within each side's labelled rows (weight above 0)."""
        labelled = None if weight is None else weight > 0
        one_side = side is None or not (side.any() and not side.all())
        if one_side and (labelled is None or bool(labelled.all())):
            X_new, y, weight = self._call(aug, X, y, weight)
            return X_new.to(X.dtype), y, weight
        if labelled is None:
            labelled = torch.ones(X.shape[0], dtype=torch.bool, device=X.device)
        side = torch.zeros_like(labelled) if side is None else side
        for value in (False, True):
            rows = torch.nonzero(labelled & (side == value)).flatten()
            if rows.numel() < 2:
                continue
            w = None if weight is None else weight[rows]
            Xg, yg, wg = self._call(aug, X[rows], y[rows], w)
            X = X.index_copy(0, rows, Xg.to(X.dtype))
            y = y.index_copy(0, rows, yg)
            if weight is not None:
                weight = weight.index_copy(0, rows, wg.to(weight.dtype))
        return X, y, weight


class AugmentedBatches:
    """A training iterator's batches, augmented.

    Parameters
    ----------
    iterator : BatchIterator or BalancedIterator
        Gives the rows of each batch (``row_batches``) and the data.
    augmenter : BatchAugmenter
    """

    def __init__(self, iterator, augmenter):
        self.iterator = iterator
        self.augmenter = augmenter

    def __len__(self):
        return len(self.iterator)

    def __iter__(self):
        data = self.iterator.data
        for rows, n_source in self.iterator.row_batches():
            side = None if data.is_target is None else data.is_target[rows]
            yield self.augmenter(data.take(rows, n_source), side)
