"""TransferRegressor: transfer from a fitted source estimator (its backbone,
head, scaling and input shape) to a new task."""

import numpy as np
import pytest
import torch
from conftest import network, part, same_weights, state, states_equal
from sklearn.frozen import FrozenEstimator

from sktransfer import TransferRegressor
from sktransfer.heads import MLPHead


def test_fitted_estimator_head_reused(shift_data, source):
    _, _, Xt, yt = shift_data
    src_pred = source.predict(Xt)
    src_state = state(network(source))
    target = TransferRegressor(source, max_epochs=1, lr=1e-8, random_state=0)
    target.fit(Xt, yt)
    np.testing.assert_allclose(target.predict(Xt), src_pred, atol=1e-4)
    head, src_head = part(target, "head"), part(source, "head")
    assert head is not src_head
    for p, q in zip(head.parameters(), src_head.parameters()):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # the reused head comes with the source's input and target scaling
    np.testing.assert_array_equal(target.input_mean_, source.input_mean_)
    np.testing.assert_array_equal(target.y_scale_, source.y_scale_)
    # the source estimator is never changed by the transfer
    assert states_equal(network(source), src_state)
    np.testing.assert_array_equal(source.predict(Xt), src_pred)


def test_fitted_estimator_new_head_when_asked(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(
        source, head="linear", max_epochs=1, lr=1e-8, random_state=0
    ).fit(Xt, yt)
    # the backbone is the pretrained one ...
    for p, q in zip(
        part(target, "backbone").parameters(), part(source, "backbone").parameters()
    ):
        torch.testing.assert_close(p, q, atol=1e-6, rtol=0)
    # ... but the head is new, so predictions differ from the source's
    assert not np.allclose(target.predict(Xt), source.predict(Xt), atol=1e-2)


def test_fitted_estimator_new_head_when_outputs_differ(shift_data, source):
    _, _, Xt, yt = shift_data
    y2 = np.column_stack([yt, -yt])
    target = TransferRegressor(source, max_epochs=3, random_state=0).fit(Xt, y2)
    assert target.n_outputs_ == 2
    assert target.predict(Xt).shape == (len(Xt), 2)
    assert target.y_mean_.shape == (2,)  # its own target scaling
    # the pretrained backbone, so the same features
    assert target.n_backbone_features_ == source.n_backbone_features_
    np.testing.assert_array_equal(target.input_mean_, source.input_mean_)


def test_fitted_estimator_with_mlp_head_or_weights(shift_data, source):
    _, _, Xt, yt = shift_data
    target = TransferRegressor(source, head="mlp", max_epochs=2, random_state=0)
    target.fit(Xt, yt)
    assert isinstance(part(target, "head"), MLPHead)
    assert not isinstance(part(source, "head"), MLPHead)
    assert target.predict(Xt).shape == (len(Xt),)
    weights = state(part(source, "backbone"))
    with pytest.raises(ValueError, match="weights"):
        TransferRegressor(source, weights=weights, max_epochs=1).fit(Xt, yt)


def test_frozen_estimator_as_backbone(shift_data, source):
    _, _, Xt, yt = shift_data
    kw = dict(max_epochs=2, random_state=0)
    plain = TransferRegressor(source, **kw).fit(Xt, yt)
    frozen = TransferRegressor(FrozenEstimator(source), **kw).fit(Xt, yt)
    np.testing.assert_array_equal(frozen.predict(Xt), plain.predict(Xt))


def test_unfitted_estimator_as_backbone_raises(shift_data):
    _, _, Xt, yt = shift_data
    with pytest.raises(ValueError, match="unfitted"):
        TransferRegressor(TransferRegressor(), max_epochs=1).fit(Xt, yt)


def test_feature_mismatch_with_source_raises(shift_data, source):
    _, _, Xt, yt = shift_data
    with pytest.raises(ValueError, match=r"shape \(8,\).*shape \(5,\)"):
        TransferRegressor(source, max_epochs=1).fit(Xt[:, :5], yt)


def test_a_transfer_can_be_the_source_of_the_next(shift_data, source):
    _, _, Xt, yt = shift_data
    first = TransferRegressor(source, max_epochs=2, random_state=0).fit(Xt, yt)
    second = TransferRegressor(first, finetune="linear_probe", max_epochs=2)
    second.fit(Xt, yt)
    assert same_weights(second, first)
    assert second.input_shape_ == first.input_shape_ == source.input_shape_
