"""Speed benchmark: sktransfer estimators against a hand-written PyTorch loop.

Run: ``python benchmarks/speed.py`` (add ``--quick`` for a smoke run,
``--device cuda`` on a GPU machine). Everything runs in one process,
interleaved (baseline and ours alternate in every repetition), and the table
reports the median over ``--repeats`` repetitions and the ratio ours/baseline.
Peak memory is measured in fresh subprocesses (peak RSS).

Cases
-----
- fit, MLP 32-128-128-1 on 20 000 rows, batch 128, 5 epochs, ``finetune="full"``.
- fit, ``cnn1d`` on 8 000 rows of shape (4, 64), batch 128, 5 epochs.
- fit, ``DomainAdaptRegressor`` (coral, dann) against a plain loop computing
  the same losses on the same balanced source/target batches.
- single-row ``predict`` latency against calling the module.
- batched ``predict`` throughput (20 000 rows) against calling the module.
- peak RSS during fit, ours minus the plain loop, against the size of one
  float32 copy of X and y.
"""

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time
import warnings

import numpy as np
import torch

from sktransfer import DomainAdaptRegressor, TransferRegressor
from sktransfer.losses import DomainDiscriminator, coral_loss, dann_loss

N, D, BATCH, EPOCHS, LR = 20_000, 32, 128, 5, 1e-3
SEQ = (4, 64)


def make_data(n=N, shape=(D,), seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, int(np.prod(shape))))
    y = np.tanh(X[:, :8]).sum(1) + 0.1 * rng.normal(size=n)
    return X, y  # float64, as users usually pass them


# --------------------------------------------------------------- plain loops
def plain_fit(module, X, y, device, epochs=EPOCHS, batch=BATCH):
    """The loop a user would write: permute, slice, forward, backward, step."""
    torch.manual_seed(0)
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    yt = torch.as_tensor(y, dtype=torch.float32, device=device).reshape(-1, 1)
    module.to(device).train()
    opt = torch.optim.AdamW(module.parameters(), lr=LR, weight_decay=0.0)
    n = Xt.shape[0]
    for _ in range(epochs):
        perm = torch.randperm(n, device=device)
        for i in range(0, n, batch):
            idx = perm[i : i + batch]
            opt.zero_grad()
            loss = torch.nn.functional.mse_loss(module(Xt[idx]), yt[idx])
            loss.backward()
            opt.step()
    return module


def plain_da_fit(network, X, y, target_mask, method, device, weight):
    """Balanced source/target batches; MSE on source + weight * divergence."""
    torch.manual_seed(0)
    Xt = torch.as_tensor(X, dtype=torch.float32, device=device)
    yt = torch.as_tensor(np.nan_to_num(y), dtype=torch.float32, device=device)
    yt = yt.reshape(-1, 1)
    src = torch.as_tensor(np.flatnonzero(~target_mask), device=device)
    tgt = torch.as_tensor(np.flatnonzero(target_mask), device=device)
    network.to(device).train()
    params = list(network.parameters())
    disc = None
    if method == "dann":
        disc = DomainDiscriminator(network.n_features_out).to(device)
        params += list(disc.parameters())
    opt = torch.optim.AdamW(params, lr=LR, weight_decay=0.0)
    steps = -(-len(src) // BATCH)
    for _ in range(EPOCHS):
        s_perm = src[torch.randperm(len(src), device=device)]
        reps = -(-steps * BATCH // len(tgt))
        t_perm = torch.cat(
            [tgt[torch.randperm(len(tgt), device=device)] for _ in range(reps)]
        )
        for k in range(steps):
            s_idx = s_perm[k * BATCH : (k + 1) * BATCH]
            t_idx = t_perm[k * BATCH : (k + 1) * BATCH]
            opt.zero_grad()
            xb = Xt[torch.cat([s_idx, t_idx])]
            pred, feats = network.forward_with_features(xb)
            ns = len(s_idx)
            loss = torch.nn.functional.mse_loss(pred[:ns], yt[s_idx])
            if method == "coral":
                da = coral_loss(feats[:ns], feats[ns:])
            else:
                da = dann_loss(feats[:ns], feats[ns:], disc)
            (loss + weight * da).backward()
            opt.step()
    return network


# ---------------------------------------------------------------- our side
def ours(backbone, device, **kw):
    return TransferRegressor(
        backbone,
        max_epochs=EPOCHS,
        batch_size=BATCH,
        lr=LR,
        random_state=0,
        device=device,
        **kw,
    )


def timed(fn):
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def module_of(est):
    return est.net_.module_


def bench_fit(repeats, device, quick):
    n = 4000 if quick else N
    rows = []
    X, y = make_data(n)
    Xs, ys = make_data(n * 2 // 5, SEQ)
    mlp = {"hidden_sizes": (128, 128)}
    cnn = {"channels": (16, 32), "kernel_size": 5}
    cases = [
        (
            "fit MLP 32-128-128-1",
            lambda: ours("mlp", device, backbone_params=mlp).fit(X, y),
            X,
            y,
            mlp,
            "mlp",
            None,
        ),
        (
            "fit cnn1d (4x64), 8k rows",
            lambda: ours("cnn1d", device, backbone_params=cnn, input_shape=SEQ).fit(
                Xs, ys
            ),
            Xs,
            ys,
            cnn,
            "cnn1d",
            SEQ,
        ),
    ]
    for name, run_ours, Xc, yc, params, bb, shape in cases:
        template = ours(bb, device, backbone_params=params, input_shape=shape)
        template.set_params(max_epochs=1).fit(Xc[:256], yc[:256])
        t_base, t_ours = [], []
        for _ in range(repeats):
            module = _fresh_module(template)
            t_base.append(
                timed(lambda m=module, a=Xc, b=yc: plain_fit(m, a, b, device))
            )
            t_ours.append(timed(run_ours))
        rows.append(_row(name, t_base, t_ours, "s", target="<= 1.15"))
    # domain adaptation
    Xd, yd = make_data(n)
    target = np.zeros(n, dtype=bool)
    target[n // 2 :] = True
    yd = yd.copy()
    yd[target] = np.nan
    for method in ("coral", "dann"):
        est_kw = dict(
            method=method,
            backbone_params=mlp,
            max_epochs=EPOCHS,
            batch_size=BATCH,
            lr=LR,
            da_ramp="constant",
            random_state=0,
            device=device,
        )
        template = DomainAdaptRegressor(**{**est_kw, "max_epochs": 1})
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            template.fit(Xd[:256], yd[:256])
        weight = template.da_weight_
        t_base, t_ours = [], []
        for _ in range(repeats):
            net = _fresh_module(template)
            t_base.append(
                timed(
                    lambda m=net, meth=method, w=weight: plain_da_fit(
                        m, Xd, yd, target, meth, device, w
                    )
                )
            )
            t_ours.append(
                timed(lambda kw=est_kw: DomainAdaptRegressor(**kw).fit(Xd, yd))
            )
        rows.append(_row(f"fit DA {method}", t_base, t_ours, "s", target="<= 1.25"))
    return rows


def _fresh_module(est):
    """A copy of the estimator's network with re-initialised parameters."""
    import copy

    module = copy.deepcopy(module_of(est))
    for m in module.modules():
        if hasattr(m, "reset_parameters"):
            m.reset_parameters()
    return module


def bench_predict(repeats, device):
    rows = []
    X, y = make_data(N)
    est = ours("mlp", device, backbone_params={"hidden_sizes": (128, 128)})
    est.set_params(max_epochs=1).fit(X[:2000], y[:2000])
    module = module_of(est).eval()
    one = X[:1].copy()
    one_t = torch.as_tensor(one, dtype=torch.float32, device=device)
    inner = 2000

    def call_module_one():
        with torch.inference_mode():
            for _ in range(inner):
                module(one_t)

    def call_ours_one():
        for _ in range(inner):
            est.predict(one)

    t_base, t_ours = [], []
    for _ in range(repeats):
        t_base.append(timed(call_module_one) / inner * 1e6)
        t_ours.append(timed(call_ours_one) / inner * 1e6)
    rows.append(_row("predict 1 row", t_base, t_ours, "us", target="<= 2"))

    X32 = torch.as_tensor(X, dtype=torch.float32, device=device)

    calls = 10

    def module_all():
        with torch.inference_mode():
            for _ in range(calls):
                for i in range(0, N, 8192):
                    module(X32[i : i + 8192])

    def ours_all():
        for _ in range(calls):
            est.predict(X)

    t_base, t_ours = [], []
    for _ in range(repeats):
        t_base.append(calls * N / timed(module_all))
        t_ours.append(calls * N / timed(ours_all))
    rows.append(
        _row(
            "predict 20k rows (rows/s)",
            t_base,
            t_ours,
            "rows/s",
            target=">= 0.9",
            higher_is_better=True,
        )
    )
    return rows


def _row(name, base, ours_, unit, target, higher_is_better=False):
    b, o = statistics.median(base), statistics.median(ours_)
    return {
        "case": name,
        "baseline": b,
        "ours": o,
        "unit": unit,
        "ratio": o / b,
        "target": target,
        "higher_is_better": higher_is_better,
    }


# ------------------------------------------------------------------ memory
MEM_N = 200_000


def memory_child(kind, device):
    X, y = make_data(MEM_N)
    if kind == "plain":
        template = ours("mlp", device, backbone_params={"hidden_sizes": (128, 128)})
        template.set_params(max_epochs=1).fit(X[:64], y[:64])
        module = _fresh_module(template)
        base = _reset_peak_rss()
        plain_fit(module, X, y, device, epochs=1)
    else:
        template = ours("mlp", device, backbone_params={"hidden_sizes": (128, 128)})
        template.set_params(max_epochs=1).fit(X[:64], y[:64])
        base = _reset_peak_rss()
        ours("mlp", device, backbone_params={"hidden_sizes": (128, 128)}).set_params(
            max_epochs=1
        ).fit(X, y)
    peak = _status_kb("VmHWM")
    print(json.dumps({"base_kb": base, "peak_kb": peak}))


def _status_kb(field):
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def _reset_peak_rss():
    """Reset the peak-RSS mark (Linux) and return the current RSS in kB."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
    except OSError:
        pass
    return _status_kb("VmRSS")


def bench_memory(device):
    out = {}
    for kind in ("plain", "ours"):
        res = subprocess.run(
            [sys.executable, __file__, "--memory-child", kind, "--device", device],
            capture_output=True,
            text=True,
            check=True,
        )
        out[kind] = json.loads(res.stdout.strip().splitlines()[-1])
    one_copy_mb = (MEM_N * D + MEM_N) * 4 / 2**20
    grow = {k: (v["peak_kb"] - v["base_kb"]) / 1024 for k, v in out.items()}
    return {
        "case": f"peak RSS growth during fit, {MEM_N} x {D} float64 input (MB)",
        "baseline": grow["plain"],
        "ours": grow["ours"],
        "unit": "MB",
        "ratio": None,
        "extra_mb": grow["ours"] - grow["plain"],
        "one_float32_copy_mb": one_copy_mb,
        "target": f"extra <= {one_copy_mb:.1f} MB",
    }


def fmt(v, unit):
    if unit == "rows/s":
        return f"{v:,.0f}"
    if unit == "us":
        return f"{v:.1f}"
    return f"{v:.3f}"


def main(argv=None):
    parser = argparse.ArgumentParser(description="sktransfer speed benchmark")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--device", default="cuda" if torch.cuda.is_available() else "cpu"
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", help="also write the rows to this file")
    parser.add_argument("--memory-child", choices=["plain", "ours"])
    args = parser.parse_args(argv)
    if args.memory_child:
        memory_child(args.memory_child, args.device)
        return
    repeats = 2 if args.quick else args.repeats
    start = time.perf_counter()
    rows = bench_fit(repeats, args.device, args.quick) + bench_predict(
        repeats, args.device
    )
    mem = bench_memory(args.device)
    device_name = (
        torch.cuda.get_device_name(0)
        if args.device.startswith("cuda")
        else f"{platform.processor() or platform.machine()}, "
        f"{os.cpu_count()} cores, {torch.get_num_threads()} torch threads"
    )
    print(
        f"sktransfer speed benchmark -- device: {args.device} ({device_name}); "
        f"torch {torch.__version__}; median of {repeats}\n"
    )
    print("| case | plain PyTorch | sktransfer | unit | ratio | target |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['case']} | {fmt(r['baseline'], r['unit'])} | "
            f"{fmt(r['ours'], r['unit'])} | {r['unit']} | {r['ratio']:.2f} | "
            f"{r['target']} |"
        )
    print(
        f"| {mem['case']} | {mem['baseline']:.1f} | {mem['ours']:.1f} | MB | "
        f"+{mem['extra_mb']:.1f} MB | {mem['target']} |"
    )
    print(f"\n({time.perf_counter() - start:.0f} s)")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {"rows": rows, "memory": mem, "device": device_name}, fh, indent=1
            )


if __name__ == "__main__":
    main()
