"""A job's own log file in its output folder: what a person reads later, with the times the terminal did not keep.

Every log record of the run (warnings about skipped samples, progress lines, the summary) is appended to
OUT/COMMAND.log with a timestamp; reruns append, so a resumed job's history stays in one place. Readers of the
dataset layouts ignore it.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

FORMAT = "%(asctime)s %(levelname)s: %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S"


class JobLog:
    """The open log file of one job; `note` writes a line to it alone (for what the command also prints)."""

    def __init__(self, handler: logging.Handler) -> None:
        self.handler = handler

    def note(self, message: str) -> None:
        record = logging.LogRecord("uda_trt", logging.INFO, __file__, 0, message, None, None)
        self.handler.handle(record)


class _FolderMakingFileHandler(logging.FileHandler):
    """Opens (and makes the folder of) its file at the first record: a job refused up front leaves nothing."""

    def _open(self):
        Path(self.baseFilename).parent.mkdir(parents=True, exist_ok=True)
        return super()._open()


@contextlib.contextmanager
def log_file(path: Path) -> Iterator[JobLog]:
    """Append every log record (INFO and above, all loggers) to `path` while inside; the file is closed after.

    The file (and its folder) is made at the first record, so a job that fails its checks before logging anything
    leaves no trace."""
    handler = _FolderMakingFileHandler(path, encoding="utf-8", delay=True)
    handler.setLevel(logging.INFO)
    handler.setFormatter(logging.Formatter(FORMAT, DATE_FORMAT))
    root = logging.getLogger()
    if root.level > logging.INFO:
        root.setLevel(logging.INFO)
    root.addHandler(handler)
    try:
        yield JobLog(handler)
    finally:
        root.removeHandler(handler)
        handler.close()
