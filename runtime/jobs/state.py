"""What a resumable job has done, kept in its output folder so a killed run can be finished by rerunning it.

OUT/manifest.json (rewritten atomically) records the command, the resolved config, an `identity` (artifact sha256
and every option that changes the output bytes) and progress counts. OUT/.progress.jsonl gets one line per
finished sample, `{"key", "inputs": [[path, size, mtime_ns], ...], "files": [[relative path, size, sha256], ...]}`,
appended with a single write() after the sample's files were renamed into place, so a SIGKILL leaves either the
whole line or none of it (a torn last line after a power cut is ignored). A rerun trusts a sample only when its line
is there, its input files still have the recorded size and modification time, and each output file still exists as
a regular file of the recorded size; everything else is done again, and the writes are deterministic, so a
killed-and-resumed run ends byte-identical to an uninterrupted one.

The journal is also how a job cleans up after itself, and only after itself: outputs of samples that are no longer
in the input, and with `overwrite` everything an earlier run recorded, are deleted (a file is deleted only when it
is still the regular file of the size that run wrote; anything else in the folder is never touched). A changed
identity is refused unless the user asks to overwrite; an exclusive lock keeps two runs from writing one folder.

A shard (`--shard I/N`, runtime.jobs.shards) keeps the same bookkeeping under its own names (`manifest.shard-0-of-4
.json`, ...) in the folder its sibling shards write too: it holds its own lock exclusively and the folder's `.lock`
shared (so shards run together, never beside an unsharded run), must agree with the other shards' manifests, and
removes left-over temporaries only when no other run is writing the folder.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import os
import stat
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from uda_trt.runtime.errors import UserError
from uda_trt.runtime.jobs.files import remove_partials, write_json
from uda_trt.runtime.jobs.folders import claim_output_folder, refuse_changed
from uda_trt.runtime.jobs.shards import SHARD_FLAGS, Shard, check_siblings, sibling_marker
from uda_trt.runtime.safepaths import is_inside

log = logging.getLogger(__name__)

MANIFEST_NAME = "manifest.json"
REPORT_NAME = "report.json"
JOURNAL_NAME = ".progress.jsonl"
LOCK_NAME = ".lock"
SHARDS_LOCK_NAME = ".lock.shards"  # held for the moment a shard opens: shards check their siblings one at a time
MANIFEST_VERSION = 2

InputStamp = tuple[str, int, int]  # (path relative to the input root, size, mtime_ns) of one input file


@dataclass
class _Entry:
    """One journal line: what a finished sample was made from, and what it wrote."""

    inputs: list[InputStamp]
    files: list[tuple[str, int, str]]


def input_stamps(paths: list[Path], root: Path) -> list[InputStamp]:
    """(path relative to `root`, size, mtime_ns) of each input file under `root`: a rerun redoes a sample whose
    inputs changed since it was made. A file that cannot be stat'ed gets size -1 (never equal to a recorded one)."""
    stamps = []
    for path in paths:
        relative = Path(path).relative_to(root).as_posix()
        try:
            info = os.stat(path)
            stamps.append((relative, info.st_size, info.st_mtime_ns))
        except OSError:
            stamps.append((relative, -1, 0))
    return stamps


def _regular_size(path: Path) -> int | None:
    """The size of `path` when it is a regular file (symlinks not followed), else None."""
    try:
        info = os.lstat(path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


class JobState:
    """The manifest, progress journal and lock of one job writing to `output_root`.

    `identity` holds what must match for a rerun to resume (JSON-plain values); `flags` names the command-line
    option behind each identity key, for the one-line refusal. With `shard`, the bookkeeping is that shard's own
    (see the module's docstring) and the identity records the shard.
    """

    def __init__(
        self,
        output_root: Path,
        command: str,
        identity: dict[str, Any],
        flags: dict[str, str],
        overwrite: bool = False,
        progress_interval_s: float = 2.0,
        shard: Shard | None = None,
    ) -> None:
        self.root = Path(output_root)
        self.command = command
        self.shard = shard
        identity = {**identity, **(shard.identity() if shard else {})}
        self.identity = json.loads(json.dumps(identity))  # as it reads back from the manifest
        self.flags = {**flags, **SHARD_FLAGS}
        self.manifest_path = self.root / self.own_name(MANIFEST_NAME)
        self.report_path = self.root / self.own_name(REPORT_NAME)
        self.overwrite = overwrite
        self.interval = progress_interval_s
        self.manifest: dict[str, Any] = {}
        self._done: dict[str, _Entry] = {}
        self._journal_fd: int | None = None
        self._lock_fd: int | None = None
        self._shard_lock_fd: int | None = None
        self._last_progress = 0.0

    def own_name(self, name: str) -> str:
        """`name` (a bookkeeping file: manifest, journal, report, log) as this job names it: a shard's own."""
        return self.shard.file_name(name) if self.shard else name

    # -------------------------------------------------------------------------------------------- start

    def open(self, manifest: dict[str, Any]) -> None:
        """Lock the folder, check a previous run's manifest, clean its temporaries, and write ours (status running)."""
        if self.shard is not None:  # shards claim the folder one at a time (`_opening`), whose lock lives in it
            with contextlib.suppress(OSError):  # claim_output_folder says what is wrong
                self.root.mkdir(parents=True, exist_ok=True)
        with self._opening():
            marker = sibling_marker(self.root, self.manifest_path.name)
            claim_output_folder(self.root, marker=marker, command=self.command, overwrite=self.overwrite)
            self._open(manifest)

    @contextlib.contextmanager
    def _opening(self):
        """A shard claims and opens the folder while holding its shards lock (blocking, for milliseconds), so two
        shards starting together see each other's manifest; an unsharded run needs none (it locks the folder
        whole)."""
        if self.shard is None or not self.root.is_dir():
            yield
            return
        fd = os.open(self.root / SHARDS_LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def _open(self, manifest: dict[str, Any]) -> None:
        alone = self._lock()
        previous = self._previous_manifest()
        if previous is not None:
            self._check_same(previous)
        if not self.overwrite:
            check_siblings(self.root, self.command, self.manifest_path.name, self.identity, self.flags)
        if alone:  # with other shards writing, their temporaries are not left-overs
            remove_partials(self.root)
        if self.shard is not None:
            self._share_lock()
        self.report_path.unlink(missing_ok=True)  # present only once a run has finished
        journal = self.root / self.own_name(JOURNAL_NAME)
        self._done = self._read_journal(journal)
        if self.overwrite or previous is None or previous.get("identity") is None:
            self._remove_outputs(self._done)
            self._done = {}
            journal.unlink(missing_ok=True)
        self._journal_fd = os.open(journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        self.manifest = {
            "command": self.command,
            "version": MANIFEST_VERSION,
            **manifest,
            "identity": self.identity,
            "status": "running",
        }
        write_json(self.manifest_path, self.manifest)

    def _lock(self) -> bool:
        """Take the locks; returns whether no other run writes the folder. Unsharded: `.lock`, exclusively. A
        shard: its own lock exclusively, then `.lock` exclusively when it can (alone: `_share_lock` shares it once
        the temporaries are cleaned), else shared (other shards are running)."""
        busy = f"--output: {self.root} is being written by another {self.command} run"
        if self.shard is not None:
            own = os.open(self.root / self.own_name(LOCK_NAME), os.O_WRONLY | os.O_CREAT, 0o644)
            try:
                fcntl.flock(own, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(own)
                raise UserError(f"--shard {self.shard}: another run of this shard is writing {self.root}") from None
            self._shard_lock_fd = own
        fd = os.open(self.root / LOCK_NAME, os.O_WRONLY | os.O_CREAT, 0o644)
        self._lock_fd = fd
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            if self.shard is not None:
                with contextlib.suppress(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    return False
            self.close()
            raise UserError(busy) from None

    def _share_lock(self) -> None:
        """A shard holds `.lock` shared while it runs, so its siblings can run too."""
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:  # an unsharded run took the folder in the moment the lock changed hands
            self.close()
            raise UserError(f"--output: {self.root} is being written by another {self.command} run") from None

    def _previous_manifest(self) -> dict | None:
        path = self.manifest_path
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
                log.info("%s predates resumable runs; every sample is done again", self.manifest_path)
            return
        refuse_changed(
            self.manifest_path,
            before,
            self.identity,
            self.flags,
            "rerun with --overwrite to redo the job or choose another --output",
        )

    @staticmethod
    def _read_journal(path: Path) -> dict[str, _Entry]:
        done: dict[str, _Entry] = {}
        if not path.exists():
            return done
        for line in path.read_bytes().splitlines():
            try:
                record = json.loads(line)
                files = [(str(f[0]), int(f[1]), str(f[2])) for f in record["files"]]
                inputs = [(str(f[0]), int(f[1]), int(f[2])) for f in record.get("inputs", [])]
                done[record["key"]] = _Entry(inputs, files)
            except (ValueError, KeyError, TypeError, IndexError, AttributeError):
                continue  # a torn or foreign line: that sample is simply done again
        return done

    def _remove_outputs(self, entries: dict[str, _Entry]) -> None:
        """Delete the files `entries` recorded, where each is still the regular file of the recorded size inside the
        output folder, and then the folders that left empty; anything else is left alone."""
        removed, folders = 0, set()
        for entry in entries.values():
            for relative, size, _ in entry.files:
                parts = PurePosixPath(relative).parts
                if not parts or PurePosixPath(relative).is_absolute() or ".." in parts:
                    continue
                path = self.root.joinpath(*parts)
                if is_inside(path.parent, self.root) and _regular_size(path) == size:  # no symlinked folder out
                    path.unlink()
                    removed += 1
                    folders.update(p for p in path.parents if p != self.root and p.is_relative_to(self.root))
        for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):  # not empty: something else lives there
                folder.rmdir()
        if removed:
            log.info("removed %d file(s) an earlier run wrote to %s", removed, self.root)

    def forget_except(self, keys: set[str], owned: set[str] | None = None) -> None:
        """Delete the recorded outputs of samples not in `keys` (inputs removed since an earlier run), so the
        output folder holds exactly the current input's samples. A shard passes every key of the input as `keys`
        and its own as `owned`: samples that another shard now has (the input changed) are forgotten here, and
        their files left to that shard."""
        stale = {key: entry for key, entry in self._done.items() if key not in keys}
        if stale:
            log.info("%d sample(s) recorded here are no longer in the input; their outputs are removed", len(stale))
            self._remove_outputs(stale)
            for key in stale:
                del self._done[key]
        for key in [key for key in self._done if owned is not None and key not in owned]:
            del self._done[key]

    # -------------------------------------------------------------------------------------------- during

    def finished(self, key: str, inputs: list[InputStamp]) -> bool:
        """Whether sample `key` was recorded as done from these same `inputs` (see `input_stamps`) and every file it
        wrote is still there, whole."""
        entry = self._done.get(key)
        if entry is None or entry.inputs != list(inputs):
            return False
        return all(_regular_size(self.root / relative) == size for relative, size, _ in entry.files)

    def record(self, key: str, inputs: list[InputStamp], files: list[tuple[Path, int, str]]) -> None:
        """Note that sample `key` is complete: it was made from `inputs` (see `input_stamps`, taken before they were
        read) and `files` are (path, size, sha256) of what it wrote, all renamed into place already. One write() on
        an O_APPEND descriptor: a kill leaves the whole line or none of it."""
        entries = [[Path(path).relative_to(self.root).as_posix(), size, digest] for path, size, digest in files]
        line = json.dumps({"key": key, "inputs": [list(stamp) for stamp in inputs], "files": entries}) + "\n"
        os.write(self._journal_fd, line.encode())

    def progress(self, counts: dict[str, int], force: bool = False) -> None:
        """Rewrite the manifest's progress counts, at most once per interval unless `force`."""
        now = time.monotonic()
        if force or now - self._last_progress >= self.interval:
            self._last_progress = now
            self.manifest["progress"] = dict(counts)
            write_json(self.manifest_path, self.manifest)

    # -------------------------------------------------------------------------------------------- end

    def close(self, status: str | None = None, counts: dict[str, int] | None = None) -> None:
        """Write the final manifest (when `status` is given) and release the journal and the lock."""
        if status is not None:
            self.manifest["status"] = status
            if counts is not None:
                self.manifest["progress"] = dict(counts)
            write_json(self.manifest_path, self.manifest)
        for fd in (self._journal_fd, self._lock_fd, self._shard_lock_fd):
            if fd is not None:
                os.close(fd)
        self._journal_fd = self._lock_fd = self._shard_lock_fd = None
