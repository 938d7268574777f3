"""Small experiments behind the default-change recommendations in docs/benchmarks.md.

Run: ``python benchmarks/accuracy/investigate.py [--seeds 3] [--only A B ...]``
(about 4 minutes; one process, one torch thread). Writes
``benchmarks/accuracy/results/investigation.md``.

Each experiment changes one setting against the benchmark's configuration
(library defaults, ``max_epochs=30``) on the benchmark's own splits, and
reports the target test RMSE, mean ± std over seeds.

- A: the ``"linear"`` backbone trained by AdamW (``solver="gradient"``) at
  ``lr=1e-3`` for 30 epochs, against a larger learning rate, more epochs, a
  hand-written closed-form ridge, and the library's closed-form solver (the
  default for a linear model since the solver parameter was added).
- B: fine-tuning on 10 / 40 target labels: 30 epochs are 30 optimizer steps
  (one batch per epoch); what more steps do.
- C: spectra: per-feature input standardisation (the default) against none,
  and a ``cnn1d`` on the (1, 700) spectrum.
- D: optimizer steps per epoch of ``DomainAdaptRegressor`` without target
  labels. ``source_only`` / ``adabn`` used to iterate over every row,
  unlabelled target rows included, while the divergence methods iterate over
  the source rows; they now iterate over the labelled rows, like the others.
- E: the adaptation weight (``da_weight="auto"`` against smaller and larger
  values) without target labels.
- F: reference constant predictions (source mean, mean of the labelled rows).
- G: ``method="daregram"`` on the fermentation task, seed by seed (it failed
  with a ``LinAlgError`` on seed 4 in the benchmark run, before commit
  86c07e4 moved its Gram algebra to float64).
- H: spectra: ``standardize_X`` per feature (default), ``"global"`` (one scale
  for all wavelengths) and off, for the source model, fine-tuning on 10
  labels, and ``adabn`` without labels.
- I: ``DomainAdaptRegressor("linear", method="adabn")`` on corn with 0, 10 and
  60 labelled target rows, and a small ridge (``weight_decay``): why it gets
  worse with labels.
- J: the demo's linear probe (Chicago -> Beijing, 40 labels, MLP 64-64 source,
  100 epochs): AdamW against the exact closed-form probe, with and without
  ``l2sp`` -- why ``solver="auto"`` leaves linear probes to the optimizer.
"""

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import torch

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

import tasks as T  # noqa: E402

from sktransfer import DomainAdaptRegressor, TransferRegressor  # noqa: E402

EPOCHS = 30


def rmse(model, task):
    pred = np.asarray(model.predict(task.X_test), dtype=float).ravel()
    return float(np.sqrt(np.mean((pred - task.y_test) ** 2)))


def labelled(task, seed, n):
    idx = np.sort(np.random.default_rng(seed).permutation(len(task.y_pool))[:n])
    return task.X_pool[idx], task.y_pool[idx], idx


def unlabelled_target_stack(task):
    """Source rows (labelled) + unlabelled target rows (NaN y), for DA fits."""
    X = np.vstack([task.X_source, task.X_target_unlabelled])
    y = np.concatenate([task.y_source, np.full(len(task.X_target_unlabelled), np.nan)])
    return X, y


def stat(values):
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2g}"


def table(title, header, rows):
    lines = [f"### {title}", "", "| " + " | ".join(header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------- A: linear
def exp_a(seeds):
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    rows = []
    for name in ("weather-temp Chicago->Beijing", "corn-oil m5->mp5"):
        task = T.task_builders()[name]()
        configs = {
            "AdamW lr=1e-3, 30 epochs (the default before the closed form)": dict(
                lr=1e-3, max_epochs=EPOCHS
            ),
            "AdamW lr=1e-2, 30 epochs": dict(lr=1e-2, max_epochs=EPOCHS),
            "AdamW lr=1e-3, 300 epochs": dict(lr=1e-3, max_epochs=300),
            "AdamW lr=1e-2, 300 epochs": dict(lr=1e-2, max_epochs=300),
        }
        for label, kw in configs.items():
            kw = dict(kw, solver="gradient")
            src_r, tl_r = [], []
            for s in seeds:
                src = TransferRegressor("linear", random_state=s, **kw)
                src.fit(task.X_source, task.y_source)
                src_r.append(rmse(src, task))
                X, y, _ = labelled(task, s, 10)
                tl = TransferRegressor(src, l2sp=0.01, random_state=s, **kw).fit(X, y)
                tl_r.append(rmse(tl, task))
            rows.append([name, label, stat(src_r), stat(tl_r)])
        # the library's closed-form solver (solver="auto" for a linear model)
        for l2sp in (0.01, 0.1, 0.2):
            src_r, tl_r = [], []
            for s in seeds:
                src = TransferRegressor("linear", weight_decay=2 / len(task.y_source))
                src.fit(task.X_source, task.y_source)
                src_r.append(rmse(src, task))
                X, y, _ = labelled(task, s, 10)
                tl_r.append(rmse(TransferRegressor(src, l2sp=l2sp).fit(X, y), task))
            rows.append(
                [
                    name,
                    "sktransfer solver='auto' (closed form): source weight_decay="
                    f"2/n (Ridge alpha=1); l2sp={l2sp}",
                    stat(src_r),
                    stat(tl_r),
                ]
            )
        ridge = make_pipeline(StandardScaler(), Ridge()).fit(
            task.X_source, task.y_source
        )
        pred = ridge.predict(task.X_test)
        r = float(np.sqrt(np.mean((pred - task.y_test) ** 2)))
        # closed-form L2-SP toward the ridge source (what a converged optimiser
        # reaches): argmin sum (a b - y)^2 + lam ||b - b_src||^2 in standardised
        # units, intercept included (ADAPT's RegularTransferLR). Our loss is a
        # mean, so l2sp corresponds to lam = n * l2sp / 2.
        scaler, reg = ridge[0], ridge[1]
        mu, sd = task.y_source.mean(), task.y_source.std()
        b_src = np.concatenate([[reg.intercept_ - mu], reg.coef_]) / sd
        A_test = np.column_stack(
            [np.ones(len(task.X_test)), scaler.transform(task.X_test)]
        )
        for l2sp in (0.01, 0.2):
            res = []
            for s in seeds:
                X, y, _ = labelled(task, s, 10)
                A = np.column_stack([np.ones(len(X)), scaler.transform(X)])
                lam = len(X) * l2sp / 2
                b = np.linalg.solve(
                    A.T @ A + lam * np.eye(A.shape[1]),
                    A.T @ ((y - mu) / sd) + lam * b_src,
                )
                p = (A_test @ b) * sd + mu
                res.append(float(np.sqrt(np.mean((p - task.y_test) ** 2))))
            rows.append(
                [
                    name,
                    f"closed form: Ridge(alpha=1) source; L2-SP l2sp={l2sp} "
                    f"(lam={lam:g})",
                    f"{r:.4g}",
                    stat(res),
                ]
            )
    return table(
        "A. backbone='linear': source model and linear+l2sp (10 labels)",
        ["task", "training", "source-only RMSE", "linear+l2sp, 10 labels"],
        rows,
    )


# ------------------------------------------------------------ B: fine-tune
def exp_b(seeds):
    rows = []
    for name in ("weather-temp Chicago->Beijing", "synthetic-concept"):
        task = T.task_builders()[name]()
        srcs = {
            s: TransferRegressor(max_epochs=EPOCHS, random_state=s).fit(
                task.X_source, task.y_source
            )
            for s in seeds
        }
        for n in (10, 40):
            for label, kw in {
                "30 epochs (benchmark)": dict(max_epochs=EPOCHS),
                "100 epochs (library default)": dict(max_epochs=100),
                "300 epochs": dict(max_epochs=300),
                "30 epochs, batch_size=8": dict(max_epochs=EPOCHS, batch_size=8),
                "30 epochs, backbone_lr=1.0": dict(max_epochs=EPOCHS, backbone_lr=1.0),
            }.items():
                res = {"full": [], "lp_ft": [], "target-only": []}
                for s in seeds:
                    X, y, _ = labelled(task, s, n)
                    for strat in ("full", "lp_ft"):
                        m = TransferRegressor(
                            srcs[s], finetune=strat, random_state=s, **kw
                        )
                        res[strat].append(rmse(m.fit(X, y), task))
                    m = TransferRegressor(random_state=s, **kw).fit(X, y)
                    res["target-only"].append(rmse(m, task))
                rows.append(
                    [
                        name,
                        n,
                        label,
                        *(stat(res[k]) for k in ("full", "lp_ft", "target-only")),
                    ]
                )
        src_r = [rmse(m, task) for m in srcs.values()]
        rows.append([name, "-", "source model as is", stat(src_r), "", ""])
    return table(
        "B. fine-tuning budget: optimizer steps on few target labels",
        ["task", "labels", "budget", "TR full", "TR lp_ft", "target-only TR mlp"],
        rows,
    )


# --------------------------------------------------------------- C: spectra
def exp_c(seeds):
    rows = []
    task = T.task_builders()["corn-oil m5->mp5"]()
    configs = {
        "mlp, standardize_X=True (default)": dict(),
        "mlp, standardize_X=False": dict(standardize_X=False),
        "mlp, standardize_X=True, 300 epochs": dict(max_epochs=300),
        "mlp, standardize_X=False, 300 epochs": dict(
            standardize_X=False, max_epochs=300
        ),
        "cnn1d, input_shape=(1, 700)": dict(backbone="cnn1d", input_shape=(1, 700)),
    }
    for label, kw in configs.items():
        kw = {"max_epochs": EPOCHS, **kw}
        src_r, ft_r = [], []
        for s in seeds:
            src = TransferRegressor(random_state=s, **kw).fit(
                task.X_source, task.y_source
            )
            src_r.append(rmse(src, task))
            X, y, _ = labelled(task, s, 10)
            # input_shape is not inherited from a fitted backbone: repeat it
            ft = TransferRegressor(
                src,
                input_shape=kw.get("input_shape"),
                max_epochs=kw["max_epochs"],
                random_state=s,
            )
            ft_r.append(rmse(ft.fit(X, y), task))
        rows.append([label, stat(src_r), stat(ft_r)])
    return table(
        "C. corn m5->mp5 spectra: input scaling and backbone",
        ["source model", "source-only RMSE", "TR full, 10 labels"],
        rows,
    )


# ------------------------------------------------------------ D: DA epochs
def exp_d(seeds):
    rows = []
    for name in ("fermentation-glucose lab->online", "weather-temp Chicago->Beijing"):
        task = T.task_builders()[name]()
        X, y = unlabelled_target_stack(task)
        for method in ("source_only", "adabn", "coral"):
            res, secs, steps = [], [], 0
            for s in seeds:
                m = DomainAdaptRegressor(
                    method=method, max_epochs=EPOCHS, random_state=s
                )
                start = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m.fit(X, y)
                secs.append(time.perf_counter() - start)
                steps = len(m.history_[-1, "batches"])
                res.append(rmse(m, task))
            rows.append(
                [
                    name,
                    method,
                    len(task.y_source),
                    len(task.X_target_unlabelled),
                    steps,
                    f"{np.mean(secs):.2f}",
                    stat(res),
                ]
            )
    return table(
        "D. DomainAdaptRegressor, 0 labels: optimizer steps per epoch",
        [
            "task",
            "method",
            "source rows",
            "target rows",
            "steps/epoch",
            "fit s",
            "RMSE",
        ],
        rows,
    )


# ------------------------------------------------------------ E: da_weight
def exp_e(seeds):
    rows = []
    for name in (
        "weather-temp Chicago->Beijing",
        "weather-temp Mumbai->San Diego",
        "synthetic-instrument",
    ):
        task = T.task_builders()[name]()
        X, y = unlabelled_target_stack(task)
        for method in ("coral", "mmd", "dann"):
            for w in ("auto", 0.0, "auto/10", "auto*10"):
                from sktransfer._domain_adapt import DEFAULT_DA_WEIGHTS

                base = DEFAULT_DA_WEIGHTS[method]
                weight = {
                    "auto": "auto",
                    "auto/10": base / 10,
                    "auto*10": base * 10,
                }.get(w, w)
                res = []
                for s in seeds:
                    m = DomainAdaptRegressor(
                        method=method,
                        da_weight=weight,
                        max_epochs=EPOCHS,
                        random_state=s,
                    )
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        m.fit(X, y)
                    res.append(rmse(m, task))
                label = f"{w} ({weight if w != 'auto' else base})"
                rows.append([name, method, label, stat(res)])
    return table(
        "E. adaptation weight, 0 target labels",
        ["task", "method", "da_weight", "RMSE"],
        rows,
    )


# ------------------------------------------------- F: constant references
def exp_f(seeds):
    rows = []
    for name, build in T.task_builders().items():
        task = build()

        def const(value, task=task):
            return float(np.sqrt(np.mean((value - task.y_test) ** 2)))

        mean10 = [const(labelled(task, s, 10)[1].mean()) for s in seeds]
        rows.append(
            [
                name,
                f"{task.y_test.std():.4g}",
                f"{const(task.y_source.mean()):.4g}",
                stat(mean10),
                f"{const(task.y_pool.mean()):.4g}",
            ]
        )
    return table(
        "F. reference: constant predictions (no model)",
        [
            "task",
            "std of test y",
            "source mean",
            "mean of 10 labelled target rows",
            "mean of the whole target pool",
        ],
        rows,
    )


# --------------------------------------------- G: DARE-GRAM failure check
def exp_g(seeds):
    task = T.task_builders()["fermentation-glucose lab->online"]()
    rows = []
    for n in (0, 10):
        for s in range(5):
            X_tgt = task.X_target_unlabelled
            y_tgt = np.full(len(X_tgt), np.nan)
            _, _, idx = labelled(task, s, n)
            y_tgt[idx] = task.y_pool[idx]
            X = np.vstack([task.X_source, X_tgt])
            y = np.concatenate([task.y_source, y_tgt])
            dom = np.r_[np.zeros(len(task.X_source), int), -np.ones(len(X_tgt), int)]
            m = DomainAdaptRegressor(
                method="daregram", max_epochs=EPOCHS, random_state=s
            )
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    m.fit(X, y, sample_domain=dom)
                out = f"ok, RMSE {rmse(m, task):.4g}"
            except Exception as exc:
                out = f"{type(exc).__name__}: {str(exc)[:90]}"
            rows.append([n, s, out])
    return table(
        "G. DomainAdaptRegressor(method='daregram') on the fermentation task, "
        "seeds 0-4 (21 source rows, 128 features)",
        ["labels", "seed", "result"],
        rows,
    )


# ---------------------------------------------------- H: spectra scaling
def exp_h(seeds):
    rows = []
    for name in (
        "corn-oil m5->mp5",
        "corn-oil m5->mp6",
        "fermentation-glucose lab->online",
    ):
        task = T.task_builders()[name]()
        X_da, y_da = unlabelled_target_stack(task)
        for mode in (True, "global", False):
            src_r, ft_r, da_r = [], [], []
            for s in seeds:
                kw = dict(max_epochs=EPOCHS, random_state=s)
                src = TransferRegressor(standardize_X=mode, **kw)
                src.fit(task.X_source, task.y_source)
                src_r.append(rmse(src, task))
                X, y, _ = labelled(task, s, 10)
                ft_r.append(rmse(TransferRegressor(src, **kw).fit(X, y), task))
                da = DomainAdaptRegressor(method="adabn", standardize_X=mode, **kw)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    da.fit(X_da, y_da)
                da_r.append(rmse(da, task))
            label = {True: "per feature (default)", False: "off"}.get(mode, mode)
            rows.append([name, label, stat(src_r), stat(ft_r), stat(da_r)])
    return table(
        "H. spectra: standardize_X",
        ["task", "standardize_X", "source-only", "TR full, 10 labels", "adabn, 0"],
        rows,
    )


# --------------------------------------------- I: linear adabn with labels
def exp_i(seeds):
    rows = []
    task = T.task_builders()["corn-oil m5->mp5"]()
    n_pool = len(task.y_pool)
    X = np.vstack([task.X_source, task.X_pool])
    domain = np.r_[np.zeros(len(task.y_source)), -np.ones(n_pool)].astype(int)
    for n in (0, 10, 60):
        for wd in (0.0, 1e-4, 1e-3, 1e-2):
            res = []
            for s in seeds:
                y_pool = np.full(n_pool, np.nan)
                _, y_lab, idx = labelled(task, s, n)
                y_pool[idx] = y_lab
                y = np.concatenate([task.y_source, y_pool])
                m = DomainAdaptRegressor("linear", method="adabn", weight_decay=wd)
                res.append(rmse(m.fit(X, y, sample_domain=domain), task))
            rows.append([n, wd, stat(res)])
    return table(
        "I. corn m5->mp5: DomainAdaptRegressor('linear', method='adabn') with "
        "labelled target rows",
        ["target labels", "weight_decay", "RMSE"],
        rows,
    )


# ------------------------------------------- J: closed-form linear probe
def exp_j(seeds):
    from sktransfer.datasets import load_weather

    Xs, ys = load_weather("Chicago", "avg_temp")
    Xt, yt = load_weather("Beijing", "avg_temp")
    X_lab, y_lab, X_test, y_test = Xt[:40], yt[:40], Xt[365:], yt[365:]
    configs = {
        "AdamW, 100 epochs (solver='auto')": dict(),
        "closed form, l2sp=0": dict(solver="closed_form"),
        "closed form, l2sp=0.1": dict(solver="closed_form", l2sp=0.1),
        "closed form, l2sp=1": dict(solver="closed_form", l2sp=1.0),
    }
    res = {k: [] for k in configs}
    for s in seeds:
        kw = dict(backbone_params={"hidden_sizes": (64, 64)}, random_state=s)
        src = TransferRegressor(max_epochs=100, **kw).fit(Xs, ys)
        for label, extra in configs.items():
            probe = TransferRegressor(
                src, finetune="linear_probe", max_epochs=100, random_state=s, **extra
            ).fit(X_lab, y_lab)
            pred = probe.predict(X_test)
            res[label].append(float(np.sqrt(np.mean((pred - y_test) ** 2))))
    return table(
        "J. the demo's linear probe: Chicago -> Beijing, 40 labels, MLP 64-64",
        ["probe", "RMSE on Beijing's second year"],
        [[k, stat(v)] for k, v in res.items()],
    )


EXPERIMENTS = {
    "A": exp_a,
    "B": exp_b,
    "C": exp_c,
    "D": exp_d,
    "E": exp_e,
    "F": exp_f,
    "G": exp_g,
    "H": exp_h,
    "I": exp_i,
    "J": exp_j,
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--only", nargs="*", default=list(EXPERIMENTS))
    parser.add_argument("--out", default=str(HERE / "results" / "investigation.md"))
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    seeds = list(range(args.seeds))
    parts = [
        "# Investigation: default settings on the benchmark's tasks",
        "",
        f"Command: `python benchmarks/accuracy/investigate.py --seeds {args.seeds}` "
        "(one process, one torch thread; `--only` reruns some sections).",
        f"Target test RMSE, mean ± std over {len(seeds)} seeds; benchmark splits.",
        "",
    ]
    for key in args.only:
        start = time.perf_counter()
        parts.append(EXPERIMENTS[key](seeds))
        print(f"experiment {key}: {time.perf_counter() - start:.0f} s", flush=True)
        print(parts[-1], flush=True)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sections = {p[4] if p.startswith("### ") else "": p for p in parts[5:]}
    if out.exists() and args.only != list(EXPERIMENTS):
        # keep the other experiments' sections, in letter order
        for old in out.read_text().split("\n### ")[1:]:
            sections.setdefault(old[0], "### " + old)
    body = [sections[k].rstrip("\n") + "\n" for k in sorted(sections)]
    out.write_text("\n".join(parts[:5] + body))


if __name__ == "__main__":
    main()
