"""Training callbacks (``sktransfer._callbacks``): freezing schedules, the
adaptation-weight ramp, loss-term records and the closed-form report."""

import itertools
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from conftest import TINY, linear_problem
from hypothesis import given, settings
from hypothesis import strategies as st
from skorch.history import History

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._callbacks import (
    DAWeightSchedule,
    LossTermRecorder,
    SolverLog,
    UnfreezeSchedule,
    dann_ramp,
)


def _net_at_epoch(epoch):
    """What the callbacks read of a net: its history, ``epoch + 1`` rows long."""
    history = History()
    for _ in range(epoch + 1):
        history.new_epoch()
    return SimpleNamespace(history=history, frozen_modules_=None, da_scale_=None)


def _trainable(block):
    return all(p.requires_grad for p in block.parameters())


# ----------------------------------------------------------- UnfreezeSchedule
def test_unfreeze_schedule_phases():
    a, b = torch.nn.Linear(2, 2), torch.nn.Linear(2, 2)
    schedule = UnfreezeSchedule([[], [a], [b]], epochs_per_phase=2)
    net = _net_at_epoch(0)
    schedule.on_train_begin(net)
    assert not _trainable(a) and not _trainable(b)
    assert net.frozen_modules_ == [a, b]  # kept in eval mode by the net
    expected = {0: (False, False), 1: (False, False), 2: (True, False)}
    expected |= {3: (True, False), 4: (True, True), 9: (True, True)}
    for epoch, (ta, tb) in expected.items():
        net = _net_at_epoch(epoch)
        schedule.on_epoch_begin(net)
        assert (_trainable(a), _trainable(b)) == (ta, tb), epoch
        assert len(net.frozen_modules_) == 2 - ta - tb
    net = _net_at_epoch(1)
    schedule.on_train_end(net)
    assert _trainable(a) and _trainable(b) and net.frozen_modules_ == []


def test_unfreeze_schedule_without_phase_length_stays_in_phase_zero():
    a = torch.nn.Linear(2, 2)
    schedule = UnfreezeSchedule([[], [a]], None)
    schedule.on_train_begin(_net_at_epoch(0))
    for epoch in range(5):
        schedule.on_epoch_begin(_net_at_epoch(epoch))
        assert not _trainable(a)
    schedule.on_train_end(_net_at_epoch(4))
    assert _trainable(a)


# ------------------------------------------------------------------- ramps
def test_dann_ramp_values():
    assert dann_ramp(0.0) == 0.0
    assert dann_ramp(1.0) == pytest.approx(2 / (1 + np.exp(-10)) - 1)
    assert dann_ramp(0.5) == pytest.approx(2 / (1 + np.exp(-5)) - 1)


@settings(max_examples=50, deadline=None)
@given(st.floats(0, 1), st.floats(0, 1))
def test_dann_ramp_rises_from_zero_toward_one(p, q):
    lo, hi = sorted((p, q))
    assert 0.0 <= dann_ramp(lo) <= dann_ramp(hi) < 1.0


@pytest.mark.parametrize("ramp", ["constant", "linear", "dann"])
def test_da_weight_schedule(ramp):
    schedule = DAWeightSchedule(ramp, max_epochs=4)
    scales = []
    for epoch in range(4):
        net = _net_at_epoch(epoch)
        schedule.on_epoch_begin(net)
        assert net.history[-1, "da_scale"] == net.da_scale_
        scales.append(net.da_scale_)
    expected = {
        "constant": [1.0] * 4,
        "linear": [0.0, 0.25, 0.5, 0.75],
        "dann": [dann_ramp(e / 4) for e in range(4)],
    }[ramp]
    assert scales == pytest.approx(expected)


def test_da_scale_is_recorded_in_the_history_of_a_fit(uda):
    X, y, _, _ = uda
    est = DomainAdaptRegressor(method="coral", da_ramp="linear", **TINY).fit(X, y)
    assert est.history_[:, "da_scale"] == pytest.approx([0.0, 0.25, 0.5, 0.75])
    dann = DomainAdaptRegressor(method="coral", da_ramp="dann", **TINY).fit(X, y)
    scale = dann.history_[:, "da_scale"]
    assert scale[0] == 0.0 and all(b > a for a, b in itertools.pairwise(scale))


# ------------------------------------------------------------ LossTermRecorder
def test_loss_term_recorder_records_epoch_means():
    recorder = LossTermRecorder()
    net = _net_at_epoch(0)
    net.loss_terms_ = None
    recorder.on_epoch_begin(net)
    assert net.loss_terms_ == {}
    net.loss_terms_ = {
        "task_loss": [torch.tensor(1.0), torch.tensor(3.0)],
        "da_loss": [torch.tensor(0.5)],
    }
    recorder.on_epoch_end(net)
    assert net.history[-1, "train_task_loss"] == 2.0
    assert net.history[-1, "train_da_loss"] == 0.5
    assert net.loss_terms_ == {}


# ------------------------------------------------------------------ SolverLog
def test_solver_log_reports_a_closed_form_solve_only():
    messages = []
    log = SolverLog(sink=messages.append)
    log.on_train_end(SimpleNamespace())
    assert messages == []
    log.on_train_end(
        SimpleNamespace(closed_form_report_={"n_rows": 7, "n_features": 3})
    )
    assert messages == ["Solved the linear head in closed form: 7 rows, 3 features."]


def test_verbose(capsys):
    X, y = linear_problem(n=40, n_features=4)
    TransferRegressor("linear", max_epochs=2, verbose=0).fit(X, y)
    out, err = capsys.readouterr()
    assert out == "" and err == ""
    TransferRegressor("linear", max_epochs=2, solver="gradient", verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert out == "" and "epoch 2/2  train_loss=" in err  # tests/test_progress.py
    TransferRegressor("linear", max_epochs=2, solver="gradient", verbose=2).fit(X, y)
    out, err = capsys.readouterr()
    assert "train_loss" in out and err == ""
    TransferRegressor("linear", verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert "closed form" in out
