"""The package's shape: imports run one way through the layers, with no cycle (not even a type-only one),
and the CLI starts light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "flowsim"
#: Layers, lowest first: a module may import its own layer or any lower one, never a higher.
LAYERS = [
    "errors",
    "_validation",
    "model",
    "dynamics",
    "experiment",
    "integrations",
    "analysis",
    "plotting",
    "app",
    "cli",
]


def _layer(module: str) -> int:
    """The layer index of a dotted flowsim module name ('flowsim' itself and __main__ are the top)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "__init__"):
        return len(LAYERS)
    return LAYERS.index(parts[1])


def _modules(package: Path = PACKAGE):
    """(dotted name, path) of every module of ``package``, a package's __init__ named as the package."""
    for path in sorted(package.rglob("*.py")):
        rel = path.relative_to(package.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def _imports(path: Path, name: str = "", known: frozenset[str] = frozenset()) -> set[str]:
    """The package's modules ``path`` imports, wherever the import is: at the top, in a function, or
    under ``if TYPE_CHECKING:`` (a type-only import is still an edge of the graph).

    Relative imports are resolved against ``name``; ``from pkg import sub`` names the module
    ``pkg.sub`` when it is one of ``known``.
    """
    top = (name or PACKAGE.name).split(".")[0]
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from .x import y, inside package ``name`` (or its parent for a module)
                pkg = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
                base = ".".join(pkg[: len(pkg) - node.level + 1] + ([base] if base else []))
            if base.split(".")[0] != top:
                continue
            subs = {f"{base}.{a.name}" for a in node.names} & known
            out |= subs or {base}
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.split(".")[0] == top}
    return out


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package's modules it imports (every import: top level, local, type-only)."""
    mods = dict(_modules(package))
    known = frozenset(mods)
    return {name: _imports(path, name, known) - {name} for name, path in mods.items()}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted: the cycles."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in graph:
                continue
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


#: Every module but the package itself, whose lazy re-exports name modules of every layer (tested below).
LAYERED = [(name, path) for name, path in _modules() if name != "flowsim"]


@pytest.mark.parametrize(("name", "path"), LAYERED, ids=lambda v: v if isinstance(v, str) else "")
def test_imports_run_one_way(name, path):
    mine = _layer(name)
    upward = [m for m in _imports(path) if m != "flowsim" and _layer(m) > mine]
    assert not upward, f"{name} (layer {LAYERS[mine] if mine < len(LAYERS) else 'top'}) imports {upward}"


def test_the_package_imports_nothing_of_its_own_and_every_re_export_resolves():
    import importlib

    import flowsim

    assert _imports(PACKAGE / "__init__.py") == set()  # lazily: importlib.import_module on first use
    assert len(LAYERED) == len(list(_modules())) - 1 > 50
    for name in flowsim.__all__:
        obj = getattr(flowsim, name)
        assert obj is getattr(importlib.import_module(flowsim._EXPORTS[name]), name), name
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        flowsim.nope  # noqa: B018


def test_no_import_cycles_not_even_type_only():
    # a cycle that only type checkers follow still ties two modules into one unit (issue #26)
    assert import_cycles(import_graph()) == []


def test_the_cycle_check_sees_type_only_local_and_relative_imports(tmp_path):
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    type_only = "from typing import TYPE_CHECKING\n\nif TYPE_CHECKING:\n    from pkg.sub.b import B\n"
    (pkg / "sub" / "a.py").write_text(type_only)
    (pkg / "sub" / "b.py").write_text("from . import a\n")
    (pkg / "c.py").write_text("def f():\n    from pkg.sub import a\n")
    graph = import_graph(pkg)
    assert graph["pkg.sub.a"] == {"pkg.sub.b"} and graph["pkg.sub.b"] == {"pkg.sub.a"}
    assert graph["pkg.c"] == {"pkg.sub.a"}
    assert import_cycles(graph) == [["pkg.sub.a", "pkg.sub.b"]]
    (pkg / "sub" / "a.py").write_text("B = 1\n")
    assert import_cycles(import_graph(pkg)) == []


def test_analysis_does_not_import_plotting():
    for name, path in _modules():
        if name.startswith("flowsim.analysis"):
            assert not any(m.startswith("flowsim.plotting") for m in _imports(path)), name


def test_the_cli_imports_no_numerics():
    # `flowsim --help` must not pay for numpy, scipy, pandas or matplotlib
    code = (
        "import sys, flowsim.cli; "
        "print(sorted(m for m in ('numpy', 'scipy', 'pandas', 'matplotlib') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"
