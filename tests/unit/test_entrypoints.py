"""The process mains: ``notify-api`` and ``notify-worker`` are ``notify api`` and ``notify worker``; a
development tool missing from the runtime image is a clear message and exit code 2, not a traceback."""

from __future__ import annotations

import sys

import pytest

from notify.entrypoints import api, cli, worker


@pytest.mark.parametrize(("main", "command"), [(api.main, "api"), (worker.main, "worker")])
def test_each_binary_is_its_cli_command(
    main: object, command: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert callable(main)
    with pytest.raises(SystemExit) as done:
        main(["--help"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith(f"usage: notify {command}")


@pytest.mark.parametrize("argv", [["sandbox"], ["dev"]])
def test_a_development_tool_left_out_of_the_image_is_a_message_not_a_traceback(
    argv: list[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in the runtime image, where notify/devtools is deleted: importing any of it fails.
    for name in ("notify.devtools", "notify.devtools.sandbox", "notify.devtools.devstack"):
        monkeypatch.setitem(sys.modules, name, None)
    assert cli.main(argv) == 2
    assert "a development tool, not installed here" in capsys.readouterr().err


@pytest.mark.parametrize("count", ["0", "-2", "two"])
def test_api_processes_must_be_a_positive_count(count: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        cli.main(["api", "--processes", count])
    assert exit_.value.code == 2
    assert "--processes" in capsys.readouterr().err
