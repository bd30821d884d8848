"""Herd control: how many calls a key whose last call failed may have in flight at once.

When a key dies under load, every request that arrives before its breaker opens would call it
and wait for its failure. Instead: while a key's last call failed and no success followed, at
most `limit` calls to it are in flight at once in this process; the other requests move on to
their next candidate without calling it (`skipped_busy`). A key in good standing is never
limited. A half-open probe is always let through (it is already the only caller).

Plain bookkeeping of this process's calls: no clock, no I/O, nothing shared between replicas
(the breaker is what replicas share).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


def may_call(failing: bool, in_flight: int, limit: int) -> bool:
    """Whether one more call may start: always, unless the key's last call failed and `limit`
    calls to it are already in flight (`limit` 0: no herd control)."""
    return not failing or limit <= 0 or in_flight < limit


@dataclass
class Herd:
    """The keys (health ids) whose last call failed, and the calls in flight to each key."""

    limit: int = 2
    failing: set[str] = field(default_factory=set)
    in_flight: Counter[str] = field(default_factory=Counter)

    def may_call(self, id: str) -> bool:
        return may_call(id in self.failing, self.in_flight[id], self.limit)

    def enter(self, id: str) -> None:
        self.in_flight[id] += 1

    def leave(self, id: str) -> None:
        left = self.in_flight[id] - 1
        if left > 0:
            self.in_flight[id] = left
        else:
            del self.in_flight[id]

    def saw(self, id: str, failed: bool) -> None:
        """A call's outcome: a failure makes the key limited, a success ends it."""
        if failed:
            self.failing.add(id)
        else:
            self.failing.discard(id)
