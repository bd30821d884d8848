"""Holding requests while every candidate of a route is down, without polling.

A waiting request sleeps on its route's condition until one of: a recovery notice for the
route (a probe or health check closed a breaker, here or, through Redis pub/sub, on another
replica), the earliest moment a candidate becomes probe-able again (a breaker's cooldown or a
LiteLLM cooldown ends), or its own deadline. Then, if its ticket is among the first
`release_concurrency` (queue.py), it tries the route again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import statistics
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from ..config import FailoverSettings, QueueSettings
from ..queue import Ticket, WaitQueue

log = logging.getLogger("litellm_failover_plugin")
MIN_NAP_S = 0.05  # never spin: a due time already past still waits this long


class QueueTimeout(Exception):
    pass


@dataclass
class Place:
    """One request's standing in a route's queue."""

    ticket: Ticket
    released: bool = False
    seen_recoveries: int = 0


class RouteWaiter:
    def __init__(self, route: str, settings: QueueSettings, clock: Callable[[], float]) -> None:
        self.route = route
        self.settings = settings
        self.clock = clock
        self.queue = WaitQueue(settings.max_size, settings.release_concurrency)
        self._cond = asyncio.Condition()
        self.recoveries = 0
        self.waits_s: deque[float] = deque(maxlen=1000)  # finished waits, for the status view

    def enter(self, priority: int) -> Place | None:
        ticket = self.queue.push(priority, self.clock())
        if ticket is None:
            return None
        log.info(
            "failover queue route=%s queued priority=%d length=%d", self.route, priority, len(self.queue)
        )
        return Place(ticket, seen_recoveries=self.recoveries)

    async def wait(self, place: Place, due: float | None, deadline: float) -> None:
        """Until this place may try the route again. Raises QueueTimeout at the deadline."""
        async with self._cond:
            if place.released:  # it tried and found the route still down: back in its old place
                self.queue.requeue(place.ticket)
                place.released = False
                self._cond.notify_all()
            try:
                while True:
                    now = self.clock()
                    if now >= deadline:
                        raise QueueTimeout
                    ready = self.recoveries > place.seen_recoveries or (due is not None and now >= due)
                    if ready and self.queue.may_go(place.ticket):
                        self.queue.release(place.ticket)
                        place.released = True
                        place.seen_recoveries = self.recoveries
                        log.info(
                            "failover queue route=%s released after %.2fs length=%d",
                            self.route,
                            now - place.ticket.since,
                            len(self.queue),
                        )
                        return
                    until = deadline if ready or due is None else min(deadline, max(due, now + MIN_NAP_S))
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._cond.wait(), timeout=until - now)
            except BaseException:  # timeout, or the client went away (cancelled): leave the queue
                self.queue.remove(place.ticket)
                self._cond.notify_all()
                raise

    async def done(self, place: Place) -> None:
        """The request is over (served, or failed for good): free its place."""
        async with self._cond:
            if place.released:
                self.queue.finished()
                place.released = False
            else:
                self.queue.remove(place.ticket)
            self.waits_s.append(self.clock() - place.ticket.since)
            self._cond.notify_all()

    async def recovered(self) -> None:
        async with self._cond:
            self.recoveries += 1
            self._cond.notify_all()

    def status(self) -> dict[str, object]:
        waits = sorted(self.waits_s)
        q = statistics.quantiles(waits, n=100, method="inclusive") if len(waits) >= 2 else None
        return {
            "length": len(self.queue),
            "released": self.queue.released,
            "oldest_wait_s": round(self.queue.oldest_wait_s(self.clock()), 2),
            "waits_done": len(waits),
            "wait_p50_s": round(q[49], 2) if q else (round(waits[0], 2) if waits else None),
            "wait_p99_s": round(q[98], 2) if q else (round(waits[0], 2) if waits else None),
        }


def waiters_for(
    settings: FailoverSettings, routes: Iterable[str], current: Mapping[str, RouteWaiter], clock: Callable[[], float]
) -> dict[str, RouteWaiter]:
    """The queues of `routes` that have one; a queue whose settings stay keeps the requests
    waiting in it."""
    out: dict[str, RouteWaiter] = {}
    for name in routes:
        q = settings.queue_for(name)
        if q is None:
            continue
        kept = current.get(name)
        out[name] = kept if kept is not None and kept.settings == q else RouteWaiter(name, q, clock)
    return out
