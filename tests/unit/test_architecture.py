"""The package's shape: imports run one way through the layers, and the CLI starts light."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "flowsim"
#: Layers, lowest first: a module may import its own layer or any lower one, never a higher.
LAYERS = ["_validation", "model", "dynamics", "experiment", "analysis", "plotting", "app", "cli"]


def _layer(module: str) -> int:
    """The layer index of a dotted flowsim module name ('flowsim' itself and __main__ are the top)."""
    parts = module.split(".")
    if len(parts) == 1 or parts[1] in ("__main__", "__init__"):
        return len(LAYERS)
    return LAYERS.index(parts[1])


def _modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        name = ".".join(p for p in rel.parts if p != "__init__")
        yield name, path


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("flowsim"):
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out |= {a.name for a in node.names if a.name.startswith("flowsim")}
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
