"""docker-compose.yml, checked without Docker.

The file is parsed and held against the project: every `kameng <sub>` a service runs must be a
command of the CLI with those options, every variable given to Kameng's processes must be one
something reads, secrets must come from the environment, and the start-up order must hold.
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import typer.main
import yaml

from service.cli import cli
from kameng.settings import ConfigurationError, Settings, env_names

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"

# Services that run the Kameng image, and so get Kameng's environment.
APP_SERVICES = ("migrate", "api", "worker")

# Variables set on Kameng's services that the settings do not read, each with the file of
# this project that does read it (the test checks that it still does, so the list can't go stale).
READ_ELSEWHERE = {
    # prometheus_client switches to multi-process mode when it is set (each uvicorn process
    # writes its metrics there), and app.py's metrics() then aggregates the processes' files.
    "PROMETHEUS_MULTIPROC_DIR": "app.py",
}

# `${NAME:?message}`: compose refuses to start unless NAME is set.
REQUIRED_REF = re.compile(r"^\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*):\?[^}]*\}$")
# Any interpolation: ${NAME}, ${NAME:-default}, ${NAME?msg}...
ANY_REF = re.compile(r"\$\{(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?P<rest>[^}]*)\}")
SECRET_NAME = re.compile(r"SECRET|PASSWORD|PASSWD|TOKEN|(^|_)KEY$|CREDENTIAL", re.IGNORECASE)
SHELL_SEPARATORS = {"&&", "||", ";", "|", "&"}


def load_compose() -> dict[str, Any]:
    assert COMPOSE.exists(), f"{COMPOSE} is missing"
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict) and isinstance(data.get("services"), dict), (
        "docker-compose.yml must be a mapping with a `services` mapping"
    )
    return data


def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def environment(service: dict[str, Any]) -> dict[str, str]:
    """A service's environment as a mapping, whichever of compose's two notations it uses."""
    env = service.get("environment") or {}
    if isinstance(env, list):
        pairs = (item.split("=", 1) if "=" in item else (item, "") for item in env)
        return {name: value for name, value in pairs}
    return {str(name): "" if value is None else str(value) for name, value in env.items()}


def command_tokens(service: dict[str, Any]) -> list[str]:
    command = service.get("command") or []
    return shlex.split(command) if isinstance(command, str) else [str(token) for token in command]


def kameng_invocation(service: dict[str, Any]) -> tuple[str, list[str]] | None:
    """(subcommand, its arguments) if the service runs `kameng <sub> ...`, else None."""
    tokens = command_tokens(service)
    for index, token in enumerate(tokens):
        if Path(token).name == "kameng" or token.endswith("/kameng"):
            args: list[str] = []
            for arg in tokens[index + 1 :]:
                if arg in SHELL_SEPARATORS:
                    break
                args.append(arg)
            assert args, f"`{' '.join(tokens)}` runs kameng without a subcommand"
            return args[0], args[1:]
    return None


def kameng_commands() -> dict[str, Any]:
    """The click commands typer builds (typer may bring its own copy of click: no isinstance)."""
    group = typer.main.get_command(cli)
    assert hasattr(group, "commands"), "service.cli.cli should be a group of subcommands"
    return dict(group.commands)


def resolve(value: str, *, secret: str = "x" * 48) -> str:
    """The value compose would pass with an empty shell environment (required ones filled in)."""

    def substitute(match: re.Match[str]) -> str:
        rest = match.group("rest")
        if rest.startswith((":-", "-")):
            return rest.split("-", 1)[1]
        if rest.startswith((":?", "?")):
            return secret
        return ""

    return ANY_REF.sub(substitute, value)


def options_of(command: Any) -> set[str]:
    return {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}


# (1) services and health checks ---------------------------------------------------------------


def test_services_exist() -> None:
    found = set(services())
    missing = {"postgres", "redis", "migrate", "api", "worker"} - found
    assert not missing, f"docker-compose.yml lacks the service(s) {sorted(missing)}; it has {sorted(found)}"


@pytest.mark.parametrize(
    ("name", "probe"),
    [("postgres", "pg_isready"), ("redis", "redis-cli ping"), ("api", "/readyz")],
)
def test_health_checks(name: str, probe: str) -> None:
    service = services()[name]
    check = service.get("healthcheck")
    assert check and not check.get("disable"), f"service {name!r} needs a healthcheck (others wait on it)"
    test = check.get("test")
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    assert probe in text, f"{name!r} healthcheck should use {probe!r}, it runs: {text!r}"


def test_api_health_check_needs_no_curl_and_hits_the_served_port() -> None:
    api = services()["api"]
    test = api["healthcheck"]["test"]
    text = test if isinstance(test, str) else " ".join(str(part) for part in test)
    assert "curl" not in text and "wget" not in text, (
        f"python:3.11-slim has neither curl nor wget; probe with python's urllib: {text!r}"
    )
    invocation = kameng_invocation(api)
    assert invocation is not None, "the api service must run `kameng serve`"
    params = kameng_commands()[invocation[0]].make_context("serve", list(invocation[1]), resilient_parsing=False).params
    assert f":{params['port']}/readyz" in text, (
        f"the api healthcheck must probe /readyz on the port it serves ({params['port']}): {text!r}"
    )


# (2) commands ---------------------------------------------------------------------------------


def test_app_services_run_kameng() -> None:
    all_services = services()
    for name in APP_SERVICES:
        assert kameng_invocation(all_services[name]) is not None, (
            f"service {name!r} should run a `kameng ...` command, it runs {command_tokens(all_services[name])}"
        )
    assert kameng_invocation(all_services["api"])[0] == "serve", "the api service must run `kameng serve`"  # type: ignore[index]
    assert kameng_invocation(all_services["worker"])[0] == "worker", "the worker service must run `kameng worker`"  # type: ignore[index]
    assert kameng_invocation(all_services["migrate"])[0] == "migrate", "the migrate service must run `kameng migrate`"  # type: ignore[index]


def test_every_kameng_command_and_option_exists() -> None:
    registered = {c.name or c.callback.__name__ for c in cli.registered_commands}  # type: ignore[union-attr]
    commands = kameng_commands()
    checked = 0
    for name, service in services().items():
        invocation = kameng_invocation(service)
        if invocation is None:
            continue
        sub, args = invocation
        assert sub in registered, (
            f"service {name!r} runs `kameng {sub}`, but the CLI only has {sorted(registered)}"
        )
        command = commands[sub]
        known = options_of(command)
        for arg in args:
            if arg.startswith("-"):
                option = arg.split("=", 1)[0]
                assert option in known, (
                    f"service {name!r}: `kameng {sub}` has no option {option!r} (it has {sorted(known)})"
                )
        # Let click parse the arguments as it would at start-up: values must convert too.
        try:
            command.make_context(f"kameng {sub}", list(args), resilient_parsing=False)
        except Exception as error:  # click's UsageError/BadParameter, from whichever click typer uses
            message = error.format_message() if hasattr(error, "format_message") else repr(error)
            pytest.fail(f"service {name!r}: `kameng {sub} {' '.join(args)}` does not parse: {message}")
        checked += 1
    assert checked >= len(APP_SERVICES), "no service runs kameng: the command check checked nothing"


# (3) environment ------------------------------------------------------------------------------


def test_every_variable_is_read_by_something() -> None:
    read_by_settings = env_names()
    all_services = services()
    for name in APP_SERVICES:
        for variable in environment(all_services[name]):
            if variable in read_by_settings:
                continue
            assert variable in READ_ELSEWHERE, (
                f"service {name!r} sets {variable}, which kameng.settings does not read (env_names()) "
                f"and which is not in READ_ELSEWHERE: a typo, or a variable nothing uses"
            )


@pytest.mark.parametrize(("variable", "reader"), sorted(READ_ELSEWHERE.items()))
def test_allow_list_is_current(variable: str, reader: str) -> None:
    source = (ROOT / reader).read_text()
    assert variable in source, f"READ_ELSEWHERE says {reader} reads {variable}, but it no longer mentions it"
    assert variable not in env_names(), f"{variable} is read by the settings now: drop it from READ_ELSEWHERE"


def test_environment_satisfies_production_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """What the api gets must pass the settings' own checks, and allow `serve --workers N`."""
    for variable in env_names() | set(READ_ELSEWHERE):
        monkeypatch.delenv(variable, raising=False)
    for variable, value in environment(services()["api"]).items():
        monkeypatch.setenv(variable, resolve(value))
    try:
        settings = Settings()
        settings.signing_secret()
    except (ConfigurationError, ValueError) as error:
        pytest.fail(f"the api's environment does not make valid settings: {error}")
    assert settings.env == "production", "the compose stack is a production deployment: KAMENG_ENV=production"
    assert not settings.is_sqlite, "DATABASE_URL must point at PostgreSQL"
    assert settings.redis_url and settings.broker_url, "several processes need REDIS_URL and BROKER_URL"


def test_urls_point_at_compose_services() -> None:
    all_services = services()
    expected = {"DATABASE_URL": "postgres", "REDIS_URL": "redis", "BROKER_URL": "redis"}
    for name in APP_SERVICES:
        env = environment(all_services[name])
        for variable, host in expected.items():
            assert variable in env, f"service {name!r} needs {variable}"
            url = urlsplit(resolve(env[variable]))
            assert url.hostname == host, f"service {name!r}: {variable} should reach the {host!r} service, not {url.hostname!r}"
            # migrate only touches the database; the long-running services use all three.
            if name != "migrate" or variable == "DATABASE_URL":
                dependencies = all_services[name].get("depends_on") or {}
                assert host in dependencies, f"service {name!r} uses {host!r} ({variable}) and must depend on it"


def test_multiprocess_metrics_directory_exists() -> None:
    dockerfile = DOCKERFILE.read_text() if DOCKERFILE.exists() else ""
    for name, service in services().items():
        directory = environment(service).get("PROMETHEUS_MULTIPROC_DIR")
        if not directory:
            continue
        tmpfs = service.get("tmpfs") or []
        mounts = [tmpfs] if isinstance(tmpfs, str) else [str(mount).split(":")[0] for mount in tmpfs]
        for volume in service.get("volumes") or []:
            mounts.append(volume.get("target") if isinstance(volume, dict) else str(volume).split(":")[1])
        made = re.search(rf"mkdir\s+(-\S+\s+)*{re.escape(directory)}(\s|$)", dockerfile) or any(
            f"mkdir -p {directory}" in token for token in command_tokens(service)
        )
        assert directory in mounts or made, (
            f"service {name!r} sets PROMETHEUS_MULTIPROC_DIR={directory}, which prometheus_client needs to "
            f"exist: mount it (tmpfs) or create it in the Dockerfile or the command"
        )


# (4) secrets ----------------------------------------------------------------------------------


def test_secret_key_comes_from_the_environment() -> None:
    all_services = services()
    for name in APP_SERVICES:
        value = environment(all_services[name]).get("KAMENG_SECRET_KEY")
        assert value is not None, f"service {name!r} needs KAMENG_SECRET_KEY (production refuses to start without)"
        match = REQUIRED_REF.match(value)
        assert match and match.group("name") == "KAMENG_SECRET_KEY", (
            f"service {name!r}: KAMENG_SECRET_KEY must be `${{KAMENG_SECRET_KEY:?...}}` (required, from the "
            f"environment), never a literal or a default; it is {value!r}"
        )


def test_no_literal_secrets() -> None:
    for name, service in services().items():
        for variable, value in environment(service).items():
            if SECRET_NAME.search(variable):
                assert value.startswith("${") and value.endswith("}"), (
                    f"service {name!r}: {variable} looks like a secret and must be a ${{...}} reference, "
                    f"not the literal {value!r}"
                )
                if name in APP_SERVICES:
                    assert REQUIRED_REF.match(value), (
                        f"service {name!r}: {variable} must be required (`${{{variable}:?...}}`), "
                        f"with no default value: {value!r}"
                    )
            if "://" in value:
                password = urlsplit(value).password
                assert not password or ANY_REF.fullmatch(password), (
                    f"service {name!r}: the password in {variable} must be a ${{...}} reference, not a literal"
                )


# (5) start-up order ---------------------------------------------------------------------------


def test_start_up_order() -> None:
    all_services = services()
    for name in APP_SERVICES:
        for dependency in all_services[name].get("depends_on") or {}:
            assert dependency in all_services, f"service {name!r} depends on the unknown service {dependency!r}"

    migrate = all_services["migrate"].get("depends_on") or {}
    assert isinstance(migrate, dict) and migrate.get("postgres", {}).get("condition") == "service_healthy", (
        "migrate must wait for postgres to be healthy (depends_on: postgres: condition: service_healthy)"
    )
    assert all_services["migrate"].get("restart", "no") in ("no", False), "migrate is a one-shot: restart: \"no\""

    for name in ("api", "worker"):
        depends = all_services[name].get("depends_on")
        assert isinstance(depends, dict), f"service {name!r}: depends_on needs the long form, with conditions"
        assert (depends.get("migrate") or {}).get("condition") == "service_completed_successfully", (
            f"service {name!r} must start only after migrations: migrate: condition: service_completed_successfully"
        )
        assert (depends.get("redis") or {}).get("condition") == "service_healthy", (
            f"service {name!r} must wait for redis: redis: condition: service_healthy"
        )


# (6) several API processes --------------------------------------------------------------------


def test_api_runs_several_processes() -> None:
    invocation = kameng_invocation(services()["api"])
    assert invocation is not None and invocation[0] == "serve", "the api service must run `kameng serve`"
    context = kameng_commands()["serve"].make_context("kameng serve", list(invocation[1]), resilient_parsing=False)
    workers = context.params["workers"]
    assert workers > 1, f"the api should run several uvicorn processes (--workers N, N > 1), it runs {workers}"
