"""The latency percentile from a bucketed histogram, and the metrics use case over a fake DeliveryStats."""

from __future__ import annotations

import itertools
import random
from bisect import bisect_right
from datetime import UTC, datetime, timedelta

import pytest

from notify.app.stats import ChannelMetrics, StatsService
from notify.domain.model import Channel
from notify.domain.stats import LATENCY_BOUNDS_MS, average, percentile, success_rate
from notify.ports.stats import ChannelFigures
from tests.fakes import FakeClock, FakeDeliveryStats

BUCKETS = len(LATENCY_BOUNDS_MS) + 1


def histogram_of(latencies_ms: list[float]) -> list[int]:
    """What the trigger does: bucket k counts [bounds[k-1], bounds[k]), the last one bounds[-1] and up."""
    hist = [0] * BUCKETS
    for latency in latencies_ms:
        hist[bisect_right(LATENCY_BOUNDS_MS, latency)] += 1
    return hist


def one_bucket(k: int, count: int) -> list[int]:
    hist = [0] * BUCKETS
    hist[k] = count
    return hist


class TestPercentile:
    def test_the_bounds_are_increasing_and_span_10_ms_to_an_hour(self) -> None:
        assert list(LATENCY_BOUNDS_MS) == sorted(set(LATENCY_BOUNDS_MS))
        assert LATENCY_BOUNDS_MS[0] == 10
        assert LATENCY_BOUNDS_MS[-1] == 3_600_000
        assert 20 <= len(LATENCY_BOUNDS_MS) <= 25
        # Roughly exponential: every step is by a factor between 1.3 and 3.
        assert all(1.3 <= b / a <= 3 for a, b in itertools.pairwise(LATENCY_BOUNDS_MS))

    def test_nothing_counted_is_none(self) -> None:
        assert percentile([0] * BUCKETS, 0.95) is None

    def test_all_in_one_bucket_interpolates_inside_it(self) -> None:
        k = LATENCY_BOUNDS_MS.index(250)  # the bucket [150, 250): its upper bound is bounds[k]
        assert percentile(one_bucket(k, 100), 0.95) == pytest.approx(150 + 100 * 0.95)
        assert percentile(one_bucket(k, 100), 0.5) == pytest.approx(200)
        assert percentile(one_bucket(k, 100), 1.0) == pytest.approx(250)
        assert percentile(one_bucket(k, 1), 0.95) == pytest.approx(150 + 100 * 0.95)

    def test_the_first_bucket_starts_at_zero(self) -> None:
        assert percentile(one_bucket(0, 10), 0.5) == pytest.approx(5)

    def test_the_overflow_bucket_reports_its_lower_bound(self) -> None:
        assert percentile(one_bucket(BUCKETS - 1, 3), 0.95) == LATENCY_BOUNDS_MS[-1]
        # 94 fast ones and 6 past the last bound: the 95th value is past it too.
        hist = one_bucket(0, 94)
        hist[-1] = 6
        assert percentile(hist, 0.95) == LATENCY_BOUNDS_MS[-1]
        hist[-1] = 4  # now the 95th percentile of 98 (rank 93.1) falls among the fast ones
        assert percentile(hist, 0.95) == pytest.approx(10 * (0.95 * 98) / 94)

    def test_empty_buckets_between_are_skipped(self) -> None:
        hist = one_bucket(0, 95)
        hist[BUCKETS - 2] = 5  # [1 200 000, 3 600 000)
        assert percentile(hist, 0.95) == pytest.approx(10)  # the 95th value is the last of the first bucket
        assert percentile(hist, 0.96) == pytest.approx(1_200_000 + 2_400_000 * (0.96 * 100 - 95) / 5)

    def test_the_estimate_stays_inside_the_true_values_bucket(self) -> None:
        rng = random.Random(7)
        for _ in range(200):
            latencies = [rng.lognormvariate(5, 1.5) for _ in range(rng.randint(1, 300))]
            estimate = percentile(histogram_of(latencies), 0.95)
            assert estimate is not None
            exact = sorted(latencies)[max(0, -(-95 * len(latencies) // 100) - 1)]  # nearest rank
            k = bisect_right(LATENCY_BOUNDS_MS, exact)
            lower = LATENCY_BOUNDS_MS[k - 1] if k else 0
            upper = LATENCY_BOUNDS_MS[k] if k < len(LATENCY_BOUNDS_MS) else LATENCY_BOUNDS_MS[-1]
            assert lower <= estimate <= upper, (exact, estimate)

    def test_bad_input_is_refused(self) -> None:
        with pytest.raises(ValueError, match="buckets"):
            percentile([1, 2], 0.95)
        with pytest.raises(ValueError, match="q must"):
            percentile([0] * BUCKETS, 0)
        with pytest.raises(ValueError, match="q must"):
            percentile([0] * BUCKETS, 1.5)
        with pytest.raises(ValueError, match="negative"):
            percentile([-1] + [0] * (BUCKETS - 1), 0.5)

    def test_average_and_success_rate(self) -> None:
        assert average(0.0, 0) is None
        assert average(300.0, 4) == 75.0
        assert success_rate(0, 0) is None
        assert success_rate(3, 1) == 0.75
        assert success_rate(0, 2) == 0.0


NOW = datetime(2026, 1, 1, 10, 30, 20, 123456, tzinfo=UTC)


class TestStatsService:
    async def test_turns_figures_into_metrics_and_fills_every_channel(self) -> None:
        k = LATENCY_BOUNDS_MS.index(150)  # [100, 150)
        stats = FakeDeliveryStats(
            {Channel.SMS: ChannelFigures(4, 1, 480.0, tuple(one_bucket(k, 4)), queue_depth=7)}
        )
        metrics = await StatsService(stats, FakeClock(NOW)).metrics("t1", 3600)
        assert metrics.window_s == 3600
        assert metrics.since == datetime(2026, 1, 1, 9, 30, tzinfo=UTC)
        assert stats.asked == [("t1", metrics.since)]
        assert list(metrics.channels) == list(Channel)
        sms = metrics.channels[Channel.SMS]
        assert (sms.sent, sms.failed, sms.avg_latency_ms, sms.success_rate, sms.queue_depth) == (
            4,
            1,
            120,
            0.8,
            7,
        )
        assert sms.p95_latency_ms == pytest.approx(100 + 50 * 0.95)  # [100, 150): 3.8 of its 4 values
        assert metrics.channels[Channel.EMAIL] == ChannelMetrics(0, 0, None, None, None, 0)

    async def test_a_channel_with_only_failures_or_only_a_queue(self) -> None:
        stats = FakeDeliveryStats(
            {
                Channel.PUSH: ChannelFigures(0, 3, 0.0, (0,) * BUCKETS, queue_depth=0),
                Channel.EMAIL: ChannelFigures(0, 0, 0.0, (0,) * BUCKETS, queue_depth=12),
            }
        )
        metrics = await StatsService(stats, FakeClock(NOW)).metrics("t1", 60)
        assert metrics.channels[Channel.PUSH] == ChannelMetrics(0, 3, None, None, 0.0, 0)
        assert metrics.channels[Channel.EMAIL] == ChannelMetrics(0, 0, None, None, None, 12)

    @pytest.mark.parametrize(
        ("now", "window_s", "since"),
        [
            (NOW, 60, datetime(2026, 1, 1, 10, 29, tzinfo=UTC)),
            (NOW, 90, datetime(2026, 1, 1, 10, 28, tzinfo=UTC)),
            (datetime(2026, 1, 1, 10, 30, tzinfo=UTC), 3600, datetime(2026, 1, 1, 9, 30, tzinfo=UTC)),
            (NOW, 7 * 86400, datetime(2025, 12, 25, 10, 30, tzinfo=UTC)),
        ],
    )
    async def test_the_window_starts_on_the_whole_minute_at_or_before_now_minus_window(
        self, now: datetime, window_s: int, since: datetime
    ) -> None:
        stats = FakeDeliveryStats()
        metrics = await StatsService(stats, FakeClock(now)).metrics("t1", window_s)
        assert metrics.since == since
        assert timedelta(seconds=window_s) <= now - since < timedelta(seconds=window_s + 60)

    async def test_purge_drops_what_is_older_than_the_retention(self) -> None:
        stats = FakeDeliveryStats()
        service = StatsService(stats, FakeClock(NOW), retention=timedelta(days=35))
        await service.purge_expired()
        assert stats.purged_before == [datetime(2025, 11, 27, 10, 30, tzinfo=UTC)]
