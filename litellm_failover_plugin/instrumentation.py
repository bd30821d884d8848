"""What the runner tells observers: frozen event values, handed to small hooks.

A hook is any callable taking one event (`Hook`). The runner holds a tuple of them, empty by
default; it builds an event only when it has a hook, so instrumentation that is off costs one
attribute test. A hook runs inline on the request's path: it must be quick and must not raise
(the runner logs and drops what one raises). The Prometheus hook is litellm/metrics.py.

Events carry names (route, backend, model, key name), never a key's value. Pure: no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

from .routing import Candidate


@dataclass(frozen=True, slots=True)
class AttemptMade:
    """One candidate's part in a walk: outcome is routing.Outcome's value (success, failed_over,
    returned, retried, skipped_*, interrupted)."""

    route: str
    backend: str
    model: str
    key: str
    outcome: str

    @classmethod
    def of(cls, c: Candidate, outcome: str) -> AttemptMade:
        return cls(c.route, c.backend, c.model, c.key, outcome)


@dataclass(frozen=True, slots=True)
class RequestDone:
    """A request for a route ended: success, exhausted (every candidate tried or skipped),
    error (an upstream error handed back as is, or the client's own), fallback (the route
    failed and a LiteLLM fallback served) or cancelled."""

    route: str
    result: str


@dataclass(frozen=True, slots=True)
class BreakerSeen:
    """A deployment's breaker state, as last read or changed (closed, half_open, open)."""

    route: str
    backend: str
    model: str
    key: str
    state: str


@dataclass(frozen=True, slots=True)
class QueueChanged:
    """A route's queue length after a request entered or left it; `waited_s` when one left."""

    route: str
    length: int
    waited_s: float | None = None


@dataclass(frozen=True, slots=True)
class BudgetDenied:
    """The retry budget refused an extra upstream call for this route."""

    route: str


@dataclass(frozen=True, slots=True)
class UpstreamLatency:
    """A successful upstream call's latency: to the whole response, or a stream's first chunk."""

    route: str
    backend: str
    model: str
    key: str
    seconds: float
    stream: bool


@dataclass(frozen=True, slots=True)
class RoutesServed:
    """The routes now served and their deployments' (route, backend, model, key): after a change,
    what observers keep per deleted route or removed key can go."""

    routes: frozenset[str]
    deployments: frozenset[tuple[str, str, str, str]]

    @classmethod
    def of(cls, candidates: Iterable[Candidate], routes: Iterable[str]) -> RoutesServed:
        return cls(frozenset(routes), frozenset((c.route, c.backend, c.model, c.key) for c in candidates))


Event = AttemptMade | RequestDone | BreakerSeen | QueueChanged | BudgetDenied | UpstreamLatency | RoutesServed
Hook = Callable[[Event], None]
