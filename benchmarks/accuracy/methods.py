"""The methods compared by the accuracy benchmark, on identical splits.

Each method is a function ``fit_predict(ctx, X_lab, y_lab) -> y_pred`` on
``ctx.task.X_test``. ``X_lab, y_lab`` are the labelled target rows of the
regime (empty in the 0-label regime). Every neural method trains for the same
number of epochs (``ctx.epochs``) and otherwise runs with its library's
defaults; what a regression user *must* change in a peer to get a regression
model at all is written next to it.

Scaling: our estimators standardise inputs and targets inside (fitted on their
training rows); HistGradientBoosting needs none; PLS mean-centres (fitted on
its training rows); the peers get a ``StandardScaler`` on inputs and a
standardised target, both fitted on their training rows.
"""

import os
import warnings
from dataclasses import dataclass, field

import common as C
import numpy as np

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
# POT (a skada dependency) imports TensorFlow when it is installed; skada's
# deep methods do not need it, and the import costs seconds per process.
os.environ.setdefault("POT_BACKEND_DISABLE_TENSORFLOW", "1")

L2SP = 0.1  # the README example (0.01 before the closed-form solver run)
HIDDEN = (128, 128)  # the default "mlp" backbone; the peers' torch MLP copies it


class NotApplicable(Exception):
    """The method does not run in this regime / on this task."""


@dataclass
class Context:
    task: object
    seed: int
    epochs: int
    labelled: np.ndarray = None  # pool indices of the labelled target rows
    cache: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Method:
    name: str
    group: str  # "source-only", "target-only", "ours: transfer", "ours: DA", "peer"
    regimes: str  # "all", "zero", "labelled"
    fn: object
    constant: bool = False  # fitted once per seed (source only), same in every regime
    spectra_only: bool = False
    default: str = ""  # "TR" / "DA": what a user gets from that estimator's defaults


# ------------------------------------------------------------------ helpers
def _cached(ctx, key, build):
    if key not in ctx.cache:
        ctx.cache[key] = build()
    return ctx.cache[key]


# --------------------------------------------------------------- sktransfer
def _tr(**kw):
    from sktransfer import TransferRegressor

    return TransferRegressor(**kw)


def _source_mlp(ctx):
    t = ctx.task
    return _cached(
        ctx,
        "source_mlp",
        lambda: _tr(max_epochs=ctx.epochs, random_state=ctx.seed).fit(
            t.X_source, t.y_source
        ),
    )


def _source_linear(ctx):
    t = ctx.task
    return _cached(
        ctx,
        "source_linear",
        lambda: _tr(
            backbone="linear", max_epochs=ctx.epochs, random_state=ctx.seed
        ).fit(t.X_source, t.y_source),
    )


def source_tr_mlp(ctx, X_lab, y_lab):
    return _source_mlp(ctx).predict(ctx.task.X_test)


def source_tr_linear(ctx, X_lab, y_lab):
    return _source_linear(ctx).predict(ctx.task.X_test)


def target_tr_mlp(ctx, X_lab, y_lab):
    model = _tr(max_epochs=ctx.epochs, random_state=ctx.seed).fit(X_lab, y_lab)
    return model.predict(ctx.task.X_test)


def _finetune(strategy):
    def fit_predict(ctx, X_lab, y_lab):
        src = _source_mlp(ctx)
        model = _tr(
            backbone=src,
            finetune=strategy,
            max_epochs=ctx.epochs,
            random_state=ctx.seed,
        ).fit(X_lab, y_lab)
        return model.predict(ctx.task.X_test)

    fit_predict.__name__ = f"finetune_{strategy}"
    return fit_predict


def linear_l2sp(ctx, X_lab, y_lab):
    src = _source_linear(ctx)
    model = _tr(backbone=src, l2sp=L2SP, max_epochs=ctx.epochs, random_state=ctx.seed)
    return model.fit(X_lab, y_lab).predict(ctx.task.X_test)


def _da(method, backbone="mlp"):
    def fit_predict(ctx, X_lab, y_lab):
        from sktransfer import DomainAdaptRegressor

        # source rows + every target row; the labelled ones keep their label
        X, y, domain = C.task_stack(ctx.task, ctx.labelled)
        model = DomainAdaptRegressor(
            backbone, method=method, max_epochs=ctx.epochs, random_state=ctx.seed
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(X, y, sample_domain=domain)
        return model.predict(ctx.task.X_test)

    fit_predict.__name__ = f"da_{method}" + ("" if backbone == "mlp" else "_linear")
    return fit_predict


# --------------------------------------------------------- sklearn baselines
def target_hgb(ctx, X_lab, y_lab):
    from sklearn.ensemble import HistGradientBoostingRegressor

    model = HistGradientBoostingRegressor(random_state=ctx.seed).fit(X_lab, y_lab)
    return model.predict(ctx.task.X_test)


def _pls_cv(X, y, seed):
    """PLSRegression (mean-centred, the chemometrics default) with
    ``n_components`` in 1..10 chosen by 5-fold CV on the training rows."""
    from sklearn.cross_decomposition import PLSRegression
    from sklearn.model_selection import GridSearchCV, KFold

    n_splits = min(5, len(y))
    inner_train = len(y) - int(np.ceil(len(y) / n_splits))
    max_nc = max(1, min(10, inner_train - 1, X.shape[1]))
    search = GridSearchCV(
        PLSRegression(scale=False),
        {"n_components": list(range(1, max_nc + 1))},
        cv=KFold(n_splits, shuffle=True, random_state=seed),
        scoring="neg_root_mean_squared_error",
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return search.fit(X, y).best_estimator_


def _source_pls_model(ctx):
    t = ctx.task
    return _cached(ctx, "source_pls", lambda: _pls_cv(t.X_source, t.y_source, ctx.seed))


def source_pls(ctx, X_lab, y_lab):
    return _source_pls_model(ctx).predict(ctx.task.X_test)


def target_pls(ctx, X_lab, y_lab):
    return _pls_cv(X_lab, y_lab, ctx.seed).predict(ctx.task.X_test)


# ------------------------------------------- calibration transfer (chemometrics)
# The chemometrics standards, with chemotools' transformers. The labelled pool
# rows of a regime are the transfer standards: each is paired with the source
# row that measures the same sample (``task.pairs``). The transfer maps target
# spectra into the source space (the secondary instrument standardised to the
# primary), then the source PLS (``source_pls``: n_components by 5-fold CV on
# the source rows) predicts. Hyper-parameters by 5-fold CV on the transfer
# standards (never the test rows): the RMSE of the source PLS on the held-out
# standards' transformed spectra against their labels.
PDS_WINDOWS = (2, 5, 10, 25)  # half-widths; 25 is chemotools' default
SST_MAX_COMPONENTS = 10


def _transfer_pairs(ctx):
    """Target and source spectra of the labelled transfer standards."""
    t = ctx.task
    if t.pairs is None:
        raise NotApplicable("no paired transfer samples in this task")
    return t.X_pool[ctx.labelled], t.X_source[t.pairs[ctx.labelled]]


def _cv_transfer(make, grid, X_t, X_s, y, pls, seed):
    """The grid value whose transfer gives the lowest 5-fold CV RMSE of the
    source PLS on the held-out transfer standards (first one on ties)."""
    from sklearn.model_selection import KFold

    if len(grid) == 1:
        return grid[0]
    folds = list(KFold(min(5, len(y)), shuffle=True, random_state=seed).split(X_t))
    scores = []
    for value in grid:
        err = []
        for tr, te in folds:
            transfer = make(value).fit(X_t[tr], X_source=X_s[tr])
            pred = np.ravel(pls.predict(transfer.transform(X_t[te])))
            err.append((pred - y[te]) ** 2)
        scores.append(np.sqrt(np.mean(np.concatenate(err))))
    return grid[int(np.argmin(scores))]


def _transfer(kind):
    """DS, PDS or SST (chemotools) from the target to the source space."""

    def make(value):
        from chemotools.adaptation import (
            DirectStandardization,
            PiecewiseDirectStandardization,
            SpectralSpaceTransform,
        )

        if kind == "ds":
            return DirectStandardization()  # no hyper-parameter
        if kind == "pds":  # n_components: chemotools' default (2)
            return PiecewiseDirectStandardization(window_length=value)
        return SpectralSpaceTransform(n_components=value)

    def grid(n):
        inner = n - int(np.ceil(n / min(5, n)))  # standards in a CV fit
        if kind == "ds":
            return [None]
        if kind == "pds":
            return list(PDS_WINDOWS)
        return list(range(1, max(1, min(SST_MAX_COMPONENTS, inner)) + 1))

    def fit_predict(ctx, X_lab, y_lab):
        X_t, X_s = _transfer_pairs(ctx)
        pls = _source_pls_model(ctx)
        value = _cv_transfer(make, grid(len(y_lab)), X_t, X_s, y_lab, pls, ctx.seed)
        transfer = make(value).fit(X_t, X_source=X_s)
        return pls.predict(transfer.transform(ctx.task.X_test))

    fit_predict.__name__ = f"transfer_{kind}"
    return fit_predict


def slope_bias(ctx, X_lab, y_lab):
    """Slope/bias correction of the source PLS: ``y = a + b * y_hat`` by least
    squares on the labelled target rows; bias only (``b = 1``) with fewer
    than 3 labels, constant predictions, or a fitted slope <= 0."""
    pls = _source_pls_model(ctx)
    fitted = np.ravel(pls.predict(X_lab))
    pred = np.ravel(pls.predict(ctx.task.X_test))
    slope = 0.0
    if len(y_lab) >= 3 and np.ptp(fitted) > 0:
        slope = np.polyfit(fitted, y_lab, 1)[0]
    if slope <= 0:
        return pred + np.mean(y_lab - fitted)
    return np.mean(y_lab) + slope * (pred - np.mean(fitted))


def model_updating(ctx, X_lab, y_lab):
    """PLS on the source rows plus the labelled target rows (each row weight
    1), n_components by 5-fold CV on that stack."""
    t = ctx.task
    X = np.vstack([t.X_source, X_lab])
    y = np.concatenate([t.y_source, y_lab])
    return _pls_cv(X, y, ctx.seed).predict(t.X_test)


# ------------------------------------------------------------------- skada
def _scaled_da_data(ctx):
    """StandardScaler on source + unlabelled target inputs; y standardised
    with the source statistics."""
    from sklearn.preprocessing import StandardScaler

    t = ctx.task
    X_tgt = t.X_target_unlabelled
    scaler = StandardScaler().fit(np.vstack([t.X_source, X_tgt]))
    mu, sd = t.y_source.mean(), t.y_source.std()
    return (
        scaler.transform(t.X_source).astype(np.float32),
        ((t.y_source - mu) / sd).astype(np.float32),
        scaler.transform(X_tgt).astype(np.float32),
        scaler.transform(t.X_test).astype(np.float32),
        mu,
        sd,
    )


def _skada(kind):
    def fit_predict(ctx, X_lab, y_lab):
        import torch
        from skada.deep import DANN, DeepCoral
        from torch import nn

        Xs, ys, Xt, Xte, mu, sd = _scaled_da_data(ctx)

        class MLP(nn.Module):
            def __init__(self, n_in):
                super().__init__()
                layers, width = [], n_in
                for h in HIDDEN:
                    layers += [nn.Linear(width, h), nn.ReLU()]
                    width = h
                self.feature = nn.Sequential(*layers)
                self.head = nn.Linear(width, 1)

            def forward(self, x, sample_weight=None):
                # skada wants a 1-D y; a (n, 1) output would broadcast
                # against it in MSELoss, so the regression output is squeezed
                return self.head(self.feature(x)).squeeze(-1)

        torch.manual_seed(ctx.seed)
        common = dict(
            reg=1,
            base_criterion=nn.MSELoss(),  # default: CrossEntropyLoss (classifier)
            max_epochs=ctx.epochs,
            train_split=None,  # default: stratified split, fails on float y
            verbose=0,
        )
        if kind == "coral":
            net = DeepCoral(MLP(Xs.shape[1]), "feature", **common)
        else:
            net = DANN(MLP(Xs.shape[1]), "feature", num_features=HIDDEN[-1], **common)
        X = np.vstack([Xs, Xt])
        y = np.concatenate([ys, -np.ones(len(Xt), np.float32)])  # -1: no label
        domain = np.concatenate([np.ones(len(Xs), int), -np.ones(len(Xt), int)])
        net.fit(X, y, sample_domain=domain)
        # predict() is argmax over classes; a regression output is predict_proba
        out = net.predict_proba(Xte, sample_domain=-np.ones(len(Xte), int))
        return np.asarray(out, dtype=float).ravel() * sd + mu

    fit_predict.__name__ = f"skada_{kind}"
    return fit_predict


# ------------------------------------------------------------------- ADAPT
_TF_READY = []


def _tf():
    import tensorflow as tf

    if not _TF_READY:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(1)
            tf.config.threading.set_inter_op_parallelism_threads(1)
        except RuntimeError:  # already initialised
            pass
        tf.get_logger().setLevel("ERROR")
        _TF_READY.append(True)
    return tf


def _adapt_deep(kind):
    def fit_predict(ctx, X_lab, y_lab):
        tf = _tf()
        from adapt.feature_based import DANN, DeepCORAL

        Xs, ys, Xt, Xte, mu, sd = _scaled_da_data(ctx)
        cls = DeepCORAL if kind == "coral" else DANN
        model = cls(Xt=Xt, random_state=ctx.seed, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xs, ys, epochs=ctx.epochs, verbose=0)
            out = model.predict(Xte, verbose=0)
        tf.keras.backend.clear_session()
        return np.asarray(out, dtype=float).ravel() * sd + mu

    fit_predict.__name__ = f"adapt_{kind}"
    return fit_predict


def _source_scaling(ctx):
    from sklearn.preprocessing import StandardScaler

    t = ctx.task
    scaler = StandardScaler().fit(t.X_source)
    return scaler, t.y_source.mean(), t.y_source.std()


def adapt_regular_lr(ctx, X_lab, y_lab):
    from adapt.parameter_based import RegularTransferLR
    from sklearn.linear_model import Ridge

    t = ctx.task
    scaler, mu, sd = _source_scaling(ctx)
    src = _cached(
        ctx,
        "adapt_ridge",
        lambda: Ridge().fit(scaler.transform(t.X_source), (t.y_source - mu) / sd),
    )
    model = RegularTransferLR(src, lambda_=1.0, random_state=ctx.seed)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(scaler.transform(X_lab), (y_lab - mu) / sd)
    return np.asarray(model.predict(scaler.transform(t.X_test))).ravel() * sd + mu


def _adapt_weighting(kind):
    """ADAPT's instance weighting (KMM, KLIEP) with a Ridge, 0 labels."""

    def fit_predict(ctx, X_lab, y_lab):
        from adapt.instance_based import KLIEP, KMM
        from sklearn.linear_model import Ridge

        # float64: KMM's QP solver (cvxopt) rejects float32 buffers
        Xs, ys, Xt, Xte, mu, sd = _scaled_da_data(ctx)
        Xs, ys, Xt, Xte = (a.astype(np.float64) for a in (Xs, ys, Xt, Xte))
        cls = KMM if kind == "kmm" else KLIEP
        model = cls(Ridge(), Xt=Xt, random_state=ctx.seed, verbose=0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            model.fit(Xs, ys)
        return np.asarray(model.predict(Xte), dtype=float).ravel() * sd + mu

    fit_predict.__name__ = f"adapt_{kind}"
    return fit_predict


def adapt_tradaboost(ctx, X_lab, y_lab):
    """ADAPT's TrAdaBoostR2 (10 boosted Ridges) on source + labelled target."""
    from adapt.instance_based import TrAdaBoostR2
    from sklearn.linear_model import Ridge

    t = ctx.task
    scaler, mu, sd = _source_scaling(ctx)
    model = TrAdaBoostR2(
        Ridge(),
        Xt=scaler.transform(X_lab),
        yt=(y_lab - mu) / sd,
        random_state=ctx.seed,
        verbose=0,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(scaler.transform(t.X_source), (t.y_source - mu) / sd)
    return np.asarray(model.predict(scaler.transform(t.X_test))).ravel() * sd + mu


def adapt_regular_nn(ctx, X_lab, y_lab):
    _tf()
    from adapt.parameter_based import RegularTransferNN

    t = ctx.task
    scaler, mu, sd = _source_scaling(ctx)

    def source_model():
        # ADAPT's documented recipe: lambdas=0 on the source, default network
        src = RegularTransferNN(
            loss="mse", lambdas=0.0, random_state=ctx.seed, verbose=0
        )
        src.fit(
            scaler.transform(t.X_source),
            (t.y_source - mu) / sd,
            epochs=ctx.epochs,
            verbose=0,
        )
        return src

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        src = _cached(ctx, "adapt_source_nn", source_model)
        model = RegularTransferNN(
            src.task_, loss="mse", lambdas=1.0, random_state=ctx.seed, verbose=0
        )
        model.fit(
            scaler.transform(X_lab), (y_lab - mu) / sd, epochs=ctx.epochs, verbose=0
        )
        out = model.predict(scaler.transform(t.X_test), verbose=0)
    del model
    return np.asarray(out, dtype=float).ravel() * sd + mu


# ---------------------------------------------------------------- registry
# The package's adaptation methods and fine-tuning strategies, read from its
# registries. Columns keep the order of the benchmark's first run, which put
# coral and mmd before dann (the package registers dann first); any other
# method follows in the package's order, so a new one gets the last column.
DA_METHODS = C.in_order(C.list_methods(), ("source_only", "adabn", "coral", "mmd"))
FINETUNE = C.list_strategies()

METHODS = [
    Method("source: TR mlp", "source-only", "all", source_tr_mlp, constant=True),
    Method("source: TR linear", "source-only", "all", source_tr_linear, constant=True),
    Method("source: PLS", "source-only", "all", source_pls, True, True),
    Method("target: TR mlp", "target-only", "labelled", target_tr_mlp),
    Method("target: HGB", "target-only", "labelled", target_hgb),
    Method("target: PLS", "target-only", "labelled", target_pls, spectra_only=True),
    *[
        Method(
            f"TR {s}",
            "ours: transfer",
            "labelled",
            _finetune(s),
            default="TR" if s == "full" else "",
        )
        for s in FINETUNE
    ],
    # strategy and L2-SP strength chosen by cross-validation over the labels
    Method("TR auto", "ours: transfer", "labelled", _finetune("auto")),
    Method("TR linear+l2sp", "ours: transfer", "labelled", linear_l2sp),
    *[Method(f"DA {m}", "ours: DA", "all", _da(m)) for m in DA_METHODS],
    # DomainAdaptRegressor()'s default: chosen from the labelled target rows
    Method("DA auto", "ours: DA", "all", _da("auto"), default="DA"),
    # a linear model with per-domain standardisation, solved in closed form
    Method("DA adabn linear", "ours: DA", "all", _da("adabn", "linear")),
    # DomainAdaptRegressor("linear")'s default method: chosen from the labels
    Method("DA auto linear", "ours: DA", "all", _da("auto", "linear")),
    Method("skada DeepCoral", "peer", "zero", _skada("coral")),
    Method("skada DANN", "peer", "zero", _skada("dann")),
    Method("ADAPT DeepCORAL", "peer", "zero", _adapt_deep("coral")),
    Method("ADAPT DANN", "peer", "zero", _adapt_deep("dann")),
    Method("ADAPT KMM", "peer", "zero", _adapt_weighting("kmm")),
    Method("ADAPT KLIEP", "peer", "zero", _adapt_weighting("kliep")),
    Method("ADAPT TrAdaBoostR2", "peer", "labelled", adapt_tradaboost),
    Method("ADAPT RegularTransferLR", "peer", "labelled", adapt_regular_lr),
    Method("ADAPT RegularTransferNN", "peer", "labelled", adapt_regular_nn),
    # calibration transfer, the chemometrics standards (spectra tasks)
    Method("DS", "peer", "labelled", _transfer("ds"), spectra_only=True),
    Method("PDS", "peer", "labelled", _transfer("pds"), spectra_only=True),
    Method("SST", "peer", "labelled", _transfer("sst"), spectra_only=True),
    Method("slope/bias", "peer", "labelled", slope_bias, spectra_only=True),
    Method("model updating", "peer", "labelled", model_updating, spectra_only=True),
]
METHOD_NAMES = [m.name for m in METHODS]


def applicable(method, task, n_labels):
    if method.spectra_only and not task.spectra:
        return False
    if method.regimes == "zero":
        return n_labels == 0
    if method.regimes == "labelled":
        return n_labels > 0
    return True
