"""Names that moved in the redesign still resolve, with a FutureWarning."""

import importlib

import pytest

from sktransfer import _batches, _callbacks
from sktransfer.finetuning import list_strategies
from sktransfer.losses import coral_loss

MOVED = [
    ("sktransfer.callbacks", "UnfreezeSchedule", _callbacks.UnfreezeSchedule),
    ("sktransfer.callbacks", "DAWeightSchedule", _callbacks.DAWeightSchedule),
    ("sktransfer.callbacks", "LossTermRecorder", _callbacks.LossTermRecorder),
    ("sktransfer.callbacks", "dann_ramp", _callbacks.dann_ramp),
    ("sktransfer.data", "TensorData", _batches.TensorData),
    ("sktransfer.data", "BatchIterator", _batches.BatchIterator),
    ("sktransfer.data", "BalancedIterator", _batches.BalancedIterator),
    ("sktransfer.data", "validation_split", _batches.validation_split),
]


@pytest.mark.parametrize(("module", "name", "target"), MOVED)
def test_moved_names_warn_and_resolve(module, name, target):
    mod = importlib.import_module(module)
    with pytest.warns(FutureWarning, match=f"{module}.{name} is deprecated") as rec:
        assert getattr(mod, name) is target
    assert rec[0].filename == __file__


def test_moved_constants():
    with pytest.warns(FutureWarning, match="list_strategies"):
        from sktransfer.finetuning import FINETUNE_OPTIONS
    assert FINETUNE_OPTIONS == tuple(list_strategies())
    with pytest.warns(FutureWarning, match="get_method"):
        from sktransfer.losses import DIVERGENCES
    assert DIVERGENCES["coral"] is coral_loss


def test_unknown_names_still_raise_attribute_error():
    with pytest.raises(AttributeError, match="no attribute 'nothing'"):
        _ = importlib.import_module("sktransfer.callbacks").nothing
