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
    return (
        [TransferRegressor(**SMALL)]
        + [DomainAdaptRegressor(method=method, **SMALL) for method in METHODS]
        # a linear model, solved in closed form (solver="auto")
        + [TransferRegressor("linear", random_state=0)]
    )


def _expected_failed_checks(estimator):
    if estimator.backbone == "linear":
        return {}  # the closed form is exact: sample weights included
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "A weight of k and k repeated rows give the same loss up to float32 "
            "rounding only (a weighted sum against a plain mean, summed in a "
            "different order); after 20 epochs of Adam the predictions agree to "
            "about 1e-7 relative, at the edge of the check's rtol=1e-7. "
            "tests/test_transfer.py::test_sample_weight_equals_repeated_rows "
            "checks the equivalence at rtol=1e-5."
        ),
    }


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failed_checks)
def test_sklearn_compatible(estimator, check):
    check(estimator)
