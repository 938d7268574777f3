"""Warnings point at the user's call (``sktransfer._warnings``)."""

import inspect

import numpy as np
import pytest
from conftest import TINY

from sktransfer import DomainAdaptRegressor
from sktransfer._warnings import warn


def test_warn_called_from_outside_the_package_points_at_that_line():
    with pytest.warns(UserWarning, match="hello") as record:
        line = inspect.currentframe().f_lineno + 1
        warn("hello")
    assert record[0].filename == __file__ and record[0].lineno == line


def test_warn_keeps_the_category():
    with pytest.warns(FutureWarning, match="soon"):
        warn("soon", FutureWarning)


def test_a_warning_from_deep_inside_fit_points_at_the_fit_call():
    X = np.random.RandomState(0).normal(size=(30, 3))
    est = DomainAdaptRegressor(method="coral", **TINY)
    with pytest.warns(UserWarning, match="No target rows") as record:
        line = inspect.currentframe().f_lineno + 1
        est.fit(X, X[:, 0])
    assert (record[0].filename, record[0].lineno) == (__file__, line)
