"""Sphinx configuration of the sktransfer documentation.

Build (warnings are errors)::

    pip install -e ".[docs,data]"   # data: the gallery's real data sets
    python -m sphinx -W --keep-going -b html docs docs/_build/html

The Markdown pages of docs/ are the site's pages (myst-parser); the API
reference (reference.rst) is generated from the numpydoc docstrings by
autosummary into docs/generated/ (not committed).
"""

import importlib.util
import os
import sys
from pathlib import Path

from sphinx import addnodes
from sphinx.transforms import SphinxTransform

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the checkout's sktransfer, installed or not

import torch  # noqa: E402

import sktransfer  # noqa: E402

# The gallery's examples run in this process. Their networks are small: one
# torch thread runs them 5-10x faster than the default on a busy 2-core
# machine (see performance.md, "Threads, n_jobs and GPUs").
torch.set_num_threads(1)

project = "sktransfer"
author = "sktransfer developers"
copyright = "sktransfer developers"
release = version = sktransfer.__version__

extensions = [
    "myst_parser",
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "examples"]  # examples/: sphinx-gallery's sources
templates_path = ["_templates"]

# Markdown: headings get anchors down to ### so that links such as
# benchmarks.md#cnn1d-against-the-mlp resolve; tables and $...$ stay as written.
myst_heading_anchors = 3
myst_enable_extensions = ["colon_fence"]

# API reference: autosummary writes one page per object into generated/;
# numpydoc renders the docstrings. The class pages list their public methods
# through the template, so numpydoc's own member tables would repeat them.
autosummary_generate = True
autosummary_imported_members = False
autodoc_typehints = "none"
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_xref_param_type = False

# Gallery: docs/examples/plot_*.py run at build time (offline, CPU, seconds
# each) into auto_examples/ (not committed), their figures captured.
# ``-D plot_gallery=0`` builds the pages without running them
# (tests/test_sphinx.py does; tests/test_examples.py runs the scripts).
sphinx_gallery_conf = {
    "examples_dirs": "examples",
    "gallery_dirs": "auto_examples",
    "filename_pattern": "/plot_",
    "within_subsection_order": "FileNameSortKey",
    "download_all_examples": False,
    "capture_repr": (),
    "remove_config_comments": True,
    "write_computation_times": False,
    "reset_modules": ("matplotlib",),
}

html_theme = (
    "pydata_sphinx_theme"
    if importlib.util.find_spec("pydata_sphinx_theme")
    else "alabaster"
)
html_title = f"sktransfer {release}"
html_static_path = []


def _skip_foreign_member(app, what, name, obj, skip, options):
    """Document a class's own and sktransfer-inherited members only.

    ``:inherited-members:`` brings the methods of sktransfer's private bases
    (``fit``, ``predict``, ...) onto the public classes' pages; the ones that
    come from scikit-learn or torch (``get_params``, ``set_params``,
    ``torch.nn.Module.to``, ``train``, ...) are documented there, not here.
    """
    if what != "class" or skip:
        return None
    module = getattr(obj, "__module__", None) or ""
    if isinstance(obj, property):
        module = getattr(obj.fget, "__module__", "") or ""
    return None if module.startswith("sktransfer") else True


class _LinksOutsideDocs(SphinxTransform):
    """Markdown links to files of the repository outside docs/ become downloads.

    docs/benchmarks.md links the benchmark results (``../benchmarks/...md``),
    which GitHub renders but which are not pages of this site. myst-parser
    takes an existing ``.md`` file for a document and warns that it is not
    one; a ``.csv`` or ``.png`` next to it, it already turns into a download.
    This does the same for the Markdown files: a link to an existing file
    outside docs/ is copied into the site, a link to anything missing still
    warns.
    """

    default_priority = 870  # before DoctreeReadEvent (880) collects downloads

    def apply(self, **kwargs):
        srcdir = Path(self.env.srcdir).resolve()
        here = Path(self.env.doc2path(self.env.docname)).parent
        for node in list(self.document.findall(addnodes.pending_xref)):
            if node.get("reftype") != "myst" or node.get("refdomain") != "doc":
                continue
            target = Path(node["reftarget"])
            files = [target.with_name(target.name + s) for s in source_suffix]
            files = [f.resolve() for f in files if target.is_absolute() and f.is_file()]
            if len(files) != 1 or srcdir in files[0].parents:
                continue
            download = addnodes.download_reference(
                refdomain=None,
                reftarget=os.path.relpath(files[0], here),
                refdoc=node["refdoc"],
                reftype="myst",
                refexplicit=node["refexplicit"],
            )
            download.extend(node.children)
            node.replace_self(download)


def setup(app):
    app.connect("autodoc-skip-member", _skip_foreign_member)
    app.add_transform(_LinksOutsideDocs)
