"""Torch threads of a fit that runs inside a Dask or Ray worker.

PyTorch gives each process as many intra-op threads as it has cores (or
``OMP_NUM_THREADS``). A search on a cluster runs one fit per worker thread
(Dask) or per CPU (Ray), so a fit must use the CPUs its worker allots it, not
all of them: :func:`worker_threads` is that allotment, and
:func:`torch_threads_for_workers` sets it for the length of a fit.

- Dask: one torch thread per task. A Dask worker thread stands for a core
  (``LocalCluster`` and ``dask worker`` size their threads by the cores), and
  a worker with ``threads_per_worker=k`` runs ``k`` fits at once.
- Ray: the CPUs Ray assigned to the task or actor (``num_cpus``, 1 by
  default; the joblib backend's actors hold none and run one job per CPU: 1).
- The environment variable ``SKTRANSFER_WORKER_THREADS`` (a positive integer)
  replaces either rule, in workers only.
- Anywhere else (a plain process, joblib's loky workers, which cap threads
  themselves), nothing changes.
"""

import os
import sys
import threading
from contextlib import contextmanager

import torch

#: environment variable: torch threads of each fit inside a cluster worker
WORKER_THREADS_ENV = "SKTRANSFER_WORKER_THREADS"

_LOCK = threading.Lock()
#: fits under way in this process with threads set by the rule, and the
#: thread count to restore when the last one ends
_ACTIVE = {"fits": 0, "before": None}


def _in_dask_task():
    """Whether this thread runs inside a Dask worker (a task or ``client.run``)."""
    distributed = sys.modules.get("distributed")
    if distributed is None:
        return False
    try:
        distributed.get_worker()
    except ValueError:  # "No worker found"
        return False
    return True


def _ray_cpus():
    """The CPUs Ray assigned to this task or actor (0 when it holds none), or
    None outside a Ray worker (the driver included)."""
    ray = sys.modules.get("ray")
    if ray is None or not ray.is_initialized():
        return None
    try:
        resources = ray.get_runtime_context().get_assigned_resources()
    except (AssertionError, RuntimeError):  # the driver has no assignment
        return None
    return float(resources.get("CPU", 0.0))


def _from_environment():
    value = os.environ.get(WORKER_THREADS_ENV)
    if value is None or not value.strip():
        return None
    try:
        threads = int(value)
    except ValueError:
        threads = 0
    if threads < 1:
        raise ValueError(
            f"The environment variable {WORKER_THREADS_ENV}={value!r} must be a "
            "positive integer (the torch threads of each fit in a Dask or Ray "
            "worker). Set it to 1 or more, or unset it to use the rule: one "
            "thread per Dask task, the task's CPUs on Ray."
        )
    return threads


def worker_threads():
    """The torch threads a fit in this thread may use, or None outside a
    Dask or Ray worker.

    Returns
    -------
    threads : int or None
        ``SKTRANSFER_WORKER_THREADS`` when set; else 1 in a Dask worker, and
        the CPUs Ray assigned (at least 1) in a Ray worker.
    """
    cpus = _ray_cpus()
    in_dask = cpus is None and _in_dask_task()
    if cpus is None and not in_dask:
        return None
    threads = _from_environment()
    if threads is not None:
        return threads
    return 1 if in_dask else max(1, int(cpus))


@contextmanager
def torch_threads_for_workers():
    """Run the block on :func:`worker_threads` torch threads when in a worker.

    The count is process-wide in torch; fits running at once in one worker
    (``threads_per_worker > 1``) share one setting, and the count the process
    had is restored when the last of them ends.
    """
    threads = worker_threads()
    if threads is None:
        yield
        return
    with _LOCK:
        if _ACTIVE["fits"] == 0:
            _ACTIVE["before"] = torch.get_num_threads()
        _ACTIVE["fits"] += 1
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
    try:
        yield
    finally:
        with _LOCK:
            _ACTIVE["fits"] -= 1
            if _ACTIVE["fits"] == 0 and torch.get_num_threads() != _ACTIVE["before"]:
                torch.set_num_threads(_ACTIVE["before"])
