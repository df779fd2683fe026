"""Rate limits that hold for the deployment, not per process (issue 14): three real workers share one
provider limit, two real APIs share one key's limit. Each case also runs with
``NOTIFY_RATE_LIMIT_SCOPE=process`` to show the measurement would catch per-process buckets (there, N
processes send N times the rate)."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from notify.bootstrap import KEY_BURST_S
from tests.conftest import Stack
from tests.e2e.test_observability import scrape, value
from tests.e2e.test_walking_skeleton import wait_all_status
from tests.support import NotifyProcess, eventually

RATE = 30.0  # per second: well under what one worker sends on this machine, so the limit is what binds
WORKERS = ("w1", "w2", "w3")


def assignments(process: NotifyProcess) -> list[set[str]]:
    """Every partition assignment the worker logged, oldest first."""
    found = []
    for line in process.log_text().splitlines():
        if "partitions assigned" in line:
            try:
                found.append(set(json.loads(line)["partitions"]))
            except (ValueError, KeyError):
                continue
    return found


async def settled_group(stack: Stack, workers: list[NotifyProcess]) -> None:
    """Wait until the group's last rebalance is done: every worker holds partitions, none held twice, all
    held (a rebalance during the measurement would stall sending and lower the rate measured)."""

    async def settled() -> bool:
        logged = [assignments(w) for w in workers]
        if not all(logged):
            return False
        everything = set().union(*(a for worker in logged for a in worker))  # every partition seen assigned
        current = [worker[-1] for worker in logged]
        # A worker's stale assignment from an earlier generation overlaps the others' current ones.
        return all(current) and sum(map(len, current)) == len(everything) == len(set().union(*current))

    await eventually(settled, timeout_s=60, interval_s=0.2, what="the consumer group to settle")


def steady_rate(received: list[float]) -> float:
    """Messages per second between the 10th percentile of arrivals and the last: the first tenth holds the
    bucket's burst and the slices first taken, which a sustained rate does not include."""
    received = sorted(received)
    window = received[len(received) // 10 :]
    return (len(window) - 1) / (window[-1] - window[0])


def busiest_second(received: list[float]) -> int:
    received = sorted(received)
    most, start = 0, 0
    for end, at in enumerate(received):
        while at - received[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


@pytest.mark.parametrize("scope", ["cluster", "process"])
async def test_three_workers_send_at_one_provider_rate_together(stack: Stack, scope: str) -> None:
    # 15 s at the shared rate; per-process buckets send 3x faster, and fewer show that as well.
    total = 450 if scope == "cluster" else 240
    await stack.start_sandbox()
    await stack.start_api()
    workers = [  # joining together: one rebalance to wait for, not three
        await stack.start_worker(name, wait=False, rate_limit_sms=RATE, rate_limit_scope=scope)
        for name in WORKERS
    ]
    await settled_group(stack, workers)

    batch = [{"channel": "sms", "recipient": "+14155550123", "content": f"limited {i}"} for i in range(total)]
    async with stack.http.post(
        f"{stack.api_url}/api/v1/notifications/batch", json={"notifications": batch}
    ) as r:
        assert r.status in (200, 201, 207), await r.text()
    await wait_all_status(stack, total, timeout_s=total / RATE + 60)

    messages = (await stack.sandbox("/messages?channel=sms"))["messages"]
    assert len(messages) == total
    received = [m["received_monotonic"] for m in messages]
    rate, peak = steady_rate(received), busiest_second(received)
    shares: list[float] = []

    async def every_round_counted() -> bool:
        # A worker counts a round once it is over, after it stored the status read above: wait for the last.
        nonlocal shares
        async with aiohttp.ClientSession() as http:
            shares = [
                value(
                    await scrape(http, stack.workers[n]),
                    "notify_delivery_rounds_total",
                    missing=0,
                    channel="sms",
                    outcome="delivered",
                )
                for n in WORKERS
            ]
        return sum(shares) >= total

    await eventually(
        every_round_counted, timeout_s=10, what=f"{total} delivered rounds counted by the workers"
    )
    print(f"scope={scope}: steady {rate:.1f}/s, busiest second {peak}, per worker {shares}")
    assert sum(shares) == total
    assert min(shares) >= total / 10, f"every worker sent its share: {shares}"
    if scope == "cluster":
        assert 0.9 * RATE <= rate <= 1.1 * RATE, f"{rate:.1f}/s against a limit of {RATE:g}/s"
        # A second can hold the burst (0.2 s of tokens) and the slices the three workers hold (0.1 s each).
        assert peak <= RATE * 1.6, f"{peak} in one second against a limit of {RATE:g}/s"
    else:  # each process its own bucket: the measurement above sees the three-fold rate
        assert rate > 2 * RATE, f"{rate:.1f}/s"


KEY_RATE = 20.0
HAMMER_S = 5.0


async def hammer(http: aiohttp.ClientSession, url: str, until: float, refused: list[dict[str, str]]) -> int:
    admitted = 0
    while time.monotonic() < until:
        async with http.get(f"{url}/api/v1/notifications") as r:
            await r.read()
            if r.status == 200:
                admitted += 1
            else:
                assert r.status == 429, r.status
                refused.append(dict(r.headers))
    return admitted


async def admitted_by(
    url: str, until: float, refused: list[dict[str, str]], http: aiohttp.ClientSession, clients: int = 4
) -> int:
    return sum(await asyncio.gather(*(hammer(http, url, until, refused) for _ in range(clients))))


@pytest.mark.parametrize("scope", ["cluster", "process"])
async def test_two_apis_admit_one_key_rate_together(stack: Stack, scope: str) -> None:
    for name in ("api-1", "api-2"):
        await stack.start_api(name, api_key_rate_limit_per_s=KEY_RATE, rate_limit_scope=scope)
    refused: list[dict[str, str]] = []
    until = time.monotonic() + HAMMER_S
    per_api = await asyncio.gather(
        *(admitted_by(url, until, refused, stack.http) for url in (stack.apis["api-1"], stack.apis["api-2"]))
    )
    admitted = sum(per_api)
    # The bucket starts full (a second's worth: bootstrap.KEY_BURST_S), then refills at the key's rate.
    expected = KEY_RATE * HAMMER_S + KEY_RATE * KEY_BURST_S
    print(f"scope={scope}: admitted {per_api} = {admitted}, expected {expected:g}, refused {len(refused)}")
    assert refused, "the hammering went past the limit"
    assert min(per_api) > 0, "both APIs admitted some"
    for headers in refused[:50]:
        assert headers["RateLimit-Limit"] == f"{KEY_RATE:g}"
        assert headers["RateLimit-Remaining"] == "0"
        assert int(headers["RateLimit-Reset"]) >= 1 and headers["Retry-After"] == headers["RateLimit-Reset"]
    if scope == "cluster":
        assert 0.9 * expected <= admitted <= 1.1 * expected, f"{admitted} against {expected:g}"
    else:
        assert admitted > 1.6 * expected, f"{admitted}: each API its own bucket"
