"""The Sphinx site builds with warnings as errors, and says what it should.

The build is the documented command (docs/conf.py) into a temporary folder,
with the gallery's pages but without running its examples (tests/test_examples.py
runs them): about 12 s on 2 cores, most of it importing sktransfer and
autodoc. Like the command, it writes the autosummary pages into
docs/generated/ and the gallery's into docs/auto_examples/ (both ignored by
git).
"""

import importlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("sphinx")
pytest.importorskip("myst_parser")
pytest.importorskip("numpydoc")
pytest.importorskip("sphinx_gallery")

DOCS = Path(__file__).resolve().parents[1] / "docs"
MODULES = [
    "sktransfer",
    "sktransfer.adaptation",
    "sktransfer.finetuning",
    "sktransfer.augmentation",
    "sktransfer.backbones",
    "sktransfer.heads",
    "sktransfer.losses",
    "sktransfer.data",
    "sktransfer.model_selection",
    "sktransfer.datasets",
    "sktransfer.plotting",
    "sktransfer.conformal",
    "sktransfer.persistence",
    "sktransfer.onnx",
    "sktransfer.exceptions",
]


def test_site_builds_without_warnings(tmp_path):
    out = tmp_path / "html"
    cmd = [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-E"]
    cmd += ["-j", "1", "-D", "plot_gallery=0"]  # tests/test_examples.py runs them
    cmd += ["-b", "html", str(DOCS), str(out)]
    result = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    pages = {p.relative_to(out).with_suffix("").as_posix() for p in out.rglob("*.html")}
    toc = ["getting_started", "user_guide", "auto_examples/index", "reference"]
    toc += ["api", "architecture"]
    toc += ["benchmarks", "performance", "reliability", "changelog"]
    assert set(toc) <= pages
    index = (out / "index.html").read_text()
    assert all(f'href="{page}.html"' in index for page in toc)
    generated = out / "generated"
    regressor = (generated / "sktransfer.TransferRegressor.html").read_text()
    assert 'id="sktransfer.TransferRegressor.predict"' in regressor
    assert "get_params" not in regressor  # scikit-learn's, documented there
    assert list(out.glob("_downloads/*/results.md"))  # benchmark results linked
    for example in ("weather_transfer", "calibration_transfer", "soft_sensor"):
        assert f"auto_examples/plot_{example}" in pages


def test_reference_lists_every_public_name():
    text = (DOCS / "reference.rst").read_text()
    blocks = re.split(r"^\.\. currentmodule:: ", text, flags=re.M)[1:]
    listed = {}
    for block in blocks:
        module, _, body = block.partition("\n")
        listed[module] = set(re.findall(r"^   (\w+)$", body, flags=re.M))
    assert list(listed) == MODULES
    for name in MODULES:
        public = {n for n in importlib.import_module(name).__all__ if n[0] != "_"}
        assert listed[name] == public, name


def test_getting_started_runs():
    text = (DOCS / "getting_started.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 2
    namespace = {}
    for block in blocks:
        exec(compile(block, str(DOCS / "getting_started.md"), "exec"), namespace)
    assert namespace["target"].score(namespace["X_test"], namespace["y_test"]) > 0.5
    assert namespace["adapted"].score(namespace["X_test"], namespace["y_test"]) > 0.5
