"""What ``verbose`` shows (``sktransfer._callbacks.EpochProgress`` and
``EpochTable``): silence at 0; one bar over the epochs at 1, plain lines where
standard error is not a terminal; skorch's per-epoch table at 2."""

import io
import pickle
import re
import sys

import numpy as np
import pytest
from conftest import TINY, linear_problem

from sktransfer import DomainAdaptRegressor, TransferRegressor

FEW = dict(TINY, max_epochs=3)
FRAGMENTS = ("\r", "\x1b[", "0%|")  # redraws, ANSI codes, tqdm bar pieces


class FakeTerminal(io.StringIO):
    """A stream that says it is a terminal, as a console's standard error does."""

    def isatty(self):
        return True


def _progress(est):
    return dict(est.net_.callbacks_)["progress_bar"]


def _clean(text):
    return not any(fragment in text for fragment in FRAGMENTS)


def test_verbose_0_is_silent(capsys, uda):
    X, y = linear_problem(n=40, n_features=4)
    TransferRegressor(**FEW).fit(X, y)
    TransferRegressor(early_stopping=True, **FEW).fit(X, y)
    TransferRegressor("linear").fit(X, y)
    DomainAdaptRegressor(method="coral", **FEW).fit(*uda[:2])
    assert capsys.readouterr() == ("", "")


def test_verbose_1_writes_plain_lines_where_stderr_is_not_a_terminal(capsys):
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(**FEW, verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert out == ""  # no per-epoch table, no batch bar
    assert _clean(err)
    lines = err.splitlines()
    assert [line.split()[:2] for line in lines] == [
        ["epoch", "1/3"],
        ["epoch", "2/3"],
        ["epoch", "3/3"],
    ]
    last = est.history_[-1, "train_loss"]
    assert f"train_loss={last:.4g}" in lines[-1]
    assert "valid_loss" not in err  # no validation split
    bar = _progress(est)
    assert (bar.total_, bar.done_, bar.pbar_) == (3, 3, None)


def test_verbose_1_logs_about_one_line_per_tenth_of_the_epochs(capsys):
    X, y = linear_problem(n=40, n_features=4)
    TransferRegressor(**dict(TINY, max_epochs=25), verbose=1).fit(X, y)
    err = capsys.readouterr().err
    epochs = [int(m) for m in re.findall(r"^epoch +(\d+)/25", err, re.M)]
    assert epochs == [3, 6, 9, 12, 15, 18, 21, 24, 25]
    assert _clean(err)


def test_verbose_1_on_a_terminal_is_one_bar_over_the_epochs(monkeypatch, capsys):
    X, y = linear_problem(n=40, n_features=4)
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    est = TransferRegressor(**FEW, verbose=1).fit(X, y)
    text = terminal.getvalue()
    assert capsys.readouterr().out == ""
    frames = [f for f in text.split("\r") if f.strip()]
    assert frames[0].strip().startswith("0%") and "0/3" in frames[0]
    assert all("/3 " in f for f in frames)  # one bar, over 3 epochs
    assert "3/3" in frames[-1] and "epoch" in frames[-1]
    assert f"train_loss={est.history_[-1, 'train_loss']:.4g}" in frames[-1]
    assert text.endswith("\n")  # closed
    assert _progress(est).done_ == 3


def test_early_stopping_ends_the_bar_short_of_max_epochs(monkeypatch, capsys):
    X, y = linear_problem(n=60, n_features=4)
    settings = dict(TINY, max_epochs=200, lr=0.05, early_stopping=True)
    est = TransferRegressor(**settings, n_iter_no_change=2, verbose=1).fit(X, y)
    n = len(est.history_)
    assert n < 200
    err = capsys.readouterr().err
    assert _clean(err) and "valid_loss=" in err
    assert err.splitlines()[-2].split()[:2] == ["epoch", f"{n}/200"]
    assert err.splitlines()[-1] == f"stopped after epoch {n} of 200"
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    TransferRegressor(**settings, n_iter_no_change=2, verbose=1).fit(X, y)
    last = [f for f in terminal.getvalue().split("\r") if f.strip()][-1]
    assert f"{n}/200" in last and "valid_loss=" in last


def test_the_adaptation_loss_is_in_the_progress(monkeypatch, capsys, uda):
    X, y = uda[:2]
    est = DomainAdaptRegressor(method="coral", **FEW, verbose=1).fit(X, y)
    err = capsys.readouterr().err
    assert _clean(err)
    assert f"da_loss={est.history_[-1, 'train_da_loss']:.4g}" in err
    terminal = FakeTerminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    DomainAdaptRegressor(method="coral", **FEW, verbose=1).fit(X, y)
    assert "da_loss=" in terminal.getvalue().split("\r")[-1]


def test_verbose_2_prints_the_epoch_table_without_colour_codes(capsys, uda):
    X, y = linear_problem(n=60, n_features=4)
    settings = dict(TINY, max_epochs=200, lr=0.05, early_stopping=True)
    est = TransferRegressor(**settings, n_iter_no_change=2, verbose=2).fit(X, y)
    out, err = capsys.readouterr()
    assert err == ""  # no bar of any kind
    assert _clean(out)
    header, _rule, *rows = out.splitlines()
    assert header.split() == ["epoch", "train_loss", "valid_loss", "dur"]
    # every epoch, the one early stopping ended on included
    assert [int(r.split()[0]) for r in rows] == list(range(1, len(est.history_) + 1))
    DomainAdaptRegressor(method="coral", **FEW, verbose=2).fit(*uda[:2])
    out = capsys.readouterr().out
    assert "train_da_loss" in out.splitlines()[0] and len(out.splitlines()) == 5


def test_closed_form_reports_one_line_at_verbose_1(capsys):
    X, y = linear_problem(n=40, n_features=4)
    TransferRegressor("linear", verbose=1).fit(X, y)
    out, err = capsys.readouterr()
    assert err == ""  # no empty bar: a closed form has no epochs
    assert out.count("\n") == 1 and "closed form" in out


@pytest.mark.parametrize("verbose", [1, 2])
def test_a_verbose_fit_pickles(verbose, capsys):
    X, y = linear_problem(n=40, n_features=4)
    est = TransferRegressor(**FEW, verbose=verbose).fit(X, y)
    again = pickle.loads(pickle.dumps(est))
    np.testing.assert_array_equal(again.predict(X), est.predict(X))


def test_the_folds_of_an_auto_choice_are_quiet(capsys):
    X, y = linear_problem(n=40, n_features=4)
    source = TransferRegressor(**FEW).fit(X, y)
    est = TransferRegressor(
        source, finetune="auto", max_epochs=3, random_state=0, verbose=1
    ).fit(X, y)
    assert est.finetune_scores_ is not None  # it cross-validated
    lines = capsys.readouterr().err.splitlines()
    assert [line.split()[1] for line in lines] == ["1/3", "2/3", "3/3"]
