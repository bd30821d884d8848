"""What each deployment has been doing: EWMA latency and success rate. Pure: callers pass time."""

from __future__ import annotations

from dataclasses import dataclass, replace


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
