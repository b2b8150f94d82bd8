"""Keep freed image buffers inside the process instead of handing them back to the kernel after every image.

A 2048x1024 label decodes into a fresh 2 MiB array. glibc's malloc serves blocks that large with mmap and trims the
heap top after each free, so every decoded image costs about 500 page faults to map memory it just gave back: in
evaluate-seg --predictions they were a large share of the run's time (README, "Measurements behind design choices").
Raising the mmap and trim thresholds lets the next image reuse the pages.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import platform

log = logging.getLogger(__name__)

_M_TRIM_THRESHOLD = -1  # mallopt parameter numbers from glibc's <malloc.h>
_M_MMAP_THRESHOLD = -3
_MMAP_THRESHOLD_BYTES = 256 << 20  # blocks below this come from the heap (a full-HD RGB float image is ~25 MiB)
_TRIM_THRESHOLD_BYTES = 512 << 20  # free heap kept for reuse before it is returned to the kernel


def reuse_freed_buffers() -> bool:
    """Tune glibc malloc for a long job that allocates and frees many image-sized arrays; process-wide.

    Call it from a command's entry point, not from library code (it changes the whole process). Returns False and
    changes nothing where the C library is not glibc (macOS, musl): those allocators need no such hint or take none.
    """
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        applied = libc.mallopt(_M_MMAP_THRESHOLD, _MMAP_THRESHOLD_BYTES) == 1
        applied = libc.mallopt(_M_TRIM_THRESHOLD, _TRIM_THRESHOLD_BYTES) == 1 and applied
    except (OSError, AttributeError):
        return False
    log.debug("glibc malloc keeps freed buffers for reuse: %s", applied)
    return applied
