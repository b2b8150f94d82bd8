"""runtime.jobs.progress: a bar on a terminal, timed plain log lines elsewhere (never carriage returns in a log)."""

from __future__ import annotations

import logging

from helpers import FakeClock
from uda_trt.runtime.jobs.progress import Progress


def test_without_a_terminal_progress_is_a_log_line_per_interval_and_one_at_the_end(caplog):
    clock = FakeClock()
    with (
        caplog.at_level(logging.INFO, logger="uda_trt.runtime.jobs.progress"),
        Progress(100, "translate", interval_s=30, interactive=False, clock=clock) as progress,
    ):
        for _ in range(50):
            clock.advance(1)
            progress.update(1)
        progress.set_postfix(loss=0.5)
    lines = [record.getMessage() for record in caplog.records]
    assert lines == [
        "translate: 30/100 img (30%), 1 img/s, ETA 0:01:10",
        "translate: 50/100 img (50%), 1 img/s, ETA 0:00:50, loss=0.5",
    ]


def test_a_resumed_job_counts_its_rate_from_where_it_started(caplog):
    clock = FakeClock()
    with (
        caplog.at_level(logging.INFO, logger="uda_trt.runtime.jobs.progress"),
        Progress(10, "scoring", initial=8, interactive=False, clock=clock) as progress,
    ):
        clock.advance(4)
        progress.update(2)
    assert [record.getMessage() for record in caplog.records] == ["scoring: 10/10 img (100%), 0.5 img/s"]


def test_nothing_done_logs_nothing(caplog):
    with caplog.at_level(logging.INFO, logger="uda_trt.runtime.jobs.progress"):
        Progress(10, "scoring", initial=10, interactive=False).close()
    assert caplog.records == []


def test_on_a_terminal_it_is_a_bar_with_log_lines_printed_above_it(capsys):
    log = logging.getLogger("uda_trt.test")
    with Progress(3, "translate", interactive=True) as progress:
        progress.update(2)
        log.warning("a skipped sample")
    err = capsys.readouterr().err
    assert "translate:" in err and "2/3" in err and "a skipped sample" in err
