"""One pace for a cluster: the coordinator's decisions (a plain object, clock injected), what an
actor's budget reports and how it follows, and the limiter's hooks they steer it with."""

from __future__ import annotations

import asyncio

import pytest

from azml_client._bulk._limiter import AdaptiveLimiter, Signal
from azml_client.ray._coordinator import PaceCoordinator
from azml_client.ray._pace import BIN, PaceBoard, PaceLink, SignalBudget

from .conftest import LocalHandle


class Clock:
    def __init__(self, now: float = 100.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def report(
    ok: int = 0,
    *,
    backlog: int = 10,
    limited: list[tuple[float, float | None]] | None = None,
    pause: float = 0.0,
    over: float = 0.2,
) -> dict[str, object]:
    """A report of ``ok`` successes spread evenly over the last ``over`` seconds."""
    bins = max(1, round(over / BIN))
    spread = [(round((i + 0.5) * BIN, 4), ok // bins + (i < ok % bins)) for i in range(bins)]
    return {
        "ok": ok,
        "bins": [(age, n) for age, n in spread if n],
        "limited": limited or [],
        "pause": pause,
        "backlog": backlog,
    }


def test_the_pace_starts_slow_and_doubles_while_answers_come() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock)
    assert board.report("a", report())["rate"] == 50.0
    clock.now += 0.3
    assert board.report("a", report(12))["rate"] == 100.0
    clock.now += 0.3
    assert board.report("a", report(30))["rate"] == 200.0


def test_the_pace_is_shared_by_the_actors_that_have_rows() -> None:
    clock = Clock()
    board = PaceBoard(max_rps=30, clock=clock)
    for name in "abc":
        board.report(name, report())
    assert board.answer("a")["rate"] == 10.0
    board.report("c", report(backlog=0))  # c has nothing to send: its share goes to a and b
    assert board.answer("a")["rate"] == 15.0
    assert board.answer("c")["rate"] == 10.0  # when c gets rows, it starts at a third
    clock.now += 1.5  # b fell silent: it no longer counts
    board.report("a", report())
    assert board.answer("a")["rate"] == 30.0
    board.leave("a")
    assert board.snapshot()["actors"] == 2


def test_the_first_429_ends_the_slow_start_with_a_guess_from_what_got_through() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock)
    for _ in range(4):  # the ramp grows to 800 while 40 answers/s come back
        clock.now += 0.25
        board.report("a", report(10, over=0.25))
    epoch = board.epoch
    answer = board.report("a", report(limited=[(0.05, None)]))
    assert board.ramp is None
    assert answer["rate"] == pytest.approx(0.75 * 40, rel=0.15)
    assert board.epoch == epoch + 1  # the watchers hear of the drop at once


def test_one_cut_per_episode_then_a_measured_one() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock, lag=0.25)
    clock.now += 1.0
    board.report("a", report(60, over=1.0, limited=[(0.01, None)]))  # the guess
    first = board.rate
    assert first is not None
    # Sent before the cut: the same burst. Sent after it, but too soon to see what it did.
    clock.now += 0.05
    board.report("a", report(2, over=0.05, limited=[(0.1, None), (0.01, None)]))
    assert board.rate == first
    # Long enough after: what got through under the new pace is measured, and kept (x 0.96).
    for _ in range(8):
        clock.now += 0.1
        board.report("a", report(3, over=0.1))
    board.report("a", report(limited=[(0.01, None)]))
    assert board.rate == pytest.approx(0.96 * 30, rel=0.1)
    assert board.cuts == 2 and board.rate_limited == 4


def test_a_token_buckets_short_retry_after_bounds_the_pace() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock)
    clock.now += 1.0
    board.report("a", report(200, over=1.0, limited=[(0.01, 0.05)]))  # refill step 50 ms
    assert board.rate == pytest.approx(0.985 / 0.05)


def test_a_long_retry_after_pauses_every_actor() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock)
    board.report("b", report())
    epoch = board.epoch
    board.report("a", report(pause=2.0))
    assert board.epoch == epoch + 1
    assert board.answer("b")["pause"] == pytest.approx(2.0)
    clock.now += 1.95
    assert board.answer("b")["pause"] == 0.0  # what is left is no longer worth sharing


def test_the_probe_is_gentle_once_the_rate_is_measured() -> None:
    clock = Clock()
    board = PaceBoard(clock=clock, lag=0.0)
    clock.now += 1.0
    board.report("a", report(40, over=1.0, limited=[(0.01, None)]))
    for _ in range(10):
        clock.now += 0.1
        board.report("a", report(3, over=0.1))
    board.report("a", report(limited=[(0.01, None)]))  # measured over a full second
    rate = board.rate
    assert rate is not None
    clock.now += 0.5
    board.report("a", report(15, over=0.5))
    assert board.rate == rate  # not yet
    clock.now += 0.6
    board.report("a", report(15, over=0.6))
    assert board.rate == pytest.approx(rate * 1.03)


def test_reports_carry_ages_and_leave_the_budget_empty() -> None:
    clock = Clock(10.0)
    budget = SignalBudget(clock=clock)
    budget.sent = 3
    budget.observe(Signal.SUCCESS, sent_at=9.9, retry_after=None)
    clock.now = 10.2
    budget.observe(Signal.RATE_LIMITED, sent_at=10.1, retry_after=0.02)
    budget.backlog = 7
    clock.now = 10.5
    got = budget.take_report()
    assert got["sent"] == 3 and got["ok"] == 1 and got["backlog"] == 7
    assert got["limited"] == [(pytest.approx(0.4), 0.02)]
    [(age, count)] = got["bins"]
    assert count == 1 and 0.5 - BIN <= age <= 0.5 + BIN
    again = budget.take_report()
    assert (
        again["ok"] == 0 and again["limited"] == [] and again["bins"] == [] and again["sent"] == 0
    )


def test_a_following_budget_leaves_the_pace_to_the_coordinator() -> None:
    clock = Clock()
    budget = SignalBudget(clock=clock)
    heard: list[int] = []
    budget.on_limited = lambda: heard.append(1)
    budget.apply({"rate": 10.0, "pause": 0.0})
    budget.follow = True
    budget.observe(Signal.RATE_LIMITED, sent_at=clock.now, retry_after=0.02)
    assert budget.limiter.rate == 10.0  # no cut of its own
    assert budget.limiter.pause_until <= clock.now  # 20 ms is less than its own spacing
    budget.observe(Signal.RATE_LIMITED, sent_at=clock.now, retry_after=0.5)
    assert budget.limiter.pause_until == pytest.approx(clock.now + 0.5)
    assert len(heard) == 2 and len(budget.limited) == 2
    budget.apply({"rate": 5.0, "pause": 3.0})
    assert budget.limiter.rate == 5.0
    assert budget.limiter.pause_until == pytest.approx(clock.now + 3.0)


def test_set_rate_ends_the_ramp_and_keeps_the_spacing_after_the_last_send() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(clock=clock)
    assert limiter.ramp == 50.0
    limiter.set_rate(10.0)
    assert limiter.ramp is None and limiter.rate == 10.0
    assert limiter.book()[0] == 0.0  # sent now
    wait, epoch = limiter.book()  # booked 0.1 s later
    assert wait == pytest.approx(0.1)
    limiter.set_rate(5.0)  # slower: the booking is void, and its sender books again...
    assert limiter.epoch != epoch
    assert limiter.book()[0] == pytest.approx(0.2)  # ...0.2 s after the send that went
    before = limiter.epoch
    limiter.set_rate(5.02)  # a change under 1 %: bookings stand
    assert limiter.epoch == before
    limiter.set_rate(None)
    assert limiter.rate is None and limiter.book()[0] == 0.0


def test_pause_holds_every_send() -> None:
    clock = Clock()
    limiter = AdaptiveLimiter(clock=clock, ramp_start=None)
    limiter.pause(1.5)
    assert limiter.book()[0] == pytest.approx(1.5)
    limiter.pause(0.5)  # shorter than the pause running: nothing changes
    assert limiter.pause_until == pytest.approx(clock.now + 1.5)


async def test_links_share_the_pace_and_hear_a_drop_at_once() -> None:
    coordinator = PaceCoordinator()
    handle = LocalHandle(coordinator)
    budgets = [SignalBudget(), SignalBudget()]
    links = [
        PaceLink(
            budget,
            lambda r, name=name: handle.report.remote(name, r),  # type: ignore[misc]
            lambda e, name=name: handle.watch.remote(name, e, 5.0),  # type: ignore[misc]
            interval=30.0,  # only the event-driven reports in this test
        )
        for name, budget in zip("ab", budgets, strict=True)
    ]
    try:
        for budget, link in zip(budgets, links, strict=True):
            budget.backlog = 5
            await link.start()
        assert budgets[0].follow and budgets[1].follow
        assert budgets[1].limiter.rate == 25.0  # 50 requests/s to start, shared by two
        budgets[0].limited.append((budgets[0].limiter.clock() - 0.01, None))
        links[0].busy()  # a report goes now (a 429 wakes it the same way)
        for _ in range(100):
            await asyncio.sleep(0.01)
            if budgets[1].limiter.rate != 25.0:
                break
        # b never reported: its watch brought the cut.
        assert coordinator.board.cuts == 1
        assert budgets[1].limiter.rate == coordinator.board.answer("b")["rate"] < 25.0
    finally:
        for link in links:
            await link.aclose()


async def test_a_link_without_a_coordinator_falls_back_to_its_own_limiter(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def gone(*_: object) -> dict[str, object]:
        raise ConnectionError("the actor died")

    budget = SignalBudget()
    budget.follow = True
    link = PaceLink(budget, gone, gone, interval=30.0, timeout=0.5)
    await link.start()
    try:
        assert not budget.follow  # its own limiter learns from 429s again
        assert "did not answer" in caplog.text
    finally:
        await link.aclose()
