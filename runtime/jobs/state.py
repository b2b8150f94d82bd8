"""What a resumable job has done, kept in its output folder so a killed run can be finished by rerunning it.

OUT/manifest.json (rewritten atomically) records the command, the resolved config, an `identity` (artifact sha256
and every option that changes the output bytes) and progress counts. OUT/.progress.jsonl gets one line per
finished sample, `{"key", "files": [[relative path, size, sha256], ...]}`, appended with a single write() after the
sample's files were renamed into place, so a SIGKILL leaves either the whole line or none of it (a torn last line
after a power cut is ignored). A rerun trusts a sample only when its line is there and each file still exists as a
regular file of the recorded size; everything else is done again, and the writes are deterministic, so a
killed-and-resumed run ends byte-identical to an uninterrupted one. A changed identity is refused unless the user
asks to overwrite; an exclusive lock keeps two runs from writing one folder.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import stat
import time
from pathlib import Path
from typing import Any

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import remove_partials, write_json
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"
JOURNAL_NAME = ".progress.jsonl"
LOCK_NAME = ".lock"
MANIFEST_VERSION = 2


class JobState:
    """The manifest, progress journal and lock of one job writing to `output_root`.

    `identity` holds what must match for a rerun to resume (JSON-plain values); `flags` names the command-line
    option behind each identity key, for the one-line refusal.
    """

    def __init__(
        self,
        output_root: Path,
        command: str,
        identity: dict[str, Any],
        flags: dict[str, str],
        overwrite: bool = False,
        progress_interval_s: float = 2.0,
    ) -> None:
        self.root = Path(output_root)
        self.command = command
        self.identity = json.loads(json.dumps(identity))  # as it reads back from the manifest
        self.flags = flags
        self.overwrite = overwrite
        self.interval = progress_interval_s
        self.manifest: dict[str, Any] = {}
        self._done: dict[str, list] = {}
        self._journal_fd: int | None = None
        self._lock_fd: int | None = None
        self._last_progress = 0.0

    # -------------------------------------------------------------------------------------------- start

    def open(self, manifest: dict[str, Any]) -> None:
        """Lock the folder, check a previous run's manifest, clean its temporaries, and write ours (status running)."""
        claim_output_folder(self.root, marker=MANIFEST_NAME, command=self.command, overwrite=self.overwrite)
        self._lock()
        previous = self._previous_manifest()
        if previous is not None:
            self._check_same(previous)
        remove_partials(self.root)
        (self.root / REPORT_NAME).unlink(missing_ok=True)  # present only once a run has finished
        journal = self.root / JOURNAL_NAME
        if self.overwrite or previous is None or previous.get("identity") is None:
            journal.unlink(missing_ok=True)
        self._done = self._read_journal(journal)
        self._journal_fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.manifest = {
            "command": self.command,
            "version": MANIFEST_VERSION,
            **manifest,
            "identity": self.identity,
            "status": "running",
        }
        write_json(self.root / MANIFEST_NAME, self.manifest)

    def _lock(self) -> None:
        fd = os.open(self.root / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise UserError(f"--output: {self.root} is being written by another {self.command} run") from None
        self._lock_fd = fd

    def _previous_manifest(self) -> dict | None:
        path = self.root / MANIFEST_NAME
        if not path.exists():
            return None
        try:
            previous = json.loads(path.read_bytes())
        except (OSError, ValueError) as exc:
            if self.overwrite:
                return {}
            raise UserError(f"{path}: unreadable manifest ({exc}); pass --overwrite to start over") from None
        if not isinstance(previous, dict) or previous.get("command") != self.command:
            if self.overwrite:
                return {}
            raise UserError(f"{path}: not a {self.command} manifest; choose another --output or pass --overwrite")
        return previous

    def _check_same(self, previous: dict) -> None:
        before = previous.get("identity")
        if self.overwrite or before is None:  # overwriting, or a manifest too old to say: nothing is trusted
            if before is None and not self.overwrite:
                log.info("%s predates resumable runs; every sample is done again", self.root / MANIFEST_NAME)
            return
        refuse_changed(
            self.root / MANIFEST_NAME,
            before,
            self.identity,
            self.flags,
            "rerun with --overwrite to redo the job or choose another --output",
        )

    @staticmethod
    def _read_journal(path: Path) -> dict[str, list]:
        done: dict[str, list] = {}
        if not path.exists():
            return done
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
                done[record["key"]] = [(str(f[0]), int(f[1]), str(f[2])) for f in record["files"]]
            except (ValueError, KeyError, TypeError, IndexError):
                continue  # a torn or foreign line: that sample is simply done again
        return done

    # -------------------------------------------------------------------------------------------- during

    def finished(self, key: str) -> bool:
        """Whether sample `key` was recorded as done and every file it wrote is still there, whole."""
        files = self._done.get(key)
        if files is None:
            return False
        for relative, size, _ in files:
            try:
                info = os.lstat(self.root / relative)
            except OSError:
                return False
            if not stat.S_ISREG(info.st_mode) or info.st_size != size:
                return False
        return True

    def record(self, key: str, files: list[tuple[Path, int, str]]) -> None:
        """Note that sample `key` is complete: `files` are (path, size, sha256) of what it wrote, all renamed into
        place already. One write() on an O_APPEND descriptor: a kill leaves the whole line or none of it."""
        entries = [[Path(path).relative_to(self.root).as_posix(), size, digest] for path, size, digest in files]
        line = json.dumps({"key": key, "files": entries}) + "\n"
        os.write(self._journal_fd, line.encode())

    def progress(self, counts: dict[str, int], force: bool = False) -> None:
        """Rewrite the manifest's progress counts, at most once per interval unless `force`."""
        now = time.monotonic()
        if force or now - self._last_progress >= self.interval:
            self._last_progress = now
            self.manifest["progress"] = dict(counts)
            write_json(self.root / MANIFEST_NAME, self.manifest)

    # -------------------------------------------------------------------------------------------- end

    def close(self, status: str | None = None, counts: dict[str, int] | None = None) -> None:
        """Write the final manifest (when `status` is given) and release the journal and the lock."""
        if status is not None:
            self.manifest["status"] = status
            if counts is not None:
                self.manifest["progress"] = dict(counts)
            write_json(self.root / MANIFEST_NAME, self.manifest)
        for fd in (self._journal_fd, self._lock_fd):
            if fd is not None:
                os.close(fd)
        self._journal_fd = self._lock_fd = None
