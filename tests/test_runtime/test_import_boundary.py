"""The runtime is torch-free: a deployment box installs it alone (docs/architecture.md, "Dependency direction")."""

from __future__ import annotations

import json
import os
import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import uda_trt.runtime as runtime
from helpers import run_once

REPO = Path(__file__).resolve().parents[2]
RUNTIME_MODULES = sorted(m.name for m in pkgutil.walk_packages(runtime.__path__, "uda_trt.runtime."))
# Third-party libraries the runtime imports (base dependencies, none of them our code): the probe imports them once
# before forking, so each module's import costs its own code only. Never a uda_trt module: those each child imports
# itself, in a fresh state, so an import cycle that only one order shows still fails.
PRELOADED = ("numpy", "PIL.Image", "cv2", "click", "tqdm", "imagecodecs", "onnxruntime")

# Imports every module named in argv in a child forked from an interpreter that holds only PRELOADED (no uda_trt
# module): what each child finds in sys.modules afterwards is what importing that module alone loads. Prints JSON:
# {"preloaded": forbidden modules after PRELOADED, "modules": {module: {"bad": [...]} or {"error": "..."}}}.
PROBE = """
import importlib, json, os, sys

def forbidden():
    return sorted(m for m in sys.modules if m.split(".")[0] in {"torch", "torchvision"}
                  or m.split(".")[:2] in (["uda_trt", "train"], ["uda_trt", "export"], ["uda_trt", "benchmarks"]))

preload, modules = json.loads(sys.argv[1]), sys.argv[2:]
for name in preload:
    importlib.import_module(name)
found = {"preloaded": forbidden(), "modules": {}}
for module in modules:
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(module)
            result = {"bad": forbidden()}
        except BaseException as exc:
            result = {"error": f"{type(exc).__name__}: {exc}"}
        os.write(write, json.dumps(result).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        answer = pipe.read()
    os.waitpid(pid, 0)
    found["modules"][module] = json.loads(answer) if answer else {"error": "the child died"}
print(json.dumps(found))
"""


def probe(modules: list[str], env: dict[str, str] | None = None) -> dict:
    """PROBE's answer for `modules`, run in a fresh interpreter in the repository root."""
    command = [sys.executable, "-c", PROBE, json.dumps(PRELOADED), *modules]
    result = subprocess.run(command, capture_output=True, text=True, check=False, cwd=REPO, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="session")
def imported(tmp_path_factory) -> dict:
    """PROBE's answer for every runtime module, made once per session (every pytest-xdist worker reads it)."""
    return run_once(tmp_path_factory, "runtime-imports", lambda _: probe(RUNTIME_MODULES))[1]


def test_runtime_has_modules():
    assert "uda_trt.runtime.labels" in RUNTIME_MODULES and len(RUNTIME_MODULES) >= 5


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_module_never_imports_torch(module, imported):
    """Each module imported alone, in a fresh state: it must import cleanly and load neither torch nor our other
    packages (the third-party libraries preloaded must not have loaded any either)."""
    assert imported["preloaded"] == [], f"{PRELOADED} imported {imported['preloaded']}"
    assert imported["modules"][module] == {"bad": []}, f"{module}: {imported['modules'][module]}"


def test_fda_batch_translate_run_never_imports_torch(tmp_path):
    """Modules import lazily, so importing each one is not the whole story: a real `batch-translate --fda` run
    (everything it imports on the way, FFTs included) in a fresh interpreter must not load torch either."""
    from helpers import write_gta5

    source, target = write_gta5(tmp_path / "gta5", count=2), write_gta5(tmp_path / "target", count=2, seed=1)
    args = ["--fda", str(target / "images"), "--input", str(source), "--output", str(tmp_path / "out")]
    code = (
        "import sys; from uda_trt.runtime.commands.batch_translate import main; "
        f"main({args!r}, standalone_mode=False); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision'}); print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert (tmp_path / "out" / "images" / "00002.png").is_file(), result.stderr
    assert result.stdout.strip() == "", f"batch-translate --fda imported {result.stdout.strip()}"


def test_boundary_check_detects_torch_and_failed_imports(tmp_path):
    """Negative control: the same probe names torch for a module that imports it, names a module that fails to
    import, and finds nothing for a clean one. The probe goes by module name, so a package named torch (empty, on
    PYTHONPATH) stands in for the real one, whose import alone takes seconds."""
    (tmp_path / "torch").mkdir()
    (tmp_path / "torch" / "__init__.py").write_text("")
    (tmp_path / "uses_torch.py").write_text("import torch\n")
    (tmp_path / "broken.py").write_text("raise ImportError('no such thing')\n")
    found = probe(["uses_torch", "uda_trt.runtime.labels", "broken"], env={**os.environ, "PYTHONPATH": str(tmp_path)})
    assert found["preloaded"] == []
    assert found["modules"]["uses_torch"] == {"bad": ["torch"]}
    assert found["modules"]["uda_trt.runtime.labels"] == {"bad": []}  # the stand-in torch stayed in its child
    assert found["modules"]["broken"] == {"error": "ImportError: no such thing"}
