"""The test run ends every process it started, and says so when a test leaks one (tests/process_guard.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

import psutil
import pytest

from tests.support import REPO

LEAKY_TEST = """
import subprocess, sys

def test_leaks_a_process_in_a_session_of_its_own():
    subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)  # leaked-by-guard-test"],
                     start_new_session=True)
"""

NOT_MARKED = """
import subprocess, sys

def test_spawns_without_the_e2e_mark():
    subprocess.run([sys.executable, "-c", "pass"], check=True)
"""


def _leaked() -> list[psutil.Process]:
    found = []
    for p in psutil.process_iter(["cmdline"]):
        if "leaked-by-guard-test" in " ".join(p.info["cmdline"] or []):
            found.append(p)
    return found


def _run_inner(pytester: pytest.Pytester, source: str, *args: str) -> pytest.RunResult:
    pytester.makeconftest('pytest_plugins = ["tests.process_guard"]\n')
    pytester.makepyfile(source)
    env_path = os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))
    pytester._monkeypatch.setenv("PYTHONPATH", env_path)
    return pytester.runpytest_subprocess("-p", "no:cacheprovider", *args, timeout=120)


def test_a_leaked_process_fails_the_run_and_is_killed(pytester: pytest.Pytester) -> None:
    result = _run_inner(pytester, LEAKY_TEST)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stderr.fnmatch_lines(
        ["*the test run left processes running (now killed)*", "*leaked-by-guard-test*"]
    )
    _, alive = psutil.wait_procs(_leaked(), timeout=10)
    assert alive == [], alive


def test_leftovers_of_a_killed_run_are_killed_by_the_next_one(pytester: pytest.Pytester) -> None:
    # A run SIGKILLed mid-way (pytest itself): its test had started a process that nothing stopped.
    pytester.makeconftest('pytest_plugins = ["tests.process_guard"]\n')
    pytester.makepyfile(
        LEAKY_TEST.replace(
            "start_new_session=True)",
            "start_new_session=True)\n    import os, signal; os.kill(os.getpid(), 9)",
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    env.pop("PYTEST_NOTIFY_RUN", None)
    killed = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", str(pytester.path)],
        env=env,
        cwd=pytester.path,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stdout
    orphans = _leaked()
    assert len(orphans) == 1, orphans
    # The next run, whatever it runs, finds the orphan of the dead run and kills it.
    result = _run_inner(pytester, "def test_nothing(): pass\n")
    assert result.ret == pytest.ExitCode.OK, result.stdout.str()
    result.stderr.fnmatch_lines(["*killed processes left over by an earlier test run*"])
    _, alive = psutil.wait_procs(orphans, timeout=10)
    assert alive == [], alive


def test_a_test_that_starts_processes_must_be_marked_e2e(pytester: pytest.Pytester) -> None:
    result = _run_inner(pytester, NOT_MARKED)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*starts processes but is not marked e2e*"])
    marked = _run_inner(
        pytester, "import pytest\n" + NOT_MARKED.replace("def test", "@pytest.mark.e2e\ndef test")
    )
    assert marked.ret == pytest.ExitCode.OK, marked.stdout.str()
