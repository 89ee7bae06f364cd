"""The REPL's layers stay apart: the session knows no command, prompt or CLI; the library knows no UI."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from conftest import ROOT


def _imports(path: Path) -> set[str]:
    """Every module `path` imports, at the top or inside a function, relative imports made absolute."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package.split(".")[: len(package.split(".")) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{a.name}" for a in node.names)
    return found


@pytest.mark.parametrize("module", ["session", "keys", "transcript", "render", "describe", "values", "safe"])
def test_the_session_and_its_parts_import_no_command_prompt_or_cli(module: str) -> None:
    imported = _imports(ROOT / "repl" / f"{module}.py")
    assert not {m for m in imported if m.split(".")[:2] in (["repl", "commands"], ["repl", "cli"], ["repl", "app"],
                                                           ["repl", "prompt"])}, imported  # fmt: skip


@pytest.mark.parametrize("path", sorted((ROOT / "textgen_core").glob("*.py")), ids=lambda p: p.name)
def test_the_library_imports_no_user_interface(path: Path) -> None:
    roots = {m.split(".")[0] for m in _imports(path)}
    assert not roots & {"repl", "rich", "prompt_toolkit"}, path.name
