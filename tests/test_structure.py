"""The layout's rules, checked on the source: no import cycles between the project's modules, torch only inside
`textgen_core.training`, and every command but `train` usable where torch is not installed."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

from conftest import ROOT, assert_one_line_error, injected_pythonpath, run_cli, write_random_checkpoint

from textgen_core import checkpoint as ckpt

PACKAGES = ("textgen_core", "repl")
#: The one place that may import torch.
TRAINING = "textgen_core.training"


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def project_modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def runtime_imports(tree: ast.AST) -> Iterator[ast.Import | ast.ImportFrom]:
    """Every import statement that can run: at module level and inside functions and classes (an import in a
    function hides a cycle only until the function runs), but not under `if TYPE_CHECKING:`."""
    for node in ast.iter_child_nodes(tree):
        if isinstance(node, ast.If) and is_type_checking(node.test):
            for child in node.orelse:
                yield from runtime_imports(ast.Module(body=[child], type_ignores=[]))
            continue
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        yield from runtime_imports(node)


def imported_names(module: str, path: Path) -> Iterator[tuple[str, int]]:
    """Absolute names of what `module` imports (for `from X import y`, both X and X.y: y may be a submodule),
    with their line numbers."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in runtime_imports(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno
            continue
        base = package
        for _ in range(node.level - 1):
            base = base.rpartition(".")[0]
        target = ".".join(p for p in (base if node.level else "", node.module or "") if p)
        yield target, node.lineno
        for alias in node.names:
            yield f"{target}.{alias.name}", node.lineno


def import_graph() -> dict[str, set[str]]:
    """Module → the project modules it imports. Importing `a.b.c` runs `a` and `a.b` too, so those count."""
    modules = project_modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        for name, _ in imported_names(module, path):
            parts = name.split(".")
            for i in range(1, len(parts) + 1):
                target = ".".join(parts[:i])
                if target in modules and target != module and not module.startswith(target + "."):
                    graph[module].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative: the strongly connected components of `graph`."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                components.append(sorted(component))
    return components


def a_cycle(graph: dict[str, set[str]], members: list[str]) -> list[str]:
    """One concrete cycle through a component, for the failure message: a → b → … → a."""
    inside = set(members)
    path, seen = [members[0]], {members[0]}
    while True:
        nxt = min(n for n in graph[path[-1]] if n in inside)
        if nxt in seen:
            return [*path[path.index(nxt) :], nxt]
        path.append(nxt)
        seen.add(nxt)


def cycles(graph: dict[str, set[str]]) -> list[str]:
    return [" → ".join(a_cycle(graph, c)) for c in strongly_connected(graph) if len(c) > 1]


def test_the_cycle_finder_finds_a_cycle_and_only_cycles() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert cycles(graph) == ["a → b → c → a"]
    assert cycles({"a": {"b"}, "b": {"c"}, "c": set()}) == []


def test_relative_and_function_level_imports_are_resolved(tmp_path: Path) -> None:
    source = (
        "from typing import TYPE_CHECKING\n"
        "from . import vocab\nfrom ..other import thing\n"
        "if TYPE_CHECKING:\n    from .hidden import X\n"
        "def f():\n    from .late import y\n"
    )
    path = tmp_path / "mod.py"
    path.write_text(source)
    names = {n for n, _ in imported_names("pkg.sub.mod", path)}
    assert {"pkg.sub", "pkg.sub.vocab", "pkg.other", "pkg.other.thing", "pkg.sub.late"} <= names
    assert not any("hidden" in n for n in names)


def test_no_import_cycles_between_the_projects_modules() -> None:
    graph = import_graph()
    assert graph.get("textgen_core.training.loop")  # the scan sees imports
    found = cycles(graph)
    assert not found, f"import cycles: {'; '.join(found)}"


def test_textgen_core_never_imports_the_front_end() -> None:
    graph = import_graph()
    assert not [(m, t) for m, ts in graph.items() if m.startswith("textgen_core") for t in ts if t.startswith("repl")]


def test_torch_is_imported_only_inside_textgen_core_training() -> None:
    offenders = []
    for module, path in project_modules().items():
        if module == TRAINING or module.startswith(TRAINING + "."):
            continue
        for name, line in imported_names(module, path):
            if name == "torch" or name.startswith("torch."):
                offenders.append(f"{path.relative_to(ROOT)}:{line}")
    assert offenders == []


# ---- without torch installed ----------------------------------------------------------------------------------------

NO_TORCH = "import sys\nsys.modules['torch'] = None  # `import torch` now fails as if it were not installed\n"


def without_torch(tmp_path: Path) -> dict[str, str]:
    return {"PYTHONPATH": injected_pythonpath(tmp_path / "inject", NO_TORCH)}


def test_train_without_torch_names_the_install_command(tmp_path: Path, corpus_file: Path) -> None:
    out = tmp_path / "run"
    proc = run_cli("train", str(corpus_file), "--out", str(out), "--steps", "1", env=without_torch(tmp_path))
    assert_one_line_error(proc, "textgen train needs torch", "pip install 'textgen[train]'")
    assert not out.exists()


def test_sampling_and_info_run_without_torch(tmp_path: Path) -> None:
    """A run folder (weights and a resume file) described and sampled where torch cannot be imported."""
    run = tmp_path / "run"
    run.mkdir()
    write_random_checkpoint(run / ckpt.WEIGHTS_NAME)
    ckpt.write_safetensors(run / ckpt.RESUME_NAME, {}, {"resume": json.dumps({"step": 700})})
    env = without_torch(tmp_path)
    info = run_cli("info", "-c", str(run), "--json", env=env)
    assert info.returncode == 0, info.stderr
    assert json.loads(info.stdout)["step"] == 700  # the run's progress, past the best weights' step
    sample = run_cli("sample", "-c", str(run), "--prompt", "the ", "--len", "30", "--seed", "1", env=env)
    assert sample.returncode == 0, sample.stderr
    assert sample.stdout.startswith("the ") and len(sample.stdout) > len("the ")


# ---- the shape of the code --------------------------------------------------------------------------------------

#: Why these limits: a module past 500 lines or a class past 300 has taken on a second job (the REPL session once
#: held every slash command's work; the Trainer set up, stepped, evaluated and saved). When a change reaches a
#: limit, split the module or class by job, as `repl/features` and `textgen_core/training` are split; do not raise
#: the limit.
MAX_MODULE_LINES = 500
MAX_CLASS_LINES = 300


def overlong(name: str, path: Path) -> list[str]:
    """The module at `path` if it is over the line limit, and each of its classes over theirs."""
    source = path.read_text(encoding="utf-8")
    lines = source.count("\n")
    found = [f"{name}: {lines} lines"] if lines > MAX_MODULE_LINES else []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ClassDef) and node.end_lineno - node.lineno + 1 > MAX_CLASS_LINES:
            found.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    return found


def test_no_module_over_500_lines_and_no_class_over_300() -> None:
    found = [entry for module, path in project_modules().items() for entry in overlong(module, path)]
    assert found == [], "split by job: " + "; ".join(found)


def test_the_limits_catch_a_long_module_and_a_long_class(tmp_path: Path) -> None:
    fits = tmp_path / "fits.py"
    fits.write_text("class Small:\n" + "    x = 1\n" * (MAX_CLASS_LINES - 1) + "y = 2\n" * 10)
    assert overlong("fits", fits) == []
    big = tmp_path / "big.py"
    big.write_text("class Big:\n" + "    x = 1\n" * MAX_CLASS_LINES + "y = 2\n" * MAX_MODULE_LINES)
    assert overlong("big", big) == [
        f"big: {MAX_MODULE_LINES + MAX_CLASS_LINES + 1} lines",
        f"big.Big: {MAX_CLASS_LINES + 1} lines",
    ]


#: What `textgen sample` must not import: the other subcommands, and the library parts only they use.
NOT_ON_THE_SAMPLE_PATH = (
    "repl.cli.train",
    "repl.cli.eval",
    "repl.cli.info",
    "repl.cli.cells",
    "repl.cli.import_",
    "repl.cli.repl",
    "repl.app",
    "repl.session",
    "repl.features",
    "repl.describe",
    "repl.progress",
    "textgen_core.training",
    "textgen_core.keras_import",
    "textgen_core.cells",
    "textgen_core.describe",
    "textgen_core.runfolder",
    "textgen_core.tokenfile",
    "textgen_core.copies",
    "textgen_core.copyindex",
    "textgen_core.repeats",
    "textgen_core.versus",
    "repl.cli.copies",
    "repl.cli.versus",
    "pydivsufsort",
    "torch",
    "h5py",
    "prompt_toolkit",
    "rich",
    # Only writing or a Keras zip needs these; each was milliseconds of every sample's start-up.
    "textgen_core.atomic",
    "zipfile",
    "glob",
    "importlib.resources",
    # Words and word pieces load only for such a model: a character model's start-up does not pay for them.
    "textgen_core.tokens",
    "sentencepiece",
    # Draws come from textgen_core.rng: numpy.random's import was the largest single part of start-up.
    "numpy.random",
    # argparse's default help formatter imports shutil (and three compression modules) for the width;
    # the corpus reader is for training and the Keras vocabulary.
    "shutil",
    "textgen_core.corpus",
)

LIST_IMPORTS = """
import json, sys
from repl.cli import main
main(sys.argv[1:])
json.dump(sorted(sys.modules), sys.stderr)
"""


def test_textgen_sample_imports_nothing_the_other_subcommands_use(tmp_path: Path) -> None:
    model = write_random_checkpoint(tmp_path / "model.safetensors")
    proc = subprocess.run(
        [sys.executable, "-c", LIST_IMPORTS, "sample", "-c", str(model), "--prompt", "the ", "--len", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=True,
    )
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert "textgen_core.generate" in loaded and "repl.cli.sample" in loaded  # the list is the real one
    offenders = [m for m in loaded if any(m == bad or m.startswith(bad + ".") for bad in NOT_ON_THE_SAMPLE_PATH)]
    assert offenders == []
