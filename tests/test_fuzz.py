"""Property-based fuzzing: arbitrary small inputs end in a sound model or in
one of our documented errors (issue 10).

Allowed outcomes of ``fit``/``predict`` of both estimators: success with
finite predictions of the right shape, a ``ValueError``/``TypeError`` whose
message is one we write (or scikit-learn's parameter and data validation),
or a ``FloatingPointError`` (``TrainingDivergedError``) for a diverged run.
Anything else -- another exception type, an unknown message, a NaN
prediction, an input with NaN or infinity that is accepted -- is a bug. The
weights loader, the domain-aware splitter and the scorers are fuzzed the
same way.

Profiles (registered here, applied per test, nothing global is changed):

- ``ci`` (default): a fixed number of examples, ``derandomize=True`` (the
  same examples on every run) and no example database; the file takes well
  under a minute on two cores.
- ``long``: ``HYPOTHESIS_PROFILE=long python -m pytest tests/test_fuzz.py``,
  2000 random examples per property (``HYPOTHESIS_MAX_EXAMPLES`` overrides).
"""

import os
import re
import warnings

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from safetensors.torch import save_file
from sklearn.base import BaseEstimator, RegressorMixin
from sklearn.linear_model import LinearRegression, LogisticRegression

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.adaptation import list_methods
from sktransfer.backbones import load_weights, read_state_dict
from sktransfer.finetuning import list_strategies
from sktransfer.model_selection import (
    DomainAwareKFold,
    ImportanceWeightedScorer,
    ReverseValidationScorer,
)

# ------------------------------------------------------------------ profiles
_COMMON = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
settings.register_profile("ci", max_examples=150, derandomize=True, **_COMMON)
settings.register_profile(
    "long",
    max_examples=int(os.environ.get("HYPOTHESIS_MAX_EXAMPLES", 2000)),
    derandomize=False,
    **_COMMON,
)
PROFILE = os.environ.get("HYPOTHESIS_PROFILE", "ci")
FUZZ = settings(settings.get_profile(PROFILE))
#: the cheap properties (no training) run more examples in CI
FUZZ_CHEAP = settings(FUZZ, max_examples=max(FUZZ.max_examples, 300))

# ------------------------------------------------------------------ outcomes
#: the messages our ValueErrors and TypeErrors may carry (ours and
#: scikit-learn's validation); any other message is a bug
KNOWN = re.compile(
    "|".join(
        [
            r"parameter of \w+ must be",  # scikit-learn's parameter validation
            r"contains NaN",
            r"contains infinity",
            r"beyond the float32 range",
            r"Found array with",
            r"inconsistent numbers of samples",
            r"batch-norm layers, which need at least 2 training rows",
            r"batch-norm layers, which cannot train on batches of one row",
            r"The network's outputs are not finite",
            r"early_stopping=True needs at least 2 labelled rows",
            r"y has no labelled rows",
            r"sample_weight is zero on every labelled row",
            r"Sample weights must contain at least one non-zero",
            r"solver='closed_form' needs a model",
            r"The closed-form solution is not finite",
            r"The backbone returns NaN or infinite features",
            r"source rows \(sample_domain >= 0\) have a missing",
            r"sample_domain must",
            r"could not be built",
            r"is not a registered",
            r"is not an existing file",
            r"is not a valid torch device",
            r"is not supported: sktransfer trains on the CPU",
            r"CUDA is not available",
        ]
    )
)

#: no torch or numpy error escapes as a RuntimeError, IndexError...
ALLOWED = (ValueError, TypeError, FloatingPointError)


def _check_error(exc):
    if isinstance(exc, FloatingPointError):
        assert re.search(r"diverged|not finite", str(exc)), str(exc)
        return
    assert KNOWN.search(str(exc)), f"unexpected message: {type(exc).__name__}: {exc}"


# ---------------------------------------------------------------- strategies
DTYPES = [
    np.float16,
    np.float32,
    np.float64,
    np.int8,
    np.int32,
    np.int64,
    np.uint8,
    np.bool_,
]
SPECIAL = st.sampled_from([np.nan, np.inf, -np.inf])


@st.composite
def values(draw, shape):
    """Float64 values of ``shape``: standard normal (seeded) or drawn by
    hypothesis in [-1, 1], times a magnitude, plus an offset, with optional
    constant columns and repeated rows."""
    if draw(st.booleans()):
        rng = np.random.RandomState(draw(st.integers(0, 2**32 - 1)))
        v = rng.normal(size=shape)
    else:
        v = draw(hnp.arrays(np.float64, shape, elements=st.floats(-1, 1, width=64)))
    v = v * 10.0 ** draw(st.integers(-30, 30))
    if draw(st.booleans()):
        sign = draw(st.sampled_from([-1.0, 1.0]))
        v = v + sign * 10.0 ** draw(st.integers(-30, 30))
    if len(shape) == 2 and shape[1] > 1 and draw(st.booleans()):
        v[:, draw(st.integers(0, shape[1] - 1))] = draw(st.floats(-1e6, 1e6))
    if draw(st.booleans()):
        v[1:] = v[draw(st.integers(0, shape[0] - 1))]  # repeated rows
    return v


@st.composite
def cast(draw, v):
    dtype = draw(st.sampled_from(DTYPES))
    with np.errstate(all="ignore"):
        if np.issubdtype(dtype, np.integer):
            info = np.iinfo(dtype)
            return np.clip(np.nan_to_num(v), info.min, info.max).astype(dtype)
        return v.astype(dtype)


@st.composite
def with_specials(draw, v, max_count=2):
    """``v`` with up to ``max_count`` NaN/inf entries (often none)."""
    v = np.array(v, dtype=np.float64)
    for _ in range(draw(st.integers(0, max_count)) if draw(st.booleans()) else 0):
        idx = tuple(draw(st.integers(0, s - 1)) for s in v.shape)
        v[idx] = draw(SPECIAL)
    return v


@st.composite
def problems(draw, allow_unlabelled=False):
    """``(X, y, sample_weight, sample_domain)`` of 2-30 rows, 1-6 features."""
    n = draw(st.integers(2, 30))
    d = draw(st.integers(1, 6))
    X = draw(values((n, d)))
    X = draw(cast(X))
    if draw(st.integers(0, 5)) == 0:
        X = draw(with_specials(X))
    n_outputs = draw(st.sampled_from([None, 1, 2]))
    y = draw(values((n,) if n_outputs is None else (n, n_outputs)))
    if allow_unlabelled and draw(st.booleans()):  # NaN marks unlabelled rows
        rows = draw(hnp.arrays(np.bool_, n, fill=st.nothing()))
        y = np.array(y, dtype=float)
        y[rows] = np.nan
    if draw(st.integers(0, 5)) == 0:
        y = draw(with_specials(y))
    sample_weight = None
    if draw(st.booleans()):
        w = draw(
            hnp.arrays(
                np.float64,
                n,
                elements=st.one_of(
                    st.just(0.0), st.floats(1e-3, 1e3), st.floats(1e300, 1e308)
                ),
                fill=st.nothing(),
            )
        )
        sample_weight = draw(with_specials(w, 1)) if draw(st.integers(0, 5)) == 0 else w
    sample_domain = None
    if allow_unlabelled and draw(st.booleans()):
        labelled = np.isfinite(np.asarray(y).reshape(n, -1)).all(axis=1)
        domains = draw(hnp.arrays(np.int64, n, elements=st.integers(-2, 2)))
        if draw(st.booleans()):  # the usual case: unlabelled rows are targets
            domains = np.where(labelled, np.abs(domains), -1 - np.abs(domains))
        sample_domain = domains
    return X, y, sample_weight, sample_domain


def _log_uniform(low, high):
    return st.floats(np.log10(low), np.log10(high)).map(lambda e: float(10.0**e))


@st.composite
def common_params(draw):
    backbone = draw(st.sampled_from(["linear", "mlp", "mlp", "mlp", "cnn1d", "gru"]))
    params = {"backbone": backbone}
    if backbone == "mlp":
        params["backbone_params"] = {
            "hidden_sizes": (4,),
            "dropout": draw(st.sampled_from([0.0, 0.0, 0.5])),
            "batch_norm": draw(st.booleans()),
        }
    elif backbone == "cnn1d":
        params["backbone_params"] = {
            "channels": (2,),
            "kernel_size": draw(st.sampled_from([1, 3])),
        }
    elif backbone == "gru":
        params["backbone_params"] = {"hidden_size": 2}
    params.update(
        head=draw(st.sampled_from(["auto", "linear", "mlp"])),
        standardize_X=draw(st.sampled_from([True, False, "global", "auto"])),
        standardize_y=draw(st.booleans()),
        max_epochs=draw(st.integers(1, 3)),
        batch_size=draw(st.integers(1, 64)),
        lr=draw(_log_uniform(1e-5, 1.0)),
        weight_decay=draw(st.sampled_from([0.0, 1e-4, 1.0])),
        optimizer=draw(st.sampled_from(["adamw", "adam", "sgd", torch.optim.RMSprop])),
        grad_clip=draw(st.sampled_from([None, None, 0.1, 10.0])),
        solver=draw(st.sampled_from(["auto", "auto", "gradient", "closed_form"])),
        early_stopping=draw(st.booleans()),
        validation_fraction=draw(st.floats(0.05, 0.9)),
        n_iter_no_change=draw(st.integers(1, 3)),
        random_state=draw(st.integers(0, 2**32 - 1)),
        precision=draw(st.sampled_from(["fp32", "fp32", "fp32", "bf16", "fp16"])),
    )
    return params


def _fit_predict(est, X, y, **fit_kwargs):
    """Fit and predict on the training rows; return the outcome.

    Returns ``("ok", prediction)`` or ``("error", exc)`` for an allowed error
    (its message checked); anything else propagates as a failure.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est.fit(X, y, **fit_kwargs)
            pred = est.predict(X)
    except ALLOWED as exc:
        _check_error(exc)
        event(f"{type(exc).__name__}: {str(exc)[:60]}")
        return "error", exc
    except KeyboardInterrupt as exc:  # nobody pressed Ctrl-C
        raise AssertionError(f"fit raised KeyboardInterrupt: {exc}") from exc
    event("fitted")
    y2 = np.asarray(y, dtype=float)
    assert pred.shape == y2.shape
    assert np.isfinite(pred).all(), f"non-finite predictions {pred}"
    return "ok", pred


def _non_finite(a):
    return a is not None and not np.isfinite(np.asarray(a, dtype=float)).all()


# ---------------------------------------------------------------- estimators
@FUZZ
@given(problem=problems(), params=common_params(), extra=st.data())
def test_transfer_regressor_fit_predict(problem, params, extra):
    X, y, sample_weight, _ = problem
    params.update(
        finetune=extra.draw(st.sampled_from(list_strategies())),
        backbone_lr=extra.draw(st.sampled_from([0.0, 0.1, 1.0])),
        l2sp=extra.draw(st.sampled_from([0.0, 0.0, 1e-2, 10.0])),
    )
    outcome, result = _fit_predict(
        TransferRegressor(**params), X, y, sample_weight=sample_weight
    )
    if _non_finite(X) or _non_finite(y) or _non_finite(sample_weight):
        assert outcome == "error", "non-finite input was accepted"
        assert isinstance(result, ValueError)


@FUZZ
@given(problem=problems(allow_unlabelled=True), params=common_params(), extra=st.data())
def test_domain_adapt_regressor_fit_predict(problem, params, extra):
    X, y, sample_weight, sample_domain = problem
    params.update(
        method=extra.draw(st.sampled_from(list_methods())),
        da_weight=extra.draw(st.sampled_from(["auto", 0.0, 1.0, 10.0])),
        da_ramp=extra.draw(st.sampled_from(["dann", "linear", "constant"])),
        domain_norm=extra.draw(st.booleans()),
    )
    outcome, result = _fit_predict(
        DomainAdaptRegressor(**params),
        X,
        y,
        sample_domain=sample_domain,
        sample_weight=sample_weight,
    )
    y_inf = np.isinf(np.asarray(y, dtype=float)).any()
    if _non_finite(X) or y_inf or _non_finite(sample_weight):
        assert outcome == "error", "non-finite input was accepted"
        assert isinstance(result, ValueError)


ANY_VALUE = st.one_of(
    st.integers(-3, 5),
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(0, 1),
    st.text(max_size=6),
    st.none(),
    st.booleans(),
    st.sampled_from(["auto", "linear", "mlp", "adam", "sgd", "cpu", "fp16", "dann"]),
)
_X20, _Y20 = np.random.RandomState(0).normal(size=(20, 3)), np.arange(20.0)


@FUZZ
@given(
    kind=st.sampled_from([TransferRegressor, DomainAdaptRegressor]),
    values_=st.data(),
)
def test_any_parameter_value_is_refused_clearly_or_trains(kind, values_):
    """Any value of any constrained parameter (several at once): a clear
    refusal or a sound model."""
    names = sorted(set(kind._parameter_constraints) - {"verbose"})
    chosen = values_.draw(st.lists(st.sampled_from(names), min_size=1, max_size=3))
    params = {name: values_.draw(ANY_VALUE, label=name) for name in chosen}
    est = kind(backbone_params={"hidden_sizes": (4,)}, max_epochs=1, random_state=0)
    if "backbone" in params:
        est.set_params(backbone_params=None)
    est.set_params(**params)
    if isinstance(est.max_epochs, int) and est.max_epochs > 3:
        est.set_params(max_epochs=3)
    _fit_predict(est, _X20, _Y20)


@pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning")
@FUZZ
@given(
    problem=problems(),
    kind=st.sampled_from([TransferRegressor, DomainAdaptRegressor]),
    new=st.data(),
)
def test_predict_on_new_rows(problem, kind, new):
    """A fitted model predicts finite values for new rows of the same scale,
    or refuses them (NaN, infinity, beyond float32 after scaling)."""
    X, y, _, _ = problem
    assume(np.isfinite(np.asarray(X, dtype=float)).all())
    assume(np.isfinite(y).all())
    est = kind(backbone_params={"hidden_sizes": (4,)}, max_epochs=1, random_state=0)
    outcome, _ = _fit_predict(est, X, y)
    assume(outcome == "ok")
    n_new = new.draw(st.integers(1, 5))
    X_new = new.draw(with_specials(new.draw(values((n_new, *X.shape[1:])))))
    try:
        pred = est.predict(X_new)
    except ALLOWED as exc:
        _check_error(exc)
        return
    assert np.isfinite(X_new).all(), "non-finite input was accepted by predict"
    assert np.isfinite(pred).all()


# ------------------------------------------------------------ weights loader
WEIGHT_DTYPES = [
    torch.float16,
    torch.bfloat16,
    torch.float32,
    torch.float64,
    torch.int64,
    torch.int32,
    torch.uint8,
    torch.bool,
    torch.complex64,
]


def _target_module():
    return torch.nn.Sequential(torch.nn.Linear(3, 2), torch.nn.BatchNorm1d(2))


@st.composite
def state_dicts(draw):
    """A state dict for ``_target_module()``: a third fit it (floats of any
    width, a wrapper prefix), the others are broken -- keys dropped, added or
    renamed; shapes and dtypes changed; NaN/inf entries."""
    reference = _target_module().state_dict()
    broken = draw(st.integers(0, 2)) > 0
    rare = st.integers(0, 5) if broken else st.just(1)  # 0: apply a fault
    state = {}
    for key, tensor in reference.items():
        if draw(rare) == 0:
            continue  # missing
        shape = tuple(tensor.shape)
        if draw(rare) == 0:
            shape = tuple(draw(st.lists(st.integers(0, 4), max_size=3)))
        dtype = tensor.dtype
        if tensor.is_floating_point():
            dtype = draw(st.sampled_from([*WEIGHT_DTYPES[:4], tensor.dtype]))
        if draw(rare) == 0:
            dtype = draw(st.sampled_from(WEIGHT_DTYPES))
        values_ = torch.from_numpy(
            draw(hnp.arrays(np.float64, shape, elements=st.floats(-1e4, 1e4)))
        )
        if values_.numel() and draw(rare) == 0:
            values_.view(-1)[draw(st.integers(0, values_.numel() - 1))] = draw(SPECIAL)
        state[key] = values_.to(dtype)
    if draw(rare) == 0:
        state[draw(st.text(min_size=1, max_size=8))] = torch.zeros(1)
    if draw(st.integers(0, 3)) == 0:
        prefixes = ["module.", "backbone.", *(["other."] if broken else [])]
        prefix = draw(st.sampled_from(prefixes))
        state = {prefix + k: v for k, v in state.items()}
    return state


def _should_load(state):
    """What load_weights must do with ``state``: the keys (a known wrapper
    prefix stripped) match, shapes match, float entries get floats, finite."""
    own = _target_module().state_dict()
    for prefix in ("", "module.", "backbone."):
        if {k[len(prefix) :] for k in state} == set(own) and all(
            k.startswith(prefix) for k in state
        ):
            state = {k[len(prefix) :]: v for k, v in state.items()}
            break
    if set(state) != set(own):
        return False
    for key, value in state.items():
        if value.shape != own[key].shape:
            return False
        if own[key].is_floating_point() != value.is_floating_point():
            return False
        if not own[key].is_floating_point() and (
            value.is_complex() or value.dtype == torch.bool
        ):
            return False
        if (value.is_floating_point() or value.is_complex()) and not bool(
            torch.isfinite(value).all()
        ):
            return False
    return True


@FUZZ_CHEAP
@given(state=state_dicts(), fmt=st.sampled_from(["mapping", "safetensors", "pt"]))
def test_load_weights_loads_exactly_the_fitting_state_dicts(
    tmp_path_factory, state, fmt
):
    weights = state
    if fmt != "mapping":
        path = tmp_path_factory.mktemp("w") / f"w.{fmt}"
        try:
            if fmt == "safetensors":
                save_file({k: v.contiguous() for k, v in state.items()}, str(path))
            else:
                torch.save(state, path)
        except Exception:  # safetensors cannot write every state (e.g. empty)
            assume(False)
        weights = path
    module = _target_module()
    before = {k: v.clone() for k, v in module.state_dict().items()}
    try:
        load_weights(module, weights)
    except ValueError as exc:
        event("refused: " + re.sub(r"weights='[^']*'", "weights=PATH", str(exc))[:50])
        assert not _should_load(state), f"refused a fitting state dict: {exc}"
        assert re.search(
            r"do not fit the backbone|NaN or infinite|not tensors|not str", str(exc)
        ), str(exc)
        after = module.state_dict()
        assert all(torch.equal(after[k], v) for k, v in before.items())
        return
    assert _should_load(state), "loaded a state dict that does not fit"
    event("loaded")
    stripped = {
        k.split(".", 1)[1] if k.startswith(("module.", "backbone.")) else k: v
        for k, v in state.items()
    }
    for key, value in module.state_dict().items():
        torch.testing.assert_close(value, stripped[key].to(value.dtype))


@FUZZ_CHEAP
@given(
    weights=st.one_of(
        st.none(),
        st.integers(),
        st.floats(),
        st.lists(st.integers(), max_size=3),
        st.dictionaries(
            st.one_of(st.text(max_size=5), st.integers()),
            st.one_of(
                st.integers(),
                st.none(),
                st.builds(torch.zeros, st.integers(0, 3)),
                st.builds(lambda n: np.zeros(n), st.integers(0, 3)),
            ),
            max_size=3,
        ),
        st.binary(max_size=64),
    ),
    suffix=st.sampled_from([None, ".safetensors", ".pt", ".bin"]),
)
def test_read_state_dict_on_arbitrary_objects_and_files(
    tmp_path_factory, weights, suffix
):
    if isinstance(weights, bytes):
        path = tmp_path_factory.mktemp("r") / f"w{suffix or ''}"
        path.write_bytes(weights)
        weights = path if suffix != ".pt" else str(path)
    try:
        state = read_state_dict(weights)
    except (ValueError, TypeError) as exc:
        assert re.search(r"weights|state dict|not str|not tensors", str(exc)), (
            f"{type(exc).__name__}: {exc}"
        )
        return
    assert isinstance(state, dict)
    assert all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in state.items()
    )


# ------------------------------------------------------ splitters and scorers
@st.composite
def fold_data(draw):
    n = draw(st.integers(1, 30))
    X = np.arange(n * 2, dtype=float).reshape(n, 2)
    y = draw(with_specials(draw(values((n,))), max_count=n))
    y = np.where(np.isinf(y), np.nan, y)
    sample_domain = None
    if draw(st.booleans()):
        sample_domain = draw(
            st.one_of(
                hnp.arrays(np.int64, n, elements=st.integers(-3, 3)),
                hnp.arrays(np.float64, n, elements=st.floats(-3, 3)),
                hnp.arrays(
                    np.int64, draw(st.integers(0, 31)), elements=st.integers(-3, 3)
                ),
            )
        )
    return X, y, sample_domain


@FUZZ_CHEAP
@given(
    data=fold_data(),
    n_splits=st.one_of(
        st.integers(-2, 8),
        st.floats(-1, 5),
        st.text(max_size=2),
        st.none(),
        st.booleans(),
    ),
    shuffle=st.one_of(st.booleans(), st.integers(0, 1), st.none()),
    random_state=st.one_of(st.none(), st.integers(-5, 2**33), st.floats(0, 10)),
    with_y=st.booleans(),
)
def test_domain_aware_kfold_splits_or_refuses(
    data, n_splits, shuffle, random_state, with_y
):
    X, y, sample_domain = data
    cv = DomainAwareKFold(n_splits, shuffle=shuffle, random_state=random_state)
    try:
        folds = list(cv.split(X, y if with_y else None, sample_domain=sample_domain))
    except (ValueError, TypeError) as exc:
        assert "DomainAwareKFold" in str(exc) or "sample_domain" in str(exc), str(exc)
        return
    assert len(folds) == cv.get_n_splits() == n_splits
    yy = y if with_y else np.zeros(len(X))
    target = (sample_domain < 0) if sample_domain is not None else np.isnan(yy)
    source = np.flatnonzero(~target)
    unlabelled_target = np.flatnonzero(target & np.isnan(yy))
    validated = []
    for train, valid in folds:
        assert np.isin(np.flatnonzero(target), train).all()
        assert np.isin(unlabelled_target, valid).all()
        valid_source = np.intersect1d(valid, source)
        assert not np.intersect1d(valid_source, train).size
        validated.append(valid_source)
    np.testing.assert_array_equal(np.sort(np.concatenate(validated)), source)


class _NaNTolerantLinear(RegressorMixin, BaseEstimator):
    """A linear model that ignores rows with a NaN y (for reverse validation)."""

    def fit(self, X, y):
        y = np.asarray(y, dtype=float).reshape(len(X), -1)
        keep = np.isfinite(y).all(axis=1)
        self.model_ = LinearRegression().fit(X[keep], y[keep])
        return self

    def predict(self, X):
        return self.model_.predict(X)


@FUZZ_CHEAP
@given(
    data=fold_data(),
    clip_quantile=st.one_of(st.floats(-1, 2), st.just(1.0), st.none(), st.booleans()),
    classifier=st.sampled_from([None, LogisticRegression(C=0.1), "svr"]),
    scorer_kind=st.sampled_from(["iw", "reverse"]),
)
def test_scorers_score_or_refuse(data, clip_quantile, classifier, scorer_kind):
    X, y, sample_domain = data
    if sample_domain is not None and sample_domain.shape != (len(X),):
        sample_domain = None
    est = LinearRegression().fit(X, np.arange(len(X), dtype=float))
    if scorer_kind == "iw":
        scorer = ImportanceWeightedScorer(
            None if classifier == "svr" else classifier, clip_quantile=clip_quantile
        )
    else:
        scorer = ReverseValidationScorer()
        est = _NaNTolerantLinear().fit(X, np.arange(len(X), dtype=float))
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            score = scorer(est, X, y, sample_domain=sample_domain)
    except (ValueError, TypeError) as exc:
        assert re.search(r"Scorer|sample_domain|no rows", str(exc)), str(exc)
        return
    assert np.isfinite(score) and score <= 0.0
