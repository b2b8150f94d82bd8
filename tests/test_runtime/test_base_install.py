"""A runtime-only install (no extras, so no torch) runs batch-translate and evaluate-seg on tiny data."""

from __future__ import annotations

import subprocess
import sys
import venv
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def base_venv(tmp_path_factory) -> Path:
    """A fresh venv with `pip install REPO` (base dependencies only)."""
    root = tmp_path_factory.mktemp("base-venv")
    venv.create(root, with_pip=True)
    python = root / "bin" / "python"
    subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", str(REPO)],
        check=True,
        capture_output=True,
        timeout=900,
    )
    return root / "bin"


@pytest.mark.slow
def test_base_install_has_no_torch(base_venv):
    code = "import importlib.util as u; print(u.find_spec('torch') is None and u.find_spec('onnx') is None)"
    result = subprocess.run([str(base_venv / "python"), "-c", code], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "True"
