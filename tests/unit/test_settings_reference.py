"""docs/configuration.md is generated from Settings: every variable documented, the file up to date."""

from __future__ import annotations

from pathlib import Path

import pytest

import notify
from notify.entrypoints.cli import main
from notify.settings import Settings
from notify.settings_reference import reference, undocumented

DOC = Path(__file__).resolve().parents[2] / "docs" / "configuration.md"


def test_every_setting_says_what_it_means() -> None:
    assert undocumented() == []


def test_the_committed_reference_is_the_generated_one() -> None:
    assert DOC.read_text() == reference(), "run: notify settings > docs/configuration.md"
    for name in Settings.model_fields:
        assert f"`NOTIFY_{name.upper()}`" in reference()


def test_notify_settings_prints_it_even_when_the_configuration_is_broken(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_API_PORT", "not a port")
    assert main(["settings"]) == 0
    out = capsys.readouterr().out
    assert out == reference()


def test_bad_settings_are_one_line_each_naming_the_variable(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_API_PORT", "eighty")
    monkeypatch.setenv("NOTIFY_RETRY_BASE_S", "-1")
    assert main(["api"]) == 2
    lines = capsys.readouterr().err.splitlines()
    assert [line.split(":")[1].strip() for line in lines] == ["NOTIFY_API_PORT", "NOTIFY_RETRY_BASE_S"]
    assert all(line.startswith("notify: ") for line in lines)


def test_an_unreachable_database_is_one_line_not_a_traceback(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NOTIFY_DATABASE_URL", "postgresql://postgres@127.0.0.1:1/nowhere")
    assert main(["keys", "list"]) == 1
    err = capsys.readouterr().err
    assert (
        err.startswith("notify keys: cannot reach PostgreSQL (NOTIFY_DATABASE_URL): ")
        and err.count("\n") == 1
    )


def test_notify_version_prints_the_installed_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:  # argparse's version action exits after printing
        main(["--version"])
    assert exited.value.code == 0
    assert capsys.readouterr().out.strip() == f"notify {notify.__version__}"
