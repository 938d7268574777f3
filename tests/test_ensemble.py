"""TransferEnsemble: members, the mean and the spread, parallel fits, a fitted
source shared by the members, scikit-learn's tools; and the VotingRegressor
recipe of docs/user_guide.md."""

import pickle
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import TINY, rmse, states_equal
from sklearn import config_context
from sklearn.base import clone
from sklearn.ensemble import StackingRegressor, VotingRegressor
from sklearn.linear_model import Ridge, RidgeCV
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferEnsemble, TransferRegressor
from sktransfer._base import SourceNotSaved


def _ensemble(n_members=3, **kwargs):
    return TransferEnsemble(
        TransferRegressor(**TINY), n_members=n_members, random_state=0, **kwargs
    )


@pytest.fixture(scope="module")
def data(shift_data):
    """60 labelled target rows of ``shift_data``."""
    _, _, Xt, yt = shift_data
    return Xt[:60], yt[:60]


@pytest.fixture(scope="module")
def fitted(data):
    return _ensemble().fit(*data)


def _member_predictions(ensemble, X):
    return np.stack([member.predict(X) for member in ensemble.estimators_])


def test_predict_is_the_mean_and_return_std_the_spread_of_the_members(data, fitted):
    X, _ = data
    members = _member_predictions(fitted, X)
    mean, std = fitted.predict(X, return_std=True)
    np.testing.assert_allclose(fitted.predict(X), members.mean(axis=0))
    np.testing.assert_allclose(mean, members.mean(axis=0))
    np.testing.assert_allclose(std, members.std(axis=0))
    assert mean.shape == std.shape == (len(X),)
    assert np.all(std > 0)
    seeds = [member.random_state for member in fitted.estimators_]
    assert len(set(seeds)) == 3 and seeds == list(fitted.seeds_)
    assert fitted.n_features_in_ == X.shape[1] and fitted.n_outputs_ == 1


def test_multi_output_shapes_as_gaussian_process_regressor(data):
    X, y = data
    Y = np.column_stack([y, -y])
    mean, std = _ensemble(n_members=2).fit(X, Y).predict(X[:5], return_std=True)
    assert mean.shape == std.shape == (5, 2)


def test_one_member_has_zero_spread(data):
    X, y = data
    ensemble = _ensemble(n_members=1).fit(X, y)
    mean, std = ensemble.predict(X, return_std=True)
    np.testing.assert_array_equal(mean, ensemble.estimators_[0].predict(X))
    np.testing.assert_array_equal(std, np.zeros(len(X)))


def test_member_params_cycle_over_members_and_share_a_fitted_source(source, data):
    X, y = data
    before = {k: v.clone() for k, v in source.net_.module_.state_dict().items()}
    params = [
        {"finetune": "full"},
        {"finetune": "linear_probe", "lr": 1e-2, "random_state": 7},
    ]
    template = TransferRegressor(source, max_epochs=3)
    ensemble = TransferEnsemble(
        template, n_members=3, member_params=params, random_state=0
    ).fit(X, y)
    members = ensemble.estimators_
    assert [m.finetune for m in members] == ["full", "linear_probe", "full"]
    assert [m.lr for m in members] == [1e-3, 1e-2, 1e-3]
    assert members[1].random_state == 7  # member_params override the seed
    assert all(m.backbone is source for m in members)  # shared, not cloned
    assert states_equal(source.net_.module_.state_dict(), before)  # nor refitted
    assert template.random_state is None and template.finetune == "full"
    assert params[0] == {"finetune": "full"}  # user input unchanged


def test_default_template_is_a_transfer_regressor(data):
    X, y = data
    quick = {"max_epochs": 2, "backbone_params": {"hidden_sizes": (8,)}}
    ensemble = TransferEnsemble(n_members=2, member_params=[quick], random_state=0)
    ensemble.fit(X, y)
    assert all(type(m) is TransferRegressor for m in ensemble.estimators_)
    assert ensemble.estimator is None


def test_domain_adapt_members_take_nan_rows_and_sample_domain(uda):
    X, y, _, _ = uda
    template = DomainAdaptRegressor(method="coral", **TINY)
    ensemble = TransferEnsemble(template, n_members=2, random_state=0).fit(X, y)
    assert [m.method_ for m in ensemble.estimators_] == ["coral", "coral"]
    domain = np.where(np.isnan(y), -1, 0)  # what the NaN rows say already
    by_domain = clone(ensemble).fit(X, y, sample_domain=domain)
    np.testing.assert_array_equal(by_domain.predict(X), ensemble.predict(X))
    methods = [{"method": "source_only"}, {"method": "adabn"}]
    mixed = TransferEnsemble(template, n_members=2, member_params=methods).fit(X, y)
    assert [m.method_ for m in mixed.estimators_] == ["source_only", "adabn"]
    labelled = ~np.isnan(y)
    with pytest.raises(ValueError, match="sample_domain applies to DomainAdapt"):
        _ensemble().fit(X[labelled], y[labelled], sample_domain=domain[labelled])
    plain = _ensemble(n_members=1).fit(X[labelled], y[labelled])
    with pytest.raises(ValueError, match="whose predict takes no sample_domain"):
        plain.predict(X, sample_domain=domain)


@pytest.mark.filterwarnings("ignore:X has values far outside:UserWarning")
def test_sample_domain_is_routed_to_the_members(uda):
    X, y, _, _ = uda
    domain = np.where(np.isnan(y), -1, 0)
    domain[:50] = 1
    template = DomainAdaptRegressor(method="adabn", **TINY)
    with config_context(enable_metadata_routing=True):
        pipe = make_pipeline(
            StandardScaler(), TransferEnsemble(template, n_members=2, random_state=0)
        ).fit(X, y, sample_domain=domain)
    for member in pipe[-1].estimators_:
        assert set(member.domain_stats_) == {-1, 0, 1}
    with config_context(enable_metadata_routing=True):
        by_domain = pipe.predict(X, sample_domain=domain)
    expected = np.mean(
        [
            m.predict(pipe[0].transform(X), sample_domain=domain)
            for m in pipe[-1].estimators_
        ],
        axis=0,
    )
    np.testing.assert_allclose(by_domain, expected)
    assert not np.allclose(by_domain, pipe.predict(X))  # adabn: source rows moved


def _source_rows_only_fit(uda, n_jobs):
    """Fit DomainAdaptRegressor members on source rows only, which each member
    warns about; what the caller is told."""
    X, y, _, _ = uda
    labelled = ~np.isnan(y)
    template = DomainAdaptRegressor(method="coral", **TINY)
    ensemble = TransferEnsemble(template, n_members=3, n_jobs=n_jobs)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensemble.fit(X[labelled], y[labelled])
    return [w for w in caught if "No target rows" in str(w.message)]


@pytest.mark.filterwarnings("ignore:The 2 members of this TransferEnsemble predict")
def test_parallel_fit_gives_the_sequential_predictions(source, data, uda):
    # one test starts the worker processes (a few seconds: they import torch)
    X, y = data
    template = TransferRegressor(source, max_epochs=3)
    one = TransferEnsemble(template, n_members=2, random_state=0).fit(X, y)
    two = TransferEnsemble(template, n_members=2, n_jobs=2, random_state=0).fit(X, y)
    np.testing.assert_array_equal(one.predict(X), two.predict(X))
    # members come back from worker processes pointing at the shared source
    assert all(m.backbone is source for m in two.estimators_)
    # what the members warn about in the workers is said once, at the caller
    said = _source_rows_only_fit(uda, n_jobs=2)
    assert len(said) == 1 and said[0].filename == __file__


def test_members_warnings_are_said_once_at_the_callers_line(uda):
    said = _source_rows_only_fit(uda, n_jobs=1)
    assert len(said) == 1 and said[0].filename == __file__


def test_members_that_only_a_seed_cannot_tell_apart_are_warned_about(source, data):
    # a network copied whole from a fitted source, every row in one batch:
    # the seed changes nothing, so the spread would be zero
    X, y = data
    template = TransferRegressor(source, max_epochs=3)
    with pytest.warns(UserWarning, match="predict the same") as caught:
        same = TransferEnsemble(template, n_members=2, random_state=0).fit(X, y)
    assert caught[0].filename == __file__
    assert same.predict(X, return_std=True)[1].max() < 1e-4
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # several batches: the seeds tell
        TransferEnsemble(template.set_params(batch_size=16), n_members=2).fit(X, y)


def test_clone_pickle_and_grid_search(source, data, fitted):
    X, y = data
    template = TransferRegressor(source, max_epochs=3, batch_size=16)
    ensemble = TransferEnsemble(template, n_members=2, random_state=0)
    twin = clone(ensemble)
    assert twin.estimator is not template and twin.estimator.backbone is source
    assert twin.get_params(deep=False).keys() == ensemble.get_params(False).keys()
    ensemble.fit(X, y)
    again = pickle.loads(pickle.dumps(ensemble))
    np.testing.assert_array_equal(again.predict(X), ensemble.predict(X))
    # as its members, a fitted ensemble's pickle leaves the source out
    assert isinstance(again.estimator.backbone, SourceNotSaved)
    assert ensemble.estimator.backbone is source
    same = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(same.predict(X), fitted.predict(X))
    by_source = TransferEnsemble(
        TransferRegressor(source, max_epochs=2),
        n_members=2,
        member_params=[
            {"backbone": source, "finetune": f} for f in ("full", "gradual")
        ],
    ).fit(X, y)
    light = pickle.loads(pickle.dumps(by_source))
    assert all(isinstance(p["backbone"], SourceNotSaved) for p in light.member_params)
    np.testing.assert_array_equal(light.predict(X), by_source.predict(X))
    kept = pickle.loads(pickle.dumps(by_source.set_params(estimator__keep_source=True)))
    assert isinstance(kept.member_params[0]["backbone"], TransferRegressor)
    grid = {"n_members": [1, 2], "estimator__lr": [1e-3, 1e-2]}
    search = GridSearchCV(_ensemble(), grid, cv=2, error_score="raise").fit(X, y)
    assert len(search.cv_results_["params"]) == 4
    assert search.best_estimator_.predict(X).shape == (len(X),)


def test_pipeline_and_feature_names(data):
    X, y = data
    pipe = make_pipeline(StandardScaler(), _ensemble(n_members=2)).fit(X, y)
    assert pipe.predict(X).shape == (len(X),)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])])
    ensemble = _ensemble(n_members=2).fit(frame, y)
    assert list(ensemble.feature_names_in_) == list(frame.columns)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ensemble.predict(X)
    names = [str(w.message) for w in caught if "feature names" in str(w.message)]
    assert len(names) == 1 and "TransferEnsemble" in names[0]


def test_bad_parameters_say_which_and_how(data):
    X, y = data
    with pytest.raises(ValueError, match="'n_members' parameter"):
        _ensemble(n_members=0).fit(X, y)
    with pytest.raises(TypeError, match="estimator must be a TransferRegressor"):
        TransferEnsemble(Ridge()).fit(X, y)
    with pytest.raises(ValueError, match=r"member_params\[0\] names \['nope'\]"):
        _ensemble(member_params=[{"nope": 1}]).fit(X, y)
    with pytest.raises(ValueError, match="at least one dict"):
        _ensemble(member_params=[]).fit(X, y)
    with pytest.raises(TypeError, match=r"member_params\[1\] must be a dict"):
        _ensemble(member_params=[{}, "full"]).fit(X, y)
    assert TransferEnsemble(Ridge()).__sklearn_tags__() is not None


def test_a_failed_fit_leaves_the_ensemble_as_it_was(data):
    X, y = data
    ensemble = _ensemble(n_members=2).fit(X, y)
    saved, pred = dict(vars(ensemble)), ensemble.predict(X)
    y_nan = y.copy()
    y_nan[0] = np.nan  # TransferRegressor members need a finite y
    with pytest.raises(ValueError, match="contains NaN"):
        ensemble.fit(X, y_nan)
    assert vars(ensemble).keys() == saved.keys()
    assert all(a is b for a, b in zip(ensemble.estimators_, saved["estimators_"]))
    np.testing.assert_array_equal(ensemble.predict(X), pred)
    fresh = _ensemble(n_members=2)
    with pytest.raises(ValueError):
        fresh.fit(X, y_nan)
    assert not hasattr(fresh, "estimators_")


def test_tags_follow_the_template():
    da = TransferEnsemble(DomainAdaptRegressor()).__sklearn_tags__()
    assert da.target_tags.multi_output and not da.input_tags.allow_nan


# ------------------------------------------- the recipe of docs/user_guide.md
def test_voting_over_strategies_and_backbones_is_no_worse_than_its_worst(
    source, shift_data
):
    _, _, Xt, yt = shift_data
    X, y, X_test, y_test = Xt[:30], yt[:30], Xt[30:], yt[30:]
    tune = dict(max_epochs=5, random_state=0)
    vote = VotingRegressor(
        [
            ("full", TransferRegressor(source, finetune="full", **tune)),
            ("probe", TransferRegressor(source, finetune="linear_probe", **tune)),
            ("linear", TransferRegressor("linear", random_state=0)),
        ]
    ).fit(X, y)
    members = [rmse(m, X_test, y_test) for m in vote.estimators_]
    assert rmse(vote, X_test, y_test) <= max(members)
    # StackingRegressor: the same members, weighted by a final ridge fitted
    # on their cross-validated predictions
    stack = StackingRegressor(vote.estimators, final_estimator=RidgeCV(), cv=3)
    assert np.isfinite(rmse(stack.fit(X, y), X_test, y_test))
    ensemble = TransferEnsemble(
        TransferRegressor(source, **tune),
        n_members=2,
        member_params=[{"finetune": "full"}, {"finetune": "linear_probe"}],
        random_state=0,
    ).fit(X, y)
    alone = [rmse(m, X_test, y_test) for m in ensemble.estimators_]
    assert rmse(ensemble, X_test, y_test) <= max(alone)
