"""Helpers for integration and end-to-end tests: real processes, real sockets, bounded waits."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

REPO = Path(__file__).resolve().parents[1]


async def eventually(
    predicate: Callable[[], Awaitable[Any]],
    *,
    timeout_s: float = 15.0,
    interval_s: float = 0.05,
    what: str = "",
) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail with ``what`` after ``timeout_s``.
    A bound on waiting, not an assertion about speed."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        last = await predicate()
        if last:
            return last
        await asyncio.sleep(interval_s)
    raise AssertionError(
        f"timed out after {timeout_s}s waiting for {what or predicate}; last value: {last!r}"
    )


def die_with_parent(command: list[str]) -> list[str]:
    """``command`` wrapped so the kernel SIGKILLs it when its parent (this pytest) dies, however it dies.

    ``setpriv`` sets the parent-death signal and then execs the command in place (same pid). The child must
    be started from the main thread: the signal follows the thread that forked, not the process."""
    setpriv = shutil.which("setpriv")
    if setpriv is None:  # not on this system: the end-of-run sweep still catches leftovers
        return command
    return [setpriv, "--pdeathsig", "KILL", "--", *command]


class NotifyProcess:
    """One ``notify <command>`` subprocess with its own environment and log file."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name = name
        self.args = args
        self.env = env
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> NotifyProcess:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            die_with_parent([sys.executable, "-m", "notify", *self.args]),
            env=self.env,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )
        log.close()
        return self

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no cleanup, no graceful anything."""
        if self.alive():
            assert self.proc is not None
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def terminate(self, timeout_s: float = 30.0) -> int:
        """SIGTERM and wait; returns the exit code (SIGKILL if it does not stop in time)."""
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        return self.proc.returncode

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


async def wait_http_ok(url: str, *, timeout_s: float = 30.0, process: NotifyProcess | None = None) -> None:
    async def ok() -> bool:
        if process is not None and not process.alive():
            raise AssertionError(f"{process.name} exited early:\n{process.log_text()[-4000:]}")
        try:
            async with aiohttp.ClientSession() as s, s.get(url) as r:
                return r.status == 200
        except aiohttp.ClientError:
            return False

    await eventually(ok, timeout_s=timeout_s, interval_s=0.1, what=f"{url} to answer 200")


async def wait_log(process: NotifyProcess, needle: str, *, timeout_s: float = 30.0) -> None:
    async def seen() -> bool:
        if not process.alive():
            raise AssertionError(f"{process.name} exited early:\n{process.log_text()[-4000:]}")
        return needle in process.log_text()

    await eventually(seen, timeout_s=timeout_s, interval_s=0.1, what=f"{process.name} to log {needle!r}")
