"""How many CPUs this process may really use, the one default for every worker and thread count.

`os.cpu_count()` counts the machine's cores; a container or a `taskset` gives a process fewer. This honours the CPU
affinity mask and a cgroup CPU quota (v2 `cpu.max`, v1 `cpu.cfs_quota_us`), so a job in a 2-CPU container on a
64-core host starts 2 workers, not 64.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")


def _affinity_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def cgroup_cpu_limit(root: Path = CGROUP_ROOT) -> float | None:
    """The CPU quota of this process's cgroup in CPUs (e.g. 1.5), or None when there is none.

    Reads the cgroup v2 `cpu.max` ("QUOTA PERIOD" or "max PERIOD") or the v1 `cpu/cpu.cfs_quota_us` and
    `cpu.cfs_period_us` pair at `root` (the container's own view of its cgroup).
    """
    v2 = _read(root / "cpu.max")
    if v2 is not None:
        parts = v2.split()
        if len(parts) == 2 and parts[0] != "max":
            try:
                quota, period = int(parts[0]), int(parts[1])
            except ValueError:
                return None
            return quota / period if quota > 0 and period > 0 else None
        return None
    quota_text, period_text = _read(root / "cpu" / "cpu.cfs_quota_us"), _read(root / "cpu" / "cpu.cfs_period_us")
    try:
        quota, period = int(quota_text or ""), int(period_text or "")
    except ValueError:
        return None
    return quota / period if quota > 0 and period > 0 else None


def available_cpus(cgroup_root: Path = CGROUP_ROOT) -> int:
    """CPUs this process may run on: the affinity mask, lowered to the cgroup quota rounded up (at least 1)."""
    cpus = _affinity_cpus()
    limit = cgroup_cpu_limit(cgroup_root)
    if limit is not None:
        cpus = min(cpus, math.ceil(limit))
    return max(1, cpus)


def default_workers(cap: int | None = None) -> int:
    """The default worker (or thread) count: every available CPU, at most `cap` when the job stops scaling there."""
    cpus = available_cpus()
    return max(1, min(cpus, cap)) if cap is not None else cpus


def default_compute_threads() -> int:
    """Intra-op threads for a training process: OMP_NUM_THREADS when it is set to a positive number (a scheduler or
    a user saying how many cores this process gets), else every available CPU. Trainers set this count rather than
    inherit torch's, which also follows whatever an earlier stage of the same process set: CPU results depend on
    the thread count, so a resumed run must compute with the same one."""
    try:
        threads = int(os.environ.get("OMP_NUM_THREADS", ""))
    except ValueError:
        threads = 0
    return threads if threads > 0 else default_workers()
