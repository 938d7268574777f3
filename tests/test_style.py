"""Ruff lints and formats the whole tree, no file exempt; functions stay short
and the package has no import cycles (issue 9)."""

import ast
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
RUFF = shutil.which("ruff")


@pytest.mark.skipif(RUFF is None, reason="ruff is installed by the 'test' extra")
@pytest.mark.parametrize("args", [["check", "."], ["format", "--check", "."]])
def test_ruff(args):
    result = subprocess.run([RUFF, *args], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


PACKAGE = Path(__file__).resolve().parents[1] / "sktransfer"


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        yield name, ast.parse(path.read_text())


def test_no_function_is_longer_than_60_lines_without_its_docstring():
    long = []
    for name, tree in _modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                n = node.end_lineno - node.lineno + 1
                if ast.get_docstring(node) is not None:
                    doc = node.body[0]
                    n -= doc.end_lineno - doc.lineno + 1
                if n > 60:
                    long.append(f"{name}.{node.name}: {n} lines")
    assert not long, long


def test_the_package_has_no_import_cycles():
    modules = dict(_modules())

    def owner(target):
        while target not in modules and "." in target:
            target = target.rsplit(".", 1)[0]
        return target

    graph = {
        name: {
            owner(node.module)
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("sktransfer")
            and owner(node.module) != name
        }
        for name, tree in modules.items()
    }
    state, cycles = {}, []

    def visit(name, stack):
        state[name] = "open"
        for dep in graph.get(name, ()):
            if state.get(dep) == "open":
                cycles.append([*stack[stack.index(dep) :], dep])
            elif dep not in state:
                visit(dep, [*stack, dep])
        state[name] = "done"

    for name in graph:
        if name not in state:
            visit(name, [name])
    assert not cycles, cycles
