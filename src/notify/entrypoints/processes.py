"""``notify api --processes N``: N API processes sharing one port, one per core.

One Python process serves HTTP on one core. On a bigger machine this supervisor starts N ``notify api``
processes that all listen on the same address (``SO_REUSEPORT``: the kernel spreads new connections among
them), and keeps them running:

- a process that dies is replaced (its connections were lost, nothing it accepted is: an accepted
  notification is in PostgreSQL before its 201 is sent);
- but a process that exits with an error while starting (within ``STARTUP_S``: PostgreSQL unreachable, a bad
  setting) stops them all and the supervisor exits with its code, as a single ``notify api`` would: a
  restart loop would hide the cause;
- SIGTERM or SIGINT is passed to every process, which drains as ``notify api`` does; the supervisor waits for
  them (past ``STOP_TIMEOUT_S`` they are killed).

The processes are stateless: each relays the outbox and the status events itself (relays coordinate through
PostgreSQL; per-key limits are buckets in PostgreSQL). Their Prometheus metrics are kept in files of a
directory shared by all of them (prometheus_client's multiprocess mode), so ``GET /metrics``, whichever
process answers it, reports the sum over all of them.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from notify.adapters.telemetry.metrics import MULTIPROCESS_DIR_VARIABLE
from notify.settings import Settings

log = logging.getLogger("notify")

STARTUP_S = 10.0  # a process exiting with an error sooner did not start: the supervisor gives up
STOP_TIMEOUT_S = 30.0
POLL_S = 0.2
PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass
class _Process:
    slot: int
    proc: subprocess.Popen[bytes]
    started: float = field(default_factory=time.monotonic)


class ApiProcesses:
    def __init__(self, settings: Settings, count: int) -> None:
        self.count = count
        self.port = settings.api_port
        self.stopping = False
        self.metrics_dir = Path(tempfile.mkdtemp(prefix="notify-metrics-"))
        self.env = {
            **os.environ,
            "NOTIFY_API_PROCESSES": "1",
            "NOTIFY_API_PORT": str(self.port),
            MULTIPROCESS_DIR_VARIABLE: str(self.metrics_dir),
        }

    def _start(self, slot: int) -> _Process:
        proc = subprocess.Popen(
            [sys.executable, "-m", "notify", "api", "--reuse-port"],
            env=self.env,
            preexec_fn=_stop_with_parent,  # the supervisor is single-threaded: safe here
        )
        log.info("api process started", extra={"pid": proc.pid, "slot": slot})
        return _Process(slot, proc)

    def _stop_requested(self, signum: int, frame: FrameType | None) -> None:
        self.stopping = True

    def run(self) -> int:
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._stop_requested)
        running = [self._start(slot) for slot in range(self.count)]
        code = 0
        try:
            while not self.stopping:
                time.sleep(POLL_S)
                for i, process in enumerate(running):
                    exit_code = process.proc.poll()
                    if exit_code is None or self.stopping:
                        continue
                    if exit_code > 0 and time.monotonic() - process.started < STARTUP_S:
                        log.error("api process failed to start", extra={"pid": process.proc.pid})
                        code = exit_code
                        self.stopping = True
                        break
                    log.warning(
                        "api process exited; starting another",
                        extra={"pid": process.proc.pid, "exit_code": exit_code},
                    )
                    self._forget(process.proc.pid)
                    running[i] = self._start(process.slot)
        finally:
            self._stop_all(running)
            shutil.rmtree(self.metrics_dir, ignore_errors=True)
        log.info("api processes stopped", extra={"processes": self.count, "exit_code": code})
        return code

    def _forget(self, pid: int) -> None:
        """Gauges of a dead process (its WebSocket clients) leave the sums; its counters stay counted."""
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid, str(self.metrics_dir))  # type: ignore[no-untyped-call]

    def _stop_all(self, running: list[_Process]) -> None:
        for process in running:
            if process.proc.poll() is None:
                process.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for process in running:
            try:
                process.proc.wait(max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("api process did not stop; killed", extra={"pid": process.proc.pid})
                process.proc.kill()
                process.proc.wait()


def _stop_with_parent() -> None:
    """In the child, before it runs: a supervisor killed outright (SIGKILL) leaves no process behind, each
    gets SIGTERM from the kernel and drains (Linux; elsewhere they keep running until stopped)."""
    if sys.platform == "linux":
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def run_api_processes(settings: Settings, count: int) -> int:
    if settings.api_port == 0:
        print(
            "notify api: --processes (NOTIFY_API_PROCESSES) needs a fixed port to share, not 0",
            file=sys.stderr,
        )
        return 2
    return ApiProcesses(settings, count).run()
