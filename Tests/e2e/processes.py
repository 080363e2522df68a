"""Processes for the end-to-end tests: each with its own log file and process group, stopped whatever happens, and
waited for until ready (or until it exits, which fails the test with its log)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx2
import pytest

E2E_DIR = Path(__file__).resolve().parent
READY_TIMEOUT = 20.0
STOP_TIMEOUT = 10.0
LOG_TAIL_LINES = 300

def _tail(path: Path, lines: int = LOG_TAIL_LINES) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as e:
        return f"<cannot read {path}: {e}>"
    parts = text.splitlines()
    if len(parts) > lines:
        return f"... ({len(parts) - lines} earlier lines in {path})\n" + "\n".join(parts[-lines:])
    return text or "<empty>"


@dataclass
class Proc:
    name: str
    argv: list[str]
    popen: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return _tail(self.log_path)

    def describe_exit(self) -> str:
        code = self.popen.poll()
        return "still running" if code is None else f"exited with code {code}"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


@dataclass
class ProcessGroup:
    """Processes started by one test (or the session); all stopped on teardown, whatever happened."""

    log_dir: Path
    logs: list[tuple[str, Path]]
    procs: list[Proc] = field(default_factory=list)

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None, cwd: Path | None = None,
              *, drop_env_prefix: str | None = None) -> Proc:
        """Start a process with this environment plus `env`, less variables starting with `drop_env_prefix`."""
        log_path = self.log_dir / f"{name}.log"
        n = 1
        while log_path.exists():
            n += 1
            log_path = self.log_dir / f"{name}-{n}.log"
        full_env = {k: v for k, v in os.environ.items() if not (drop_env_prefix and k.startswith(drop_env_prefix))}
        full_env.update(env or {})
        with open(log_path, "wb") as log:
            # Its own process group: a wrapper such as faketime forks the real program, and stopping the
            # group stops both (signalling only the wrapper left the child running after the test).
            popen = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=full_env,
                cwd=str(cwd or E2E_DIR), start_new_session=True,
            )
        proc = Proc(name, argv, popen, log_path)
        self.procs.append(proc)
        self.logs.append((name, log_path))
        return proc

    def stop(self, proc: Proc) -> int | None:
        """SIGTERM, wait, then SIGKILL: returns the exit code (None if it had to be killed)."""
        p = proc.popen
        if p.poll() is not None:
            return p.returncode
        try:
            os.killpg(p.pid, signal.SIGTERM)
            return p.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            _kill_group(p.pid)
            p.wait(timeout=STOP_TIMEOUT)
            return None
        except ProcessLookupError:
            return p.poll()
        finally:
            # Whatever the leader did, nothing it started outlives the test.
            _kill_group(p.pid)

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            self.stop(proc)


class NotReady(Exception):
    """A process did not become ready in time (it did not exit either)."""


def wait_until_ready(proc: Proc, probe: Any, what: str, timeout: float = READY_TIMEOUT) -> None:
    """Poll `probe()` (True when ready) until it succeeds, the process exits, or `timeout` passes."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while time.monotonic() < deadline:
        if proc.popen.poll() is not None:
            pytest.fail(
                f"{proc.name} {proc.describe_exit()} before it was ready ({what}).\n"
                f"command: {' '.join(proc.argv)}\n--- {proc.name} log ---\n{proc.log()}",
                pytrace=False,
            )
        try:
            if probe():
                return
        except Exception as e:  # noqa: BLE001 - any failure just means "not yet"
            last_error = f"{type(e).__name__}: {e}"
        time.sleep(0.05)
    message = (
        f"{proc.name} was not ready after {timeout:.0f} s ({what}; last error: {last_error or 'none'}).\n"
        f"command: {' '.join(proc.argv)}\n--- {proc.name} log ---\n{proc.log()}"
    )
    raise NotReady(message)


def _wait_or_fail(proc: Proc, probe: Any, what: str) -> None:
    try:
        wait_until_ready(proc, probe, what)
    except NotReady as e:
        pytest.fail(str(e), pytrace=False)


def tcp_accepts(port: int) -> bool:
    with socket.create_connection(("127.0.0.1", port), timeout=1.0):
        return True


def http_200(url: str) -> bool:
    return httpx2.get(url, timeout=2.0).status_code == 200
