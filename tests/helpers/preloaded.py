"""Console scripts that import torch, run in processes forked from an interpreter that has already imported it.

A fresh interpreter spends about 3.5 s of CPU importing torch and 2 s more importing torchvision on the 2-core test
machine, before the command has read its first option; the suite runs those commands about a hundred times. Here
each pytest worker keeps one server process that imported the heavy third-party libraries once (PRELOAD: never a
uda_trt module, never one that starts a thread). For every command it forks a child that becomes the command as a
user runs it: its own pid, the console script's argv, the environment and working folder asked for, stdin from
/dev/null, stdout and stderr to files, the entry point's `main()` called as the console script calls it, then the
steps of the interpreter's exit that a command's outputs depend on: non-daemon threads joined, atexit handlers
(logging's flush, multiprocessing's joins), streams flushed, the exit status (an uncaught exception prints its
traceback and exits 1; Ctrl-C ends the process by SIGINT). Module teardown is skipped: with torch loaded it takes
1.7 s, and the suite's commands are about a hundred. The test gets the same CompletedProcess as
`subprocess.run(..., capture_output=True, text=True)` gives, or TimeoutExpired; tests that kill a command get a
Popen-like handle (PreloadedProcess).

What a forked child cannot show, fresh interpreters still test: the runtime's commands never run here (torch must
never be in their process), and neither does a command whose start-up variables (STARTUP_PREFIXES: read when the
interpreter or a library starts, such as PYTHONPATH or PYTHONPROFILEIMPORTTIME) differ from the server's.
UDA_TRT_TESTS_FRESH=1 runs every command in a fresh interpreter. Children share the server's hash seed; Python's and
NumPy's global random states are reseeded from the OS in each child, as a fresh interpreter's are.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

# The console scripts that import torch (the runtime's four never do, and keep fresh interpreters).
PRELOADED_COMMANDS = frozenset(
    {
        "train-cyclegan",
        "train-pix2pix",
        "train-segmenter",
        "export-trt",
        "run-uda",
        "evaluate-translation",
        "bench-throughput",
    }
)
# Imported by the server before it forks anything; each leaves the process single-threaded (onnxruntime does not:
# its import starts a thread, so it is imported by each command).
PRELOAD = ("numpy", "PIL.Image", "click", "tqdm", "torch", "torchvision", "torch.onnx", "onnx", "matplotlib.pyplot")

# Environment variables that act when the interpreter or a library it loads starts, not when the command reads them.
STARTUP_PREFIXES = ("PYTHON", "LD_", "OMP_", "GOMP_", "KMP_", "MKL_", "OPENBLAS_", "MALLOC_")

_lock = threading.Lock()  # one command at a time per server; a second one meanwhile gets a fresh interpreter


class _Server:
    """This worker's server process and the replies read from its stdout (raw reads: `select` must see every byte
    not yet consumed, which a buffered reader would hide)."""

    def __init__(self) -> None:
        self.startup = _startup(dict(os.environ))
        self.process = subprocess.Popen(
            [sys.executable, __file__, str(Path(sys.executable).parent)], stdin=subprocess.PIPE, stdout=subprocess.PIPE
        )
        self.pending = b""
        self.reply(None)  # "ready": the preloads are imported
        atexit.register(self.close)

    def close(self) -> None:
        """End the server (it stops when its stdin closes) and reap it, so none outlives the worker."""
        self.process.stdin.close()
        self.process.wait(timeout=60)

    def alive(self) -> bool:
        return self.process.poll() is None

    def send(self, request: dict) -> None:
        self.process.stdin.write(json.dumps(request).encode() + b"\n")
        self.process.stdin.flush()

    def reply(self, timeout: float | None) -> dict:
        """The next reply; TimeoutError when none is complete within `timeout` s (None: wait); RuntimeError when the
        server ended."""
        deadline = None if timeout is None else time.monotonic() + timeout
        fd = self.process.stdout.fileno()
        while b"\n" not in self.pending:
            left = None if deadline is None else max(0.0, deadline - time.monotonic())
            if not select.select([fd], [], [], left)[0]:
                raise TimeoutError
            chunk = os.read(fd, 65536)
            if not chunk:
                raise RuntimeError(f"the preloaded-command server ended (exit {self.process.wait()})")
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)


_server: _Server | None = None


def _startup(env: dict[str, str]) -> dict[str, str]:
    return {key: value for key, value in env.items() if key.startswith(STARTUP_PREFIXES)}


def runs_preloaded(name: str, env: dict[str, str] | None) -> bool:
    """Whether console script `name` with `env` added to this environment can run in a forked child: one of
    PRELOADED_COMMANDS, with the start-up variables of the server (of this environment before it starts)."""
    if os.environ.get("UDA_TRT_TESTS_FRESH") == "1" or name not in PRELOADED_COMMANDS:
        return False
    server_startup = _server.startup if _server is not None and _server.alive() else _startup(dict(os.environ))
    return _startup({**os.environ, **(env or {})}) == server_startup


class PreloadedProcess:
    """A command running in a child of the server, with the part of `subprocess.Popen` the tests use: pid, poll(),
    wait(timeout), send_signal(), kill(), returncode."""

    def __init__(self, server: _Server, argv: list[str]) -> None:
        self.server, self.args = server, argv
        self.pid: int = server.reply(None)["pid"]
        self.returncode: int | None = None

    def poll(self) -> int | None:
        if self.returncode is None:
            with contextlib.suppress(TimeoutError):
                self._ended(0)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if self.returncode is None:
            try:
                self._ended(timeout)
            except TimeoutError:
                raise subprocess.TimeoutExpired(self.args, timeout) from None
        return self.returncode

    def send_signal(self, signum: int) -> None:
        if self.returncode is None:
            os.kill(self.pid, signum)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def _ended(self, timeout: float | None) -> None:
        self.returncode = self.server.reply(timeout)["returncode"]
        _lock.release()


def start_preloaded(
    bin_dir: Path,
    name: str,
    args: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    stdout: Path | None = None,
    stderr: Path | None = None,
    append: bool = False,
    new_session: bool = False,
) -> PreloadedProcess | None:
    """Start console script `name` of `bin_dir` with `args` in a child of this worker's server (started on first
    use), stdout and stderr to the files given (None: /dev/null; `append` or truncate), in a session of its own when
    `new_session` (Popen's start_new_session). None when the server is busy with another command."""
    if not _lock.acquire(blocking=False):
        return None
    global _server
    try:
        if _server is None or not _server.alive():
            _server = _Server()
        argv = [str(bin_dir / name), *args]
        _server.send(
            {
                "argv": argv,
                "env": {**os.environ, **{key: os.fsdecode(value) for key, value in (env or {}).items()}},
                "cwd": str(cwd or os.getcwd()),
                "stdout": None if stdout is None else str(stdout),
                "stderr": None if stderr is None else str(stderr),
                "append": append,
                "new_session": new_session,
            }
        )
        return PreloadedProcess(_server, argv)
    except BaseException:
        _lock.release()
        raise


def run_preloaded(
    bin_dir: Path, name: str, args: list[str], timeout: float, cwd: Path | None, env: dict[str, str] | None
) -> subprocess.CompletedProcess | None:
    """What `subprocess.run(capture_output=True, text=True, timeout=timeout)` would return or raise for console
    script `name`, run in a child of the server; None when the server is busy with another command."""
    with tempfile.TemporaryDirectory(prefix="preloaded-") as folder:
        out, err = Path(folder) / "stdout", Path(folder) / "stderr"
        process = start_preloaded(bin_dir, name, args, cwd=cwd, env=env, stdout=out, stderr=err)
        if process is None:
            return None
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            raise subprocess.TimeoutExpired(process.args, timeout, _read(out), _read(err)) from None
        return subprocess.CompletedProcess(process.args, process.returncode, _read(out), _read(err))


def _read(path: Path) -> str:
    """The file as `subprocess.run(text=True)` decodes a pipe: locale encoding, universal newlines."""
    with open(path, encoding=None, newline=None) as stream:
        return stream.read()


# ---- the server: `python preloaded.py BIN_DIR` ----


def _serve(bin_dir: str) -> None:
    """Import PRELOAD, say ready, then for each request line fork a child that runs the command; reply with its pid,
    then with its exit status as subprocess reports one. Ends when stdin closes (the worker ended)."""
    import importlib
    from importlib.metadata import entry_points

    sys.path[0] = bin_dir  # as for a console script: its own folder first, never this one
    for module in PRELOAD:
        importlib.import_module(module)
    scripts = {entry.name: entry for entry in entry_points(group="console_scripts") if entry.name in PRELOADED_COMMANDS}
    reply = sys.stdout
    reply.write(json.dumps({"ready": True}) + "\n")
    reply.flush()
    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _become_command(request, scripts[Path(request["argv"][0]).name])
        reply.write(json.dumps({"pid": pid}) + "\n")
        reply.flush()
        _, status = os.waitpid(pid, 0)
        reply.write(json.dumps({"returncode": os.waitstatus_to_exitcode(status)}) + "\n")
        reply.flush()


def _become_command(request: dict, entry) -> None:
    """In the forked child: set up the process as a fresh console-script process would be, run the entry point, exit
    as the interpreter does less its module teardown (the module docstring). Never returns."""
    import io
    import random
    import traceback

    code = 1
    try:
        if request["new_session"]:
            os.setsid()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        streams = (sys.stdin, sys.stdout, sys.stderr)
        mode = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if request["append"] else os.O_TRUNC)
        targets = [(os.devnull, os.O_RDONLY)]  # stdin, then stdout and stderr
        for path in (request["stdout"], request["stderr"]):
            targets.append((os.devnull, os.O_WRONLY) if path is None else (path, mode))
        for fd, (path, flags) in enumerate(targets):
            opened = os.open(path, flags, 0o600)
            os.dup2(opened, fd)
            os.close(opened)
        sys.stdin, sys.stdout, sys.stderr = (
            io.TextIOWrapper(
                io.FileIO(fd, "r" if fd == 0 else "w", closefd=False),
                encoding=stream.encoding,
                errors=stream.errors,
                line_buffering=stream.line_buffering,
                write_through=stream.write_through,
            )
            for fd, stream in enumerate(streams)
        )
        sys.__stdin__, sys.__stdout__, sys.__stderr__ = sys.stdin, sys.stdout, sys.stderr
        sys.argv = list(request["argv"])
        random.seed()
        import numpy

        numpy.random.seed()
        main = entry.load()
        try:
            result = main()
            code = 0 if result is None else result
        except SystemExit as stop:
            code = stop.code
        if code is None:
            code = 0
        elif not isinstance(code, int):
            print(code, file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        traceback.print_exc()
        code = -signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # what the interpreter does at exit: wait for non-daemon threads
        atexit._run_exitfuncs()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        if code == -signal.SIGINT:
            signal.signal(signal.SIGINT, signal.SIG_DFL)
            os.kill(os.getpid(), signal.SIGINT)
        os._exit(code & 0xFF)


if __name__ == "__main__":
    _serve(sys.argv[1])
