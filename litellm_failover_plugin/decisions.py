"""The attempt loop's decisions between its I/O, as pure functions of what it read and `now`.

- `Snapshot.learn`: which candidates a walk skips and why, given LiteLLM's cooldowns and the
  keys' breakers (a closed breaker adopts LiteLLM's cooldown; an open one due a probe beats it);
  `Snapshot.limited`: and given the keys' use of their rate limits in the current minute;
- `stale_cooldowns`, `keys_down`: which LiteLLM cooldowns are stale (set before the key's
  breaker last closed: cleared, whichever process holds them), and the others by key;
- `retry_wait`: after a failed call, retry the same key (after how long) or move on;
- `queue_limit`, `wake_at`: when every candidate is down, until when a queued request may wait
  and when it looks again;
- `retry_after_s`: the Retry-After an exhausted error carries;
- `health_scan`, `probe_order`: which keys a round of health checks reads, and which it probes.

No clock, no I/O: the runner (litellm/runner.py) reads, calls and writes; these decide.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from .breaker import (
    Access,
    Breaker,
    BreakerConfig,
    Cooldown,
    Signal,
    Transition,
    access,
    adopt_cooldown,
    cooldown_counts,
    sane_hold,
    stale,
)
from .conditions import Failure, falls_over
from .limits import Usage, at_limit
from .retries import RetryPolicy, next_wait
from .routing import Candidate, Outcome


@dataclass
class Snapshot:
    """What a walk has read of its candidates' state so far (it reads as it goes)."""

    unavailable: dict[str, Outcome] = field(default_factory=dict)  # by deployment id (what FailoverRun skips)
    breakers: dict[str, Breaker] = field(default_factory=dict)  # by health id: the keys' breakers as read
    due: set[str] = field(default_factory=set)  # health ids of open keys whose single probe may be taken now
    next_due: float | None = None  # when the earliest unavailable candidate read becomes callable again
    slots: dict[str, str] = field(default_factory=dict)  # health id -> rpm counter: a slot reserved, its call not made yet

    def _due_at(self, t: float) -> None:
        self.next_due = t if self.next_due is None else min(self.next_due, t)

    def learn(
        self,
        cands: Sequence[Candidate],
        cooling: Mapping[str, Cooldown],
        breakers: Sequence[Breaker] | None,
        now: float,
    ) -> list[tuple[str, Transition]]:
        """Add what was read of `cands`: `cooling` (health id -> LiteLLM's latest cooldown of
        one of its deployments, stale ones left out: `keys_down`) and their keys' `breakers`
        (in `cands`' order; None: breakers off). Returns the transitions to store: closed
        breakers adopting LiteLLM's cooldown."""
        for c in cands:
            if c.health_id in cooling:
                self.unavailable[c.deployment_id] = Outcome.SKIPPED_COOLDOWN
        if cooling:
            self._due_at(min(c.until for c in cooling.values()))
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

    def limited(self, cands: Sequence[Candidate], used: Sequence[Usage], window_end: float) -> None:
        """Add the keys' use of their rate limits in the current window (`used`, in `cands`'
        order; it ends at `window_end`): a key at its limit is skipped until the next window
        (an open breaker or a cooldown, if any, says more)."""
        for c, u in zip(cands, used, strict=True):
            if at_limit(c.limits, u):
                self.unavailable.setdefault(c.deployment_id, Outcome.SKIPPED_LIMIT)
                self._due_at(window_end)

    def refused(self, window_end: float) -> None:
        """A key had no room left when its call reserved a slot: callable again at `window_end`."""
        self._due_at(window_end)


def stale_cooldowns(
    cooling: Mapping[str, Cooldown], key_of: Mapping[str, Candidate], breakers: Mapping[str, Breaker]
) -> list[str]:
    """The deployment ids among `cooling` (LiteLLM's cooldowns, by deployment id) whose
    cooldown is stale: set before their key's breaker (in `breakers`, by health id) last
    closed on a success. They are cleared, never adopted: a probe, in this process or any
    other sharing the breaker, proved the key alive after them."""
    return [id for id, c in cooling.items() if (b := breakers.get(key_of[id].health_id)) is not None and stale(c, b)]


def cooldown_applies(status: int | None, candidate: Candidate | None) -> bool:
    """Whether LiteLLM's cooldown of `candidate`'s deployment, set after an HTTP `status` (None:
    unknown), keeps its key out. Only a failure that counts against the deployment does: one the
    list that applies to it falls over on, or a 401/403 (that key's own failure). A client error,
    or a status the list hands back as is (a 429 where the list says [500, 503]), never does."""
    if not cooldown_counts(status):
        return False
    if status is None or candidate is None or status in (401, 403):
        return True
    return falls_over(Failure(status), candidate.falls_over)


def keys_down(cooling: Mapping[str, Cooldown], key_of: Mapping[str, Candidate]) -> dict[str, Cooldown]:
    """LiteLLM's cooldowns of deployments (by deployment id) as the keys' (by health id): the
    latest start and the latest end among its deployments'. LiteLLM cools deployments; the key
    is what is down."""
    keys: dict[str, Cooldown] = {}
    for id, c in cooling.items():
        hid = key_of[id].health_id
        k = keys.get(hid, c)
        keys[hid] = Cooldown(max(k.since, c.since), max(k.until, c.until))
    return keys


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



def health_scan(ids: Sequence[str], suspects: Iterable[str], at: int, limit: int) -> tuple[list[str], int]:
    """The keys (health ids) a round of health checks reads, and where the next round goes on:
    every one of `suspects` (keys of `ids` this process saw fail, or read not closed) and the
    next `limit` of `ids` from position `at` on, in rotation. A round costs the same whatever the
    number of keys; every key is read at least once every ceil(len(ids) / limit) rounds (how a
    key opened by another replica, and never called here, is found)."""
    n = len(ids)
    if n <= limit:
        return list(ids), 0
    at %= n
    scanned = [ids[(at + k) % n] for k in range(limit)]
    seen = set(scanned)
    return scanned + sorted(s for s in suspects if s not in seen), (at + limit) % n


def probe_order(due: Sequence[str], last_probed: Mapping[str, float], limit: int) -> list[str]:
    """The keys due a probe that a round of health checks probes: at most `limit`, the one
    probed longest ago first (never probed: first of all; ties keep `due`'s order), so a few
    keys that stay dead cannot take every round's probes from the others."""
    return sorted(due, key=lambda id: last_probed.get(id, -math.inf))[:limit]
