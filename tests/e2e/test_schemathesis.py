"""Schemathesis against the real API (with its database, broker, worker and provider sandbox behind it): the
API must never answer 5xx, and every answer must be one the OpenAPI document describes (status, headers,
content type, body schema), also for invalid input and without an API key.

The run is bounded by ``--max-time``, and the subprocess by a hard timeout above it.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import aiohttp
import pytest

from notify.adapters.http import openapi
from notify.adapters.http.routes import ROUTES
from notify.bootstrap import build_api_app
from notify.settings import load_settings
from tests.conftest import Stack

pytestmark = pytest.mark.timeout(300)

# The whole run's budget: schemathesis repeats fuzzing and stateful testing until it is spent, so the test
# takes this long whatever the machine. 60 s is ~5,000 requests here, every operation in every phase.
MAX_TIME_S = 60
MAX_EXAMPLES = 30  # per operation, per repetition
# A Server-Sent Events stream never ends, so a request/response fuzzer can only time out on it (its
# validation and headers are covered in test_resumable_stream.py).
EXCLUDED_PATHS = ("/api/v1/events",)
HARD_LIMIT_S = MAX_TIME_S + 60
SEED = 20250115  # fixed, so a failure reproduces with the same command

# Every check but positive_data_acceptance: the documented request schemas are the pydantic models the
# handlers validate with, which cannot express the business rules checked after them (an E.164 number valid
# in its country's numbering plan, content or template_id, expires_at in the future ...). Schema-valid input
# that breaks those rules is rightly a 400, which that check would count as a failure.
CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "missing_required_header",
    "unsupported_method",
    "allow_header_conformance",
    "use_after_free",
    "ensure_resource_availability",
    "ignored_auth",
]


async def schema_location(stack: Stack, tmp_path: Path) -> list[str]:
    """The API's own /openapi.json; until create_app serves it, the same document built in this process."""
    async with aiohttp.ClientSession() as http, http.get(f"{stack.api_url}/openapi.json") as r:
        if r.status == 200:
            return [f"{stack.api_url}/openapi.json"]
    app = build_api_app(load_settings())
    path = tmp_path / "openapi.json"
    path.write_text(json.dumps(openapi.build_openapi(app)))
    return [str(path), "--url", stack.api_url]


async def test_the_api_conforms_to_its_openapi_document(stack: Stack, tmp_path: Path) -> None:
    await stack.start_sandbox()
    await stack.start_api()
    await stack.start_worker()
    command = [
        sys.executable,
        "-m",
        "schemathesis.cli",
        "run",
        *await schema_location(stack, tmp_path),
        "--header",
        f"Authorization: Bearer {stack.api_key}",
        "--checks",
        ",".join(CHECKS),
        *(arg for path in EXCLUDED_PATHS for arg in ("--exclude-path", path)),
        "--max-examples",
        str(MAX_EXAMPLES),
        "--max-time",
        str(MAX_TIME_S),
        "--seed",
        str(SEED),
        "--request-timeout",
        "10",
        "--generation-database",
        "none",  # no .hypothesis folder left behind
        "--output-truncate",
        "false",
        "--no-color",
    ]
    process = await asyncio.create_subprocess_exec(
        *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=tmp_path
    )
    try:
        out, _ = await asyncio.wait_for(process.communicate(), timeout=HARD_LIMIT_S)
    except TimeoutError:
        process.kill()
        out, _ = await process.communicate()
        raise AssertionError(f"schemathesis ran past {HARD_LIMIT_S}s:\n{out.decode()[-20000:]}") from None
    report = out.decode(errors="replace")
    print(report)  # shown by pytest when the test fails
    assert process.returncode == 0, report[-30000:]
    tested = re.search(r"Tested:\s+(\d+)", report)
    fuzzed = [route for route in ROUTES if route.path not in EXCLUDED_PATHS]
    assert tested is not None and int(tested.group(1)) == len(fuzzed), report[-3000:]
