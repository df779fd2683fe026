"""Ports and child processes for the local infrastructure (``tansu.py``, ``postgres.py``): free ports, waiting
for a listener, stopping a server and its children, a clean environment for them.

The servers are started in their own session (``start_new_session=True``): a Ctrl-C in the terminal goes to
the foreground process group, so the parent gets to shut down first (draining consumers, closing pools) and
then stops the servers itself, instead of the servers vanishing under it mid-shutdown.

Nothing here runs at import time.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

log = logging.getLogger(__name__)

LOCALHOST = "127.0.0.1"


# How often the readiness loops look again. Tansu is ready in a few milliseconds and PostgreSQL in well
# under a second once initdb is done, so a short interval keeps test start-up fast without spinning.
POLL_INTERVAL_S = 0.02

# --------------------------------------------------------------------------------------------- ports


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free on ``host`` right now.

    The kernel picks it (bind to port 0), so it never collides with a listener that already exists. The
    port is released before returning, so another process could take it before the caller binds it; the
    window is tiny and the servers below check the port again just before they start.
    """
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def port_accepts(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False


def port_is_free(host: str, port: int) -> bool:
    # SO_REUSEADDR like the servers themselves use, so that connections of a previous run lingering in
    # TIME_WAIT do not count as "in use" (they do not stop a server from listening either).
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
        return True


def wait_for_port(host: str, port: int, timeout_s: float = 10.0) -> None:
    """Block until something accepts TCP connections on ``host:port``; raise TimeoutError otherwise."""
    deadline = time.monotonic() + timeout_s
    while not port_accepts(host, port):
        if time.monotonic() >= deadline:
            raise TimeoutError(f"nothing accepted TCP connections on {host}:{port} within {timeout_s:g}s")
        time.sleep(POLL_INTERVAL_S)


# ------------------------------------------------------------------------------------------ processes


def log_tail(log_path: Path | None, limit: int = 4000) -> str:
    if log_path is None:
        return "(output was discarded; pass log_path to keep it)"
    try:
        text = log_path.read_text(errors="replace")
    except OSError as exc:
        return f"(could not read {log_path}: {exc})"
    return text[-limit:] or f"({log_path} is empty)"


def stop_process(
    proc: subprocess.Popen[bytes], what: str, first_signal: signal.Signals, grace_s: float
) -> None:
    """Stop ``proc`` politely with ``first_signal``, then SIGKILL its whole process group after ``grace_s``.

    Everything goes through the Popen handle: the PID cannot have been reused while the child is not yet
    reaped, so signalling it (and its process group, whose id is the PID because the child was started
    in a new session) can never hit an unrelated process.
    """
    if proc.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        proc.send_signal(first_signal)
    try:
        proc.wait(grace_s)
        return
    except subprocess.TimeoutExpired:
        log.warning(
            "%s (pid %d) did not stop within %gs of %s; killing it",
            what,
            proc.pid,
            grace_s,
            first_signal.name,
        )
    # The group too: PostgreSQL's backends would otherwise outlive a killed postmaster for a while.
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(10.0)


def child_env(*, drop: tuple[str, ...] = (), drop_prefix: str | None = None) -> dict[str, str]:
    """Our environment minus the variables that would change how a server child behaves."""
    return {
        key: value
        for key, value in os.environ.items()
        if key not in drop and not (drop_prefix and key.startswith(drop_prefix))
    }
