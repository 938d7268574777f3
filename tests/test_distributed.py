"""Data-parallel training (``distributed="ddp"``) in two CPU processes.

One ``torchrun`` launch (two processes, gloo on the loopback) fits every case
of ``tests/distributed_cases.py``; the same cases fitted in this process are
the reference. Averaging the gradients of two halves of a batch, each
normalised by the whole batch's weight, is the full batch's gradient: the
models agree to float32 rounding, except where a loss is computed from batch
statistics (CORAL), which each process computes on its own shard.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from distributed_cases import MAX_EPOCHS_EARLY, fit_all

from sktransfer import DomainAdaptRegressor, TransferRegressor

HERE = Path(__file__).parent
#: the cases whose two-process fit must equal the one-process fit
EXACT = [
    "full_batch",
    "counted",
    "weighted",
    "early_stopping",
    "lp_ft",
    "closed_form",
    "dann",
    "coral_off",
]


def _free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """``(rank 0's results, rank 1's, this process's)``."""
    out = tmp_path_factory.mktemp("ddp")
    root = str(HERE.parent)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]),
        "OMP_NUM_THREADS": "1",
    }
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        "--master_addr=127.0.0.1",
        f"--master_port={_free_port()}",
        str(HERE / "distributed_cases.py"),
        str(out),
    ]
    done = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    ranks = [dict(np.load(out / f"rank{r}.npz")) for r in (0, 1)]
    return ranks[0], ranks[1], fit_all(None)


def test_two_processes_ran(runs):
    rank0, rank1, _ = runs
    assert int(rank0["world_size"]) == 2 and int(rank1["world_size"]) == 2


@pytest.mark.parametrize("case", EXACT)
def test_ddp_equals_one_process(runs, case):
    """Same seed, same global batches: the predictions and the loss history
    match one process's training (to float32 rounding)."""
    rank0, _, single = runs
    keys = [k for k in single if k.startswith(f"{case}/")]
    if case == "counted":  # test_each_process_trains_on_its_shard
        keys.remove("counted/rows_trained")
    if case == "coral_off":
        # CORAL at weight 0 trains nothing, but is still recorded: per shard
        keys.remove("coral_off/train_da_loss")
    assert f"{case}/pred" in keys
    for key in keys:
        np.testing.assert_allclose(rank0[key], single[key], rtol=1e-5, atol=1e-5)


def test_each_process_trains_on_its_shard(runs):
    """Each of two processes runs the forward pass on half the rows."""
    rank0, rank1, single = runs
    assert int(single["counted/rows_trained"]) == 64 * 4
    assert int(rank0["counted/rows_trained"]) == 32 * 4
    assert int(rank1["counted/rows_trained"]) == 32 * 4


def test_early_stopping_stops_alike_on_every_process(runs):
    """The validation loss is averaged over the processes, so early stopping
    stops both at the epoch one process stops at (before max_epochs)."""
    rank0, rank1, single = runs
    n_iter = int(single["early_stopping/n_iter"])
    assert n_iter < MAX_EPOCHS_EARLY
    assert int(rank0["early_stopping/n_iter"]) == n_iter
    assert int(rank1["early_stopping/n_iter"]) == n_iter
    np.testing.assert_array_equal(
        rank0["early_stopping/valid_loss"], rank1["early_stopping/valid_loss"]
    )


def test_every_process_holds_the_same_model(runs):
    rank0, rank1, single = runs
    for key in single:
        np.testing.assert_array_equal(rank0[key], rank1[key], err_msg=key)


def test_coral_is_computed_per_shard(runs):
    """CORAL compares batch covariances: each process compares its shard's,
    which differ from the whole batch's, so the model departs slightly from
    one process's (and the loss acts: da_weight=0 gives another model)."""
    rank0, _, single = runs
    gap = np.abs(rank0["coral/pred"] - single["coral/pred"]).max()
    assert 1e-5 < gap < 0.1
    assert np.abs(rank0["coral/pred"] - rank0["coral_off/pred"]).max() > 1e-4
    assert np.isfinite(rank0["coral/train_da_loss"]).all()
    # per shard, not the whole batch's: the recorded loss differs too
    assert not np.allclose(rank0["coral/train_da_loss"], single["coral/train_da_loss"])


def test_an_auto_choice_without_a_seed_splits_alike_on_every_process(runs):
    rank0, rank1, _ = runs
    for rank in (rank0, rank1):
        assert "auto_unseeded/error" not in rank, str(rank["auto_unseeded/error"])
    for key in ("pred", "finetune", "scores"):
        np.testing.assert_array_equal(
            rank0[f"auto_unseeded/{key}"], rank1[f"auto_unseeded/{key}"]
        )


def test_different_data_per_process_is_refused(runs):
    rank0, rank1, _ = runs
    for rank in (rank0, rank1):
        message = str(rank["error/different_data"])
        assert "every process to pass the same X, y" in message


def test_batch_smaller_than_the_processes_is_refused(runs):
    rank0, rank1, _ = runs
    for rank in (rank0, rank1):
        message = str(rank["error/batch_size"])
        assert "batch_size=1" in message and "set batch_size=2 or more" in message


@pytest.mark.parametrize("estimator", [TransferRegressor, DomainAdaptRegressor])
def test_bad_distributed_option(estimator):
    X, y = np.zeros((4, 2)), np.arange(4.0)
    with pytest.raises(ValueError, match=r"'distributed' parameter.*'ddp'.*nccl"):
        estimator(distributed="nccl", max_epochs=1).fit(X, y)


@pytest.mark.parametrize("estimator", [TransferRegressor, DomainAdaptRegressor])
def test_ddp_without_a_process_group(estimator, monkeypatch):
    for name in ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    X, y = np.zeros((4, 2)), np.arange(4.0)
    est = estimator(distributed="ddp", max_epochs=1)
    with pytest.raises(ValueError, match=r"torchrun.*distributed=None"):
        est.fit(X, y)
    assert not hasattr(est, "net_")
