"""A template worker process: renders (and checks) untrusted templates for the API, one at a time.

Run as ``python -m notify.adapters.templates.worker <memory limit in MiB>`` by IsolatedTemplateEngine, which
talks to it over stdin/stdout (see protocol.py) and kills it when a render takes too long. Its address space
is capped (RLIMIT_AS): a template that builds gigabytes fails with MemoryError here (answered as an error),
or gets this process killed, never the API.
"""

from __future__ import annotations

import resource
import sys
from typing import Any, BinaryIO

from notify.adapters.templates.jinja import check_template_source, render
from notify.adapters.templates.protocol import encode, errors_out, frame_length, header_size
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import Template


def _answer(request: dict[str, Any]) -> dict[str, Any]:
    channel = Channel(request["channel"])
    if request["op"] == "check":
        return {"errors": errors_out(check_template_source(channel, request["body"], request["subject"]))}
    template = Template(None, "", "", channel, request["body"], request["subject"], None, None)  # type: ignore[arg-type]
    try:
        content, subject = render(template, request["variables"], request["prefix"])
    except ValidationFailed as exc:
        return {"errors": errors_out(exc.details)}
    except (MemoryError, RecursionError):
        why = FieldError(request["prefix"] + "template_id", TOO_MUCH_MEMORY, "template_too_expensive")
        return {"errors": errors_out([why])}
    return {"content": content, "subject": subject}


TOO_MUCH_MEMORY = "rendering this template needs more memory than a render may use"


def _read(stream: BinaryIO, size: int) -> bytes | None:
    data = stream.read(size)
    return data if data and len(data) == size else None


def main(argv: list[str]) -> int:
    memory_mib = int(argv[1]) if len(argv) > 1 else 0
    if memory_mib:
        limit = memory_mib * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    import json

    stdin, stdout = sys.stdin.buffer, sys.stdout.buffer
    stdout.write(encode({"ready": True}))
    stdout.flush()
    while True:
        header = _read(stdin, header_size())
        if header is None:
            return 0  # the API closed the pipe: done
        body = _read(stdin, frame_length(header))
        if body is None:
            return 0
        try:
            answer = _answer(json.loads(body))
        except MemoryError:
            answer = {"fatal": "out of memory"}
        stdout.write(encode(answer))
        stdout.flush()


if __name__ == "__main__":
    sys.exit(main(sys.argv))
