"""ONNX export: does onnxruntime predict what ``predict`` does, and how fast?

For each built-in backbone at its default size (``linear``, ``mlp`` 128-128,
``cnn1d`` and ``gru`` on 64-value rows read as ``(1, 64)``), a
``Pipeline(StandardScaler(), TransferRegressor(...))`` is fitted for 5 epochs
on 2000 rows of the synthetic instrument shift, exported with
:func:`sktransfer.onnx.to_onnx` (float64 graph), and compared with
``pipe.predict`` on 2000 other rows: the largest absolute difference relative
to the spread of the predictions, the export time, the model size, and the
time of predicting one row (``pipe.predict`` against ``InferenceSession.run``,
the fastest of 300 calls each, one torch and one onnxruntime thread).
Quoted in the user guide, section 9; writes ``results/onnx_export.md``.

    python benchmarks/onnx_export.py     # about a minute on 2 cores
"""

import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from sktransfer import TransferRegressor
from sktransfer.datasets import make_domain_shift
from sktransfer.onnx import to_onnx

N_FEATURES = 64
BACKBONES = {
    "linear": {},
    "mlp": {},
    "cnn1d": {"input_shape": (1, N_FEATURES)},
    "gru": {"input_shape": (1, N_FEATURES)},
}
OUT = Path(__file__).resolve().parent / "results" / "onnx_export.md"


def fastest_time(fn, calls=300):
    """The fastest of ``calls`` calls (the least disturbed by other load)."""
    times = []
    for _ in range(calls):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.min(times))


def measure(backbone, settings, X, y, X_test):
    pipe = make_pipeline(
        StandardScaler(),
        TransferRegressor(backbone, max_epochs=5, random_state=0, **settings),
    ).fit(X, y)
    start = time.perf_counter()
    onx = to_onnx(pipe, X[:5])
    export_s = time.perf_counter() - start
    options = ort.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    session = ort.InferenceSession(
        onx.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    expected = pipe.predict(X_test)
    got = session.run(None, {"X": X_test})[0]
    relative = float(np.abs(got - expected).max() / expected.std())
    row = X_test[:1]
    predict_s = fastest_time(lambda: pipe.predict(row))
    onnx_s = fastest_time(lambda: session.run(None, {"X": row}))
    return {
        "backbone": backbone,
        "max abs(onnx - predict) / std(predict)": f"{relative:.1e}",
        "export (s, wall)": f"{export_s:.1f}",
        "model (kB)": f"{len(onx.SerializeToString()) / 1024:.0f}",
        "predict, 1 row (µs)": f"{predict_s * 1e6:.0f}",
        "onnxruntime, 1 row (µs)": f"{onnx_s * 1e6:.0f}",
    }


def main():
    torch.set_num_threads(1)
    warnings.simplefilter("ignore")
    Xs, ys, Xt, _ = make_domain_shift(2000, 2000, n_features=N_FEATURES, random_state=0)
    rows = [measure(b, s, Xs, ys, Xt) for b, s in BACKBONES.items()]
    header = list(rows[0])
    lines = [
        "# ONNX export",
        "",
        "Output of `python benchmarks/onnx_export.py` (2 CPU cores, one thread; "
        "one-row times: the fastest of 300 calls).",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(r[h] for h in header) + " |" for r in rows),
        "",
    ]
    text = "\n".join(lines)
    OUT.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
