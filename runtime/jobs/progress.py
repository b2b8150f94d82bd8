"""One progress display for every long job: a bar on a terminal, plain log lines anywhere else.

tqdm redraws its bar with carriage returns, which turn a redirected stderr or a cluster log into one enormous line;
hiding the bar instead leaves a log with no sign of progress. So on an interactive stderr this is a tqdm bar, and
otherwise a `desc: done/total unit (percent), rate, ETA` log line every `interval_s` seconds and at the end.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable

from tqdm import tqdm
from tqdm.contrib.logging import logging_redirect_tqdm

log = logging.getLogger(__name__)


class Progress:
    """`update(n)` / `set_postfix(**values)` / `close()`, usable as a context manager, like a tqdm bar."""

    def __init__(
        self,
        total: int,
        desc: str,
        unit: str = "img",
        initial: int = 0,
        interval_s: float = 30.0,
        interactive: bool | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total, self.desc, self.unit, self.done = total, desc, unit, initial
        self.interval_s, self.clock = interval_s, clock
        self.postfix: dict[str, object] = {}
        interactive = sys.stderr.isatty() if interactive is None else interactive
        self.bar = None
        if interactive:  # log lines are printed above the bar instead of through it
            self._redirect = logging_redirect_tqdm()
            self._redirect.__enter__()
            self.bar = tqdm(total=total, initial=initial, desc=desc, unit=unit, file=sys.stderr, dynamic_ncols=True)
        self._started = self._last = clock()
        self._initial = initial
        self._closed = False

    def update(self, n: int = 1) -> None:
        self.done += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.clock() - self._last >= self.interval_s:
            self._log()

    def set_postfix(self, **values: object) -> None:
        self.postfix = values
        if self.bar is not None:
            self.bar.set_postfix(**values)

    def line(self) -> str:
        """e.g. `translate: 40/120 img (33%), 12.3 img/s, ETA 0:00:06, loss=0.41`."""
        elapsed = self.clock() - self._started
        rate = (self.done - self._initial) / elapsed if elapsed > 0 else 0.0
        parts = [f"{self.desc}: {self.done}/{self.total} {self.unit}"]
        if self.total:
            parts[0] += f" ({100 * self.done / self.total:.0f}%)"
        if rate > 0:
            parts.append(f"{rate:.3g} {self.unit}/s")
            if self.done < self.total:
                parts.append(f"ETA {_clock_time((self.total - self.done) / rate)}")
        parts += [f"{key}={value}" for key, value in self.postfix.items()]
        return ", ".join(parts)

    def _log(self) -> None:
        self._last = self.clock()
        log.info("%s", self.line())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self.bar is not None:
            self.bar.close()
            self._redirect.__exit__(None, None, None)
        elif self.done > self._initial:
            self._log()

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _clock_time(seconds: float) -> str:
    seconds = int(round(seconds))
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"
