#!/usr/bin/env python3
"""Benchmark a running notify stack (e.g. `scripts/dev`): POST throughput and latency, and the time from
acceptance to delivery at the sandbox provider.

    .venv/bin/python scripts/bench_delivery.py --key "$NOTIFY_KEY" -n 2000 -c 50

It resets the sandbox's counters first and sends only to 127.0.0.1. Bounded: it stops after --timeout s.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from datetime import datetime

import aiohttp


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def parse(ts: str) -> datetime:
    return datetime.fromisoformat(ts.replace("Z", "+00:00"))


async def main(args: argparse.Namespace) -> int:
    async with aiohttp.ClientSession(headers={"Authorization": f"Bearer {args.key}"}) as http:
        async with http.post(f"{args.sandbox}/reset") as r:
            r.raise_for_status()
        gate = asyncio.Semaphore(args.concurrency)
        post_ms: list[float] = []
        ids: list[str] = []
        errors = 0

        async def one(i: int) -> None:
            nonlocal errors
            body = {
                "channel": args.channel,
                "recipient": args.recipient,
                "content": f"bench {i}",
                "priority": args.priority,
            }
            async with gate:
                t0 = time.perf_counter()
                async with http.post(f"{args.api}/api/v1/notifications", json=body) as r:
                    data = await r.json()
                post_ms.append((time.perf_counter() - t0) * 1000)
                if r.status == 201:
                    ids.append(data["id"])
                else:
                    errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(args.n)))
        post_s = time.perf_counter() - started

        deadline = time.monotonic() + args.timeout
        while time.monotonic() < deadline:
            async with http.get(f"{args.sandbox}/stats") as r:
                stats = await r.json()
            if stats["accepted"] >= len(ids):
                break
            await asyncio.sleep(0.05)
        all_s = time.perf_counter() - started

        wanted = set(ids)
        latencies: list[float] = []
        cursor = None
        while wanted and time.monotonic() < deadline:
            url = f"{args.api}/api/v1/notifications?page_size=100&status=delivered" + (
                f"&cursor={cursor}" if cursor else ""
            )
            async with http.get(url) as r:
                page = await r.json()
            for n in page["data"]:
                if n["id"] in wanted:
                    wanted.discard(n["id"])
                    latencies.append((parse(n["sent_at"]) - parse(n["created_at"])).total_seconds() * 1000)
            cursor = page["next_cursor"]
            if not cursor:
                break

    print(f"notifications: {args.n} ({args.channel}, {args.priority}), POST concurrency {args.concurrency}")
    print(
        f"POST: {len(ids)} accepted, {errors} errors in {post_s:.2f} s = {len(ids) / post_s:.0f}/s; "
        f"latency ms p50 {pct(post_ms, 50):.1f} p95 {pct(post_ms, 95):.1f} p99 {pct(post_ms, 99):.1f}"
    )
    print(
        f"all delivered at the sandbox after {all_s:.2f} s = {stats['accepted'] / all_s:.0f}/s end to end "
        f"(sandbox accepted {stats['accepted']}, duplicates {len(stats['duplicates'])})"
    )
    if latencies:
        print(
            f"accepted -> delivered ms: p50 {pct(latencies, 50):.1f} p95 {pct(latencies, 95):.1f} "
            f"p99 {pct(latencies, 99):.1f} max {max(latencies):.1f} mean {statistics.mean(latencies):.1f}"
        )
    return 0 if not errors and stats["accepted"] >= len(ids) else 1


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--api", default="http://127.0.0.1:8080")
    parser.add_argument("--sandbox", default="http://127.0.0.1:9100")
    parser.add_argument("--key", required=True, help="an API key (scripts/dev prints one)")
    parser.add_argument("-n", type=int, default=2000)
    parser.add_argument("-c", "--concurrency", type=int, default=50)
    parser.add_argument("--channel", default="sms")
    parser.add_argument("--recipient", default="+14155550123")
    parser.add_argument("--priority", default="normal")
    parser.add_argument("--timeout", type=float, default=120)
    raise SystemExit(asyncio.run(main(parser.parse_args())))
