"""What both trainers show while they run: train.log and stderr lines in one timestamped format, and a progress bar
only on a terminal.

Every log record of a run goes to OUTPUT/train.log as `2026-11-30 14:05:09,123 INFO uda_trt.train.cyclegan: ...`
(and to stderr in the command's format), so a log read hours later says when each line happened. The tqdm bar is
drawn only when stderr is a terminal (`disable=None`): redirected into a batch job's log file, its `\\r` redraws
would be megabytes of one line, and the periodic log lines say the same there.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

TRAIN_LOG = "train.log"
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


@contextlib.contextmanager
def train_log(folder: Path, append: bool) -> Iterator[Path]:
    """While inside, log records of level INFO and above also go to FOLDER/train.log (appended to when `append`, as
    a resumed run does; else started anew), and console log lines are printed above a progress bar."""
    path = Path(folder) / TRAIN_LOG
    handler = logging.FileHandler(path, mode="a" if append else "w", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    root = logging.getLogger()
    old_level = root.level
    root.addHandler(handler)
    root.setLevel(min(old_level, logging.INFO) if old_level else logging.INFO)
    try:
        with logging_redirect_tqdm():
            yield path
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)
        handler.close()


def progress_bar(total: int, initial: int, desc: str, show: bool = True) -> tqdm:
    """A tqdm bar over a run's iterations, drawn on a terminal only (module docstring), and never when not `show`
    (the processes other than rank 0 of a torchrun job)."""
    return tqdm(total=total, initial=initial, desc=desc, unit="it", dynamic_ncols=True, disable=None if show else True)
