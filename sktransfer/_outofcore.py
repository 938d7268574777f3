"""Inputs read from disk on demand: ``np.memmap``, h5py datasets, zarr arrays.

``fit`` and ``predict`` accept such an ``X`` without reading it all into
memory: it is validated and its statistics computed in one streaming pass over
row chunks (:class:`Moments`), each training batch is read, scaled and
converted to a float32 tensor when it is drawn (:class:`ArrayData`), and
prediction reads it chunk by chunk. The values the network sees are those of
the in-memory path, row for row: scaling is elementwise, so scaling a batch
gives the rows that scaling all of ``X`` would.

``y``, ``sample_domain`` and ``sample_weight`` (one value per row) are read
into memory.
"""

import mmap
from contextlib import contextmanager

import numpy as np
import torch

from sktransfer._batches import TensorData

#: bytes of ``X`` read per chunk by the streaming passes (at least one row)
CHUNK_BYTES = 1 << 21


#: the folder joblib memory-maps large arguments of its workers into
JOBLIB_MEMMAP_FOLDER = "joblib_memmapping_folder"


def is_out_of_core(X):
    """Whether ``X`` is read on demand: a ``np.memmap``, an h5py dataset, a
    zarr array or a :class:`RowView` of one.

    A memmap that joblib made of an in-memory array to hand it to a worker
    (``TransferEnsemble(n_jobs=2)``, ``MultiOutputRegressor(n_jobs=2)``...)
    is not: the caller's array was in memory, and the worker fits as the
    caller would (the exact solver included).
    """
    if isinstance(X, np.memmap):
        return JOBLIB_MEMMAP_FOLDER not in str(getattr(X, "filename", "") or "")
    if isinstance(X, RowView):
        return True
    module = type(X).__module__ or ""
    name = type(X).__name__
    if module.startswith("h5py") and name == "Dataset":
        return True
    return module.startswith("zarr") and name == "Array"


@contextmanager
def random_access(X):
    """While in the block, tell the kernel that a ``np.memmap`` ``X`` is read
    at random places (``madvise(MADV_RANDOM)``); the default advice is
    restored afterwards.

    Shuffled batches read rows from all over the file; with the default
    advice each page fault also reads the pages around it (the device's
    read-ahead, often megabytes), so a batch of a few thousand rows would
    read gigabytes. Other inputs, and systems without ``madvise``, are left
    as they are.
    """
    base = X.base if isinstance(X, RowView) else X
    advise = getattr(getattr(base, "_mmap", None), "madvise", None)
    random = getattr(mmap, "MADV_RANDOM", None)
    if not isinstance(base, np.memmap) or advise is None or random is None:
        yield
        return
    try:
        advise(random)
    except (OSError, ValueError):  # a closed or unusual mapping: no advice
        yield
        return
    try:
        yield
    finally:
        try:
            advise(mmap.MADV_NORMAL)
        except (OSError, ValueError):
            pass


def chunk_rows(X, chunk_bytes=CHUNK_BYTES):
    """Rows per chunk so that one chunk of ``X`` holds about ``chunk_bytes``."""
    row = int(np.prod(X.shape[1:], dtype=np.int64)) * np.dtype(X.dtype).itemsize
    return max(1, chunk_bytes // max(row, 1))


def read_rows(X, rows):
    """Rows ``rows`` (a slice or an int array, in any order, repeats allowed)
    of ``X`` as an ndarray; only those rows are read."""
    if isinstance(rows, slice):
        return np.asarray(X[rows])
    rows = np.asarray(rows, dtype=np.int64)
    if rows.size and np.all(rows[1:] > rows[:-1]):
        return _read_sorted(X, rows)
    unique, inverse = np.unique(rows, return_inverse=True)
    return _read_sorted(X, unique)[inverse]


def _read_sorted(X, rows):
    """Rows of ``X`` at the increasing positions ``rows``."""
    if rows.size == 0:
        return np.empty((0, *X.shape[1:]), dtype=X.dtype)
    if hasattr(X, "oindex"):  # zarr: orthogonal (per-axis) selection
        return np.asarray(X.oindex[(rows,) + (slice(None),) * (len(X.shape) - 1)])
    return np.asarray(X[rows])  # np.memmap, h5py (increasing indices), RowView


class RowView:
    """Some rows of an out-of-core array, read only when indexed.

    What ``sklearn.utils._safe_indexing`` would copy (the training rows of a
    cross-validation fold) stays on disk.

    Parameters
    ----------
    base : array-like
        An out-of-core array (see :func:`is_out_of_core`).
    rows : int ndarray
        Positions in ``base``.
    """

    def __init__(self, base, rows):
        if isinstance(base, RowView):
            rows, base = base.rows[np.asarray(rows)], base.base
        self.base = base
        self.rows = np.asarray(rows, dtype=np.int64)
        self.shape = (len(self.rows), *base.shape[1:])
        self.dtype = base.dtype
        self.ndim = len(self.shape)

    def __len__(self):
        return self.shape[0]

    def __getitem__(self, key):
        if isinstance(key, tuple):
            return read_rows(self.base, self.rows[key[0]])[(slice(None), *key[1:])]
        return read_rows(self.base, self.rows[key])


def take(X, rows):
    """``X``'s rows ``rows``: a :class:`RowView` of an out-of-core array (no
    read), else ``sklearn.utils._safe_indexing``."""
    if is_out_of_core(X):
        return RowView(X, rows)
    from sklearn.utils import _safe_indexing

    return _safe_indexing(X, rows)


def check_chunk(block, what="X"):
    """``block`` as a numeric ndarray; refuse NaN and infinity as scikit-learn
    does for an in-memory ``X``."""
    if block.dtype.kind not in "fiu":
        raise ValueError(
            f"{what} read on demand must hold numbers (float, int); got dtype "
            f"{block.dtype}. Convert the array on disk to float32."
        )
    if block.dtype.kind == "f" and not np.isfinite(block).all():
        what_bad = "NaN" if np.isnan(block).any() else "infinity"
        raise ValueError(
            f"Input {what} contains {what_bad}. Every value of {what} must be "
            "finite: fill or drop those rows on disk."
        )
    return block


class ArrayData(TensorData):
    """Training data whose inputs stay on disk: each batch's rows are read,
    scaled and moved to the device when the batch is taken.

    Parameters
    ----------
    source : array-like
        The raw inputs (see :func:`is_out_of_core`).
    transform : callable
        ``transform(block, rows)`` -> the float32 inputs the network trains
        on, for the raw rows ``block`` at positions ``rows``.
    y, weight, is_target, indices, weight_unit
        As for :class:`~sktransfer._batches.TensorData` (tensors on the
        training device).
    """

    def __init__(
        self,
        source,
        transform,
        y,
        weight=None,
        is_target=None,
        indices=None,
        weight_unit=1.0,
    ):
        super().__init__(source, y, weight, is_target, indices, weight_unit)
        self.transform = transform

    @property
    def device(self):
        """The training device (where ``y`` lives)."""
        return self.y.device

    def subset(self, indices):
        """A view of the rows ``indices`` (positions within this set)."""
        indices = torch.as_tensor(indices, dtype=torch.int64, device=self.device)
        if self.indices is not None:
            indices = self.indices[indices]
        return ArrayData(
            self.X,
            self.transform,
            self.y,
            self.weight,
            self.is_target,
            indices,
            self.weight_unit,
        )

    def row_indices(self):
        """Positions in ``X`` of this set's rows."""
        if self.indices is None:
            return torch.arange(self.X.shape[0], device=self.device)
        return self.indices

    def inputs(self, idx):
        """The scaled float32 inputs of the rows ``idx`` (a slice or an index
        tensor), as a tensor on the device."""
        rows = idx if isinstance(idx, slice) else idx.cpu().numpy()
        block = self.transform(read_rows(self.X, rows), rows)
        if block.base is not None or not block.flags.writeable:
            block = block.copy()  # never a tensor over the file's pages
        return torch.from_numpy(block).to(self.device)

    def take(self, idx, n_source=None):
        """The :class:`~sktransfer._batches.Batch` of the rows ``idx``."""
        from sktransfer._batches import Batch, Target

        w = None if self.weight is None else self.weight[idx]
        return Batch(self.inputs(idx), Target(self.y[idx], w, n_source))

    def rows(self, rows):
        """The scaled rows ``rows`` (an index tensor): a tensor when they are
        few, else a view whose slices are read on demand."""
        if rows.numel() <= 1024:
            return self.inputs(rows)
        return _ScaledRows(self, rows)


class _ScaledRows:
    """Scaled rows of an :class:`ArrayData`, read slice by slice."""

    def __init__(self, data, rows):
        self.data = data
        self.index = rows
        self.shape = (int(rows.numel()), *data.X.shape[1:])

    def __getitem__(self, key):
        return self.data.inputs(self.index[key])
