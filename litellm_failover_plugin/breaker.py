"""Circuit breaker per deployment: state transitions as pure functions of (state, signal, now).

closed -> open after `failure_threshold` consecutive counted failures, or when the failure rate
over a window passes `failure_rate` (with at least `min_requests`). Open for the cooldown, or
longer when the upstream's Retry-After says so; then one probe is let through (half-open): its
success closes the breaker, its failure re-opens it with the cooldown grown (capped). Auth
failures open at once (that key is dead until a probe succeeds); a quota error parks the key
for the time the upstream names. Client errors are not failures of the deployment.

No clock, no I/O: callers pass `now` and store the returned value wherever they keep state.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass, replace

from .conditions import Failure, Kind


class State(enum.Enum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


class Signal(enum.Enum):
    SUCCESS = "success"  # an answer, or a client error: the deployment is alive
    FAILURE = "failure"  # counted: a listed status, a timeout, a connection error
    AUTH = "auth"  # 401/403: this key is dead until a probe succeeds
    QUOTA = "quota"  # quota or billing spent: park the key


class Access(enum.Enum):
    CALL = "call"  # closed: call it
    PROBE = "probe"  # open and due: one caller may probe it
    SKIP = "skip"  # open, or a probe is already in flight


@dataclass(frozen=True, slots=True)
class BreakerConfig:
    failure_threshold: int = 3
    failure_rate: float | None = None  # e.g. 0.5: open when half the window's calls failed
    window_s: float = 30.0
    min_requests: int = 10
    cooldown_s: float = 10.0
    max_cooldown_s: float = 300.0
    cooldown_multiplier: float = 2.0
    probe_timeout_s: float = 30.0  # a probe that never reports frees its slot after this
    quota_park_s: float = 60.0  # quota error without Retry-After
    max_in_flight_while_failing: int = 2  # herd control (herd.py); 0: off


@dataclass(frozen=True, slots=True)
class Breaker:
    state: State = State.CLOSED
    failures: int = 0  # consecutive counted failures
    open_until: float = 0.0
    cooldown_s: float = 0.0  # the cooldown the breaker last opened with
    reason: str = ""
    probe_until: float = 0.0  # a half-open probe holds the slot until then
    window_start: float = 0.0
    window_calls: int = 0
    window_failures: int = 0
    closed_at: float = 0.0  # when a success last closed it: LiteLLM cooldowns set before are stale


CLOSED = Breaker()


@dataclass(frozen=True, slots=True)
class Cooldown:
    """A LiteLLM cooldown (of a deployment, or the latest of a key's): set at `since`, ends at
    `until` (epoch seconds)."""

    since: float
    until: float


@dataclass(frozen=True, slots=True)
class Transition:
    old: State
    new: State
    reason: str


def signal_of(failure: Failure, counted: bool) -> Signal:
    """What a failed attempt means for the breaker. `counted`: it falls over by the lists."""
    if failure.kind is Kind.QUOTA:
        return Signal.QUOTA
    if failure.status in (401, 403):
        return Signal.AUTH
    return Signal.FAILURE if counted else Signal.SUCCESS


def access(b: Breaker, now: float) -> Access:
    if b.state is State.CLOSED:
        return Access.CALL
    if now < b.open_until or now < b.probe_until:  # cooling down, or a probe is in flight
        return Access.SKIP
    return Access.PROBE


def sane_hold(seconds: float | None, cfg: BreakerConfig) -> float | None:
    """An upstream's Retry-After as a hold: capped at `max_cooldown_s`; what is not a finite,
    non-negative number of seconds is ignored (the breaker's own cooldown applies)."""
    if seconds is None or not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, cfg.max_cooldown_s)


def cooldown_counts(status: int | None) -> bool:
    """Whether a LiteLLM cooldown set after `status` keeps a deployment out. A client error
    (400, 404, 422...) says nothing about the deployment: it never takes a key out."""
    return status is None or status >= 500 or status in (401, 403, 408, 429)


def settled(b: Breaker) -> bool:
    """Closed with nothing counted: a success changes nothing (no store write needed)."""
    return b.state is State.CLOSED and b.failures == 0 and b.window_calls == 0


def stale(c: Cooldown, b: Breaker) -> bool:
    """Whether LiteLLM's cooldown `c` is older news than the key's breaker `b`: it was set before
    a success last closed the breaker (a probe in this process or in any other sharing the
    breaker proved the key alive since). A stale cooldown is cleared, never adopted: LiteLLM
    keeps cooldowns in each process's memory, and one left from before the recovery must not
    re-open the breaker that process's siblings closed."""
    return c.since < b.closed_at


def adopt_cooldown(b: Breaker, c: Cooldown, now: float) -> tuple[Breaker, Transition | None]:
    """LiteLLM has the deployment cooling down until `c.until`: a closed breaker opens till
    then, unless the cooldown is stale (set before the breaker last closed).

    So the two never disagree: probes and health checks take over, and the success that
    closes the breaker also clears LiteLLM's cooldown.
    """
    if b.state is not State.CLOSED or c.until <= now or stale(c, b):
        return b, None
    reason = f"LiteLLM cooldown for {c.until - now:.0f}s"
    new = replace(b, state=State.OPEN, open_until=c.until, cooldown_s=c.until - now, reason=reason, probe_until=0.0)
    return new, Transition(State.CLOSED, State.OPEN, reason)


def hold_probe(b: Breaker, now: float, timeout_s: float) -> Breaker:
    """Take the probe slot for a background health check; the breaker stays as it is."""
    if b.state is State.CLOSED or now < b.probe_until:
        return b
    return replace(b, probe_until=now + timeout_s)


def release_probe(b: Breaker) -> Breaker:
    return replace(b, probe_until=0.0) if b.state is not State.CLOSED else b


def start_probe(b: Breaker, now: float, cfg: BreakerConfig) -> Breaker:
    """Take the single half-open probe slot. Only valid when access() says PROBE."""
    return replace(b, state=State.HALF_OPEN, probe_until=now + cfg.probe_timeout_s)


def _window(b: Breaker, now: float, cfg: BreakerConfig, failed: bool) -> Breaker:
    if cfg.failure_rate is None:
        return b
    if now - b.window_start >= cfg.window_s:
        b = replace(b, window_start=now, window_calls=0, window_failures=0)
    return replace(b, window_calls=b.window_calls + 1, window_failures=b.window_failures + int(failed))


def _open(b: Breaker, now: float, cfg: BreakerConfig, reason: str, hold_s: float | None) -> Breaker:
    if b.state is State.CLOSED:
        cooldown = cfg.cooldown_s
    else:  # a failed probe: the cooldown grows
        cooldown = min(cfg.max_cooldown_s, max(b.cooldown_s, cfg.cooldown_s) * cfg.cooldown_multiplier)
    until = now + max(cooldown, hold_s or 0.0)
    return replace(b, state=State.OPEN, open_until=until, cooldown_s=cooldown, reason=reason, probe_until=0.0)


def record(
    b: Breaker, signal: Signal, now: float, cfg: BreakerConfig, retry_after_s: float | None = None
) -> tuple[Breaker, Transition | None]:
    """The breaker after one call's outcome, and the state change it caused, if any."""
    old = b.state
    retry_after_s = sane_hold(retry_after_s, cfg)  # capped at max_cooldown_s; garbage ignored
    if signal is Signal.SUCCESS:
        new = _window(b, now, cfg, failed=False)
        if old is not State.CLOSED:
            new = replace(CLOSED, closed_at=now, window_start=now if cfg.failure_rate is not None else 0.0)
            return new, Transition(old, State.CLOSED, "probe succeeded")
        return (new if new.failures == 0 else replace(new, failures=0)), None

    if signal is Signal.AUTH:
        new = _open(b, now, cfg, "auth failure (401/403): key disabled until a probe succeeds", retry_after_s)
        return new, Transition(old, State.OPEN, new.reason)
    if signal is Signal.QUOTA:
        hold = retry_after_s if retry_after_s is not None else cfg.quota_park_s
        new = _open(b, now, cfg, f"quota spent: parked for {hold:g}s", hold)
        return new, Transition(old, State.OPEN, new.reason)

    b = _window(replace(b, failures=b.failures + 1), now, cfg, failed=True)
    if old is State.OPEN:  # a call that was in flight when the breaker opened: nothing new
        return b, None
    if old is State.HALF_OPEN:
        new = _open(b, now, cfg, "probe failed", retry_after_s)
        return new, Transition(old, State.OPEN, new.reason)
    if b.failures >= cfg.failure_threshold:
        new = _open(b, now, cfg, f"{b.failures} consecutive failures", retry_after_s)
        return new, Transition(old, State.OPEN, new.reason)
    if (
        cfg.failure_rate is not None
        and b.window_calls >= cfg.min_requests
        and b.window_failures / b.window_calls >= cfg.failure_rate
    ):
        rate = b.window_failures / b.window_calls
        new = _open(b, now, cfg, f"failure rate {rate:.0%} over {b.window_calls} calls", retry_after_s)
        return new, Transition(old, State.OPEN, new.reason)
    return b, None
