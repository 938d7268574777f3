"""The exact solver (``sktransfer._closed_form``): when it applies, and that it
reaches the optimum of the objective the gradient loop minimises."""

import numpy as np
import pytest
import torch
from conftest import linear_problem, network, rmse, states_equal
from sklearn.linear_model import LinearRegression, Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._closed_form import linear_head_applicable, solve_linear_head
from sktransfer._module import TransferModule
from sktransfer.heads import MLPHead


def _head_theta(est):
    """The head's parameters as one ``(d [+ 1], n_outputs)`` array."""
    head = network(est).head
    W = head.weight.detach().numpy().astype(np.float64).T
    if head.bias is None:
        return W
    return np.vstack([W, head.bias.detach().numpy().astype(np.float64)[None]])


def _reference_head(F, Y, w, theta0, strength, anchored, bias=True):
    """The regularised weighted normal equations, written out in numpy."""
    A = np.c_[F, np.ones(len(F))] if bias else F
    K = Y.shape[1]
    a = K * strength / 2
    G = A.T @ (w[:, None] * A) / w.sum()
    c = A.T @ (w[:, None] * Y) / w.sum()
    target = theta0 if anchored else 0 * theta0
    return np.linalg.solve(G + a * np.eye(len(G)), c + a * target)


# -------------------------------------------------- linear_head_applicable
def _module(backbone, head, n_features=4):
    return TransferModule(backbone, head, n_features)


def test_linear_head_applicable_gives_the_reason_it_does_not():
    def reason(module, frozen=False, feature_loss=False):
        return linear_head_applicable(
            module, frozen_backbone=frozen, feature_loss=feature_loss
        )

    flat = _module(torch.nn.Flatten(), torch.nn.Linear(4, 1))
    assert reason(flat) == ""
    assert "adaptation loss" in reason(flat, feature_loss=True)
    assert "MLPHead, not a torch.nn.Linear" in reason(
        _module(torch.nn.Flatten(), MLPHead(4, 1))
    )
    head = torch.nn.Linear(4, 1)
    head.bias.requires_grad_(False)
    assert "frozen" in reason(_module(torch.nn.Flatten(), head))
    trained = _module(torch.nn.Linear(4, 4), torch.nn.Linear(4, 1))
    assert "the strategy trains them" in reason(trained)
    assert reason(trained, frozen=True) == ""
    bn = _module(torch.nn.BatchNorm1d(4, affine=False), torch.nn.Linear(4, 1))
    assert "batch-norm or dropout" in reason(bn)
    drop = _module(torch.nn.Dropout(0.5), torch.nn.Linear(4, 1))
    assert "batch-norm or dropout" in reason(drop)
    # a frozen parameterised backbone runs in eval mode: its batch norm is fixed
    frozen_bn = _module(
        torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.BatchNorm1d(4)),
        torch.nn.Linear(4, 1),
    )
    assert reason(frozen_bn, frozen=True) == ""


def test_solve_linear_head_directly_is_least_squares():
    rng = np.random.RandomState(0)
    X = torch.as_tensor(rng.normal(size=(30, 3)), dtype=torch.float32)
    y = X @ torch.tensor([[1.0], [-2.0], [0.5]]) + 3.0
    module = _module(torch.nn.Flatten(), torch.nn.Linear(3, 1), 3).eval()
    solve_linear_head(
        module, X, y, None, None, strength=0.0, anchored=False, pretrained=False
    )
    np.testing.assert_allclose(
        module.head.weight.detach().numpy(), [[1.0, -2.0, 0.5]], atol=1e-4
    )
    np.testing.assert_allclose(module.head.bias.detach().numpy(), [3.0], atol=1e-4)
    # rows: only those take part (the others are made garbage)
    y_bad = y.clone()
    y_bad[20:] = 1e3
    solve_linear_head(
        module,
        X,
        y_bad,
        None,
        torch.arange(20),
        strength=0.0,
        anchored=False,
        pretrained=False,
    )
    np.testing.assert_allclose(module.head.bias.detach().numpy(), [3.0], atol=1e-4)


# ------------------------------------------------------------ estimator level
@pytest.mark.parametrize("weight_decay", [0.0, 0.3])
@pytest.mark.parametrize("multi_output", [False, True])
def test_closed_form_linear_model_is_ridge(weight_decay, multi_output):
    # standardised X and y, penalty weight_decay/2 ||theta||^2 on the mean
    # squared error == Ridge(alpha=n * weight_decay / 2) on standardised X
    X, y = linear_problem(n=90, n_features=6)
    X = X * np.arange(1, 7) + 3.0
    if multi_output:
        y = np.c_[y, 2 * y + X[:, 0]]
    est = TransferRegressor("linear", weight_decay=weight_decay).fit(X, y)
    assert est.solver_ == "closed_form" and est.n_iter_ == 0
    n_out = 2 if multi_output else 1
    ridge = make_pipeline(
        StandardScaler(), Ridge(alpha=len(X) * weight_decay / 2 * n_out)
    )
    ys = (y - y.mean(0)) / y.std(0)
    ridge.fit(X, ys)
    expected = ridge.predict(X) * y.std(0) + y.mean(0)
    np.testing.assert_allclose(est.predict(X), expected, rtol=1e-5, atol=1e-5)


def test_closed_form_honours_sample_weight():
    X, y = linear_problem(n=60, n_features=4)
    y = y + (X[:, 0] > 0) * 2.0  # not linear: the weights matter
    w = np.random.RandomState(1).uniform(0.1, 3.0, size=len(X))
    est = TransferRegressor("linear", weight_decay=0.0).fit(X, y, sample_weight=w)
    ols = LinearRegression().fit(X, y, sample_weight=w)
    np.testing.assert_allclose(est.predict(X), ols.predict(X), rtol=1e-5, atol=1e-5)


def test_closed_form_l2sp_is_the_point_gradient_descent_reaches():
    X, y = linear_problem(n=200, n_features=6)
    source = TransferRegressor("linear").fit(X, y)
    Xt, yt = X[:12] + 0.5, y[:12] + 1.0
    exact = TransferRegressor(source, l2sp=0.5).fit(Xt, yt)
    assert exact.solver_ == "closed_form"
    sgd = TransferRegressor(
        source,
        l2sp=0.5,
        solver="gradient",
        optimizer="adam",
        lr=1e-2,
        max_epochs=1500,
        batch_size=12,
        random_state=0,
    ).fit(Xt, yt)
    assert sgd.solver_ == "gradient" and sgd.n_iter_ == 1500
    np.testing.assert_allclose(exact.predict(X), sgd.predict(X), atol=2e-3)
    # a strong pull keeps the source model; none fits the target rows
    stiff = TransferRegressor(source, l2sp=1e6).fit(Xt, yt)
    np.testing.assert_allclose(stiff.predict(X), source.predict(X), atol=1e-3)
    loose = TransferRegressor(source, l2sp=0.0).fit(Xt, yt)
    assert rmse(loose, Xt, yt) < 0.5 * rmse(source, Xt, yt)


def test_closed_form_with_fewer_rows_than_features_is_nearest_the_start():
    rng = np.random.RandomState(0)
    Xs, ys = rng.normal(size=(100, 30)), rng.normal(size=100)
    source = TransferRegressor("linear").fit(Xs, ys)
    Xt, yt = rng.normal(size=(6, 30)), rng.normal(size=6)
    est = TransferRegressor(source, l2sp=0.0).fit(Xt, yt)
    # without a penalty it interpolates the 6 rows ...
    np.testing.assert_allclose(est.predict(Xt), yt, atol=1e-4)
    # ... with the smallest change to the source head (minimum-norm step)
    F = (Xt - source.input_mean_) / source.input_scale_
    F = np.c_[F, np.ones(len(F))]
    theta0, theta1 = _head_theta(source).ravel(), _head_theta(est).ravel()
    r = (yt - source.y_mean_) / source.y_scale_ - F @ theta0
    expected = theta0 + np.linalg.pinv(F) @ r
    np.testing.assert_allclose(theta1, expected, atol=1e-4)


def test_closed_form_linear_probe_keeps_the_backbone_and_fits_the_head():
    X, y = linear_problem(n=150, n_features=5)
    source = TransferRegressor(
        backbone_params={"hidden_sizes": (16,)}, max_epochs=5, random_state=0
    ).fit(X, y)
    y2 = np.tanh(X[:, 0]) + X[:, 1]
    auto = TransferRegressor(source, finetune="linear_probe", max_epochs=2)
    assert auto.fit(X, y2).solver_ == "gradient"  # "auto": linear models only
    est = TransferRegressor(
        source, finetune="linear_probe", solver="closed_form", l2sp=0.0
    )
    est.fit(X, y2)
    assert est.solver_ == "closed_form"
    assert states_equal(network(est).backbone, network(source).backbone)
    with torch.no_grad():
        F = network(source).features(torch.as_tensor(X, dtype=torch.float32))
    F = F.numpy().astype(np.float64)
    ols = LinearRegression().fit(F, y2)
    np.testing.assert_allclose(est.predict(X), ols.predict(F), atol=1e-3)


def test_solver_choice_and_errors():
    X, y = linear_problem(n=60, n_features=4)
    mlp = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=2)
    assert TransferRegressor(**mlp).fit(X, y).solver_ == "gradient"
    assert TransferRegressor("linear", early_stopping=True).fit(X, y).solver_ == (
        "gradient"
    )
    est = TransferRegressor("linear", solver="gradient", max_epochs=2).fit(X, y)
    assert est.solver_ == "gradient" and est.n_iter_ == 2
    with pytest.raises(
        ValueError,
        match=r"solver='closed_form'.*the backbone has trainable parameters and the "
        r"strategy trains them",
    ):
        TransferRegressor(solver="closed_form", **mlp).fit(X, y)
    with pytest.raises(ValueError, match=r"solver='closed_form'.*MLPHead"):
        TransferRegressor("linear", head="mlp", solver="closed_form").fit(X, y)
    with pytest.raises(ValueError, match="solver"):
        TransferRegressor("linear", solver="lbfgs").fit(X, y)


def test_closed_form_matches_the_normal_equations_uncentred_weighted_multioutput():
    # raw inputs and targets (no centring): a penalised bias matters here
    rng = np.random.RandomState(3)
    X = rng.normal(size=(40, 3)) + 4.0
    Y = np.c_[X @ [1.0, -2.0, 0.5] + 7.0, X[:, 0] - 3.0] + rng.normal(size=(40, 2))
    w = rng.uniform(0.5, 2.0, size=40)
    kw = dict(standardize_X=False, standardize_y=False)
    est = TransferRegressor("linear", weight_decay=0.4, **kw).fit(X, Y, sample_weight=w)
    theta = _reference_head(X, Y, w / w.mean(), np.zeros((4, 2)), 0.4, False)
    np.testing.assert_allclose(_head_theta(est), theta, rtol=1e-4, atol=1e-5)
    # transfer with L2-SP toward that head, two outputs, bias included
    Xt, Yt = X[:8] + 1.0, Y[:8] * 1.5
    child = TransferRegressor(est, l2sp=0.3, weight_decay=5.0).fit(Xt, Yt)
    theta_c = _reference_head(Xt, Yt, np.ones(8), _head_theta(est), 0.3, True)
    np.testing.assert_allclose(_head_theta(child), theta_c, rtol=1e-4, atol=1e-4)


def test_closed_form_head_without_bias():
    X, y = linear_problem(n=50, n_features=4)
    y = y + 3.0
    head = torch.nn.Linear(4, 1, bias=False)
    est = TransferRegressor(
        "linear",
        head=head,
        standardize_X=False,
        standardize_y=False,
        weight_decay=0.0,
    ).fit(X, y)
    assert est.solver_ == "closed_form"
    ols = LinearRegression(fit_intercept=False).fit(X, y)
    np.testing.assert_allclose(est.predict(X), ols.predict(X), rtol=1e-5, atol=1e-5)


def test_auto_solver_keeps_gradient_where_the_closed_form_would_differ():
    X, y = linear_problem(n=60, n_features=5)
    # no parameters, but batch-norm statistics that move in training
    bn = torch.nn.Sequential(torch.nn.BatchNorm1d(5, affine=False))
    est = TransferRegressor(bn, max_epochs=2).fit(X, y)
    assert est.solver_ == "gradient"
    assert network(est).backbone[0].running_mean.abs().sum() > 0
    with pytest.raises(ValueError, match="batch-norm or dropout"):
        TransferRegressor(bn, solver="closed_form").fit(X, y)
    drop = torch.nn.Sequential(torch.nn.Dropout(0.5))
    assert TransferRegressor(drop, max_epochs=2).fit(X, y).solver_ == "gradient"
    # a frozen head parameter stays as it is
    head = torch.nn.Linear(5, 1)
    head.bias.requires_grad_(False)
    bias = head.bias.detach().clone()
    est = TransferRegressor("linear", head=head, max_epochs=2).fit(X, y + 5.0)
    assert est.solver_ == "gradient"
    assert torch.equal(network(est).head.bias.detach(), bias)
    with pytest.raises(ValueError, match="frozen"):
        TransferRegressor("linear", head=head, solver="closed_form").fit(X, y)


def test_closed_form_has_no_epochs_and_reports_at_verbose(capsys):
    X, y = linear_problem(n=30, n_features=3)
    est = TransferRegressor("linear").fit(X, y)
    assert est.n_iter_ == 0 and len(est.history_) == 0
    assert est.net_.closed_form_report_ == {
        "n_rows": 30,
        "n_features": 3,
        "strength": est.weight_decay_,  # chosen by leave-one-out
    }
    assert capsys.readouterr().out == ""
    w = np.r_[np.zeros(10), np.ones(20)]
    est = TransferRegressor("linear", verbose=1).fit(X, y, sample_weight=w)
    assert "closed form: 20 rows, 3 features" in capsys.readouterr().out


# ------------------------------------------------------------ domain adaptation
def test_linear_model_is_solved_in_closed_form_without_a_divergence(uda):
    X, y, _, _ = uda
    adabn = DomainAdaptRegressor("linear", method="adabn", weight_decay=0.0)
    adabn.fit(X, y)
    assert adabn.solver_ == "closed_form" and adabn.n_iter_ == 0
    # adabn's closed form is OLS on the per-domain standardised source rows
    src = np.isfinite(y)
    mean, scale = adabn.domain_stats_[0]
    ols = LinearRegression().fit((X[src] - mean) / scale, y[src])
    t_mean, t_scale = adabn.domain_stats_[-1]
    np.testing.assert_allclose(
        adabn.predict(X[~src]),
        ols.predict((X[~src] - t_mean) / t_scale),
        rtol=1e-4,
        atol=1e-4,
    )
    # a divergence cannot act on a parameter-free backbone: source_only, solved
    with pytest.warns(UserWarning, match="cannot act"):
        coral = DomainAdaptRegressor("linear", method="coral").fit(X, y)
    assert coral.solver_ == "closed_form"
    # on a backbone with parameters the divergence trains, by gradient only
    linear = torch.nn.Linear(X.shape[1], 4)
    coral = DomainAdaptRegressor(linear, method="coral", max_epochs=2).fit(X, y)
    assert coral.solver_ == "gradient"
    with pytest.raises(ValueError, match=r"solver='closed_form'.*adaptation loss"):
        DomainAdaptRegressor(linear, method="coral", solver="closed_form").fit(X, y)


# ------------------------------------------------ penalties chosen from data
def _standardised(X, y):
    Xs = (X - X.mean(0)) / X.std(0)
    ys = (y - y.mean()) / y.std()
    return np.c_[Xs, np.ones(len(X))], ys


def _gcv_by_hand(X, y, strengths):
    """GCV of ridge on standardised X and y (intercept penalised too)."""
    F, ys = _standardised(X, y)
    scores = []
    for s in strengths:
        lam = s / 2.0 * len(X)
        H = F @ np.linalg.solve(F.T @ F + lam * np.eye(F.shape[1]), F.T)
        resid = ys - H @ ys
        scores.append(len(X) * resid @ resid / (len(X) - np.trace(H)) ** 2)
    return np.array(scores)


def _loo_by_hand(X, y, strengths):
    """Leave-one-out error of ridge by refitting without each row in turn
    (the penalty in sum-of-squares form held fixed)."""
    F, ys = _standardised(X, y)
    scores = []
    for s in strengths:
        lam = s / 2.0 * len(X)
        errors = []
        for i in range(len(X)):
            keep = np.arange(len(X)) != i
            A = F[keep].T @ F[keep] + lam * np.eye(F.shape[1])
            theta = np.linalg.lstsq(A, F[keep].T @ ys[keep], rcond=None)[0]
            errors.append(ys[i] - F[i] @ theta)
        scores.append(np.sum(np.square(errors)))
    return np.array(scores)


@pytest.mark.parametrize("n_rows", [60, 12])  # the primal and the dual form
def test_weight_decay_auto_is_the_leave_one_out_choice(n_rows):
    from sktransfer._closed_form import AUTO_STRENGTHS

    rng = np.random.RandomState(0)
    X = rng.normal(size=(n_rows, 20))
    y = X[:, 0] + 0.8 * rng.normal(size=n_rows)
    est = TransferRegressor("linear", weight_decay="auto").fit(X, y)
    assert est.solver_ == "closed_form"
    grid = np.array(AUTO_STRENGTHS)
    scores = _loo_by_hand(X, y, grid)
    assert est.weight_decay_ == pytest.approx(grid[np.argmin(scores)])
    fixed = TransferRegressor("linear", weight_decay=est.weight_decay_).fit(X, y)
    np.testing.assert_allclose(est.predict(X), fixed.predict(X), rtol=1e-6)


def test_weight_decay_auto_falls_back_to_gcv_for_rows_too_many_to_keep(monkeypatch):
    import sktransfer._closed_form as cf

    monkeypatch.setattr(cf, "LOO_MAX_VALUES", 10)
    rng = np.random.RandomState(1)
    X = rng.normal(size=(60, 20))
    y = X[:, 0] + 0.8 * rng.normal(size=60)
    est = TransferRegressor("linear", weight_decay="auto").fit(X, y)
    grid = np.array(cf.AUTO_STRENGTHS)
    assert est.weight_decay_ == pytest.approx(grid[np.argmin(_gcv_by_hand(X, y, grid))])


@pytest.mark.parametrize("n_rows", [40, 8])  # the primal and the dual form
@pytest.mark.parametrize("loo", [True, False])
def test_auto_penalties_treat_integer_weights_as_repeated_rows(
    n_rows, loo, monkeypatch
):
    import sktransfer._closed_form as cf

    if not loo:
        monkeypatch.setattr(cf, "LOO_MAX_VALUES", 0)
    rng = np.random.RandomState(2)
    X = rng.normal(size=(n_rows, 12))
    y = X[:, :2].sum(1) + rng.normal(size=n_rows)
    w = rng.randint(1, 4, size=n_rows)
    weighted = TransferRegressor("linear", weight_decay="auto")
    weighted.fit(X, y, sample_weight=w)
    repeated = TransferRegressor("linear", weight_decay="auto")
    repeated.fit(np.repeat(X, w, axis=0), np.repeat(y, w))
    assert weighted.weight_decay_ == repeated.weight_decay_
    np.testing.assert_allclose(
        weighted.predict(X), repeated.predict(X), rtol=1e-5, atol=1e-6
    )


def test_weight_decay_auto_beats_no_penalty_with_few_rows_and_many_features():
    rng = np.random.RandomState(0)
    coef = rng.normal(size=50)
    X = rng.normal(size=(500, 50))
    y = X @ coef + 2.0 * rng.normal(size=500)
    auto = TransferRegressor("linear", weight_decay="auto").fit(X[:15], y[:15])
    none = TransferRegressor("linear", weight_decay=0.0).fit(X[:15], y[:15])
    assert auto.weight_decay_ > 0
    assert auto.score(X[15:], y[15:]) > none.score(X[15:], y[15:])


def test_weight_decay_auto_leaves_a_pretrained_head_unpenalised():
    X, y = linear_problem(n=80, n_features=5)
    source = TransferRegressor("linear").fit(X, y)
    tuned = TransferRegressor(source, weight_decay="auto").fit(X[:4], y[:4] + 1.0)
    plain = TransferRegressor(source, weight_decay=0.0).fit(X[:4], y[:4] + 1.0)
    assert tuned.weight_decay_ == 0.0
    np.testing.assert_allclose(tuned.predict(X), plain.predict(X))


def test_l2sp_auto_chooses_in_closed_form_and_is_fixed_for_the_gradient_loop():
    from sktransfer._closed_form import AUTO_STRENGTHS

    X, y = linear_problem(n=80, n_features=5)
    source = TransferRegressor("linear").fit(X, y)
    tuned = TransferRegressor(source, l2sp="auto").fit(X[:10], y[:10] * 1.1)
    assert tuned.solver_ == "closed_form" and tuned.l2sp_ in AUTO_STRENGTHS
    mlp = TransferRegressor(backbone_params={"hidden_sizes": (8,)}, max_epochs=2)
    mlp_source = mlp.fit(X, y)
    mlp_tuned = TransferRegressor(mlp_source, l2sp="auto", max_epochs=2)
    assert mlp_tuned.fit(X[:10], y[:10]).l2sp_ == 0.1
    assert mlp_tuned.weight_decay_ == 0.0
