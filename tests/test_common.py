"""scikit-learn's estimator checks on every estimator, at test-sized settings."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer._domain_adapt import METHODS

SMALL = dict(
    backbone_params={"hidden_sizes": (32,)},
    max_epochs=20,
    batch_size=32,
    lr=1e-2,
    random_state=0,
)


def _estimators():
    return [TransferRegressor(**SMALL)] + [
        DomainAdaptRegressor(method=method, **SMALL) for method in METHODS
    ]


def _expected_failed_checks(estimator):
    # Every check passes; a failure here is a regression to fix, not to list.
    return {}


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
