"""Helpers shared by the benchmark scripts, each written once.

- the package's lists of adaptation methods and fine-tuning strategies (read
  from its registries, never copied), and the benchmark's column order;
- the protocol pieces: the labelled target rows a seed draws, and the source +
  target stack that ``DomainAdaptRegressor`` is fitted on;
- the metric: the target test RMSE;
- reading a results CSV and writing Markdown tables.

Used by ``run.py``, ``methods.py``, ``report.py``, ``compare.py`` and
``investigate.py`` (this folder), and by ``../da_methods.py``.
"""

import csv

import numpy as np


# ------------------------------------------------------ the package's lists
# Imported when called, so that compare.py does not import torch.
def list_methods():
    """Adaptation method names, in the package's registration order."""
    from sktransfer.adaptation import list_methods as registered

    return registered()


def list_strategies():
    """Fine-tuning strategy names, in the package's registration order."""
    from sktransfer.finetuning import list_strategies as registered

    return registered()


def default_da_weight(method):
    """The adaptation weight that ``da_weight="auto"`` gives ``method``."""
    from sktransfer.adaptation import get_method

    return get_method(method).default_weight


def in_order(names, first):
    """``names`` with those in ``first`` first, in that order; the others
    follow in their own order (a name of ``first`` not in ``names`` is
    dropped)."""
    rank = {name: i for i, name in enumerate(first)}
    return sorted(names, key=lambda name: rank.get(name, len(rank)))


# ----------------------------------------------------------- the protocol
def labelled_rows(task, seed, n):
    """Sorted pool indices of the ``n`` target rows that ``seed`` labels.

    One permutation of the pool per seed, so the regimes are nested (the 10
    labelled rows are among the 40).
    """
    return np.sort(np.random.default_rng(seed).permutation(len(task.y_pool))[:n])


def da_stack(X_source, y_source, X_target, y_target=None):
    """Source rows, then target rows, as ``DomainAdaptRegressor.fit`` takes them.

    ``y_target``: NaN where a target row is unlabelled (default: every row).
    Returns ``X, y, sample_domain`` (0 for source rows, -1 for target rows).
    """
    if y_target is None:
        y_target = np.full(len(X_target), np.nan)
    X = np.vstack([X_source, X_target])
    y = np.concatenate([y_source, y_target])
    domain = np.concatenate(
        [np.zeros(len(X_source), int), -np.ones(len(X_target), int)]
    )
    return X, y, domain


def task_stack(task, labelled=None):
    """:func:`da_stack` of a benchmark task: its source rows and every target
    row usable without its label (the pool first), the pool rows ``labelled``
    (indices) keeping their label."""
    X_tgt = task.X_target_unlabelled
    y_tgt = np.full(len(X_tgt), np.nan)
    if labelled is not None:
        y_tgt[labelled] = task.y_pool[labelled]
    return da_stack(task.X_source, task.y_source, X_tgt, y_tgt)


# -------------------------------------------------------------- the metric
def rmse(pred, y):
    """Root mean squared error; ``pred`` is raveled (a scalar is a constant
    prediction)."""
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=float).ravel() - y) ** 2)))


# ---------------------------------------------------------- files, tables
def read_rows(csv_path):
    """The rows of a results CSV, as dicts of strings."""
    with open(csv_path, newline="") as fh:
        return list(csv.DictReader(fh))


def md_table(header, rows):
    """A Markdown table (no trailing newline); cells are written with str()."""
    lines = ["| " + " | ".join(str(c) for c in header) + " |"]
    lines.append("|" + "---|" * len(header))
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def stat(values):
    """``mean ± std`` (4 and 2 significant digits; std 0 for one value)."""
    v = np.asarray(values, dtype=float)
    return f"{v.mean():.4g} ± {v.std(ddof=1) if len(v) > 1 else 0.0:.2g}"


def write_csv(rows, path):
    """Rows of dicts to a CSV file, floats with 6 significant digits."""
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        for r in rows:
            writer.writerow(
                {k: f"{v:.6g}" if isinstance(v, float) else v for k, v in r.items()}
            )
