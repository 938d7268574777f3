"""``sktransfer.onnx``: fitted estimators and pipelines ending in one, exported
through skl2onnx converters that embed the ``torch.onnx.export`` graph, give
onnxruntime predictions equal to ``predict``."""

import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from sklearn.exceptions import NotFittedError
from sklearn.linear_model import Ridge
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.backbones import list_backbones

ort = pytest.importorskip("onnxruntime")
skl2onnx = pytest.importorskip("skl2onnx")
pytest.importorskip("onnxscript")
sk_onnx = pytest.importorskip("sktransfer.onnx")

BUILT_IN = ("linear", "mlp", "cnn1d", "gru")
#: tiny networks of each built-in backbone, on rows of 8 values = (2, 4)
PARAMS = {
    "linear": {},
    "mlp": {"backbone_params": {"hidden_sizes": (8,)}},
    "cnn1d": {
        "backbone_params": {"channels": (4,), "kernel_size": 3, "dense": 8},
        "input_shape": (2, 4),
    },
    "gru": {"backbone_params": {"hidden_size": 4}, "input_shape": (2, 4)},
}
FIT = dict(max_epochs=2, batch_size=16, random_state=0)
RTOL, ATOL = 1e-5, 1e-5


def _run(onx, X):
    session = ort.InferenceSession(
        onx.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    assert [i.name for i in session.get_inputs()] == ["X"]
    return session.run(None, {"X": X})[0]


def _problem(n=50, n_outputs=None, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 8)) * 3 + 10  # far from 0: the scaling matters
    w = rng.normal(size=(8, n_outputs or 1))
    y = (X - 10) @ w + 0.1 * rng.normal(size=(n, n_outputs or 1))
    return X, (y.ravel() if n_outputs is None else y)


def test_every_built_in_backbone_is_covered():
    assert set(BUILT_IN) <= set(list_backbones())


@pytest.mark.parametrize("backbone", BUILT_IN)
def test_transfer_regressor_matches_predict(backbone):
    """float64 graph, 1-D y, clip_inputs: the clipping, the input scaling and
    the target scaling are all in the graph (inputs far outside the range)."""
    X, y = _problem()
    est = TransferRegressor(backbone, clip_inputs=True, **PARAMS[backbone], **FIT)
    est.fit(X, y)
    onx = sk_onnx.to_onnx(est, X[:3])
    X_new = _problem(n=20, seed=1)[0] * 2  # beyond the range: clipped
    with pytest.warns(UserWarning, match="outside the training range"):
        expected = est.predict(X_new)
    pred = _run(onx, X_new)
    assert pred.dtype == np.float64 and pred.shape == (20,)
    np.testing.assert_allclose(pred, expected, rtol=RTOL, atol=ATOL)
    # one row too: the batch axis is dynamic
    np.testing.assert_allclose(_run(onx, X_new[:1]), expected[:1], RTOL, ATOL)
    if backbone == "linear":
        assert est.solver_ == "closed_form"


@pytest.mark.parametrize("backbone", BUILT_IN)
def test_domain_adapt_regressor_matches_predict(backbone):
    """float32 graph, 2-D y, an adaptation loss over unlabelled target rows;
    the gru takes 3-D (n, channels, length) inputs as they are."""
    X, y = _problem(n_outputs=2)
    X[30:] += 2.0  # the target domain, shifted and unlabelled
    y[30:] = np.nan
    params = dict(PARAMS[backbone])
    if backbone == "gru":
        X = X.reshape(len(X), 2, 4)
        params.pop("input_shape")
    est = DomainAdaptRegressor(backbone, method="coral", **params, **FIT)
    est.fit(X, y)
    X32 = X.astype(np.float32)
    pred = _run(sk_onnx.to_onnx(est, X32[:3]), X32)
    assert pred.dtype == np.float32 and pred.shape == (50, 2)
    np.testing.assert_allclose(pred, est.predict(X32), rtol=RTOL, atol=ATOL)


def test_pipeline_with_a_scaler_in_front(capsys):
    """skl2onnx converts the scaler; the export says nothing (no warning, no
    log line, no printed graph)."""
    X, y = _problem()
    pipe = make_pipeline(
        StandardScaler(), TransferRegressor("cnn1d", **PARAMS["cnn1d"], **FIT)
    ).fit(X, y)
    # the scaler matters: the graph must hold skl2onnx's conversion of it
    assert not np.allclose(pipe[-1].predict(X), pipe.predict(X), rtol=0.01)
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        onx = sk_onnx.to_onnx(pipe, X[:3])
    assert [str(w.message) for w in caught] == []
    assert capsys.readouterr() == ("", "")
    np.testing.assert_allclose(_run(onx, X), pipe.predict(X), RTOL, ATOL)


def test_fine_tuned_from_a_fitted_source_with_a_gaussian_head():
    """A source model as backbone (its trained backbone and input scaling are
    inherited); a Gaussian head exports its mean."""
    X, y = _problem()
    source = TransferRegressor("mlp", **PARAMS["mlp"], **FIT).fit(X, y)
    X_t, y_t = _problem(seed=2)
    tuned = TransferRegressor(source, head="gaussian", **FIT).fit(X_t + 1, y_t)
    np.testing.assert_array_equal(tuned.input_mean_, source.input_mean_)
    mean, _ = tuned.predict(X_t, return_std=True)
    pred = _run(sk_onnx.to_onnx(tuned, X_t[:3]), X_t)
    assert pred.shape == (50,)
    np.testing.assert_allclose(pred, mean, RTOL, ATOL)


def test_adabn_target_path_and_one_domain_through_skl2onnx_options():
    """Per-domain standardisation: the default graph is predict(X) (the
    target's statistics); the skl2onnx option sample_domain=0 (registered by
    register_converters) is predict(X, sample_domain=0)."""
    X, y = _problem(n=60)
    X[30:] = X[30:] * 2 + 5
    domain = np.where(np.arange(60) < 30, 0, -1)
    y[30:] = np.nan
    est = DomainAdaptRegressor(
        "mlp",
        method="adabn",
        backbone_params={"hidden_sizes": (8,), "batch_norm": True},
        **FIT,
    ).fit(X, y, sample_domain=domain)
    np.testing.assert_allclose(
        _run(sk_onnx.to_onnx(est, X[:3]), X), est.predict(X), RTOL, ATOL
    )
    sk_onnx.register_converters()
    onx = skl2onnx.to_onnx(
        est,
        X[:3],
        target_opset={"": 20, "ai.onnx.ml": 3},
        options={DomainAdaptRegressor: {"sample_domain": 0}},
    )
    source_pred = est.predict(X, sample_domain=np.zeros(60, dtype=int))
    assert not np.allclose(source_pred, est.predict(X))  # the option matters
    np.testing.assert_allclose(_run(onx, X), source_pred, RTOL, ATOL)
    with pytest.raises(ValueError, match=r"sample_domain=3 .* did not see"):
        sk_onnx.to_onnx(est, X[:3], sample_domain=3)


@pytest.fixture(scope="module")
def tiny():
    X, y = _problem(n=20)
    return X, TransferRegressor("linear", **FIT).fit(X, y)


def test_reduced_precision_is_refused_with_the_reason(tiny):
    X, _ = tiny
    est = TransferRegressor("linear", precision="bf16", **FIT).fit(X, X[:, 0])
    with pytest.raises(ValueError, match=r"precision='bf16'.*Refit with precision"):
        sk_onnx.to_onnx(est, X[:3])


def test_a_network_torch_cannot_export_is_refused_with_the_reason(capsys):
    class DataDependent(torch.nn.Module):
        def forward(self, x):
            return x * 2 if x.sum() > 0 else x  # control flow on values

    X, y = _problem(n=20)
    est = TransferRegressor(DataDependent(), **FIT).fit(X, y)
    with pytest.raises(
        ValueError, match=r"torch\.onnx\.export could not export.*GuardOnDataDependent"
    ):
        sk_onnx.to_onnx(est, X[:3])


def test_bad_arguments_name_the_problem(tiny):
    X, est = tiny
    with pytest.raises(TypeError, match="Pipeline whose last step"):
        sk_onnx.to_onnx(make_pipeline(StandardScaler(), Ridge()), X)
    with pytest.raises(NotFittedError, match="before exporting"):
        sk_onnx.to_onnx(TransferRegressor(), X)
    with pytest.raises(TypeError, match="float32 or float64"):
        sk_onnx.to_onnx(est, X.astype(int))
    with pytest.raises(ValueError, match=r"samples of shape \(3,\)"):
        sk_onnx.to_onnx(est, X[:, :3])
    with pytest.raises(ValueError, match="only applies to a DomainAdaptRegressor"):
        sk_onnx.to_onnx(est, X, sample_domain=-1)
    with pytest.raises(ValueError, match="target_opset must be an int >= 18"):
        sk_onnx.to_onnx(est, X, target_opset=13)


def test_the_user_guide_deployment_section_runs(tmp_path, monkeypatch):
    page = (Path(__file__).resolve().parents[1] / "docs" / "user_guide.md").read_text()
    section = page.split("## 10. Deploying to a plant server", 1)[1]
    block = re.search(r"```python\n(.*?)```", section, flags=re.S).group(1)
    monkeypatch.chdir(tmp_path)
    namespace = {}
    exec(compile(block, "docs/user_guide.md", "exec"), namespace)  # asserts itself
    assert namespace["y_onnx"].shape == (100,)
    assert (tmp_path / "soft_sensor.onnx").stat().st_size > 1000
