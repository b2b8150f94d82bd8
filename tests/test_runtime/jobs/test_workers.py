"""runtime.jobs.workers: the CPU affinity mask and the cgroup CPU quota both bound the default worker count."""

from __future__ import annotations

import os

import pytest

from uda_trt.runtime.jobs.workers import available_cpus, cgroup_cpu_limit, default_compute_threads, default_workers

AFFINITY = len(os.sched_getaffinity(0))


def _cgroup_v2(root, text):
    (root / "cpu.max").write_text(text)
    return root


def _cgroup_v1(root, quota, period):
    (root / "cpu").mkdir()
    (root / "cpu" / "cpu.cfs_quota_us").write_text(quota)
    (root / "cpu" / "cpu.cfs_period_us").write_text(period)
    return root


@pytest.mark.parametrize(
    ("text", "limit"), [("150000 100000\n", 1.5), ("max 100000\n", None), ("100000 100000", 1.0), ("junk", None)]
)
def test_cgroup_v2_quota(tmp_path, text, limit):
    assert cgroup_cpu_limit(_cgroup_v2(tmp_path, text)) == limit


@pytest.mark.parametrize(("quota", "limit"), [("50000", 0.5), ("-1", None)])
def test_cgroup_v1_quota(tmp_path, quota, limit):
    assert cgroup_cpu_limit(_cgroup_v1(tmp_path, quota, "100000")) == limit


def test_no_cgroup_files_means_no_limit(tmp_path):
    assert cgroup_cpu_limit(tmp_path) is None
    assert available_cpus(tmp_path) == AFFINITY


def test_quota_lowers_cpus_rounded_up_and_never_below_one(tmp_path):
    assert available_cpus(_cgroup_v2(tmp_path, "50000 100000")) == 1  # half a CPU still gets one worker
    if AFFINITY >= 2:
        assert available_cpus(_cgroup_v2(tmp_path, "150000 100000")) == 2
    assert available_cpus(_cgroup_v2(tmp_path, f"{100000 * (AFFINITY + 8)} 100000")) == AFFINITY


def test_affinity_mask_bounds_the_default(tmp_path):
    """In a child restricted to one CPU, the default worker count is 1 whatever the machine has."""
    import subprocess
    import sys

    code = (
        "import os; os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]}); "
        "from uda_trt.runtime.jobs.workers import default_workers; print(default_workers())"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=tmp_path)
    assert result.stdout.strip() == "1"


def test_cap():
    assert default_workers(1) == 1
    assert default_workers(10_000) == default_workers() == available_cpus()


@pytest.mark.parametrize(("value", "expected"), [("3", 3), ("", None), ("0", None), ("two", None), (None, None)])
def test_compute_threads_follow_omp_num_threads_when_it_is_a_positive_number(monkeypatch, value, expected):
    if value is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", value)
    assert default_compute_threads() == (expected or default_workers())
