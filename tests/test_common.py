"""scikit-learn's estimator checks on every estimator, at test-sized settings."""

import pytest
from conftest import CHECKS
from sklearn.utils.estimator_checks import parametrize_with_checks

from sktransfer import (
    DomainAdaptRegressor,
    SelfSupervisedPretrainer,
    ShiftConformalRegressor,
    TransferEnsemble,
    TransferRegressor,
)
from sktransfer.adaptation import list_methods
from sktransfer.augmentation import CMixup, GaussianJitter

# the checks fit on source rows only, which DomainAdaptRegressor warns about
pytestmark = pytest.mark.filterwarnings("ignore:No target rows:UserWarning")


PRETRAIN = dict(backbone_params={"hidden_sizes": (8,)}, max_epochs=2, random_state=0)


def _estimators():
    return (
        [TransferRegressor(**CHECKS)]
        # a Gaussian head (mean and variance, trained by the negative
        # log-likelihood); predict returns the mean
        + [TransferRegressor(head="gaussian", **CHECKS)]
        + [DomainAdaptRegressor(method=method, **CHECKS) for method in list_methods()]
        # the defaults: method="auto", and finetune="auto" (no pretrained backbone)
        + [DomainAdaptRegressor(**CHECKS), TransferRegressor(finetune="auto", **CHECKS)]
        # a linear model, solved in closed form (solver="auto")
        + [TransferRegressor("linear", random_state=0)]
        # augmented training batches (the gradient loop; no effect at predict)
        + [TransferRegressor(augment=[GaussianJitter(0.01), CMixup()], **CHECKS)]
        # the pre-trainer, a transformer (transform returns the learned features)
        + [
            SelfSupervisedPretrainer(objective=objective, **PRETRAIN)
            for objective in ("masked", "contrastive")
        ]
        # an ensemble of two members (seeds drawn from random_state)
        + [TransferEnsemble(TransferRegressor(**CHECKS), n_members=2, random_state=0)]
        # conformal intervals around a closed-form linear model
        + [ShiftConformalRegressor(random_state=0)]
    )


def _expected_failures(estimator):
    if isinstance(estimator, TransferEnsemble):
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "float32 training: weighted and repeated rows agree to about "
                "1e-6 relative, not the check's 1e-7; TransferRegressor(**CHECKS) "
                "meets 1e-7 at random_state=0 but not at most other seeds (1e-5 "
                "to 6e-4), and the members' seeds are drawn from random_state"
            )
        }
    if getattr(estimator, "head", None) == "gaussian":
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "float32 training: weighted and repeated rows agree to about "
                "5e-7 relative, not the check's 1e-7 (the squared-error head "
                "meets 1e-7 at random_state=0 but not at most other seeds, as "
                "for TransferEnsemble); the weights act on the negative "
                "log-likelihood exactly as on the squared error, which "
                "test_gaussian_head checks"
            )
        }
    if getattr(estimator, "augment", None) is None:
        return {}
    return {
        "check_sample_weight_equivalence_on_dense_data": (
            "random augmentation draws one noise per row: a row repeated k "
            "times gets k draws, a row of weight k one (the unaugmented "
            "estimators pass it)"
        )
    }


@parametrize_with_checks(_estimators(), expected_failed_checks=_expected_failures)
def test_sklearn_compatible(estimator, check):
    check(estimator)
