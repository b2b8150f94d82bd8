"""The malloc hint evaluate-seg gives glibc: applied where the C library is glibc, a no-op elsewhere."""

import platform
import subprocess
import sys


def test_reuse_freed_buffers_applies_on_glibc_only():
    # A fresh interpreter: the setting is process-wide and must not leak into the test process.
    code = "from uda_trt.runtime.allocator import reuse_freed_buffers; print(reuse_freed_buffers())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    glibc = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"
    assert out == str(glibc)
