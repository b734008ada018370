"""The package's layers: `core` depends only on verl, torch and the standard library (plus its
own and small third-party helpers), never on the CPU stack or the paper toolkit; `paper`
depends on neither `core` nor `cpu`. Checked on the import statements of every module (AST),
so an import hidden inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import sfpo_verl

PACKAGE = Path(sfpo_verl.__file__).parent

# layer -> packages its modules must not import
FORBIDDEN = {
    "core": ("sfpo_verl.cpu", "sfpo_verl.paper"),
    "paper": ("sfpo_verl.core", "sfpo_verl.cpu"),
}


def imported_modules(path: Path, root: Path = PACKAGE) -> list[tuple[int, str]]:
    """(line, module) of every import in `path` (a module under the package folder `root`),
    relative imports resolved."""
    tree = ast.parse(path.read_text(), filename=str(path))
    package = ".".join(("sfpo_verl", *path.relative_to(root).with_suffix("").parts[:-1]))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{parent}.{base}" if base else parent
            found.append((node.lineno, base))
            # `from sfpo_verl import cpu` imports sfpo_verl.cpu
            found += [(node.lineno, f"{base}.{alias.name}") for alias in node.names]
        elif isinstance(node, ast.Call) and getattr(node.func, "attr", getattr(node.func, "id", "")) == "import_module":
            if node.args and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str):
                found.append((node.lineno, node.args[0].value))
    return found


def violations(layer: str, root: Path = PACKAGE) -> list[str]:
    bad = []
    for path in sorted((root / layer).rglob("*.py")):
        for line, module in imported_modules(path, root):
            for forbidden in FORBIDDEN[layer]:
                if module == forbidden or module.startswith(forbidden + "."):
                    bad.append(f"{path.relative_to(root.parent)}:{line} imports {module}")
    return bad


@pytest.mark.parametrize("layer", sorted(FORBIDDEN))
def test_layer_imports_only_what_it_may(layer):
    assert violations(layer) == []


def test_the_check_sees_imports(tmp_path):
    """The checker itself: every import form that reaches a forbidden package is caught."""
    fake = tmp_path / "sfpo_verl"
    (fake / "core" / "sub").mkdir(parents=True)
    (fake / "core" / "sub" / "m.py").write_text(
        "import sfpo_verl.cpu.platform\n"
        "from sfpo_verl import paper\n"
        "def f():\n    from ...cpu import rollout\n"
        "import importlib\nimportlib.import_module('sfpo_verl.cpu.task')\n"
        "from sfpo_verl.core import algorithm\n"
    )
    found = violations("core", root=fake)
    assert [v.split(" imports ")[1] for v in found] == [
        "sfpo_verl.cpu.platform",
        "sfpo_verl.paper",
        "sfpo_verl.cpu",
        "sfpo_verl.cpu.rollout",
        "sfpo_verl.cpu.task",
    ]
