"""Predictions of a fixed set of fits match the record made before the redesign."""

import numpy as np
import pytest
from behaviour_cases import CASES, RECORD

RECORDED = dict(np.load(RECORD))


def test_record_covers_every_case():
    assert set(RECORDED) == set(CASES)
    assert len(CASES) >= 25


@pytest.mark.parametrize("name", sorted(CASES))
def test_predictions_match_the_record(name):
    np.testing.assert_allclose(CASES[name](), RECORDED[name], rtol=1e-5, atol=1e-5)
