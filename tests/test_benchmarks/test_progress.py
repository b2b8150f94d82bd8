"""run-uda's seconds-per-iteration and ETA lines, read from a trainer's train.log as it grows (benchmarks.progress).

The estimate is driven by a fake clock; the watcher reads a real file that the test appends to, in both line formats
the trainers have written (the direct `iter N ...` lines and logging's `iteration N: ...`).
"""

from __future__ import annotations

import datetime
import logging
import time
from pathlib import Path

from helpers import FakeClock
from uda_trt.benchmarks.progress import (
    EtaEstimate,
    TrainLogWatcher,
    eta_message,
    format_duration,
    iterations_in,
    logged_eta,
)

START = datetime.datetime(2026, 11, 30, 10, 0, 0)


def test_iterations_are_found_in_both_trainers_lines():
    text = (
        '# start iteration 0 of 500: {"iterations": 500, "decay_iterations": 250}\n'
        "iter 25 lr 0.0002 D_A 0.25 G_A 0.5 sec/iter 1.200\n"
        "2026-11-30 10:00:01,000 INFO uda_trt.train.cyclegan: iteration 50: lr 0.0002 D_A 0.25, 1.1 s/it\n"
        "2026-11-30 10:00:02,000 INFO uda_trt.train.segmenter: training x on 6 gta5 samples, from iteration 0\n"
        "2026-11-30 10:00:03,000 INFO run-uda: train_cyclegan: ~1 s/it, 50 of 500 iterations, ETA 10:08\n"
    )
    assert iterations_in(text) == [0, 25, 50, 0]  # settings' "iterations" keys and ETA lines are not iterations


def test_rate_and_time_left_come_from_the_iterations_seen():
    clock = FakeClock(0.0)
    estimate = EtaEstimate(total=100)
    assert estimate.seconds_per_iteration() is None
    estimate.observe(10, clock())  # a resumed run starts at 10: the earlier iterations are not timed
    assert estimate.seconds_per_iteration() is None and eta_message("s", estimate, START) is None
    clock.advance(40)
    estimate.observe(30, clock())
    assert estimate.seconds_per_iteration() == 2.0 and estimate.seconds_left() == 140.0
    estimate.observe(20, clock())  # an older line seen late changes nothing
    assert estimate.latest == (30, 40.0)
    message = eta_message("train_cyclegan", estimate, START)
    assert message == "train_cyclegan: ~2 s/it, 30 of 100 iterations, ETA 10:02 (in 2 min)"


def test_fast_and_long_stages_read_well():
    estimate = EtaEstimate(total=200_000)
    estimate.observe(0, 0.0)
    estimate.observe(100, 7500.0)  # 75 s/it: months
    assert eta_message("t", estimate, START).endswith("ETA 2027-05-22 22:35 (in 173 d 12 h)")
    fast = EtaEstimate(total=1000)
    fast.observe(0, 0.0)
    fast.observe(500, 10.0)
    assert eta_message("t", fast, START) == "t: ~50 it/s, 500 of 1000 iterations, ETA 10:00 (in 10 s)"
    assert [format_duration(s) for s in (5, 600, 3 * 3600 + 300, 2 * 86400 + 3600)] == [
        "5 s",
        "10 min",
        "3 h 05 min",
        "2 d 01 h",
    ]


def test_watcher_reads_only_new_whole_lines(tmp_path: Path):
    path = tmp_path / "train.log"
    path.write_text("iteration 900: an earlier run's line\n")
    clock = FakeClock(0.0)
    watcher = TrainLogWatcher("stage", path, total=100, clock=clock)
    watcher.poll()
    assert watcher.estimate.first is None  # what was there before the stage is not timed
    with open(path, "a") as log:
        log.write("start at iteration 0 of 100\niteration 1")  # the second line is still being written
        log.flush()
        watcher.poll()
        assert watcher.estimate.latest == (0, 0.0)
        clock.advance(5)
        log.write("0: loss 1.0\n")
        log.flush()
        watcher.poll()
    assert watcher.estimate.latest == (10, 5.0) and watcher.estimate.seconds_per_iteration() == 0.5

    path.write_text("iteration 0: a new run truncated the file\n")  # a segmenter's new run starts train.log anew
    watcher.poll()
    assert watcher.pending == "" and watcher.offset == path.stat().st_size


def test_logged_eta_logs_once_a_rate_is_known(tmp_path: Path, caplog):
    path = tmp_path / "train.log"
    with (
        caplog.at_level(logging.INFO, logger="uda_trt.benchmarks.progress"),
        logged_eta("train_segmenter_adapted", tmp_path, total=1000, poll_seconds=0.02),
        open(path, "a") as log,
    ):
        log.write("training x from iteration 0\n")
        log.flush()
        time.sleep(0.2)
        log.write("iteration 10: loss 1.0\n")
        log.flush()
        deadline = time.monotonic() + 10
        while not caplog.records and time.monotonic() < deadline:
            time.sleep(0.02)
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 1, messages  # then again only after `every` seconds
    assert messages[0].startswith("train_segmenter_adapted: ~") and "10 of 1000 iterations, ETA " in messages[0]
