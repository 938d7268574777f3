"""scikit-learn's estimator checks on every estimator, at test-sized settings."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.adaptation import list_methods

SMALL = dict(
    backbone_params={"hidden_sizes": (32,)},
    max_epochs=20,
    batch_size=32,
    lr=1e-2,
    random_state=0,
)


def _estimators():
    return (
        [TransferRegressor(**SMALL)]
        + [DomainAdaptRegressor(method=method, **SMALL) for method in list_methods()]
        # a linear model, solved in closed form (solver="auto")
        + [TransferRegressor("linear", random_state=0)]
    )


@parametrize_with_checks(_estimators())
def test_sklearn_compatible(estimator, check):
    check(estimator)
