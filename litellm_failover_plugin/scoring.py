"""What each deployment has been doing: EWMA latency and success rate. Pure: callers pass time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Stats:
    calls: int = 0
    latency_ms: float | None = None  # EWMA of successful calls (time to first chunk for streams)
    success_rate: float | None = None  # EWMA of 1 (success) / 0 (counted failure)
    last_at: float = 0.0


def observe(s: Stats, ok: bool, latency_ms: float | None, now: float, alpha: float = 0.2) -> Stats:
    rate = float(ok) if s.success_rate is None else (1 - alpha) * s.success_rate + alpha * float(ok)
    latency = s.latency_ms
    if ok and latency_ms is not None:
        latency = latency_ms if latency is None else (1 - alpha) * latency + alpha * latency_ms
    return replace(s, calls=s.calls + 1, latency_ms=latency, success_rate=rate, last_at=now)


@dataclass(frozen=True, slots=True)
class Weights:
    latency: float = 1.0
    reliability: float = 1.0
    cost: float = 0.0


def score(s: Stats | None, cost: float | None, worst_latency: float, worst_cost: float, w: Weights) -> float:
    """Lower is better. Each part is scaled to 0..1 against the worst candidate of the route;
    what is not known yet (no calls, no price) scores as well as the best, so new candidates
    get their chance."""
    latency = s.latency_ms if s is not None and s.latency_ms is not None else 0.0
    failing = 1.0 - s.success_rate if s is not None and s.success_rate is not None else 0.0
    return (
        w.latency * (latency / worst_latency if worst_latency > 0 else 0.0)
        + w.reliability * failing
        + w.cost * ((cost or 0.0) / worst_cost if worst_cost > 0 else 0.0)
    )


def rank(
    ids: Sequence[str],
    items: Sequence[T],
    priorities: Sequence[int],
    stats: Mapping[str, Stats],
    costs: Mapping[str, float | None],
    w: Weights,
) -> list[T]:
    """`items` ordered by priority (lower first), then score; ties keep the written order."""
    latencies = [stats[i].latency_ms or 0.0 for i in ids if i in stats]
    worst_latency = max(latencies, default=0.0)
    worst_cost = max((costs.get(i) or 0.0 for i in ids), default=0.0)  # of this route's candidates
    keyed = [
        (priorities[n], score(stats.get(i), costs.get(i), worst_latency, worst_cost, w), n)
        for n, i in enumerate(ids)
    ]
    return [items[n] for _, _, n in sorted(keyed)]


RANK_SHARE = 0.02  # of the time, at most, a scored route spends ranking
RANK_STALE_MAX_S = 1.0


def ranking_fresh(ranked_at: float, took_s: float, now: float) -> bool:
    """Whether a scored route's last ranking still serves. It is kept for 1/RANK_SHARE times what
    computing it took (at most RANK_STALE_MAX_S), so ranking costs at most that share of the time
    whatever the route's size: a 10-key route is ranked afresh within a millisecond, a 10,000-key
    route every ~0.25 s. The walk still reads each candidate's state when it reaches it: a
    ranking only orders, it never calls a dead key."""
    age = now - ranked_at
    return 0.0 <= age < min(took_s / RANK_SHARE, RANK_STALE_MAX_S)
