"""Shared docstring text (``sktransfer._docs``)."""

import pytest

from sktransfer import DomainAdaptRegressor, TransferEnsemble, TransferRegressor
from sktransfer._docs import PARAMETERS, fill_doc


def test_fill_doc_replaces_placeholder_lines_keeping_their_indent():
    def f():
        """Summary.

        Parameters
        ----------
        %(lr)s
        own : int
            Not shared.
        """

    fill_doc(f)
    lines = f.__doc__.splitlines()
    first = PARAMETERS["lr"].splitlines()
    i = lines.index("        " + first[0])
    assert lines[i + 1] == "        " + first[1]
    assert "%(" not in f.__doc__ and "own : int" in f.__doc__


def test_fill_doc_leaves_inline_percent_text_and_rejects_unknown_names():
    def g():
        """50%(lr)s of the time."""

    assert fill_doc(g).__doc__ == "50%(lr)s of the time."

    def h():
        """
        %(no_such_entry)s
        """

    with pytest.raises(KeyError):
        fill_doc(h)


@pytest.mark.parametrize(
    "estimator", [TransferRegressor, DomainAdaptRegressor, TransferEnsemble]
)
def test_estimator_docstrings_document_every_parameter(estimator):
    doc = estimator.__doc__ + estimator.fit.__doc__
    assert "%(" not in doc
    for name in estimator().get_params():
        assert f"\n    {name} : " in doc, name
