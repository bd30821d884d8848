"""Time one routing decision on the pure core, for routes of 10, 1000 and 10000 deployments.

A decision is what the attempt loop does before its first upstream call: start a FailoverRun
over the route's plan with the set of deployments known to be unavailable, and take the first
candidate to call. Two cases:

- typical: the primary and 10% of the other deployments (spread through the plan) unavailable;
- worst: every deployment but the last unavailable, so the walk lists every skip.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

from litellm_failover_plugin.config import parse_settings
from litellm_failover_plugin.routing import FailoverRun, Outcome, RoutePlan, compile_routes


def plan_of(deployments: int) -> RoutePlan:
    backends = 10 if deployments >= 10 else 1
    per_backend = deployments // backends
    section: dict[str, Any] = {
        "backends": {
            f"b{b}": {"provider": "openai", "api_keys": {f"k{k}": f"sk-{b}-{k}" for k in range(per_backend)}}
            for b in range(backends)
        },
        "routes": {"r": {"policy": "km", "elements": [f"b{b}:m" for b in range(backends)]}},
    }
    plan = compile_routes(parse_settings(section))["r"]
    assert len(plan.candidates) == deployments
    return plan


def _time_us(plan: RoutePlan, unavailable: dict[str, Outcome], rounds: int) -> list[float]:
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t0 = clock()
        run = FailoverRun(plan, unavailable)
        candidate = next(run.candidates(), None)
        samples.append((clock() - t0) / 1000)
        assert candidate is not None
    return samples


def p99(samples: list[float]) -> float:
    return statistics.quantiles(samples, n=100, method="inclusive")[98]


def measure(sizes: tuple[int, ...] = (10, 1000, 10000), rounds: int = 20000) -> dict[str, dict[int, float]]:
    typical: dict[int, float] = {}
    worst: dict[int, float] = {}
    for n in sizes:
        plan = plan_of(n)
        ids = plan.deployment_ids
        picked = {ids[0], *ids[:: max(1, n // max(1, n // 10))][: max(1, n // 10)]}
        spread = dict.fromkeys(picked, Outcome.SKIPPED_OPEN)
        _time_us(plan, spread, min(500, rounds))  # warm up
        typical[n] = round(p99(_time_us(plan, spread, rounds)), 2)
        everything_but_last = dict.fromkeys(ids[:-1], Outcome.SKIPPED_OPEN)
        worst_rounds = max(20, min(rounds, 2_000_000 // n))
        worst[n] = round(p99(_time_us(plan, everything_but_last, worst_rounds)), 2)
    return {"typical": typical, "worst": worst}


if __name__ == "__main__":
    print(measure())
