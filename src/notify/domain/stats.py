"""Delivery statistics: the latency histogram's buckets and the figures derived from summed counters."""

from __future__ import annotations

from collections.abc import Sequence

#: Upper bounds (ms, exclusive) of the latency histogram's buckets; bucket ``k`` counts latencies in
#: ``[bounds[k-1], bounds[k])`` (``bounds[-1]`` taken as 0 for the first) and one last bucket counts every
#: latency from ``bounds[-1]`` up. The same array as the SQL function ``delivery_latency_bounds_ms()`` of
#: migration 0006, which fills the histograms (a test checks that the two agree).
LATENCY_BOUNDS_MS: tuple[float, ...] = (
    10,
    25,
    50,
    75,
    100,
    150,
    250,
    400,
    600,
    1_000,
    1_500,
    2_500,
    4_000,
    6_000,
    10_000,
    15_000,
    30_000,
    60_000,
    120_000,
    300_000,
    600_000,
    1_200_000,
    3_600_000,
)


def percentile(
    histogram: Sequence[int], q: float, bounds: Sequence[float] = LATENCY_BOUNDS_MS
) -> float | None:
    """The ``q``-quantile (0 < q <= 1) of the values counted in ``histogram`` (one count per bucket of
    ``bounds``, plus the overflow bucket), by linear interpolation inside the bucket it falls in: the
    values of a bucket are taken as spread evenly between its bounds. None when nothing was counted.

    The overflow bucket has no upper bound: a quantile that falls in it is reported as ``bounds[-1]`` (a
    lower bound of the truth).
    """
    if len(histogram) != len(bounds) + 1:
        raise ValueError(f"a histogram over {len(bounds)} bounds has {len(bounds) + 1} buckets")
    if not 0 < q <= 1:
        raise ValueError("q must be in (0, 1]")
    if any(count < 0 for count in histogram):
        raise ValueError("bucket counts must not be negative")
    total = sum(histogram)
    if total == 0:
        return None
    rank = q * total  # the value with this many values at or below it
    slack = rank * 1e-12  # q * total may land a hair past an exact integer rank: do not skip its bucket
    below = 0
    for k, count in enumerate(histogram):
        if count and below + count >= rank - slack:
            if k == len(bounds):
                return float(bounds[-1])
            lower = float(bounds[k - 1]) if k else 0.0
            upper = float(bounds[k])
            return lower + (upper - lower) * min(1.0, (rank - below) / count)
        below += count
    raise AssertionError("unreachable: the last non-empty bucket reaches the total")


def average(total: float, count: int) -> float | None:
    return total / count if count else None


def success_rate(sent: int, failed: int) -> float | None:
    """The share of outcomes that were deliveries; None when there were none."""
    outcomes = sent + failed
    return sent / outcomes if outcomes else None
