"""``notify <command>``: api, worker, migrate, sandbox, dev."""

from __future__ import annotations

import argparse
import asyncio
import importlib.metadata
import logging
import signal
import sys
from collections.abc import Awaitable, Callable, Sequence

from pydantic import ValidationError

from notify.logs import configure_logging
from notify.settings import Settings, load_settings

log = logging.getLogger("notify")


def _run_until_signal(main: Callable[[asyncio.Event], Awaitable[None]]) -> int:
    """Run ``main(stop)``; SIGTERM or SIGINT sets ``stop`` so it can shut down gracefully."""

    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    try:
        asyncio.run(runner())
    except Exception as exc:
        if _unreachable(exc) is not None:
            raise  # main() says it in one line
        log.exception("fatal error")
        return 1
    return 0


def _unreachable(exc: BaseException) -> str | None:
    """What a dependency that could not be reached at start-up is called, or None for any other error."""
    name = type(exc).__module__ + "." + type(exc).__name__
    if name.startswith(("asyncpg.", "psycopg.")) or isinstance(exc, ConnectionRefusedError | TimeoutError):
        return "PostgreSQL (NOTIFY_DATABASE_URL)"
    if name.startswith("aiokafka."):
        return "Kafka (NOTIFY_KAFKA_BOOTSTRAP_SERVERS)"
    if isinstance(exc, OSError) and exc.errno is not None:
        return "a server it needs"
    return None


def _traced(settings: Settings, service_name: str, run: Callable[[], int]) -> int:
    """Run with the process's tracer provider installed; flush the spans still buffered on the way out."""
    from notify.adapters.telemetry.tracing import configure_tracing

    provider = configure_tracing(
        service_name, otlp_endpoint=settings.otlp_endpoint, sample_ratio=settings.trace_sample_ratio
    )
    try:
        return run()
    finally:
        provider.shutdown()


def _api(settings: Settings, args: argparse.Namespace) -> int:
    from notify.bootstrap import serve_api

    if args.port is not None:
        settings = settings.model_copy(update={"api_port": args.port})
    processes = args.processes if args.processes is not None else settings.api_processes
    if processes > 1:
        from notify.entrypoints.processes import run_api_processes

        return run_api_processes(settings, processes)
    return _traced(
        settings,
        "notify-api",
        lambda: _run_until_signal(lambda stop: serve_api(settings, stop, reuse_port=args.reuse_port)),
    )


def _worker(settings: Settings, args: argparse.Namespace) -> int:
    from notify.bootstrap import run_worker

    return _traced(
        settings, "notify-worker", lambda: _run_until_signal(lambda stop: run_worker(settings, stop))
    )


def _migrate(settings: Settings, args: argparse.Namespace) -> int:
    from notify.adapters.postgres.migrate import apply_migrations, ensure_database

    url = settings.database_url.get_secret_value()
    if args.create_database and asyncio.run(ensure_database(url)):
        log.info("created database")
    applied = apply_migrations(url)
    log.info("migrations applied", extra={"applied": applied})
    return 0


def _sandbox(settings: Settings, args: argparse.Namespace) -> int:
    from aiohttp import web

    from notify.devtools.sandbox import Knobs, SandboxState, create_sandbox_app

    knobs = Knobs(
        latency_ms=args.latency_ms,
        error_rate=args.error_rate,
        error_status=args.error_status,
        rate_limit_rate=args.rate_limit_rate,
        retry_after_s=args.retry_after,
    )
    host = args.host or settings.sandbox_host
    port = args.port if args.port is not None else settings.sandbox_port

    async def serve(stop: asyncio.Event) -> None:
        runner = web.AppRunner(create_sandbox_app(SandboxState(knobs)), access_log=None, handle_signals=False)
        await runner.setup()
        try:
            await web.TCPSite(runner, host, port).start()
            log.info("sandbox provider listening", extra={"url": f"http://{host}:{port}"})
            await stop.wait()
        finally:
            await runner.cleanup()

    return _run_until_signal(serve)


def _keys(settings: Settings, args: argparse.Namespace) -> int:
    from uuid import UUID

    from notify.adapters.clock import SystemClock
    from notify.adapters.postgres.keys import PgApiKeyStore
    from notify.adapters.postgres.pool import create_pool
    from notify.app.auth import KeyService
    from notify.domain.errors import NotFound
    from notify.domain.keys import KeyScope

    async def run() -> int:
        pool = await create_pool(settings.database_url.get_secret_value(), min_size=1, max_size=1)
        try:
            keys = KeyService(PgApiKeyStore(pool), SystemClock())
            if args.action == "create":
                scope = KeyScope.ADMIN if args.admin else KeyScope.TENANT
                key, secret = await keys.create(args.name, args.tenant or args.name, args.rate_limit, scope)
                print(secret)  # the only time the key is shown: it is stored hashed
                print(
                    f"id={key.id} tenant={key.tenant_id} name={key.name} scope={key.scope}", file=sys.stderr
                )
            elif args.action == "list":
                for key in await keys.all(args.tenant):
                    state = "revoked" if key.revoked_at else "active"
                    print(
                        f"{key.id}  {key.prefix}…  tenant={key.tenant_id}  name={key.name}  "
                        f"scope={key.scope}  {state}"
                    )
            else:
                try:
                    await keys.revoke(UUID(args.id))
                except (ValueError, NotFound):
                    print(f"no active API key {args.id}", file=sys.stderr)
                    return 1
                print(f"revoked {args.id}", file=sys.stderr)
            return 0
        finally:
            await pool.close()

    return asyncio.run(run())


def _providers(settings: Settings, args: argparse.Namespace) -> int:
    from notify.entrypoints.providers import run_check

    return run_check(settings, args)


def _dev(settings: Settings, args: argparse.Namespace) -> int:
    from notify.devtools.devstack import run_dev_stack

    return run_dev_stack(settings, api_port=args.api_port, sandbox_port=args.sandbox_port)


def _version() -> str:
    try:
        return importlib.metadata.version("notify")
    except importlib.metadata.PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown (not installed)"


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="notify", description="Self-hosted notification backend.")
    parser.add_argument("--version", action="version", version=f"notify {_version()}")
    sub = parser.add_subparsers(dest="command", required=True)
    api = sub.add_parser("api", help="run the HTTP API (and its outbox relay)")
    api.add_argument("--port", type=int, default=None, help="overrides NOTIFY_API_PORT")
    api.add_argument(
        "--processes",
        type=_positive,
        default=None,
        metavar="N",
        help="N processes sharing the port, one per core (overrides NOTIFY_API_PROCESSES)",
    )
    api.add_argument(
        "--reuse-port",
        action="store_true",
        help="listen with SO_REUSEPORT: share the port with other notify api processes (as --processes does)",
    )
    api.set_defaults(handler=_api)
    sub.add_parser("worker", help="consume and deliver notifications").set_defaults(handler=_worker)
    migrate = sub.add_parser("migrate", help="apply database migrations")
    migrate.add_argument("--create-database", action="store_true", help="create the database if missing")
    migrate.set_defaults(handler=_migrate)
    sandbox = sub.add_parser("sandbox", help="run the sandbox provider gateway")
    sandbox.add_argument("--host", default=None)
    sandbox.add_argument("--port", type=int, default=None)
    sandbox.add_argument("--latency-ms", type=float, default=0.0)
    sandbox.add_argument("--error-rate", type=float, default=0.0)
    sandbox.add_argument("--error-status", type=int, default=500)
    sandbox.add_argument("--rate-limit-rate", type=float, default=0.0, help="share of calls answered 429")
    sandbox.add_argument("--retry-after", type=float, default=1.0, help="Retry-After seconds on 429")
    sandbox.set_defaults(handler=_sandbox)
    keys = sub.add_parser("keys", help="create, list and revoke API keys")
    keys_sub = keys.add_subparsers(dest="action", required=True)
    create = keys_sub.add_parser("create", help="create a key and print it once")
    create.add_argument("--name", required=True)
    create.add_argument("--tenant", default=None, help="the tenant it acts for (default: the name)")
    create.add_argument("--rate-limit", type=float, default=None, help="requests/s (default: server's)")
    create.add_argument(
        "--admin",
        action="store_true",
        help="an operator's key: may also act beyond its tenant (the global delivery pause/resume)",
    )
    keys_list = keys_sub.add_parser("list", help="list keys (never the secrets)")
    keys_list.add_argument("--tenant", default=None)
    revoke = keys_sub.add_parser("revoke", help="revoke a key by id")
    revoke.add_argument("id")
    keys.set_defaults(handler=_keys)
    providers = sub.add_parser("providers", help="check the configured providers")
    providers_sub = providers.add_subparsers(dest="action", required=True)
    providers_check = providers_sub.add_parser(
        "check", help="list each channel's providers (no secrets); --send-test sends through each one"
    )
    providers_check.add_argument("--send-test", metavar="RECIPIENT", default=None)
    providers_check.add_argument(
        "--channel", choices=["sms", "email", "push"], default=None, help="default: from the recipient"
    )
    providers.set_defaults(handler=_providers)
    dev = sub.add_parser("dev", help="run the whole stack locally (PostgreSQL, Tansu, sandbox, API, worker)")
    dev.add_argument("--api-port", type=int, default=8080)
    dev.add_argument("--sandbox-port", type=int, default=9100)
    dev.set_defaults(handler=_dev)
    sub.add_parser("settings", help="print the configuration reference (every NOTIFY_* variable)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "settings":  # needs no configuration, and must work when it is wrong
        from notify.settings_reference import reference

        print(reference(), end="")
        return 0
    try:
        settings = load_settings()
    except ValidationError as exc:  # inputs are never echoed (hide_input_in_errors): no secret leaks here
        for error in exc.errors():
            loc = error["loc"]
            variable = "NOTIFY_" + "_".join(str(part) for part in loc).upper() if loc else "configuration"
            print(f"notify: {variable}: {error['msg']} (docs/configuration.md)", file=sys.stderr)
        return 2
    configure_logging(settings.log_level, json_lines=settings.log_json)
    handler: Callable[[Settings, argparse.Namespace], int] = args.handler
    try:
        return handler(settings, args)
    except ModuleNotFoundError as exc:
        if exc.name is None or not exc.name.startswith("notify.devtools"):
            raise
        # The runtime container image leaves the development tools out (see the Dockerfile).
        print(
            f"notify {args.command}: a development tool, not installed here (the runtime image leaves "
            "them out; build the Dockerfile's `sandbox` target, or pip install notify)",
            file=sys.stderr,
        )
        return 2
    except Exception as exc:
        what = _unreachable(exc)
        if what is None:
            raise
        print(f"notify {args.command}: cannot reach {what}: {str(exc).splitlines()[0]}", file=sys.stderr)
        return 1


def run() -> None:
    sys.exit(main())
