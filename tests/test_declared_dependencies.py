"""Every module inflate3d imports is the standard library's, its own, or a declared runtime
dependency: an import of anything else works in the test environment (where the peers bring their
own dependencies, PyYAML among them) and fails on a user's install."""
from __future__ import annotations

import ast
import re
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
IMPORT_NAMES = {"torch": "torch", "torchvision": "torchvision", "safetensors": "safetensors", "click": "click",
                "rich": "rich", "numpy": "numpy"}  # distribution -> the module it installs


def _declared() -> set[str]:
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    names = {re.match(r"[A-Za-z0-9_.-]+", d).group(0).lower() for d in deps}
    assert names <= set(IMPORT_NAMES), f"map the new dependency's module name: {names - set(IMPORT_NAMES)}"
    return {IMPORT_NAMES[n] for n in names}


def _imported() -> dict[str, str]:
    """{top-level module: a file that imports it}, absolute imports only."""
    found = {}
    for path in sorted((ROOT / "inflate3d").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                found.setdefault(name.split(".")[0], str(path.relative_to(ROOT)))
    return found


def test_only_declared_dependencies_are_imported():
    allowed = set(sys.stdlib_module_names) | _declared() | {"inflate3d", "__future__"}
    extra = {m: f for m, f in _imported().items() if m not in allowed}
    assert not extra, f"imported but not declared in pyproject.toml: {extra}"
