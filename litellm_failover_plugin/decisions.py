"""The attempt loop's decisions between its I/O, as pure functions of what it read and `now`.

- `Snapshot.learn`: which candidates a walk skips and why, given LiteLLM's cooldowns and the
  keys' breakers (a closed breaker adopts LiteLLM's cooldown; an open one due a probe beats it);
- `retry_wait`: after a failed call, retry the same key (after how long) or move on;
- `queue_limit`, `wake_at`: when every candidate is down, until when a queued request may wait
  and when it looks again;
- `retry_after_s`: the Retry-After an exhausted error carries.

No clock, no I/O: the runner (litellm/runner.py) reads, calls and writes; these decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

from .breaker import Access, Breaker, BreakerConfig, Signal, Transition, access, adopt_cooldown, sane_hold
from .retries import RetryPolicy, next_wait
from .routing import Candidate, Outcome


@dataclass
class Snapshot:
    """What a walk has read of its candidates' state so far (it reads as it goes)."""

    unavailable: dict[str, Outcome] = field(default_factory=dict)  # by deployment id (what FailoverRun skips)
    breakers: dict[str, Breaker] = field(default_factory=dict)  # by health id: the keys' breakers as read
    due: set[str] = field(default_factory=set)  # health ids of open keys whose single probe may be taken now
    next_due: float | None = None  # when the earliest unavailable candidate read becomes callable again

    def _due_at(self, t: float) -> None:
        self.next_due = t if self.next_due is None else min(self.next_due, t)

    def learn(
        self,
        cands: Sequence[Candidate],
        cooling: Mapping[str, float],
        breakers: Sequence[Breaker] | None,
        now: float,
    ) -> list[tuple[str, Transition]]:
        """Add what was read of `cands`: `cooling` (health id -> end of LiteLLM's cooldown of
        one of its deployments) and their keys' `breakers` (in `cands`' order; None: breakers
        off). Returns the transitions to store: closed breakers adopting LiteLLM's cooldown."""
        for c in cands:
            if c.health_id in cooling:
                self.unavailable[c.deployment_id] = Outcome.SKIPPED_COOLDOWN
        if cooling:
            self._due_at(min(cooling.values()))
        if breakers is None:
            return []
        adopted: list[tuple[str, Transition]] = []
        for c, b in zip(cands, breakers, strict=False):
            hid = c.health_id
            if hid in cooling:
                b, t = adopt_cooldown(b, cooling[hid], now)
                if t is not None:
                    adopted.append((hid, t))
            self.breakers[hid] = b
            verdict = access(b, now)
            if verdict is Access.SKIP:
                self.unavailable.setdefault(c.deployment_id, Outcome.SKIPPED_OPEN)  # LiteLLM's cooldown, if any, says more
                self._due_at(max(b.open_until, b.probe_until))
            elif verdict is Access.PROBE:
                self.unavailable.pop(c.deployment_id, None)  # the breaker knows more than LiteLLM's timer
                self.due.add(hid)
        return adopted


def next_batch(known: int, total: int, first: int) -> slice:
    """The candidates to read next, `known` being read already: `first` before the first call,
    then 3x as many as read so far (a healthy request reads a few keys whatever the route's
    size; a long walk over dead keys, a few reads)."""
    return slice(known, min(total, known + max(first, 3 * known)))


def retry_wait(
    signal: Signal,
    counted: bool,
    tripped: Transition | None,
    policy: RetryPolicy,
    retry: int,
    waited_s: float,
    retry_after_s: float | None,
    time_left_s: float | None,
    rng: Callable[[], float],
) -> float | None:
    """After a failed call: how long to wait before calling the same key again, or None to move
    on. Only a counted plain failure is retried, and not once it opened the key's breaker."""
    if signal is not Signal.FAILURE or not counted or tripped is not None:
        return None
    return next_wait(policy, retry, waited_s, retry_after_s, time_left_s, rng)


def queue_limit(since: float, max_wait_s: float, deadline: float | None) -> tuple[float, str]:
    """Until when a request queued at `since` may wait, and what sets that limit."""
    limit = since + max_wait_s
    if deadline is not None and deadline < limit:
        return deadline, "the request's timeout"
    return limit, "max_wait_s"


def wake_at(next_due: float | None, now: float, recheck_s: float) -> float:
    """When a queued request looks again: when the earliest candidate becomes callable, else
    after `recheck_s` (a recovery notice wakes it earlier)."""
    return next_due if next_due is not None and next_due > now else now + recheck_s


def retry_after_s(
    now: float,
    until: float | None,
    upstream_s: float | None,
    forced: bool,
    cfg: BreakerConfig,
) -> int | None:
    """The Retry-After (whole seconds) of an exhausted error: until the earliest candidate is
    back (`until`), else the upstream's own hint (capped), else 1 s when `forced`; None when
    there is nothing to say."""
    hint = sane_hold(upstream_s, cfg)
    if until is None and hint is not None:
        until = now + hint
    if not forced and until is None:
        return None
    wait = until - now if until is not None and math.isfinite(until) else 1.0
    return min(max(1, math.ceil(wait)), math.ceil(cfg.max_cooldown_s))

