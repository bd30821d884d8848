"""The shared store's breaker: whether a request may use the primary store (Redis) now.

A pure decision, with the clock passed in. While the primary is up, requests use it. After a
call to it failed (an error or a timeout), it is down: requests use this replica's local state
at once, without waiting on the primary, and one reconnect attempt runs in the background when
`retry_at` comes (the delay doubles after each failed attempt, up to `max_retry_s`). Only a
successful reconnect (ping, then the write-back of what this replica learned meanwhile) brings
it up again.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace


class Use(enum.Enum):
    PRIMARY = "primary"  # up: call the primary store
    LOCAL = "local"  # down: this replica's local state, at once
    RECONNECT = "reconnect"  # down, and a reconnect attempt is due: start it, serve locally


@dataclass(frozen=True, slots=True)
class LinkConfig:
    retry_s: float = 0.5  # the first reconnect attempt, this long after the failure
    max_retry_s: float = 2.0  # the longest wait between two attempts

    def __post_init__(self) -> None:
        if not 0 < self.retry_s <= self.max_retry_s:
            raise ValueError("need 0 < retry_s <= max_retry_s")


@dataclass(frozen=True, slots=True)
class Link:
    up: bool = True
    failures: int = 0  # consecutive failed calls and reconnect attempts
    retry_at: float = 0.0  # down: when the next reconnect attempt may start
    reconnecting: bool = False  # down: an attempt is running


UP = Link()


def use(link: Link, now: float) -> Use:
    if link.up:
        return Use.PRIMARY
    if link.reconnecting or now < link.retry_at:
        return Use.LOCAL
    return Use.RECONNECT


def failed(link: Link, now: float, cfg: LinkConfig) -> Link:
    """A call to the primary failed (an error or a timeout): down, a reconnect attempt after `retry_s`.
    Calls that were in flight when it went down change nothing: the outage is known."""
    if not link.up:
        return link
    return Link(up=False, failures=1, retry_at=now + cfg.retry_s)


def reconnect_failed(link: Link, now: float, cfg: LinkConfig) -> Link:
    """A reconnect attempt failed: the next one after twice the last wait, at most `max_retry_s`."""
    n = link.failures + 1
    wait = min(cfg.retry_s * 2 ** min(n - 1, 32), cfg.max_retry_s)
    return Link(up=False, failures=n, retry_at=now + wait)


def reconnecting(link: Link) -> Link:
    """A reconnect attempt starts: no other starts until it ends."""
    return replace(link, reconnecting=True)
