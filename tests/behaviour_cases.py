"""A fixed set of fits whose predictions are recorded in ``behaviour.npz``.

The redesign of the core (issue 9) must not change what the estimators
predict. ``python tests/behaviour_cases.py`` rewrites the record from the code
as it is; ``tests/test_behaviour.py`` checks the code against it. Each case is
``name -> function() -> predictions`` and covers both estimators, every
fine-tuning strategy and adaptation method, the closed form, sequence
backbones with ``input_shape``, multi-output, sample weights, a fitted source
as backbone and early stopping.
"""

import sys
import warnings
from pathlib import Path

import numpy as np

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.datasets import make_domain_shift

RECORD = Path(__file__).with_name("behaviour.npz")
_TINY = dict(backbone_params={"hidden_sizes": (16, 16)}, max_epochs=6, batch_size=32)
_SEQ = dict(max_epochs=4, batch_size=32, input_shape=(2, 4))


def _data(shift="instrument", n_outputs=1, seed=0):
    return make_domain_shift(
        160, 90, shift=shift, n_outputs=n_outputs, random_state=seed
    )


def _tr(*, backbone="mlp", fit_on="source", sample_weight=False, **params):
    Xs, ys, Xt, yt = _data(n_outputs=params.pop("n_outputs", 1))
    settings = {**(_TINY if backbone == "mlp" else {}), **params}
    X, y = (Xs, ys) if fit_on == "source" else (Xt[:40], yt[:40])
    sw = np.linspace(0.2, 2.0, len(X)) if sample_weight else None
    est = TransferRegressor(backbone, random_state=0, **settings)
    return est.fit(X, y, sample_weight=sw).predict(Xt[40:])


def _source(backbone="mlp", **params):
    Xs, ys, _, _ = _data()
    settings = {**(_TINY if backbone == "mlp" else {}), **params}
    return TransferRegressor(backbone, random_state=1, **settings).fit(Xs, ys)


def _finetuned(backbone="mlp", source_params=None, **params):
    _, _, Xt, yt = _data()
    src = _source(backbone, **(source_params or {}))
    est = TransferRegressor(src, random_state=0, max_epochs=6, batch_size=16, **params)
    return est.fit(Xt[:40], yt[:40]).predict(Xt[40:])


def _uda_rows(n_labelled=0, n_outputs=1, sample_domain=False):
    Xs, ys, Xt, yt = _data(n_outputs=n_outputs)
    y_t = np.full_like(yt[:60], np.nan)
    y_t[:n_labelled] = yt[:n_labelled]
    X = np.vstack([Xs, Xt[:60]])
    y = np.concatenate([ys, y_t])
    sd = None
    if sample_domain:
        sd = np.r_[np.zeros(80, int), np.ones(len(Xs) - 80, int), -np.ones(60, int)]
    return X, y, sd, Xt[60:]


def _da(
    method,
    *,
    backbone="mlp",
    n_labelled=0,
    n_outputs=1,
    sample_domain=False,
    sample_weight=False,
    **params,
):
    X, y, sd, X_test = _uda_rows(n_labelled, n_outputs, sample_domain)
    if backbone == "mlp":
        params = {**_TINY, **params}
    sw = np.linspace(0.5, 1.5, len(X)) if sample_weight else None
    est = DomainAdaptRegressor(backbone, method=method, random_state=0, **params)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(X, y, sample_domain=sd, sample_weight=sw)
    return est.predict(X_test)


def _da_from_source(method):
    X, y, _, X_test = _uda_rows()
    src = _source()
    est = DomainAdaptRegressor(src, method=method, random_state=0, max_epochs=4)
    return est.fit(X, y).predict(X_test)


CASES = {
    # TransferRegressor from scratch
    "tr_mlp": lambda: _tr(),
    "tr_mlp_sample_weight": lambda: _tr(sample_weight=True),
    "tr_mlp_multi_output": lambda: _tr(n_outputs=3),
    "tr_mlp_early_stopping": lambda: _tr(
        early_stopping=True, n_iter_no_change=2, max_epochs=30
    ),
    "tr_mlp_head_mlp": lambda: _tr(head="mlp"),
    "tr_mlp_global_scaling": lambda: _tr(standardize_X="global"),
    "tr_mlp_no_y_scaling_sgd": lambda: _tr(standardize_y=False, optimizer="sgd"),
    "tr_mlp_batch_norm_dropout": lambda: _tr(
        backbone_params={"hidden_sizes": (16,), "batch_norm": True, "dropout": 0.1}
    ),
    "tr_cnn1d_input_shape": lambda: _tr(backbone="cnn1d", **_SEQ),
    "tr_gru_input_shape": lambda: _tr(backbone="gru", **_SEQ),
    "tr_linear_closed_form": lambda: _tr(backbone="linear"),
    "tr_linear_closed_form_weighted_multi": lambda: _tr(
        backbone="linear", sample_weight=True, n_outputs=2, weight_decay=0.1
    ),
    "tr_linear_gradient": lambda: _tr(backbone="linear", solver="gradient"),
    # TransferRegressor from a fitted source
    "ft_full": lambda: _finetuned(finetune="full"),
    "ft_linear_probe": lambda: _finetuned(finetune="linear_probe"),
    "ft_lp_ft": lambda: _finetuned(finetune="lp_ft"),
    "ft_gradual": lambda: _finetuned(finetune="gradual"),
    "ft_l2sp": lambda: _finetuned(l2sp=0.1),
    "ft_backbone_lr_new_head": lambda: _finetuned(backbone_lr=0.5, head="linear"),
    "ft_linear_probe_closed_form": lambda: _finetuned(
        finetune="linear_probe", solver="closed_form", l2sp=1.0
    ),
    "ft_linear_l2sp_closed_form": lambda: _finetuned("linear", l2sp=0.1),
    "ft_cnn1d": lambda: _finetuned(
        "cnn1d", source_params=_SEQ, finetune="lp_ft", l2sp=0.1
    ),
    # DomainAdaptRegressor, unsupervised
    **{
        f"da_{m}": (lambda m=m: _da(m))
        for m in ("source_only", "adabn", "dann", "coral", "mmd", "rsd", "daregram")
    },
    # DomainAdaptRegressor variants
    "da_coral_semi_supervised": lambda: _da("coral", n_labelled=10),
    "da_adabn_semi_supervised": lambda: _da("adabn", n_labelled=10),
    "da_adabn_two_sources": lambda: _da("adabn", sample_domain=True),
    "da_mmd_domain_norm": lambda: _da("mmd", domain_norm=True),
    "da_dann_sample_weight_linear_ramp": lambda: _da(
        "dann", sample_weight=True, da_ramp="linear", da_weight=1.0
    ),
    "da_coral_multi_output": lambda: _da("coral", n_outputs=2),
    "da_adabn_linear_closed_form": lambda: _da("adabn", backbone="linear"),
    # a (2, 4) window has no batch norm by default: ask for it
    "da_adabn_cnn1d_batch_norm": lambda: _da(
        "adabn", backbone="cnn1d", backbone_params={"batch_norm": True}, **_SEQ
    ),
    "da_daregram_early_stopping": lambda: _da(
        "daregram", early_stopping=True, n_iter_no_change=2, max_epochs=12
    ),
    "da_mmd_from_source": lambda: _da_from_source("mmd"),
    "da_adabn_from_source": lambda: _da_from_source("adabn"),
}


def run_all():
    import torch

    torch.set_num_threads(1)
    return {name: np.asarray(case(), dtype=np.float64) for name, case in CASES.items()}


if __name__ == "__main__":
    if "--write" not in sys.argv:
        sys.exit("usage: python tests/behaviour_cases.py --write")
    np.savez(RECORD, **run_all())
    print(f"wrote {len(CASES)} cases to {RECORD}")
