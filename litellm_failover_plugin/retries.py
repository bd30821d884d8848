"""Same-candidate retries with backoff, and a retry budget. Pure: time and randomness come in.

Backoff: exponential (the `backoff` library's `expo` sequence), with equal jitter (half fixed,
half random) so replicas do not retry in step; an upstream's Retry-After wins when longer.
A retry is given up when one wait would pass `max_wait_s`, when the waits would pass
`max_total_s`, or when they would outlast what is left of the client's own timeout.

Budget (as Finagle's and tower's): every request deposits 1; each extra upstream call (a
failover or a retry) withdraws 1; within `ttl_s`, withdrawals may reach `ratio` x deposits plus
`min_per_s` x `ttl_s`. So a wide outage cannot multiply the load on what is still alive.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import backoff


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    max_retries: int = 0  # per candidate, before moving on
    base_s: float = 0.25
    max_wait_s: float = 5.0
    max_total_s: float = 15.0


def backoff_s(policy: RetryPolicy, retry: int, rng: Callable[[], float]) -> float:
    """The wait before retry number `retry` (0-based), jittered: in [w/2, w]."""
    sequence = backoff.expo(base=2, factor=policy.base_s, max_value=policy.max_wait_s)
    next(sequence)  # the generator's priming step
    wait = float(next(itertools.islice(sequence, retry, None)))
    return wait / 2 + rng() * wait / 2


def next_wait(
    policy: RetryPolicy,
    retry: int,
    waited_s: float,
    retry_after_s: float | None,
    time_left_s: float | None,
    rng: Callable[[], float],
) -> float | None:
    """How long to wait before retrying the same candidate, or None to move on instead."""
    if retry >= policy.max_retries:
        return None
    wait = max(backoff_s(policy, retry, rng), retry_after_s or 0.0)
    if wait > policy.max_wait_s:
        return None  # the upstream wants longer than we wait: fall over instead
    if waited_s + wait > policy.max_total_s:
        return None
    if time_left_s is not None and wait >= time_left_s:
        return None  # the client would time out before the retry answers
    return wait


@dataclass
class RetryBudget:
    ratio: float = 0.2
    min_per_s: float = 1.0
    ttl_s: int = 10
    _deposits: dict[int, int] = field(default_factory=dict)
    _withdrawals: dict[int, int] = field(default_factory=dict)

    def _expire(self, now: float) -> int:
        second = int(now)
        oldest = second - self.ttl_s + 1
        for buckets in (self._deposits, self._withdrawals):
            for s in [s for s in buckets if s < oldest]:
                del buckets[s]
        return second

    def deposit(self, now: float) -> None:
        second = self._expire(now)
        self._deposits[second] = self._deposits.get(second, 0) + 1

    def balance(self, now: float) -> float:
        self._expire(now)
        allowed = self.min_per_s * self.ttl_s + self.ratio * sum(self._deposits.values())
        return allowed - sum(self._withdrawals.values())

    def try_withdraw(self, now: float) -> bool:
        if self.balance(now) < 1:
            return False
        second = int(now)
        self._withdrawals[second] = self._withdrawals.get(second, 0) + 1
        return True
