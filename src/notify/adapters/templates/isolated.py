"""Templates rendered in worker processes, bounded in time and memory while they run.

Templates are code written by API clients. The Jinja2 sandbox (notify.domain.templates) refuses what it can
see coming, but some templates only show their cost while they run: ``{% set a = [a, a] %}`` repeated
doubles a value each line, and printing it at the end takes seconds and gigabytes. So no template runs in
the API process: each check and render goes to one of a few worker processes (``python -m
notify.adapters.templates.worker``) whose address space is capped, and a render that is not answered within
its time limit gets its worker killed (and replaced). The event loop only ever waits on a pipe.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import sys
from collections.abc import Mapping
from typing import Any

from notify.adapters.telemetry.metrics import TEMPLATE_WORKERS_KILLED
from notify.adapters.templates.protocol import encode, errors_in, frame_length, header_size
from notify.domain.errors import FieldError, ValidationFailed
from notify.domain.model import Channel
from notify.domain.templates import Template

log = logging.getLogger(__name__)


class _Worker:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    @classmethod
    async def start(cls, memory_mib: int) -> _Worker:
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "notify.adapters.templates.worker",
            str(memory_mib),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        worker = cls(process)
        ready = await worker._receive()
        if not ready.get("ready"):
            raise RuntimeError(f"template worker did not start: {ready}")
        return worker

    async def ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self.process.stdin is not None
        self.process.stdin.write(encode(request))
        await self.process.stdin.drain()
        return await self._receive()

    async def _receive(self) -> dict[str, Any]:
        assert self.process.stdout is not None
        header = await self.process.stdout.readexactly(header_size())
        body = await self.process.stdout.readexactly(frame_length(header))
        answer: dict[str, Any] = json.loads(body)
        return answer

    async def stop(self, *, kill: bool = False) -> None:
        if self.process.returncode is None:
            if kill:
                self.process.kill()
            else:
                assert self.process.stdin is not None
                self.process.stdin.close()  # the worker exits at the end of its input
        with contextlib.suppress(ProcessLookupError):
            try:
                await asyncio.wait_for(self.process.wait(), 5)
            except TimeoutError:
                self.process.kill()
                await self.process.wait()


class IsolatedTemplateEngine:
    """The TemplateEngine port on a pool of worker processes. Use as an async context manager (or
    ``start``/``close``) in the process's lifetime."""

    def __init__(self, *, workers: int = 2, time_limit_s: float = 1.0, memory_mib: int = 256) -> None:
        self._size = workers
        self._time_limit_s = time_limit_s
        self._memory_mib = memory_mib
        self._idle: asyncio.Queue[_Worker | None] = asyncio.Queue()
        self._reaping: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        for _ in range(self._size):
            self._idle.put_nowait(None)  # a slot: a worker is started when first needed

    async def close(self) -> None:
        while not self._idle.empty():
            worker = self._idle.get_nowait()
            if worker is not None:
                await worker.stop()
        await asyncio.gather(*self._reaping, return_exceptions=True)

    async def check(self, channel: Channel, body: str, subject: str | None) -> list[FieldError]:
        answer = await self._ask(
            {"op": "check", "channel": channel.value, "body": body, "subject": subject}, "body"
        )
        return errors_in(answer["errors"])

    async def render(
        self, template: Template, variables: Mapping[str, Any], prefix: str = ""
    ) -> tuple[str, str | None]:
        answer = await self._ask(
            {
                "op": "render",
                "channel": template.channel.value,
                "body": template.body,
                "subject": template.subject,
                "variables": dict(variables),
                "prefix": prefix,
            },
            prefix + "template_id",
        )
        if "errors" in answer:
            raise ValidationFailed.for_fields(errors_in(answer["errors"]))
        return str(answer["content"]), answer["subject"]

    async def _ask(self, request: dict[str, Any], field: str) -> dict[str, Any]:
        worker = await self._idle.get()
        dead: str | None = None
        try:
            if worker is None:
                worker = await _Worker.start(self._memory_mib)
            try:
                answer = await asyncio.wait_for(worker.ask(request), self._time_limit_s)
            except TimeoutError:
                dead = f"rendering this template takes longer than {self._time_limit_s:g} s"
            except (asyncio.IncompleteReadError, ConnectionError):  # it died: out of memory
                dead = "rendering this template needs more memory than a render may use"
            else:
                if "fatal" not in answer:
                    return answer
                dead = "rendering this template failed: " + str(answer["fatal"])
        except BaseException:
            dead = dead or "interrupted"  # cancelled mid-answer: its next answer would be this one's
            raise
        finally:
            if dead is not None and worker is not None:
                TEMPLATE_WORKERS_KILLED.inc()
                log.warning("template worker killed", extra={"reason": dead})
                self._reaping.add(asyncio.create_task(worker.stop(kill=True)))
                self._reaping = {t for t in self._reaping if not t.done()}
                worker = None  # the slot starts a new worker on its next use
            self._idle.put_nowait(worker)
        raise ValidationFailed.for_fields([FieldError(field, dead, "template_too_expensive")])
