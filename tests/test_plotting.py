"""``sktransfer.plotting``: each display renders (Agg) a figure that is not
blank, draws the data it was given, and refuses what it cannot draw."""

import ast
import re
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import TINY
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.metrics import root_mean_squared_error

from sktransfer import (
    DomainAdaptRegressor,
    SelfSupervisedPretrainer,
    TransferRegressor,
    plotting,
)
from sktransfer.datasets import make_domain_shift
from sktransfer.plotting import (
    DomainShiftDisplay,
    LabelCurveDisplay,
    ParityDisplay,
    TrainingHistoryDisplay,
    _features,
)

N_SOURCE, N_TARGET = 140, 60


@pytest.fixture(scope="module")
def plt():
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as pyplot

    yield pyplot
    pyplot.close("all")


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="module")
def data():
    """``(X, y, y_all, domain)``: source rows then target rows; ``y`` has NaN
    target labels, ``y_all`` the true ones."""
    Xs, ys, Xt, yt = make_domain_shift(N_SOURCE, N_TARGET, random_state=0)
    X = np.vstack([Xs, Xt])
    y = np.concatenate([ys, np.full(N_TARGET, np.nan)])
    domain = np.r_[np.zeros(N_SOURCE, int), -np.ones(N_TARGET, int)]
    return X, y, np.concatenate([ys, yt]), domain


@pytest.fixture(scope="module")
def fits(data):
    """Fitted ``source_only``, ``adabn`` and ``coral`` (with a validation
    split) estimators."""
    X, y, _, domain = data
    return {
        name: DomainAdaptRegressor(method=name, **extra, **TINY).fit(X, y, domain)
        for name, extra in [
            ("source_only", {}),
            ("adabn", {}),
            ("coral", {"early_stopping": True}),
        ]
    }


def _pixels(fig):
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].reshape(-1, 3)


def assert_not_blank(fig, plt):
    """The rendered image has many colours and differs from an empty figure
    of the same size in a good share of its pixels."""
    image = _pixels(fig)
    empty = _pixels(plt.figure(figsize=fig.get_size_inches(), dpi=fig.dpi))
    assert image.shape == empty.shape
    assert len(np.unique(image, axis=0)) > 20
    assert (image != empty).any(axis=1).mean() > 0.02


# ---------------------------------------------------------------- features
def test_features_are_what_the_head_predicts_from(fits, data):
    X, _, _, domain = data
    for est in fits.values():
        features = _features(est, X, domain)
        assert features.shape == (len(X), est.n_backbone_features_)
        with torch.no_grad():
            out = est.net_.module_.head(torch.from_numpy(features)).numpy()
        expected = est.predict(X, sample_domain=domain)
        np.testing.assert_allclose(
            out.ravel() * est.y_scale_ + est.y_mean_, expected, rtol=1e-4, atol=1e-5
        )


def test_features_apply_each_domains_normalisation(fits, data):
    X, _, _, domain = data
    est = fits["adabn"]  # per-domain scaling: sample_domain matters
    assert est.domain_stats_
    assert not np.allclose(_features(est, X, domain), _features(est, X))


def test_features_need_a_fitted_estimator(data):
    with pytest.raises(NotFittedError, match="not fitted"):
        _features(TransferRegressor(), data[0])


def test_features_leave_the_inputs_unchanged(fits, data):
    X, _, _, domain = data
    X_copy = X.copy()
    _features(fits["adabn"], X, domain)
    np.testing.assert_array_equal(X, X_copy)


# ---------------------------------------------------------- training history
def test_history_draws_losses_and_adaptation_terms(plt, fits):
    est = fits["coral"]
    display = TrainingHistoryDisplay.from_estimator(est)
    assert set(display.lines_) == {
        "train_loss",
        "valid_loss",
        "train_task_loss",
        "train_da_loss",
    }
    for key, line in display.lines_.items():
        np.testing.assert_allclose(line.get_ydata(), est.history_[:, key])
        np.testing.assert_array_equal(line.get_xdata(), est.history_[:, "epoch"])
    # the adaptation loss has its own axis
    assert display.lines_["train_da_loss"].axes is display.ax_terms_
    assert display.lines_["train_loss"].axes is display.ax_
    assert_not_blank(display.figure_, plt)


def test_history_of_a_plain_fit_has_one_axis(plt, fits):
    display = TrainingHistoryDisplay.from_estimator(fits["source_only"], log_scale=True)
    assert list(display.lines_) == ["train_loss"]
    assert display.ax_terms_ is None and display.ax_.get_yscale() == "log"
    assert_not_blank(display.figure_, plt)


def test_history_draws_the_l2sp_penalty_and_a_pretrainers_loss(plt, data):
    X = data[0][:N_SOURCE]
    pre = SelfSupervisedPretrainer(max_epochs=2, random_state=0).fit(X)
    assert list(TrainingHistoryDisplay.from_estimator(pre).lines_) == ["train_loss"]
    tuned = TransferRegressor(
        pre, pretraining="use", l2sp=0.1, max_epochs=3, random_state=0
    )
    display = TrainingHistoryDisplay.from_estimator(tuned.fit(X, X[:, 0]))
    assert list(display.lines_) == [
        "train_loss",
        "train_task_loss",
        "train_l2sp_penalty",
    ]
    assert display.lines_["train_l2sp_penalty"].axes is display.ax_terms_
    assert_not_blank(display.figure_, plt)


def test_history_draws_on_given_axes_and_chosen_keys(plt, fits):
    fig, ax = plt.subplots()
    display = TrainingHistoryDisplay.from_estimator(
        fits["coral"], keys=["valid_loss"], ax=ax
    )
    assert display.ax_ is ax and display.figure_ is fig
    assert list(display.lines_) == ["valid_loss"]
    with pytest.raises(ValueError, match=r"train_da_loss.*does not record"):
        TrainingHistoryDisplay.from_estimator(
            fits["source_only"], keys=["train_da_loss"]
        )


def test_history_refuses_closed_form_and_unfitted_estimators(plt, data):
    X, y, _, domain = data
    labelled = domain >= 0
    linear = TransferRegressor("linear").fit(X[labelled], y[labelled])
    assert linear.solver_ == "closed_form"
    with pytest.raises(ValueError, match=r"closed form.*solver='gradient'"):
        TrainingHistoryDisplay.from_estimator(linear)
    with pytest.raises(NotFittedError):
        TrainingHistoryDisplay.from_estimator(TransferRegressor())


# ------------------------------------------------------------------- parity
def test_parity_draws_predictions_by_domain(plt, fits, data):
    X, _, y_all, domain = data
    est = fits["adabn"]
    display = ParityDisplay.from_estimator(est, X, y_all, sample_domain=domain)
    pred = est.predict(X, sample_domain=domain)
    assert len(display.scatters_) == 2
    for scatter, rows in zip(display.scatters_, [domain >= 0, domain < 0]):
        np.testing.assert_allclose(
            scatter.get_offsets(), np.c_[y_all[rows], pred[rows]], rtol=1e-6
        )
    assert display.rmse_ == pytest.approx(root_mean_squared_error(y_all, pred))
    x, y = display.line_.get_data()
    np.testing.assert_array_equal(x, y)  # the identity line
    title = display.ax_.get_legend().get_title().get_text()
    assert f"{display.rmse_:.3g}" in title and "R$^2$" in title
    assert_not_blank(display.figure_, plt)


def test_parity_leaves_out_unlabelled_rows(plt, fits, data):
    X, y, _, _ = data  # target rows have NaN labels
    display = ParityDisplay.from_estimator(fits["source_only"], X, y)
    assert len(display.scatters_) == 1
    assert len(display.scatters_[0].get_offsets()) == N_SOURCE
    assert_not_blank(display.figure_, plt)


def test_parity_from_predictions_checks_its_inputs(plt):
    two = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 31.0]])
    display = ParityDisplay.from_predictions(two, two + 1, output=1)
    np.testing.assert_array_equal(display.y_true, two[:, 1])
    assert display.rmse_ == pytest.approx(1.0)
    with pytest.raises(ValueError, match="output=k"):
        ParityDisplay.from_predictions(two, two)
    with pytest.raises(ValueError, match="output=2"):
        ParityDisplay.from_predictions(two, two, output=2)
    with pytest.raises(ValueError, match="same shape"):
        ParityDisplay.from_predictions([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="no finite value"):
        ParityDisplay.from_predictions([np.nan, np.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="sample_domain must be one integer"):
        ParityDisplay.from_predictions([1.0, 2.0], [1.0, 2.0], sample_domain=[0.5, 1])


# ------------------------------------------------------------- label curve
def test_label_curve_from_results_draws_means_and_spread(plt):
    errors = {"a": [1.0, 0.8, 0.5], "b": [[1.0, 0.6, 0.3], [1.2, 0.8, 0.5]]}
    display = LabelCurveDisplay.from_results([0, 10, 40], errors, metric_name="MAE")
    np.testing.assert_allclose(display.lines_["b"].get_ydata(), [1.1, 0.7, 0.4])
    np.testing.assert_array_equal(display.lines_["a"].get_xdata(), [0, 10, 40])
    assert set(display.bands_) == {"b"}
    assert display.ax_.get_ylabel() == "target test MAE"
    assert_not_blank(display.figure_, plt)
    with pytest.raises(ValueError, match=r"errors\['a'\] has shape"):
        LabelCurveDisplay.from_results([0, 10], errors)
    with pytest.raises(TypeError, match="non-empty dict"):
        LabelCurveDisplay.from_results([0, 10], [1.0, 2.0])


def test_label_curve_from_estimator_fits_clones_per_label_count(plt):
    Xs, ys, Xt, yt = make_domain_shift(80, 60, random_state=1)
    pool, test = (Xt[:40], yt[:40]), (Xt[40:], yt[40:])
    da = DomainAdaptRegressor(method="source_only", **{**TINY, "max_epochs": 2})
    inputs = [a.copy() for a in (Xs, ys, *pool, *test)]
    display = LabelCurveDisplay.from_estimator(
        {"source only": da, "ridge": Ridge()},
        Xs,
        ys,
        *pool,
        *test,
        n_labels=(0, 5, 20),
        seeds=(0, 1),
    )
    assert (
        display.errors["ridge"].shape == display.errors["source only"].shape == (2, 3)
    )
    assert not hasattr(da, "net_")  # clones were fitted
    for before, after in zip(inputs, (Xs, ys, *pool, *test)):
        np.testing.assert_array_equal(before, after)
    # ridge with 5 labels, seed 1: the source rows and 5 drawn target rows
    rows = np.random.RandomState(1).permutation(40)[:5]
    ridge = Ridge().fit(np.vstack([Xs, pool[0][rows]]), np.r_[ys, pool[1][rows]])
    expected = root_mean_squared_error(test[1], ridge.predict(test[0]))
    assert display.errors["ridge"][1, 1] == pytest.approx(expected)
    assert display.ax_.get_ylabel() == "target test RMSE"
    assert_not_blank(display.figure_, plt)


def test_label_curve_refuses_more_labels_than_target_rows(plt):
    Xs, ys, Xt, yt = make_domain_shift(30, 10, random_state=0)
    with pytest.raises(ValueError, match=r"n_labels .* ints in \[0, 10\]"):
        LabelCurveDisplay.from_estimator(
            Ridge(), Xs, ys, Xt, yt, Xt, yt, n_labels=(0, 20)
        )


# ------------------------------------------------------------- domain shift
def test_domain_shift_before_and_after(plt, fits, data):
    X, _, _, domain = data
    display = DomainShiftDisplay.from_estimator(
        fits["adabn"], X, domain, before=fits["source_only"]
    )
    assert len(display.axes_) == 2 and display.ax_ is display.axes_[1]
    for emb, scatters in zip(display.embeddings, display.scatters_):
        assert emb.shape == (len(X), 2)
        assert list(scatters) == ["source 0", "target -1"]
        np.testing.assert_allclose(
            scatters["target -1"].get_offsets(), emb[domain < 0], rtol=1e-6
        )
    # per-domain normalisation moves the target features onto the source's
    source_only, adabn = display.mean_gaps
    assert adabn < source_only
    assert "source_only" in display.axes_[0].get_title()
    assert "adabn" in display.axes_[1].get_title()
    assert_not_blank(display.figure_, plt)


def test_domain_shift_checks_its_arguments(plt, fits, data):
    X, _, _, domain = data
    est = fits["coral"]
    with pytest.raises(ValueError, match="sample_domain must be one integer"):
        DomainShiftDisplay.from_estimator(est, X, domain[:10])
    with pytest.raises(ValueError, match="titles has 1 entries"):
        DomainShiftDisplay.from_estimator(est, X, domain, before=est, titles=["a"])
    _, axes = plt.subplots(1, 3)
    with pytest.raises(ValueError, match="ax holds 3 axes"):
        DomainShiftDisplay.from_estimator(est, X, domain, ax=axes)
    with pytest.raises(NotFittedError):
        DomainShiftDisplay.from_estimator(DomainAdaptRegressor(), X, domain)
    one = DomainShiftDisplay.from_estimator(est, X, domain, ax=axes[0], titles=["c"])
    assert one.ax_ is axes[0] and one.axes_[0].get_title().startswith("c\n")


def test_the_user_guide_plots_section_runs(plt, tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parents[1] / "docs" / "user_guide.md").read_text()
    section = page.split("## 6. Plots", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    exec(compile(block, "docs/user_guide.md", "exec"), {})
    assert (tmp_path / "domain_shift.png").stat().st_size > 10_000


def test_api_page_lists_the_displays():
    page = (Path(__file__).resolve().parents[1] / "docs" / "api.md").read_text()
    row = next(line for line in page.splitlines() if "sktransfer.plotting" in line)
    listed = set(re.findall(r"`(?:sktransfer\.plotting\.)?(\w+)`", row))
    assert listed >= set(plotting.__all__)


# ------------------------------------------------------------ without matplotlib
def test_the_module_does_not_import_matplotlib_at_import_time():
    tree = ast.parse(Path(plotting.__file__).read_text())
    top = [n for n in tree.body if isinstance(n, ast.Import | ast.ImportFrom)]
    names = [a.name for n in top for a in n.names] + [
        n.module for n in top if isinstance(n, ast.ImportFrom)
    ]
    assert not [n for n in names if n and n.startswith("matplotlib")]


def test_plot_without_matplotlib_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    monkeypatch.setitem(sys.modules, "matplotlib.pyplot", None)
    with pytest.raises(ImportError, match=r"pip install 'sktransfer\[plot\]'"):
        ParityDisplay.from_predictions([1.0, 2.0], [1.0, 2.0])
