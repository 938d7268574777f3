"""Device, precision and random-number generators of one ``fit``."""

import contextlib
import threading
from dataclasses import dataclass

import numpy as np
import torch
from sklearn.utils import check_random_state

#: ``precision`` option -> autocast dtype (None: plain float32)
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


def _supported_devices():
    """The device strings this machine accepts, for messages."""
    names = ["'auto'", "'cpu'"]
    if not torch.cuda.is_available():
        return ", ".join(names) + " (CUDA is not available on this machine)"
    names.append("'cuda'")
    names.extend(f"'cuda:{i}'" for i in range(torch.cuda.device_count()))
    return ", ".join(names)


def resolve_device(device):
    """The torch device string for ``device``; ``"auto"`` -> cuda when available.

    Only the CPU and CUDA are supported: ``"cpu"``, ``"cuda"``, ``"cuda:N"``
    for a GPU that exists, ``"auto"``, or the matching ``torch.device``.

    Raises
    ------
    TypeError
        If ``device`` is not a str or a ``torch.device``.
    ValueError
        If ``device`` is not a valid torch device, is a device type other than
        the CPU and CUDA (``"mps"``, ``"xpu"``, ``"meta"``...), names CUDA on a
        machine without it, or names a GPU index that does not exist.
    """
    if isinstance(device, torch.device):
        device = str(device)
    if not isinstance(device, str):
        raise TypeError(
            f"device must be a str or a torch.device; got {device!r} of type "
            f"{type(device).__name__}. Use one of {_supported_devices()}."
        )
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as exc:
        raise ValueError(
            f"device={device!r} is not a valid torch device; use one of "
            f"{_supported_devices()}."
        ) from exc
    if dev.type not in ("cpu", "cuda"):
        raise ValueError(
            f"device={device!r} is not supported: sktransfer trains on the CPU or "
            f"on CUDA GPUs only. Use one of {_supported_devices()}."
        )
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(
                f"device={device!r} was requested but CUDA is not available on this "
                "machine; use device='cpu' or device='auto'."
            )
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise ValueError(
                f"device={device!r} names GPU {dev.index} but this machine has "
                f"{count} CUDA device(s); use one of {_supported_devices()}."
            )
    return device


def autocast(device, precision):
    """Mixed-precision context for ``precision`` (``"fp32"``: a no-op)."""
    dtype = PRECISIONS[precision]
    if dtype is None:
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=dtype)


@dataclass(frozen=True)
class Seeds:
    """The seeds of one ``fit``, all drawn from ``random_state``.

    Attributes
    ----------
    init : int
        Seeds torch's global generator (inside a fork) while the network and
        any extra modules are initialised and trained (dropout).
    shuffle : int
        Seeds the generator that orders the mini-batches.
    split : int
        Seeds the early-stopping validation split.
    augment : int
        Seeds the generator the augmentations of training batches draw from.
    """

    init: int
    shuffle: int
    split: int
    augment: int = 0

    @classmethod
    def from_random_state(cls, random_state):
        seed = int(check_random_state(random_state).randint(np.iinfo(np.int32).max))
        return cls(init=seed, shuffle=seed + 1, split=seed + 2, augment=seed + 3)


#: torch draws initial weights and dropout masks from one process-wide
#: generator, so seeded blocks take turns: same-seed fits in threads then
#: give what they give sequentially (processes, as in joblib, run in parallel)
_GLOBAL_RNG = threading.RLock()


@contextlib.contextmanager
def seeded_torch(seed, device):
    """Run a block with torch's global generator seeded, then restore it.

    The caller's random state (CPU and the CUDA device in use) is left as it
    was, so fitting never changes what the user's own torch code draws next.
    Blocks in several threads run one at a time (``_GLOBAL_RNG``): torch's
    module initialisation and dropout take no generator of their own.
    """
    devices = []
    if torch.device(device).type == "cuda":
        index = torch.device(device).index
        devices = [torch.cuda.current_device() if index is None else index]
    with _GLOBAL_RNG, torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
