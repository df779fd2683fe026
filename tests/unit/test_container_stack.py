"""The container stack (Dockerfile, docker-compose.yaml, .dockerignore), checked by reading the files.

No Docker engine is needed: the files are parsed and checked against each other and against
``notify.settings.Settings``. Every check is a function returning a list of problems, so the negative tests
can show that each one fails on a deliberately broken copy.
"""

from __future__ import annotations

import copy
import fnmatch
import itertools
import json
import os
import re
import shlex
import subprocess
import tomllib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pydantic
import pytest
import yaml

from notify.bootstrap import kafka_connection
from notify.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_FILE = ROOT / "docker-compose.yaml"
ENV_EXAMPLE = ROOT / ".env.example"
SASL_BROKER_SCRIPT = ROOT / "deploy/kafka/sasl-broker.sh"
SASL_PROFILE = {"kafka-sasl", "api-sasl", "worker-sasl"}
# Compose's variable substitution: ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}.
SUBSTITUTION = re.compile(r"\$\{(\w+)(?:(:?[-?])([^}]*))?\}")
DOCKERFILE = ROOT / "Dockerfile"
DOCKERIGNORE = ROOT / ".dockerignore"
PYPROJECT = ROOT / "pyproject.toml"

EXPECTED_SERVICES = {"postgres", "kafka", "jaeger", "migrate", "sandbox", "api", "worker"}
SETTINGS_VARIABLES = {f"NOTIFY_{name.upper()}" for name in Settings.model_fields}
LOCAL_HOSTS = {"localhost", "127.0.0.1", "0.0.0.0", "::1", "[::1]"}
URL_HOST = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://(?:[^\s/@\"']*@)?(\[[^\]]*\]|[^\s:/\"'?#,]*)")
LOCAL_URL_PORT = re.compile(r"https?://(?:127\.0\.0\.1|localhost|\[::1\]):(\d+)")

Compose = dict[str, Any]


# --- Dockerfile parsing ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def parse_dockerfile(text: str) -> list[list[Instruction]]:
    """The build stages, each the instructions from its ``FROM`` on (line continuations joined, comments
    dropped). Instructions before the first ``FROM`` (global ``ARG``) are not part of any stage."""
    logical: list[str] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        logical.append(pending + line)
        pending = ""
    if pending:
        logical.append(pending)
    stages: list[list[Instruction]] = []
    for line in logical:
        keyword, _, args = line.partition(" ")
        instruction = Instruction(keyword.upper(), args.strip())
        if instruction.keyword == "FROM":
            stages.append([instruction])
        elif stages:
            stages[-1].append(instruction)
    return stages


def exec_form(args: str) -> list[str] | None:
    """``["a", "b"]`` (exec form) as a list, or None for the shell form."""
    if not args.startswith("["):
        return None
    value = json.loads(args)
    assert isinstance(value, list)
    return [str(v) for v in value]


def stage_env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for instruction in stage:
        if instruction.keyword != "ENV":
            continue
        tokens = shlex.split(instruction.args)
        if tokens and "=" not in tokens[0]:  # legacy ``ENV KEY value``
            env[tokens[0]] = " ".join(tokens[1:])
            continue
        for token in tokens:
            key, _, value = token.partition("=")
            env[key] = value
    return env


def check_final_user(stages: list[list[Instruction]]) -> list[str]:
    users = [i.args for i in stages[-1] if i.keyword == "USER"] if stages else []
    if not users:
        return ["the final stage has no USER: the container would run as root"]
    user = users[-1].split(":")[0].strip()
    if user in {"root", "0", ""}:
        return [f"the final stage runs as {users[-1]!r}"]
    return []


def check_no_extras(stages: list[list[Instruction]]) -> list[str]:
    """No RUN installs the ``dev`` (local broker binary) or ``test`` extras."""
    problems = []
    for stage in stages:
        for instruction in stage:
            if instruction.keyword != "RUN":
                continue
            for extras in re.findall(r"\S\[([A-Za-z0-9_,\s-]+)\]", instruction.args):
                names = {e.strip().lower() for e in extras.split(",")}
                if names & {"dev", "test"}:
                    problems.append(f"installs extras [{extras}]: {instruction.args}")
            if re.search(r"--all-extras|--extra[ =](dev|test)\b", instruction.args):
                problems.append(f"installs extras: {instruction.args}")
    return problems


def dockerignore_patterns() -> list[str]:
    lines = DOCKERIGNORE.read_text().splitlines()
    return [ln.strip().strip("/") for ln in lines if ln.strip() and not ln.strip().startswith("#")]


def ignored(path: str, patterns: Iterable[str]) -> bool:
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    result = False
    for pattern in patterns:
        negate = pattern.startswith("!")
        pat = pattern.lstrip("!").removeprefix("**/")
        if any(fnmatch.fnmatchcase(p, pat) or fnmatch.fnmatchcase(Path(p).name, pat) for p in prefixes):
            result = not negate
    return result


# --- compose helpers ---------------------------------------------------------------------------------------


def services(compose: Compose) -> dict[str, dict[str, Any]]:
    result = compose.get("services") or {}
    assert isinstance(result, dict)
    return result


def environment(service: Mapping[str, Any]) -> dict[str, str | None]:
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = [item.partition("=") for item in env]
        return {k: (v if sep else None) for k, sep, v in pairs}
    return {
        str(k): (None if v is None else str(v).lower() if isinstance(v, bool) else str(v))
        for k, v in env.items()
    }


def depends_on(service: Mapping[str, Any]) -> dict[str, Any]:
    deps = service.get("depends_on") or {}
    if isinstance(deps, list):  # short form: no condition
        return {name: {} for name in deps}
    assert isinstance(deps, dict)
    return deps


def one_shot_services(compose: Compose) -> set[str]:
    """Services others wait for to exit 0: exempt from the healthcheck rule."""
    return {
        name
        for service in services(compose).values()
        for name, dep in depends_on(service).items()
        if isinstance(dep, dict) and dep.get("condition") == "service_completed_successfully"
    }


def built_services(compose: Compose) -> dict[str, dict[str, Any]]:
    """The services running the image built from this repository."""
    built = {s.get("image") for s in services(compose).values() if "build" in s}
    return {n: s for n, s in services(compose).items() if "build" in s or s.get("image") in built}


def healthcheck_test(service: Mapping[str, Any]) -> list[str] | None:
    check = service.get("healthcheck")
    if not isinstance(check, dict) or check.get("disable"):
        return None
    test = check.get("test")
    if isinstance(test, str):
        test = ["CMD-SHELL", test]
    if not test or test[0] == "NONE" or len(test) < 2:
        return None
    return [str(t) for t in test]


def healthcheck_port(service: Mapping[str, Any]) -> int | None:
    test = healthcheck_test(service) or []
    match = LOCAL_URL_PORT.search(" ".join(test))
    return int(match.group(1)) if match else None


def published_container_ports(service: Mapping[str, Any]) -> set[int]:
    ports: set[int] = set()
    for item in service.get("ports") or []:
        target = item["target"] if isinstance(item, dict) else str(item).split(":")[-1].split("/")[0]
        ports.add(int(target))
    return ports


def command_option(service: Mapping[str, Any], option: str) -> str | None:
    command = service.get("command") or []
    args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
    return args[args.index(option) + 1] if option in args[:-1] else None


# --- compose checks ----------------------------------------------------------------------------------------


def check_image_or_build(compose: Compose) -> list[str]:
    return [
        f"{n}: neither image nor build"
        for n, s in services(compose).items()
        if not ({"image", "build"} & s.keys())
    ]


def check_commands_and_healthchecks(compose: Compose) -> list[str]:
    problems = []
    one_shot = one_shot_services(compose)
    built = built_services(compose)
    for name, service in services(compose).items():
        if name in built and not service.get("command"):
            problems.append(f"{name}: runs the notify image without a command")
        if name in one_shot:
            if service.get("restart") in ("always", "unless-stopped"):
                problems.append(f"{name}: one-shot service must not restart after exiting")
            continue
        test = healthcheck_test(service)
        if test is None:
            problems.append(f"{name}: long-running service without a healthcheck test")
        elif test[:3] == ["CMD", "python", "-c"]:
            try:
                compile(test[3], f"{name} healthcheck", "exec")
            except SyntaxError as exc:
                problems.append(f"{name}: healthcheck code does not compile: {exc}")
    return problems


def check_depends_on(compose: Compose) -> list[str]:
    problems = []
    all_services = services(compose)
    for name, service in all_services.items():
        for dep, spec in depends_on(service).items():
            condition = spec.get("condition") if isinstance(spec, dict) else None
            if dep not in all_services:
                problems.append(f"{name}: depends on unknown service {dep!r}")
                continue
            if condition not in ("service_started", "service_healthy", "service_completed_successfully"):
                problems.append(f"{name}: depends on {dep} without a condition")
            if condition == "service_healthy" and healthcheck_test(all_services[dep]) is None:
                problems.append(f"{name}: waits for {dep} to be healthy, but {dep} has no healthcheck")
    return problems


def check_notify_variables(envs: Mapping[str, Mapping[str, object]]) -> list[str]:
    """Every ``NOTIFY_*`` variable names a Settings field (Settings ignores unknown ones silently)."""
    return [
        f"{where}: {key} is not a field of notify.settings.Settings"
        for where, env in envs.items()
        for key in env
        if key.startswith("NOTIFY_") and key not in SETTINGS_VARIABLES
    ]


def check_urls_name_services(compose: Compose) -> list[str]:
    problems = []
    known = set(services(compose)) | LOCAL_HOSTS
    for name, service in services(compose).items():
        for key, value in environment(service).items():
            if value is None:
                continue
            hosts = [h for h in URL_HOST.findall(value) if h]
            if key.endswith("BOOTSTRAP_SERVERS"):
                hosts += [server.strip().rsplit(":", 1)[0] for server in value.split(",") if server.strip()]
            problems += [
                f"{name}: {key} points at {h!r}, which is not a service" for h in hosts if h not in known
            ]
    return problems


def merged_env(compose: Compose, name: str, image_env: Mapping[str, str]) -> dict[str, str]:
    """What the process sees: the image's ENV, then the service's environment."""
    env = dict(image_env) if name in built_services(compose) else {}
    env.update({k: v for k, v in environment(services(compose)[name]).items() if v is not None})
    return env


def settings_from_env(env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings exactly as the process builds them: from NOTIFY_* environment variables only."""
    with monkeypatch.context() as patch:
        for key in [k for k in os.environ if k.startswith("NOTIFY_")]:
            patch.delenv(key)
        for key, value in env.items():
            if key.startswith("NOTIFY_"):
                patch.setenv(key, value)
        return Settings(_env_file=None)  # type: ignore[call-arg]  # pydantic-settings' init option


def check_ports(compose: Compose, image_env: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Healthchecks and published ports use the ports the processes actually listen on."""
    problems = []
    all_services = services(compose)
    listening: dict[str, int] = {}
    if "api" in all_services:
        listening["api"] = settings_from_env(merged_env(compose, "api", image_env), monkeypatch).api_port
    if "worker" in all_services:
        worker = settings_from_env(merged_env(compose, "worker", image_env), monkeypatch)
        listening["worker"] = worker.worker_http_port
    if "sandbox" in all_services:
        sandbox = settings_from_env(merged_env(compose, "sandbox", image_env), monkeypatch)
        flag = command_option(all_services["sandbox"], "--port")
        listening["sandbox"] = int(flag) if flag is not None else sandbox.sandbox_port
    for name, port in listening.items():
        service = all_services[name]
        if healthcheck_port(service) != port:
            problems.append(f"{name}: healthcheck probes port {healthcheck_port(service)}, listens on {port}")
        if service.get("ports") and port not in published_container_ports(service):
            problems.append(
                f"{name}: publishes {sorted(published_container_ports(service))}, listens on {port}"
            )
    if "sandbox" in listening:
        for name in built_services(compose):
            url = environment(all_services[name]).get("NOTIFY_PROVIDER_URL")
            if (
                url
                and url.startswith("http://sandbox:")
                and not url.startswith(f"http://sandbox:{listening['sandbox']}/")
            ):
                problems.append(
                    f"{name}: NOTIFY_PROVIDER_URL {url} misses the sandbox port {listening['sandbox']}"
                )
    return problems


# --- fixtures ----------------------------------------------------------------------------------------------


def env_example() -> dict[str, str]:
    pairs = (line.partition("=") for line in ENV_EXAMPLE.read_text().splitlines())
    return {k.strip(): v.strip() for k, sep, v in pairs if sep and not k.strip().startswith("#")}


def substitute(text: str, env: Mapping[str, str]) -> str:
    """Compose's variable substitution, as ``docker compose`` does it."""

    def value(match: re.Match[str]) -> str:
        name, kind, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env and (env[name] or not kind.startswith(":")):
            return env[name]
        if kind.endswith("?"):
            raise AssertionError(f"docker compose would refuse to start: {name} is not set ({rest})")
        return rest if kind.endswith("-") else ""

    return SUBSTITUTION.sub(value, text)


def database_roles(
    compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> dict[str, str | None]:
    """The PostgreSQL user each notify service connects as."""
    roles = {}
    for name in ("migrate", "api", "worker"):
        settings = settings_from_env(merged_env(compose, name, image_env), monkeypatch)
        roles[name] = urlsplit(settings.database_url.get_secret_value()).username
    return roles


def exposed_beyond_localhost(compose: Compose) -> dict[str, list[str]]:
    """Published ports that listen on every interface of the host, per service."""
    found: dict[str, list[str]] = {}
    for name, service in services(compose).items():
        for port in service.get("ports") or []:
            if not str(port).startswith("127.0.0.1:"):
                found.setdefault(name, []).append(str(port))
    return found


@pytest.fixture(scope="module")
def compose() -> Compose:
    """The compose file as ``docker compose`` sees it with the values of ``.env.example``."""
    data = yaml.safe_load(substitute(COMPOSE_FILE.read_text(), env_example()))
    assert isinstance(data, dict)
    return data


@pytest.fixture(scope="module")
def stages() -> list[list[Instruction]]:
    return parse_dockerfile(DOCKERFILE.read_text())


@pytest.fixture(scope="module")
def image_env(stages: list[list[Instruction]]) -> dict[str, str]:
    """The final stage's environment, with what it inherits from the stages it is built FROM."""
    named: dict[str, dict[str, str]] = {}
    env: dict[str, str] = {}
    for stage in stages:
        image, *alias = stage[0].args.split()
        env = {**named.get(image, {}), **stage_env(stage)}
        if len(alias) == 2 and alias[0].upper() == "AS":
            named[alias[1]] = env
    return env


def all_envs(compose: Compose, image_env: Mapping[str, str]) -> dict[str, Mapping[str, object]]:
    envs: dict[str, Mapping[str, object]] = {"Dockerfile": image_env}
    envs.update({f"service {n}": environment(s) for n, s in services(compose).items()})
    envs.update(
        {f"extension {k}": v for k, v in compose.items() if k.startswith("x-") and isinstance(v, dict)}
    )
    return envs


def instructions(stage: list[Instruction], keyword: str) -> Iterator[Instruction]:
    return (i for i in stage if i.keyword == keyword)


# --- docker-compose.yaml -----------------------------------------------------------------------------------


class TestCompose:
    def test_expected_services_exist(self, compose: Compose) -> None:
        assert set(services(compose)) >= EXPECTED_SERVICES

    def test_every_service_has_an_image_or_a_build(self, compose: Compose) -> None:
        assert check_image_or_build(compose) == []

    def test_notify_services_share_one_image_built_from_the_repo(self, compose: Compose) -> None:
        built = built_services(compose)
        assert {"migrate", "sandbox", "api", "worker"} <= set(built)
        production = {n: s for n, s in built.items() if n != "sandbox"}
        assert {s.get("image") for s in production.values()} == {"notify:local"}
        assert {s.get("build") for s in production.values()} == {"."}  # the default target: runtime
        assert built["sandbox"]["build"] == {"context": ".", "target": "sandbox"}
        assert built["sandbox"]["image"] != "notify:local"
        assert services(compose)["migrate"]["command"] == ["notify", "migrate"]
        assert services(compose)["api"]["command"] == ["notify-api"]
        assert services(compose)["worker"]["command"] == ["notify-worker"]
        assert services(compose)["sandbox"]["command"][:2] == ["notify", "sandbox"]

    def test_long_running_services_have_commands_and_healthchecks(self, compose: Compose) -> None:
        assert one_shot_services(compose) == {"migrate"}
        assert check_commands_and_healthchecks(compose) == []

    def test_depends_on_names_existing_services_with_conditions(self, compose: Compose) -> None:
        assert check_depends_on(compose) == []
        for name in ("api", "worker"):
            deps = depends_on(services(compose)[name])
            assert deps["migrate"]["condition"] == "service_completed_successfully"
            assert deps["postgres"]["condition"] == deps["kafka"]["condition"] == "service_healthy"
            assert "jaeger" in deps
        assert depends_on(services(compose)["worker"])["sandbox"]["condition"] == "service_healthy"
        assert depends_on(services(compose)["migrate"])["postgres"]["condition"] == "service_healthy"

    def test_notify_variables_are_settings_fields(self, compose: Compose, image_env: dict[str, str]) -> None:
        envs = all_envs(compose, image_env)
        assert check_notify_variables(envs) == []
        assert any(k.startswith("NOTIFY_") for env in envs.values() for k in env)  # the check saw something

    def test_urls_name_existing_services(self, compose: Compose) -> None:
        assert check_urls_name_services(compose) == []

    def test_healthchecks_and_published_ports_match_the_listening_ports(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert check_ports(compose, image_env, monkeypatch) == []

    @pytest.mark.parametrize("name", ["migrate", "sandbox", "api", "worker"])
    def test_each_service_environment_builds_valid_settings(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, name: str
    ) -> None:
        settings = settings_from_env(merged_env(compose, name, image_env), monkeypatch)
        if name != "sandbox":
            assert settings.database_url.get_secret_value().startswith("postgresql://")
            assert settings.kafka_bootstrap_servers == "kafka:9092"
            assert settings.otlp_endpoint == "http://jaeger:4318"
            assert settings.providers_for("sms")[0].url == "http://sandbox:9100/send"
        # Listeners must bind all interfaces, or the published ports reach nothing.
        if name == "api":
            assert settings.api_host == "0.0.0.0"
        if name == "worker":
            assert settings.worker_http_host == "0.0.0.0"

    def test_the_app_connects_as_a_least_privilege_role_and_migrations_as_the_owner(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        assert database_roles(compose, image_env, monkeypatch) == {
            "migrate": "notify_owner",
            "api": "notify_app",
            "worker": "notify_app",
        }
        roles = (ROOT / "deploy/postgres/init-roles.sh").read_text()
        assert "CREATE ROLE notify_app LOGIN" in roles and "SUPERUSER" not in roles
        mounted = services(compose)["postgres"]["volumes"]
        assert "./deploy/postgres/init-roles.sh:/docker-entrypoint-initdb.d/10-notify-roles.sh:ro" in mounted

    def test_dev_only_services_are_published_on_this_host_only(self, compose: Compose) -> None:
        assert exposed_beyond_localhost(compose) == {"api": ["8080:8080"]}

    def test_secrets_have_no_defaults_and_env_example_names_each(self) -> None:
        text = COMPOSE_FILE.read_text()
        used = {m.group(1) for m in SUBSTITUTION.finditer(text)}
        assert used == set(env_example())
        for m in SUBSTITUTION.finditer(text):
            assert m.group(2) == ":?", f"${{{m.group(1)}}} must be required, not defaulted"
        with pytest.raises(AssertionError, match="would refuse to start"):
            substitute(text, {})

    def test_kafka_is_single_node_kraft_advertising_its_service_name(self, compose: Compose) -> None:
        env = environment(services(compose)["kafka"])
        assert env["KAFKA_PROCESS_ROLES"] == "broker,controller"
        assert env["KAFKA_ADVERTISED_LISTENERS"] == "PLAINTEXT://kafka:9092"
        assert env["KAFKA_CONTROLLER_QUORUM_VOTERS"] == f"{env['KAFKA_NODE_ID']}@kafka:9093"
        assert env["KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR"] == "1"
        # KRaft cluster ids are base64url-encoded UUIDs (16 bytes, 22 characters).
        assert re.fullmatch(r"[A-Za-z0-9_-]{22}", env["CLUSTER_ID"] or "")


# --- the `sasl` profile: notify against a SASL/SCRAM broker ---------------------------------------------


def properties(path: Path) -> dict[str, str]:
    pairs = (line.partition("=") for line in path.read_text().splitlines() if not line.startswith("#"))
    return {k.strip(): v.strip() for k, sep, v in pairs if sep}


@dataclass(frozen=True)
class BrokerRun:
    server: dict[str, str]
    client: dict[str, str]
    calls: list[list[str]]  # the Kafka tools the script ran, with their arguments


def run_sasl_broker_script(tmp_path: Path, env: Mapping[str, str | None]) -> BrokerRun:
    """Run deploy/kafka/sasl-broker.sh as the container would, with stand-ins for the two Kafka tools it
    calls (they record their arguments; ``format`` leaves meta.properties behind, as the real one does)."""
    home, config, data = tmp_path / "kafka", tmp_path / "config", tmp_path / "data"
    (home / "bin").mkdir(parents=True, exist_ok=True)
    config.mkdir(exist_ok=True)
    data.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    for tool in ("kafka-storage.sh", "kafka-server-start.sh"):
        script = home / "bin" / tool
        script.write_text(
            "#!/bin/sh\n"
            f'printf "%s\\0" {tool} "$@" >> {calls}; printf "\\n" >> {calls}\n'
            + (f"touch {data}/meta.properties\n" if tool == "kafka-storage.sh" else "")
        )
        script.chmod(0o755)
    run_env = {k: v for k, v in env.items() if v is not None}
    run_env.update(
        KAFKA_HOME=str(home), KAFKA_CONFIG_DIR=str(config), KAFKA_DATA_DIR=str(data), PATH="/usr/bin:/bin"
    )
    subprocess.run(["sh", str(SASL_BROKER_SCRIPT)], env=run_env, check=True, timeout=30)
    recorded = [line.split("\0")[:-1] for line in calls.read_text().splitlines() if line]
    return BrokerRun(
        properties(config / "server.properties"), properties(config / "client.properties"), recorded
    )


def scram_users(format_call: list[str]) -> dict[tuple[str, str], str]:
    """(mechanism, user) -> password, from ``--add-scram 'MECHANISM=[name=U,password=P]'`` arguments."""
    users = {}
    for flag, value in itertools.pairwise(format_call):
        if flag == "--add-scram":
            match = re.fullmatch(r"([A-Z0-9-]+)=\[name=([^,\]]+),password=([^\]]+)\]", value)
            assert match, value
            users[(match.group(1), match.group(2))] = match.group(3)
    return users


@pytest.mark.e2e  # runs the broker's start script (with stand-ins for the Kafka tools)
class TestSaslProfile:
    def test_only_the_sasl_services_are_in_the_profile(self, compose: Compose) -> None:
        profiled = {n: s["profiles"] for n, s in services(compose).items() if "profiles" in s}
        assert profiled == {name: ["sasl"] for name in SASL_PROFILE}  # `up` without it is unchanged

    def test_its_notify_processes_log_in_to_the_broker_with_the_user_the_broker_creates(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        broker = services(compose)["kafka-sasl"]
        assert broker["entrypoint"] == ["/bin/sh", "/opt/notify/sasl-broker.sh"]
        assert "./deploy/kafka/sasl-broker.sh:/opt/notify/sasl-broker.sh:ro" in broker["volumes"]
        run = run_sasl_broker_script(tmp_path, environment(broker))
        (fmt, start) = run.calls
        assert fmt[:2] == ["kafka-storage.sh", "format"] and start[0] == "kafka-server-start.sh"
        users = scram_users(fmt)
        advertised = run.server["advertised.listeners"]
        protocol, _, address = advertised.partition("://")
        for name in ("api-sasl", "worker-sasl"):
            settings = settings_from_env(merged_env(compose, name, image_env), monkeypatch)
            assert settings.kafka_bootstrap_servers == address == "kafka-sasl:9096"
            assert settings.kafka_security_protocol == protocol == "SASL_PLAINTEXT"
            mechanism = settings.kafka_sasl_mechanism
            assert mechanism in run.server["sasl.enabled.mechanisms"].split(",")
            password = settings.kafka_sasl_password
            assert password is not None and settings.kafka_sasl_username is not None
            assert users[(mechanism, settings.kafka_sasl_username)] == password.get_secret_value()
            options = kafka_connection(settings).options()  # what every client of the process gets
            assert (options["security_protocol"], options["sasl_mechanism"]) == (protocol, mechanism)
            deps = depends_on(services(compose)[name])
            assert deps["kafka-sasl"]["condition"] == "service_healthy" and "kafka" not in deps
        # The broker's own login (its listener and the healthcheck's client) is a user it creates too.
        listener = run.server["listener.name.sasl_plaintext.scram-sha-512.sasl.jaas.config"]
        admin = re.search(r'username="([^"]+)" password="([^"]+)"', listener)
        assert admin and users[("SCRAM-SHA-512", admin.group(1))] == admin.group(2)
        assert run.client["sasl.jaas.config"] == listener
        assert run.client["security.protocol"] == protocol
        port = address.rsplit(":", 1)[1]
        assert f"SASL_PLAINTEXT://:{port}" in run.server["listeners"].split(",")
        check = " ".join(healthcheck_test(broker) or [])
        assert (
            f"--bootstrap-server localhost:{port}" in check
            and "--command-config /tmp/client.properties" in check
        )

    def test_a_formatted_volume_is_started_not_formatted_again(
        self, compose: Compose, tmp_path: Path
    ) -> None:
        env = environment(services(compose)["kafka-sasl"])
        run_sasl_broker_script(tmp_path, env)
        again = run_sasl_broker_script(tmp_path, env)
        assert [call[0] for call in again.calls] == [
            "kafka-storage.sh",
            "kafka-server-start.sh",
            "kafka-server-start.sh",
        ]

    def test_the_broker_refuses_to_start_without_its_passwords(self, tmp_path: Path) -> None:
        with pytest.raises(subprocess.CalledProcessError):
            run_sasl_broker_script(tmp_path, {"CLUSTER_ID": "q1Sh-9_ISia_zwGINzRvyQ"})


# --- the checks fail on broken copies ----------------------------------------------------------------------


class TestChecksCatchBrokenStacks:
    def test_unknown_notify_variable(self, compose: Compose, image_env: dict[str, str]) -> None:
        broken = copy.deepcopy(compose)
        services(broken)["worker"]["environment"]["NOTIFY_WORKER_HTTP_PROT"] = "8081"
        problems = check_notify_variables(all_envs(broken, image_env))
        assert problems == [
            "service worker: NOTIFY_WORKER_HTTP_PROT is not a field of notify.settings.Settings"
        ]
        assert check_notify_variables({"Dockerfile": {"NOTIFY_API_HOSTNAME": "0.0.0.0"}})

    def test_missing_or_disabled_healthcheck(self, compose: Compose) -> None:
        broken = copy.deepcopy(compose)
        del services(broken)["worker"]["healthcheck"]
        services(broken)["sandbox"]["healthcheck"]["test"] = ["NONE"]
        services(broken)["api"]["healthcheck"]["test"] = ["CMD", "python", "-c", "import urllib.request;("]
        problems = check_commands_and_healthchecks(broken)
        assert len(problems) == 3
        assert any(p.startswith("worker:") for p in problems)
        assert any(p.startswith("sandbox:") for p in problems)
        assert any(p.startswith("api: healthcheck code does not compile") for p in problems)

    def test_missing_command_and_restarting_one_shot(self, compose: Compose) -> None:
        broken = copy.deepcopy(compose)
        del services(broken)["worker"]["command"]
        services(broken)["migrate"]["restart"] = "always"
        assert len(check_commands_and_healthchecks(broken)) == 2

    def test_bad_depends_on(self, compose: Compose) -> None:
        broken = copy.deepcopy(compose)
        services(broken)["api"]["depends_on"]["postgress"] = {"condition": "service_healthy"}
        services(broken)["worker"]["depends_on"]["kafka"] = {}
        del services(broken)["jaeger"]["healthcheck"]
        problems = check_depends_on(broken)
        assert "api: depends on unknown service 'postgress'" in problems
        assert "worker: depends on kafka without a condition" in problems
        assert any("jaeger has no healthcheck" in p for p in problems)

    def test_url_to_an_unknown_service(self, compose: Compose) -> None:
        broken = copy.deepcopy(compose)
        services(broken)["worker"]["environment"]["NOTIFY_PROVIDER_URL"] = "http://sandbx:9100/send"
        services(broken)["api"]["environment"]["NOTIFY_KAFKA_BOOTSTRAP_SERVERS"] = "kafka:9092,broker2:9092"
        services(broken)["api"]["environment"]["NOTIFY_PROVIDERS"] = json.dumps(
            {"sms": [{"name": "a", "url": "https://gateway.internal/send"}]}
        )
        problems = check_urls_name_services(broken)
        assert len(problems) == 3
        assert any("'sandbx'" in p for p in problems) and any("'broker2'" in p for p in problems)
        assert any("'gateway.internal'" in p for p in problems)

    def test_port_mismatches(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        broken = copy.deepcopy(compose)
        services(broken)["worker"]["environment"]["NOTIFY_WORKER_HTTP_PORT"] = "9000"
        del services(broken)["api"]["environment"]["NOTIFY_API_PORT"]  # default 8080: still consistent
        services(broken)["sandbox"]["command"] = ["sandbox", "--host", "0.0.0.0", "--port", "9200"]
        problems = check_ports(broken, image_env, monkeypatch)
        assert any(p.startswith("worker: healthcheck probes port 8081, listens on 9000") for p in problems)
        assert any(p.startswith("worker: publishes [8081]") for p in problems)
        assert any(p.startswith("sandbox: healthcheck") for p in problems)
        assert any("NOTIFY_PROVIDER_URL" in p for p in problems)
        assert not any(p.startswith(("api: healthcheck", "api: publishes")) for p in problems)

    def test_invalid_setting_value(
        self, compose: Compose, image_env: dict[str, str], monkeypatch: pytest.MonkeyPatch
    ) -> None:
        env = merged_env(compose, "worker", image_env)
        with pytest.raises(pydantic.ValidationError):
            settings_from_env({**env, "NOTIFY_TRACE_SAMPLE_RATIO": "2"}, monkeypatch)
        with pytest.raises(pydantic.ValidationError):
            settings_from_env({**env, "NOTIFY_PROVIDERS": '{"sms": [{"name": "a"}]}'}, monkeypatch)
        parsed = settings_from_env(
            {**env, "NOTIFY_PROVIDERS": '{"sms": [{"name": "a", "url": "http://sandbox:9100/send"}]}'},
            monkeypatch,
        )
        assert parsed.providers_for("sms")[0].name == "a"

    def test_dockerfile_checks(self) -> None:
        no_user = parse_dockerfile(
            'FROM python:3.12-slim AS b\nRUN true\nFROM python:3.12-slim\nCMD ["api"]\n'
        )
        assert check_final_user(no_user)
        as_root = parse_dockerfile("FROM a AS b\nUSER app\nFROM c\nUSER 0:0\n")
        assert check_final_user(as_root) == ["the final stage runs as '0:0'"]
        assert check_final_user(parse_dockerfile("FROM a\nUSER app\n")) == []
        extras = parse_dockerfile("FROM a\nRUN pip install \\\n    '.[dev,test]'\nRUN uv sync --all-extras\n")
        assert len(check_no_extras(extras)) == 2
        assert check_no_extras(parse_dockerfile("FROM a\nRUN [ -f x ] && pip install .\n")) == []


# --- Dockerfile --------------------------------------------------------------------------------------------


class TestDockerfile:
    def test_multi_stage(self, stages: list[list[Instruction]]) -> None:
        assert len(stages) >= 2
        assert all(stage[0].keyword == "FROM" for stage in stages)

    def test_final_stage_runs_as_a_non_root_user(self, stages: list[list[Instruction]]) -> None:
        assert check_final_user(stages) == []

    def test_the_default_command_is_the_api_entrypoint(self, stages: list[list[Instruction]]) -> None:
        final = stages[-1]
        assert not list(instructions(final, "ENTRYPOINT"))
        assert [exec_form(i.args) for i in instructions(final, "CMD")][-1] == ["notify-api"]
        scripts = tomllib.loads(PYPROJECT.read_text())["project"]["scripts"]
        assert scripts == {
            "notify": "notify.entrypoints.cli:run",
            "notify-api": "notify.entrypoints.api:run",
            "notify-worker": "notify.entrypoints.worker:run",
        }

    def test_the_runtime_image_leaves_the_development_tools_out(
        self, stages: list[list[Instruction]]
    ) -> None:
        by_name = {stage[0].args.split()[-1]: stage for stage in stages}
        builder_runs = " ".join(i.args for i in instructions(by_name["builder"], "RUN"))
        assert "rm -r /opt/runtime-venv/lib/python*/site-packages/notify/devtools" in builder_runs
        [runtime_copy] = [shlex.split(i.args) for i in instructions(stages[-1], "COPY")]
        assert runtime_copy == ["--from=builder", "/opt/runtime-venv", "/opt/venv"]
        [sandbox_copy] = [shlex.split(i.args) for i in instructions(by_name["sandbox"], "COPY")]
        assert sandbox_copy == ["--from=builder", "/opt/venv", "/opt/venv"]

    def test_does_not_install_dev_or_test_extras(self, stages: list[list[Instruction]]) -> None:
        assert check_no_extras(stages) == []
        assert any("pip install" in i.args for stage in stages for i in instructions(stage, "RUN"))

    def test_final_stage_copies_only_the_virtualenv(
        self, stages: list[list[Instruction]], image_env: dict[str, str]
    ) -> None:
        copies = [shlex.split(i.args) for i in stages[-1] if i.keyword in ("COPY", "ADD")]
        assert copies, "the final stage copies nothing"
        for args in copies:
            assert any(a.startswith("--from=") for a in args), args
            assert [a for a in args if not a.startswith("--")] == ["/opt/runtime-venv", "/opt/venv"]
        assert image_env["PATH"].startswith("/opt/venv/bin:")
        assert image_env["PYTHONUNBUFFERED"] == "1"

    def test_exposes_the_service_ports(self, stages: list[list[Instruction]]) -> None:
        exposed = {p.split("/")[0] for i in instructions(stages[-1], "EXPOSE") for p in i.args.split()}
        assert {"8080", "8081"} <= exposed
        sandbox = next(stage for stage in stages if stage[0].args.endswith("AS sandbox"))
        assert [i.args for i in instructions(sandbox, "EXPOSE")] == ["9100"]

    def test_migrations_are_packaged_into_the_wheel(self, stages: list[list[Instruction]]) -> None:
        pyproject = tomllib.loads(PYPROJECT.read_text())
        assert pyproject["tool"]["hatch"]["build"]["targets"]["wheel"]["force-include"]["migrations"] == (
            "notify/_migrations"
        )
        assert any((ROOT / "migrations").glob("*.sql"))
        builder_sources = {
            src
            for stage in stages[:-1]
            for i in instructions(stage, "COPY")
            if not i.args.startswith("--from")
            for src in shlex.split(i.args)[:-1]
        }
        assert {"pyproject.toml", "README.md", "src", "migrations"} <= builder_sources

    def test_dockerignore_keeps_build_inputs_and_drops_local_state(self) -> None:
        patterns = dockerignore_patterns()
        for path in ("pyproject.toml", "README.md", "src/notify/settings.py", "migrations/0001.initial.sql"):
            assert not ignored(path, patterns), path
        for path in (".venv/bin/python", ".git/HEAD", "src/notify/__pycache__/x.pyc", ".pytest_cache/v"):
            assert ignored(path, patterns), path
