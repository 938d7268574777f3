"""Data-parallel training over a ``torch.distributed`` process group.

With ``distributed="ddp"`` every process (one per GPU or CPU worker, started
by ``torchrun``) runs the same ``fit`` on the same data. The batches are
formed identically on every process (one seed, broadcast from rank 0); each
process runs the forward and backward pass on its shard of every batch
(rows ``rank::world_size``, source and target rows sharded apart), and the
gradients are averaged across processes by one ``all_reduce`` per step before
the optimizer (and gradient clipping) sees them, so every process takes the
same step. The loss of each shard is normalised by the *whole* batch's
weight, so the averaged gradient of the squared error is the full batch's.

Why not ``torch.nn.parallel.DistributedDataParallel``: DDP fixes the set of
trainable parameters when it wraps a module, but the fine-tuning strategies
freeze and unfreeze parameters during training (``"lp_ft"``, ``"gradual"``)
and the adaptation methods train modules of their own outside the network
(DANN's discriminator) that a shard may not reach; one flat all-reduce of the
gradients of every trainable parameter is DDP's arithmetic without those
restrictions.
"""

import os
from dataclasses import dataclass

import numpy as np
import torch

from sktransfer._batches import Batch, Target
from sktransfer._device import Seeds, resolve_device

#: the values of the ``distributed`` parameter
OPTIONS = ("ddp",)


def _dist():
    import torch.distributed as dist

    return dist


@dataclass(frozen=True)
class Distributed:
    """The process group one ``fit`` trains over.

    Attributes
    ----------
    rank : int
        This process's rank.
    world_size : int
        Number of processes.
    backend : str
        The process group's backend (``"gloo"``, ``"nccl"``).
    comm_device : str
        Where the tensors of collectives live (the GPU for NCCL, else the CPU).
    """

    rank: int
    world_size: int
    backend: str
    comm_device: str

    # --- collectives -------------------------------------------------------
    def _all_reduce(self, tensor, op="sum"):
        dist = _dist()
        out = tensor.detach().to(self.comm_device, copy=True)  # never in place
        reduce_op = {
            "sum": dist.ReduceOp.SUM,
            "min": dist.ReduceOp.MIN,
            "max": dist.ReduceOp.MAX,
        }[op]
        dist.all_reduce(out, op=reduce_op)
        return out.to(tensor.device)

    def mean(self, tensor):
        """The mean of ``tensor`` over the processes."""
        return self._all_reduce(tensor.detach().float()) / self.world_size

    def broadcast_seeds(self, seeds):
        """Rank 0's :class:`~sktransfer._device.Seeds` on every process (so that
        ``random_state=None`` still orders the batches alike everywhere)."""
        values = torch.tensor(
            [seeds.init, seeds.shuffle, seeds.split, seeds.augment], dtype=torch.int64
        ).to(self.comm_device)
        _dist().broadcast(values, src=0)
        return Seeds(*(int(v) for v in values.cpu()))

    def broadcast_int(self, value):
        """Rank 0's ``value`` (an int) on every process."""
        out = torch.tensor([int(value)], dtype=torch.int64).to(self.comm_device)
        _dist().broadcast(out, src=0)
        return int(out.cpu()[0])

    def check_same_data(self, X, y, sample_weight=None, domain=None):
        """Raise on every process if the processes were given different data.

        Every process must pass the whole training set: each trains on its
        shard of each batch, and the scaling statistics come from all rows.
        """
        total = absolute = 0.0
        step = 8192  # in chunks: X may be a memmap or an on-disk array
        for start in range(0, X.shape[0], step):
            chunk = np.asarray(X[start : start + step])
            total += float(np.nansum(chunk, dtype=np.float64))
            absolute += float(np.nansum(np.abs(chunk), dtype=np.float64))
        parts = [
            float(X.shape[0]),
            total,
            absolute,
            float(np.isnan(y).sum()),
            float(np.nansum(y, dtype=np.float64)),
        ]
        if sample_weight is not None:
            parts.append(float(np.sum(sample_weight, dtype=np.float64)))
        if domain is not None:
            parts.append(float(np.sum(domain, dtype=np.float64)))
        mine = torch.tensor(parts, dtype=torch.float64)
        low = self._all_reduce(mine, "min")
        high = self._all_reduce(mine, "max")
        tol = 1e-9 * (1.0 + torch.maximum(low.abs(), high.abs()))
        if bool(((high - low) > tol).any()):
            raise ValueError(
                "distributed='ddp' needs every process to pass the same X, y "
                "(and sample_weight, sample_domain) to fit: each process trains "
                "on its shard of every batch, and the scaling statistics come "
                f"from all rows; but the {self.world_size} processes passed "
                "different data (rows, sums of X or y differ). Load the whole "
                "training set in every process, in the same order."
            )

    def average_gradients(self, params, loss):
        """Average the gradients of ``params`` over the processes, in place.

        One flat buffer, one ``all_reduce``: gradient, then one flag per
        parameter (whether any process has a gradient: a parameter no
        process reached keeps ``grad=None``, so the optimizer skips it), then
        the loss. Returns the loss averaged over the processes (detached).
        """
        params = [p for p in params if p.requires_grad]
        flat = [
            (p.grad if p.grad is not None else torch.zeros_like(p)).reshape(-1).float()
            for p in params
        ]
        device = loss.device
        has = torch.tensor(
            [p.grad is not None for p in params], dtype=torch.float32, device=device
        )
        buf = torch.cat([*(f.to(device) for f in flat), has, loss.detach().reshape(1)])
        buf = self._all_reduce(buf)
        offset = 0
        for i, p in enumerate(params):
            n = p.numel()
            if buf[-1 - len(params) + i] > 0:
                grad = (buf[offset : offset + n] / self.world_size).view_as(p)
                p.grad = grad.to(dtype=p.dtype, device=p.device)
            offset += n
        return buf[-1] / self.world_size

    def synchronize(self, modules):
        """Every process gets rank 0's parameters and the mean of the floating
        buffers (batch-norm statistics, which each process estimated on its
        shards), so the fitted model is the same everywhere."""
        dist = _dist()
        for module in modules:
            buffers = [
                b for b in module.buffers() if b.is_floating_point() and b.numel()
            ]
            if buffers:
                flat = torch.cat([b.detach().reshape(-1).float() for b in buffers])
                flat = self._all_reduce(flat) / self.world_size
                offset = 0
                for b in buffers:
                    n = b.numel()
                    b.data.copy_(flat[offset : offset + n].view_as(b))
                    offset += n
            self.broadcast_parameters(module, dist)

    def broadcast_parameters(self, module, dist=None):
        """Copy rank 0's parameters of ``module`` to every process."""
        dist = dist or _dist()
        params = list(module.parameters())
        if not params:
            return
        flat = torch.cat([p.detach().reshape(-1).float() for p in params])
        flat = flat.to(self.comm_device)
        dist.broadcast(flat, src=0)
        offset = 0
        with torch.no_grad():
            for p in params:
                n = p.numel()
                p.copy_(flat[offset : offset + n].view_as(p))
                offset += n

    # --- batches -------------------------------------------------------------
    def shard(self, batch):
        """``(this process's rows of batch, the normaliser of its loss)``.

        Rows ``rank::world_size`` (source and target rows apart, so each
        shard keeps source rows first). The normaliser is the whole batch's
        loss weight (its row count without weights) divided by the number of
        processes: the shards' losses, averaged, are the batch's loss.
        """
        X, (y, w, n_source) = batch
        n = X.shape[0]
        r, k = self.rank, self.world_size
        if n_source is None:
            idx = slice(r, None, k)
            local_source = None
        else:
            src = torch.arange(r, n_source, k, device=X.device)
            tgt = torch.arange(n_source + r, n, k, device=X.device)
            idx = torch.cat([src, tgt])
            local_source = int(src.numel())
        total = float(n) if w is None else w.sum().clamp_min(1e-12)
        shard = Batch(
            X[idx], Target(y[idx], None if w is None else w[idx], local_source)
        )
        return shard, total / k


def check_option(distributed):
    """Raise a ValueError naming the fix for a bad ``distributed`` value."""
    if distributed is None or (isinstance(distributed, str) and distributed in OPTIONS):
        return
    raise ValueError(
        f"distributed={distributed!r} is not supported; use None (one process) or "
        "'ddp' (data-parallel over a torch.distributed process group, for example "
        "under torchrun --nproc_per_node=2)."
    )


def setup(distributed, device):
    """``(Distributed or None, device)`` for one ``fit``.

    With ``"ddp"``: the process group already initialised by the caller, or
    one initialised here from the environment ``torchrun`` sets (``RANK``,
    ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``), with NCCL for CUDA
    and gloo for the CPU. ``device="cuda"`` or ``"auto"`` becomes
    ``"cuda:<LOCAL_RANK>"``, one GPU per process.
    """
    check_option(distributed)
    if distributed is None:
        return None, resolve_device(device)
    dist = _dist()
    if not dist.is_available():
        raise ValueError(
            "distributed='ddp' needs torch.distributed, which this torch build "
            "does not have; set distributed=None."
        )
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    name = str(device)
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and torch.cuda.is_available():
        name = f"cuda:{local_rank % torch.cuda.device_count()}"
    device = resolve_device(name)
    if not dist.is_initialized():
        if not {"RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"} <= set(os.environ):
            raise ValueError(
                "distributed='ddp' needs a torch.distributed process group: launch "
                "the script with torchrun (for example torchrun --nproc_per_node=2 "
                "train.py), or call torch.distributed.init_process_group() before "
                "fit; or set distributed=None to train in this process alone."
            )
        backend = "nccl" if torch.device(device).type == "cuda" else "gloo"
        dist.init_process_group(backend)
    if torch.device(device).type == "cuda":
        torch.cuda.set_device(torch.device(device))
    backend = str(dist.get_backend())
    comm = device if backend == "nccl" else "cpu"
    return Distributed(dist.get_rank(), dist.get_world_size(), backend, comm), device
