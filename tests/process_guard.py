"""Every process the test run starts is ended by the test run, and every test that starts one is marked e2e.

How a process is recognised as ours: at configure time this plugin puts ``PYTEST_NOTIFY_RUN=<pytest pid>:<run
id>`` into ``os.environ``. Every child inherits it, and so do their children, even those that escaped into
a session of their own with ``setsid`` (``notify dev``'s API, worker, sandbox and broker, the session's Tansu
broker, an embedded PostgreSQL). ``/proc/<pid>/environ`` shows it whatever the process did since. (The name
does not start with ``NOTIFY_`` on purpose: the tests strip ``NOTIFY_*`` from the environments they build.)

- At the end of the run, after every fixture was torn down, any process still carrying this run's mark is
  SIGKILLed and the run fails, naming each one and the test that started it.
- At the start of a run, processes left by an earlier run whose pytest is gone (it was SIGKILLed, say) are
  SIGKILLed and reported.
- SIGTERM and SIGHUP to pytest become a KeyboardInterrupt, so an interrupted run still tears its fixtures
  down (stopping what they started) instead of dying with them.
- The processes tests start directly (``tests.support.NotifyProcess``) die with pytest even if it is
  SIGKILLed (``setpriv --pdeathsig``), see :func:`tests.support.die_with_parent`.
- A test whose body spawns a process (seen by an audit hook on ``subprocess.Popen`` / ``os.posix_spawn``)
  must be marked ``e2e``, so ``-m "not e2e"`` is the fast suite without processes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import uuid
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from typing import Any

import pytest

RUN_MARK = "PYTEST_NOTIFY_RUN"
#: Which test started a process, carried the same way (for the end-of-run report).
OWNER_MARK = "PYTEST_NOTIFY_OWNER"

_spawned: list[str] = []  # what each Popen/posix_spawn ran, in order


@dataclass(frozen=True)
class Leftover:
    pid: int
    run: str
    owner: str
    command: str

    def __str__(self) -> str:
        return f"pid {self.pid} started by {self.owner or '(session setup)'}: {self.command[:200]}"


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:  # gone meanwhile, or a kernel thread
        return None


def marked_processes() -> Iterator[Leftover]:
    """Every live process (but this one) whose environment carries a run mark."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        environ = _read(f"/proc/{entry}/environ")
        if not environ or RUN_MARK.encode() not in environ:
            continue
        variables = dict(item.split(b"=", 1) for item in environ.split(b"\0") if b"=" in item)
        run = variables.get(RUN_MARK.encode())
        if run is None:
            continue
        stat = _read(f"/proc/{entry}/stat") or b""
        if b") Z" in stat:  # a zombie: already dead, only waiting for its parent to reap it
            continue
        command = (_read(f"/proc/{entry}/cmdline") or b"").replace(b"\0", b" ").decode(errors="replace")
        yield Leftover(
            int(entry),
            run.decode(errors="replace"),
            variables.get(OWNER_MARK.encode(), b"").decode(errors="replace"),
            command.strip(),
        )


def kill_all(processes: list[Leftover]) -> None:
    for p in processes:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p.pid, signal.SIGKILL)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if event == "subprocess.Popen":
        _spawned.append(f"{args[0]} {args[1]!r}"[:200])
    elif event == "os.posix_spawn":
        _spawned.append(f"{args[0]!r}"[:200])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"pytest received {signal.Signals(signum).name}")


# --- hooks ----------------------------------------------------------------------------------------------


def pytest_configure(config: pytest.Config) -> None:
    os.environ[RUN_MARK] = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
    sys.addaudithook(_audit)  # cannot be removed again; it only appends to a list
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _interrupt)


def pytest_sessionstart(session: pytest.Session) -> None:
    stale = [
        p
        for p in marked_processes()
        if p.run != os.environ[RUN_MARK] and not _pid_alive(int(p.run.split(":", 1)[0]))
    ]
    if stale:
        kill_all(stale)
        print(
            "\nkilled processes left over by an earlier test run whose pytest is gone:\n  "
            + "\n  ".join(map(str, stale)),
            file=sys.stderr,
        )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item) -> Generator[None, None, None]:
    os.environ[OWNER_MARK] = item.nodeid
    return (yield)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_teardown(item: pytest.Item) -> Generator[None, None, None]:
    try:
        return (yield)
    finally:
        os.environ.pop(OWNER_MARK, None)


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item) -> Generator[None, None, None]:
    before = len(_spawned)
    result = yield
    started = _spawned[before:]
    if started and item.get_closest_marker("e2e") is None:
        raise pytest.fail.Exception(
            f"this test starts processes but is not marked e2e (pytest.mark.e2e): {started[:3]}",
            pytrace=False,
        )
    return result


@pytest.hookimpl(trylast=True)  # after the runner's own sessionfinish, which tears the session fixtures down
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    ours = [p for p in marked_processes() if p.run == os.environ.get(RUN_MARK)]
    if not ours:
        return
    kill_all(ours)
    print(
        "\nthe test run left processes running (now killed); whoever started them must stop them:\n  "
        + "\n  ".join(map(str, ours)),
        file=sys.stderr,
    )
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
