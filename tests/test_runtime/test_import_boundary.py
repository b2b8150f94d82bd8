"""The runtime is torch-free: a deployment box installs it alone (docs/architecture.md, "Dependency direction")."""

from __future__ import annotations

import pkgutil
import subprocess
import sys
from pathlib import Path

import pytest

import uda_trt.runtime as runtime

REPO = Path(__file__).resolve().parents[2]
RUNTIME_MODULES = sorted(m.name for m in pkgutil.walk_packages(runtime.__path__, "uda_trt.runtime."))


def test_runtime_has_modules():
    assert "uda_trt.runtime.labels" in RUNTIME_MODULES and len(RUNTIME_MODULES) >= 5


@pytest.mark.parametrize("module", RUNTIME_MODULES)
def test_runtime_module_never_imports_torch(module):
    """Each module in a fresh interpreter: importing it must not load torch or our other packages."""
    code = (
        f"import importlib, sys; importlib.import_module({module!r}); "
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'torch', 'torchvision'} "
        "or m.split('.')[:2] in (['uda_trt', 'train'], ['uda_trt', 'export'], ['uda_trt', 'benchmarks'])); "
        "print(','.join(bad))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert result.stdout.strip() == "", f"{module} imported {result.stdout.strip()}"


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


def test_boundary_check_detects_torch():
    """Negative control: the same probe reports torch when a module does import it."""
    code = "import sys, torch; print('torch' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
