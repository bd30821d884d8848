"""The breaker driven by a fake clock: `now` is a number the test moves."""

from dataclasses import replace

import pytest

from litellm_failover_plugin.breaker import (
    CLOSED,
    Access,
    Breaker,
    BreakerConfig,
    Signal,
    State,
    access,
    record,
    signal_of,
    start_probe,
)
from litellm_failover_plugin.conditions import Failure, Kind

CFG = BreakerConfig(failure_threshold=3, cooldown_s=10, max_cooldown_s=40, probe_timeout_s=5)


def fail(b: Breaker, now: float, n: int = 1, retry_after: float | None = None) -> Breaker:
    for _ in range(n):
        b, _ = record(b, Signal.FAILURE, now, CFG, retry_after)
    return b


def test_opens_after_threshold_consecutive_failures() -> None:
    b = fail(CLOSED, 0.0, 2)
    assert b.state is State.CLOSED and access(b, 0.0) is Access.CALL
    b, t = record(b, Signal.FAILURE, 1.0, CFG)
    assert t is not None and (t.old, t.new) == (State.CLOSED, State.OPEN)
    assert "3 consecutive failures" in t.reason
    assert b.open_until == 11.0
    assert access(b, 10.9) is Access.SKIP


def test_a_success_resets_the_count() -> None:
    b = fail(CLOSED, 0.0, 2)
    b, t = record(b, Signal.SUCCESS, 1.0, CFG)
    assert t is None and b.failures == 0
    assert fail(b, 2.0, 2).state is State.CLOSED


def test_single_probe_after_cooldown() -> None:
    b = fail(CLOSED, 0.0, 3)
    assert access(b, 10.0) is Access.PROBE
    b = start_probe(b, 10.0, CFG)
    assert b.state is State.HALF_OPEN
    assert access(b, 10.1) is Access.SKIP  # the one probe is in flight
    assert access(b, 15.0) is Access.PROBE  # it never reported: its slot is free again


def test_probe_success_closes() -> None:
    b = start_probe(fail(CLOSED, 0.0, 3), 10.0, CFG)
    b, t = record(b, Signal.SUCCESS, 10.2, CFG)
    assert b == replace(CLOSED, closed_at=10.2)  # when: LiteLLM cooldowns set before are stale
    assert t is not None and (t.old, t.new, t.reason) == (State.HALF_OPEN, State.CLOSED, "probe succeeded")


def test_probe_failure_reopens_with_a_growing_capped_cooldown() -> None:
    b = fail(CLOSED, 0.0, 3)
    now = 10.0
    cooldowns = []
    for _ in range(4):
        b = start_probe(b, now, CFG)
        b, t = record(b, Signal.FAILURE, now, CFG)
        assert t is not None and t.new is State.OPEN
        cooldowns.append(b.open_until - now)
        now = b.open_until
    assert cooldowns == [20.0, 40.0, 40.0, 40.0]


def test_retry_after_holds_it_open_longer() -> None:
    b = fail(CLOSED, 0.0, 2)
    b = fail(b, 0.0, 1, retry_after=30.0)
    assert b.open_until == 30.0


def test_a_late_failure_while_open_changes_nothing() -> None:
    b = fail(CLOSED, 0.0, 3)
    later, t = record(b, Signal.FAILURE, 5.0, CFG)
    assert t is None and later.open_until == b.open_until


def test_auth_failure_disables_the_key_at_once() -> None:
    b, t = record(CLOSED, Signal.AUTH, 0.0, CFG)
    assert b.state is State.OPEN and t is not None and "auth" in t.reason
    assert access(b, 9.9) is Access.SKIP and access(b, 10.0) is Access.PROBE


def test_quota_parks_for_the_named_time() -> None:
    b, t = record(CLOSED, Signal.QUOTA, 0.0, CFG, retry_after_s=30.0)
    assert b.open_until == 30.0 and t is not None and "parked for 30s" in t.reason
    b, t = record(CLOSED, Signal.QUOTA, 0.0, CFG, retry_after_s=120.0)  # longer than max_cooldown_s (40)
    assert b.open_until == 40.0 and t is not None and "parked for 40s" in t.reason
    b, _ = record(CLOSED, Signal.QUOTA, 0.0, CFG)
    assert b.open_until == CFG.quota_park_s


def test_failure_rate_over_a_window() -> None:
    cfg = BreakerConfig(failure_threshold=100, failure_rate=0.5, window_s=10, min_requests=4)
    b = CLOSED
    for i, sig in enumerate([Signal.FAILURE, Signal.SUCCESS, Signal.FAILURE]):
        b, t = record(b, sig, float(i), cfg)
        assert t is None  # under min_requests
    b, t = record(b, Signal.FAILURE, 3.0, cfg)
    assert t is not None and "failure rate 75% over 4 calls" in t.reason


def test_failure_rate_window_rolls_over() -> None:
    cfg = BreakerConfig(failure_threshold=100, failure_rate=0.5, window_s=10, min_requests=4)
    b = CLOSED
    for i in range(3):
        b, _ = record(b, Signal.FAILURE, float(i), cfg)
    b, t = record(b, Signal.FAILURE, 20.0, cfg)  # a new window: 1 call
    assert t is None and b.window_calls == 1


@pytest.mark.parametrize(
    ("failure", "counted", "signal"),
    [
        (Failure(503), True, Signal.FAILURE),
        (Failure(None, Kind.TIMEOUT), True, Signal.FAILURE),
        (Failure(400), False, Signal.SUCCESS),
        (Failure(404), False, Signal.SUCCESS),
        (Failure(401), False, Signal.AUTH),
        (Failure(403), True, Signal.AUTH),
        (Failure(429, Kind.QUOTA), True, Signal.QUOTA),
        (Failure(429), True, Signal.FAILURE),
    ],
)
def test_what_counts(failure: Failure, counted: bool, signal: Signal) -> None:
    assert signal_of(failure, counted) is signal


def test_adopting_a_litellm_cooldown_opens_a_closed_breaker_until_its_end() -> None:
    from litellm_failover_plugin.breaker import Cooldown, adopt_cooldown

    b, t = adopt_cooldown(CLOSED, Cooldown(since=20.0, until=25.0), now=20.0)
    assert b.state is State.OPEN and b.open_until == 25.0 and t is not None
    assert access(b, 24.9) is Access.SKIP and access(b, 25.0) is Access.PROBE
    same, t = adopt_cooldown(b, Cooldown(since=21.0, until=40.0), now=21.0)  # already open: its own timing stands
    assert same == b and t is None
    assert adopt_cooldown(CLOSED, Cooldown(since=0.0, until=10.0), now=20.0) == (CLOSED, None)  # already over


def test_a_litellm_cooldown_from_before_the_last_close_is_stale() -> None:
    """Worker B's LiteLLM cooldown, set before worker A's probe closed the shared breaker, must
    not re-open it (it did: the breaker flapped with --num_workers 2)."""
    from litellm_failover_plugin.breaker import Cooldown, adopt_cooldown, stale

    opened = start_probe(fail(CLOSED, 0.0, 3), 10.0, CFG)
    closed, _ = record(opened, Signal.SUCCESS, 10.5, CFG)  # A's probe
    old, new = Cooldown(since=9.0, until=39.0), Cooldown(since=11.0, until=41.0)
    assert stale(old, closed) and not stale(new, closed)
    assert adopt_cooldown(closed, old, now=12.0) == (closed, None)
    b, t = adopt_cooldown(closed, new, now=12.0)  # a failure after the close: news
    assert b.state is State.OPEN and b.open_until == 41.0 and t is not None
    assert b.closed_at == 10.5  # kept: cooldowns from before it stay stale
    assert not stale(Cooldown(since=0.0, until=30.0), CLOSED)  # never closed by a success: nothing is stale


def test_an_upstreams_hold_is_capped_and_garbage_is_ignored() -> None:
    from litellm_failover_plugin.breaker import Signal, record, sane_hold

    cfg = BreakerConfig(failure_threshold=1, cooldown_s=10, max_cooldown_s=300)
    assert sane_hold(99999999.0, cfg) == 300 and sane_hold(7.0, cfg) == 7.0
    assert sane_hold(float("inf"), cfg) is None and sane_hold(float("nan"), cfg) is None and sane_hold(-1.0, cfg) is None
    opened, _ = record(CLOSED, Signal.FAILURE, 100.0, cfg, retry_after_s=99999999.0)
    assert opened.open_until == 400.0
    forever, _ = record(CLOSED, Signal.FAILURE, 100.0, cfg, retry_after_s=float("inf"))
    assert forever.open_until == 110.0  # the breaker's own cooldown
    parked, _ = record(CLOSED, Signal.QUOTA, 100.0, cfg, retry_after_s=float("inf"))
    assert parked.open_until == 100.0 + cfg.quota_park_s


def test_client_errors_never_count_as_a_cooldown() -> None:
    from litellm_failover_plugin.breaker import cooldown_counts

    assert [s for s in (400, 404, 409, 413, 422) if cooldown_counts(s)] == []
    assert all(cooldown_counts(s) for s in (None, 401, 403, 408, 429, 500, 503))
