"""The wait queue of one route: bounded, ordered by priority then arrival. Pure: no clock inside.

A request that finds no candidate able to take it (all open, cooling down or parked) takes a
ticket instead of failing. Tickets are ordered by (priority, arrival); only the first
`release_concurrency` tickets, minus those already released and still in flight, may try the
route again, so a recovering upstream is not knocked down by the whole queue at once.
"""

from __future__ import annotations

import bisect
import itertools
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True, order=True)
class Ticket:
    priority: int
    seq: int
    since: float = field(compare=False)


@dataclass
class WaitQueue:
    max_size: int
    release_concurrency: int
    _tickets: list[Ticket] = field(default_factory=list)
    _released: int = 0  # tickets let through and not yet finished
    _seq: itertools.count[int] = field(default_factory=itertools.count)

    def __len__(self) -> int:
        return len(self._tickets)

    @property
    def released(self) -> int:
        return self._released

    def push(self, priority: int, now: float) -> Ticket | None:
        """A new ticket, or None when the queue is full."""
        if len(self._tickets) >= self.max_size:
            return None
        ticket = Ticket(priority, next(self._seq), now)
        bisect.insort(self._tickets, ticket)
        return ticket

    def may_go(self, ticket: Ticket) -> bool:
        """Whether this ticket is among those that may try now (paced release)."""
        slots = self.release_concurrency - self._released
        return slots > 0 and ticket in self._tickets[:slots]

    def release(self, ticket: Ticket) -> None:
        """The ticket leaves the queue to try the route; `finished` must follow."""
        self.remove(ticket)
        self._released += 1

    def finished(self) -> None:
        self._released = max(0, self._released - 1)

    def requeue(self, ticket: Ticket) -> None:
        """A released ticket found the route still down: back in its old place."""
        self.finished()
        bisect.insort(self._tickets, ticket)

    def remove(self, ticket: Ticket) -> None:
        i = bisect.bisect_left(self._tickets, ticket)
        if i < len(self._tickets) and self._tickets[i] == ticket:
            del self._tickets[i]

    def oldest_wait_s(self, now: float) -> float:
        return max((now - t.since for t in self._tickets), default=0.0)
