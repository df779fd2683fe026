"""The console's overview figures, from a hand-written fake of the Overview port."""

from __future__ import annotations

from datetime import timedelta

from notify.app.overview import OverviewService
from notify.domain.model import Channel, Status
from notify.ports.overview import MinuteOutcomes, WorkerReport
from tests.fakes import FakeClock, FakeOverview


async def test_the_chart_has_one_entry_per_minute_of_the_last_hour_zeros_included() -> None:
    clock = FakeClock()  # 12:00:00
    clock.advance(30)
    now_minute = clock.now().replace(second=0)
    overview = FakeOverview(
        outcomes=[
            MinuteOutcomes(now_minute, Channel.SMS, 5, 1),
            MinuteOutcomes(now_minute - timedelta(minutes=59), Channel.EMAIL, 2, 0),
            MinuteOutcomes(now_minute - timedelta(minutes=60), Channel.EMAIL, 100, 100),  # out of the window
        ]
    )
    activity = await OverviewService(overview, clock, report_interval_s=5).activity("t1")
    by_channel = {s.channel: s for s in activity.series}
    assert set(by_channel) == set(Channel)
    sms, email, push = by_channel[Channel.SMS], by_channel[Channel.EMAIL], by_channel[Channel.PUSH]
    assert (
        len(sms.minutes) == 60
        and sms.minutes[-1] == now_minute
        and sms.minutes[0] == now_minute - timedelta(minutes=59)
    )
    assert (sms.delivered[-1], sms.failed[-1], sum(sms.delivered)) == (5, 1, 5)
    assert (email.delivered[0], sum(email.delivered), sum(email.failed)) == (2, 2, 0)
    assert push.peak == 0 and sms.peak == 5


async def test_lag_is_summed_over_the_workers_that_reported_lately_and_unknown_without_any() -> None:
    clock = FakeClock()
    fresh = WorkerReport(
        "w1", clock.now() - timedelta(seconds=3), {"a": 4, "b": 1}, {"sms:p": "open"}, {"sms": 5}
    )
    other = WorkerReport("w2", clock.now() - timedelta(seconds=10), {"a": 2}, {"sms:p": "closed"}, {"sms": 5})
    gone = WorkerReport("w3", clock.now() - timedelta(minutes=5), {"a": 1000}, {}, {})
    service = OverviewService(
        FakeOverview(reports=[fresh, other, gone], counts={Status.DELIVERED: 3}), clock, report_interval_s=5
    )
    activity = await service.activity(None)
    assert (activity.lag, activity.workers, activity.counts) == (7, 2, {Status.DELIVERED: 3})

    health = await service.delivery(None)
    assert health.breakers == {"sms:p": {"w1": "open", "w2": "closed"}}
    assert health.rate_limits == {"sms": 5}

    nobody = await OverviewService(FakeOverview(reports=[gone]), clock, report_interval_s=5).activity("t1")
    assert (nobody.lag, nobody.workers) == (None, 0)
