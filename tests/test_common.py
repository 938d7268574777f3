"""scikit-learn's estimator checks on every estimator, at test-sized settings."""

import pytest
from conftest import CHECKS
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import DomainAdaptRegressor, SelfSupervisedPretrainer, TransferRegressor
from sktransfer.adaptation import list_methods

# the checks fit on source rows only, which DomainAdaptRegressor warns about
pytestmark = pytest.mark.filterwarnings("ignore:No target rows:UserWarning")


PRETRAIN = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=2, random_state=0)


def _estimators():
    return (
        [TransferRegressor(**CHECKS)]
        + [DomainAdaptRegressor(method=method, **CHECKS) for method in list_methods()]
        # the defaults: method="auto", and finetune="auto" (no pretrained backbone)
        + [DomainAdaptRegressor(**CHECKS), TransferRegressor(finetune="auto", **CHECKS)]
        # a linear model, solved in closed form (solver="auto")
        + [TransferRegressor("linear", random_state=0)]
        # the pre-trainer, a transformer (transform returns the learned features)
        + [
            SelfSupervisedPretrainer(objective=objective, **PRETRAIN)
            for objective in ("masked", "contrastive")
        ]
    )


@parametrize_with_checks(_estimators())
def test_sklearn_compatible(estimator, check):
    check(estimator)
