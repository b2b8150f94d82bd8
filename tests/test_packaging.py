"""Packaging: the four package folders install under one namespace, `uda_trt`, and nothing relies on their bare names.

pyproject.toml lists every package explicitly (setuptools `packages`), so a new sub-package that is not listed is
silently left out of a regular install; code that imports `runtime` instead of `uda_trt.runtime` only works from a
checkout with the repository root on sys.path. Both mistakes pass every other test run from the repository, so they
are checked here: the list against the folders, the imports with ast, and the installed names from a folder outside
the repository.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    tomllib = pytest.importorskip("tomli")

REPO = Path(__file__).resolve().parents[1]
FOLDERS = ("runtime", "train", "export", "benchmarks")
NAMESPACE = "uda_trt"


def package_folders() -> dict[str, Path]:
    """Import name -> folder, for every folder under the four package folders that holds an __init__.py."""
    found = {}
    for folder in FOLDERS:
        for init in sorted((REPO / folder).rglob("__init__.py")):
            relative = init.parent.relative_to(REPO)
            if "__pycache__" not in relative.parts:
                found[".".join((NAMESPACE, *relative.parts))] = init.parent
    return found


def test_every_package_folder_is_listed_in_pyproject():
    setuptools = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    listed = set(setuptools["packages"])
    folders = package_folders()
    assert {f"{NAMESPACE}.{folder}" for folder in FOLDERS} <= set(folders)  # the walk found the top-level packages
    missing = sorted(set(folders) - listed)
    assert not missing, f"folders with an __init__.py missing from [tool.setuptools] packages: {missing}"
    stale = sorted(listed - set(folders))
    assert not stale, f"[tool.setuptools] packages lists names with no package folder: {stale}"
    assert setuptools["package-dir"] == {f"{NAMESPACE}.{folder}": folder for folder in FOLDERS}


def bare_imports(source: str, filename: str) -> Iterator[tuple[int, str]]:
    """(line, module) of every import of a bare package-folder name in `source`, including inside string literals
    that are themselves Python (the `python -c` programs tests run in subprocesses)."""
    tree = ast.parse(source, filename)
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and "import " in node.value:
            try:
                nested = list(bare_imports(node.value, filename))
            except SyntaxError:  # prose that mentions imports, not a program
                continue
            yield from ((node.lineno, module) for _, module in nested)
            continue
        else:
            continue
        yield from ((node.lineno, name) for name in names if name.split(".")[0] in FOLDERS)


def python_files() -> list[Path]:
    """Every .py file of the four package folders and of tests/."""
    return sorted(path for folder in (*FOLDERS, "tests") for path in (REPO / folder).rglob("*.py"))


def test_bare_import_finder_detects_bare_names():
    """Negative control: the ast walk reports bare imports, in code and in `python -c` strings, and nothing else."""
    source = 'import runtime.labels\nfrom train import x\nimport uda_trt.export\ncode = "import benchmarks"\n'
    assert list(bare_imports(source, "probe.py")) == [(1, "runtime.labels"), (2, "train"), (4, "benchmarks")]


def test_no_file_imports_a_bare_package_folder_name():
    files = python_files()
    assert len(files) > 50 and any(path.name == "test_packaging.py" for path in files)
    found = [
        f"{path.relative_to(REPO)}:{line}: {module}"
        for path in files
        if path.resolve() != Path(__file__).resolve()  # this file spells the bare names on purpose
        for line, module in bare_imports(path.read_text(), str(path))
    ]
    advice = "import through the namespace (uda_trt.runtime, ...), not the bare folder name:"
    assert not found, "\n".join([advice, *found])


def test_outside_the_repository_only_the_namespaced_names_import(tmp_path):
    """From a folder outside the repository (nothing on sys.path but the installed distribution), `uda_trt.*`
    imports and the bare folder names do not."""
    code = (
        "import importlib, json, sys\n"
        f"namespaced = [importlib.import_module('{NAMESPACE}.' + n).__name__ for n in {list(FOLDERS)!r}]\n"
        "bare = {}\n"
        f"for name in {list(FOLDERS)!r}:\n"
        "    try:\n"
        "        importlib.import_module(name)\n"
        "        bare[name] = 'imported'\n"
        "    except ModuleNotFoundError as exc:\n"
        "        bare[name] = 'ModuleNotFoundError: ' + str(exc.name)\n"
        "print(json.dumps({'namespaced': namespaced, 'bare': bare, 'path': sys.path}))\n"
    )
    env = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, env=env, timeout=120
    )
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["namespaced"] == [f"{NAMESPACE}.{folder}" for folder in FOLDERS]
    assert found["bare"] == {folder: f"ModuleNotFoundError: {folder}" for folder in FOLDERS}, found["path"]
