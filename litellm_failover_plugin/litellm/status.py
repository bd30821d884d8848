"""The status view: every deployment's breaker, LiteLLM cooldown and recent behaviour."""

from __future__ import annotations

from typing import Any

from ..breaker import State
from ..scoring import Weights, score
from .runner import FailoverRunner


def _scores(runner: FailoverRunner) -> dict[str, float]:
    """Each deployment's score within its route (lower is better), as a scored route ranks it."""
    out: dict[str, float] = {}
    for name, plan in runner.plans.items():
        w = runner.weights.get(name, Weights())
        ids = plan.deployment_ids
        worst_latency = max((runner.stats[i].latency_ms or 0.0 for i in ids if i in runner.stats), default=0.0)
        worst_cost = max((runner.costs.get(i) or 0.0 for i in ids), default=0.0)
        for i in ids:
            out[i] = round(score(runner.stats.get(i), runner.costs.get(i), worst_latency, worst_cost, w), 3)
    return out


async def status_rows(runner: FailoverRunner) -> list[dict[str, Any]]:
    ids = list(runner.candidates)
    now = runner.clock()
    breakers = await runner.store.get_many(ids)
    cooling = await runner.cooling_down(ids)
    scores = _scores(runner)
    rows = []
    for id, b in zip(ids, breakers, strict=False):
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
                "score": scores.get(id),
                "open_until": round(b.open_until, 3) if b.state is not State.CLOSED else None,
            }
        )
    return rows
