"""The status view: every deployment's breaker, LiteLLM cooldown and recent behaviour."""

from __future__ import annotations

from typing import Any

from ..breaker import State
from .runner import FailoverRunner


async def status_rows(runner: FailoverRunner) -> list[dict[str, Any]]:
    ids = list(runner.candidates)
    now = runner.clock()
    breakers = await runner.store.get_many(ids)
    cooling = await runner.cooling_down(ids)
    rows = []
    for id, b in zip(ids, breakers):
        c = runner.candidates[id]
        s = runner.stats.get(id)
        rows.append(
            {
                "deployment": id,
                "route": c.route,
                "backend": c.backend,
                "model": c.model,
                "key": c.key,
                "state": b.state.value,
                "failures": b.failures,
                "open_for_s": round(max(0.0, b.open_until - now), 1) if b.state is not State.CLOSED else 0.0,
                "reason": b.reason,
                "litellm_cooldown": id in cooling,
                "calls": s.calls if s else 0,
                "latency_ms": round(s.latency_ms, 1) if s and s.latency_ms is not None else None,
                "success_rate": round(s.success_rate, 3) if s and s.success_rate is not None else None,
            }
        )
    return rows
