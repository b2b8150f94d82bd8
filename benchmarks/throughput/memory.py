"""Peak resident memory of batch-translate against dataset size (criterion D).

The real command line runs as a child process on a small and a large dataset of the same images; its peak is the
high-water mark of its own resident memory (VmHWM, reported by the child at exit: the wait4 figure would include
this large parent's memory, see measure.run_child). A job that streams with bounded prefetch has the same peak on both.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from uda_trt.benchmarks.throughput.measure import python_entry_command, rate, run_child

MIB = 1 << 20


def batch_translate_command(artifact: Path, input_root: Path, output_root: Path, batch_size: int) -> list[str]:
    """The batch-translate command line: what its console script runs, with the peak-memory hook installed."""
    return python_entry_command(
        "uda_trt.runtime.commands.batch_translate:main",
        "--engine",
        artifact,
        "--input",
        input_root,
        "--output",
        output_root,
        "--batch-size",
        batch_size,
        "--backend",
        "onnxruntime-cpu",
    )


def peak_rss_run(artifact: Path, input_root: Path, output_root: Path, batch_size: int) -> dict:
    """One fresh batch-translate child process: images, seconds, the child's peak RSS."""
    shutil.rmtree(output_root, ignore_errors=True)
    command = batch_translate_command(artifact, input_root, output_root, batch_size)
    child = run_child(command)
    if child.returncode != 0:
        raise RuntimeError(f"batch-translate failed (exit {child.returncode}): {child.stderr.strip()[-500:]}")
    report = json.loads((Path(output_root) / "report.json").read_text())
    images = report["images_translated"]
    return {
        "input": str(input_root),
        "images": images,
        "seconds": child.seconds,
        "images_per_second": rate(images, child.seconds),
        "peak_rss_mb": child.peak_rss_bytes / MIB,
        "peak_rss_method": child.peak_rss_method,
    }
