"""The status view: every deployment's breaker, LiteLLM cooldown and recent behaviour.

One row per deployment (route, backend, model, key); the breaker, failures and stats shown are
its key's (`health`), shared by every route in `shared_by`; `limits` is its key's use of its
rate limits in the current minute (`rpm 2/2`), for keys that have limits.
"""

from __future__ import annotations

from typing import Any

from ..breaker import State
from ..limits import describe, window_of
from ..scoring import Weights, score
from .runner import FailoverRunner


def _scores(runner: FailoverRunner) -> dict[str, float]:
    """Each deployment's score within its route (lower is better), as a scored route ranks it."""
    out: dict[str, float] = {}
    for name, plan in runner.plans.items():
        w = runner.weights.get(name, Weights())
        stats = [(c.deployment_id, runner.stats.get(c.health_id)) for c in plan.candidates]
        worst_latency = max((s.latency_ms or 0.0 for _, s in stats if s is not None), default=0.0)
        worst_cost = max((runner.costs.get(i) or 0.0 for i, _ in stats), default=0.0)
        for i, s in stats:
            out[i] = round(score(s, runner.costs.get(i), worst_latency, worst_cost, w), 3)
    return out


async def status_rows(runner: FailoverRunner) -> list[dict[str, Any]]:
    ids = list(runner.candidates)
    hids = list(runner.deployments_of)
    now = runner.clock()
    breakers = dict(zip(hids, await runner.store.get_many(hids), strict=False))
    cooling = await runner.cooling_down(ids, breakers)  # a stale one (from before the last close) is cleared
    scores = _scores(runner)
    limited = list({c.health_id: c for c in runner.candidates.values() if c.limits}.values())
    used = dict(zip((c.health_id for c in limited), await runner.usage(limited, window_of(now)), strict=True))
    rows = []
    for id in ids:
        c = runner.candidates[id]
        b = breakers[c.health_id]
        s = runner.stats.get(c.health_id)
        rows.append(
            {
                "deployment": id,
                "route": c.route,
                "backend": c.backend,
                "model": c.model,
                "key": c.key,
                "health": c.health_id,
                "shared_by": runner.routes_of(c.health_id),
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
                "limits": describe(c.limits, used[c.health_id]) if c.limits else None,
            }
        )
    return rows
