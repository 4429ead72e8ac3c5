"""Static checks of the package's shape: a library module never imports a stage (only
reasoner/stages/* and the CLI may); one token_logprobs; one temp-then-rename writer."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1] / "reasoner"


def _stage_imports(path: Path) -> list[str]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "reasoner.stages" or a.name.startswith("reasoner.stages.")]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            if node.module == "reasoner.stages" or node.module.startswith("reasoner.stages."):
                found.append(node.module)
            elif node.module == "reasoner" and any(a.name == "stages" for a in node.names):
                found.append("reasoner.stages")
    return found


def test_no_library_module_imports_a_stage():
    library = [p for p in sorted(ROOT.rglob("*.py"))
               if p.relative_to(ROOT).parts[0] != "stages" and p.relative_to(ROOT).as_posix() != "cli.py"]
    assert len(library) > 20  # the walk found the package
    offenders = {p.relative_to(ROOT.parent).as_posix(): _stage_imports(p) for p in library if _stage_imports(p)}
    assert offenders == {}


def _defs_and_calls(path: Path):
    tree = ast.parse(path.read_text(), filename=str(path))
    defs = {n.name for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    calls = {f"{n.func.value.id}.{n.func.attr}" for n in ast.walk(tree) if isinstance(n, ast.Call)
             and isinstance(n.func, ast.Attribute) and isinstance(n.func.value, ast.Name)}
    return defs, calls


def test_one_token_logprobs_and_one_atomic_writer():
    library = sorted(ROOT.rglob("*.py"))
    logprobs = [p.relative_to(ROOT).as_posix() for p in library if "token_logprobs" in _defs_and_calls(p)[0]]
    renames = [p.relative_to(ROOT).as_posix() for p in library
               if {"os.replace", "os.rename"} & _defs_and_calls(p)[1] or ".rename(" in p.read_text()]
    assert logprobs == ["algos/logprobs.py"]
    assert renames == ["utils/io.py"]
