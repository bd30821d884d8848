"""Time one routing decision, for routes of 10, 1000 and 10000 deployments.

`real` (decision_us_p99): what FailoverRunner does before a request's first upstream call, store
included: a Snapshot and a FailoverRun over the route, reading the candidates' state as the walk
reaches them (LiteLLM's cooldown lookup and the breaker store's read), up to the first candidate
to call. The route's primary and 10% of its other keys (spread through it) have an open breaker
in the store; LiteLLM's cooldown cache is the router's own (in memory). Stores: memory, and a
real redis-server on 127.0.0.1 when one can be started (`real_redis`).

`typical` / `worst` (the pure core alone, as before): a FailoverRun given every deployment's
state, up to its first candidate; worst: every deployment but the last unavailable.
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


def _open_ids(plan: RoutePlan) -> list[int]:
    """The primary and 10% of the other candidates, spread through the plan (indexes)."""
    n = len(plan.candidates)
    return sorted({0, *range(0, n, max(1, n // max(1, n // 10)))})


async def _real_us(plan: RoutePlan, store: Any, rounds: int) -> list[float]:
    import litellm

    from litellm_failover_plugin.breaker import Breaker, State
    from litellm_failover_plugin.decisions import Snapshot
    from litellm_failover_plugin.litellm.runner import FailoverRunner

    section: dict[str, Any] = {
        "backends": {
            b: {"provider": "openai", "api_keys": {c.key: "sk-bench" for c in plan.candidates if c.backend == b}}
            for b in dict.fromkeys(c.backend for c in plan.candidates)
        },
        "routes": {plan.name: {"policy": plan.policy, "elements": list(dict.fromkeys(c.element for c in plan.candidates))}},
    }
    settings = parse_settings(section)
    runner = FailoverRunner(litellm.Router(model_list=[]), settings, compile_routes(settings), store)
    opened = Breaker(state=State.OPEN, failures=3, open_until=time.time() + 3600, cooldown_s=3600, reason="bench")
    for i in _open_ids(plan):
        await store.update(plan.candidates[i].health_id, lambda b: opened)
    plan = runner.plans[plan.name]
    samples = []
    clock = time.perf_counter_ns
    for _ in range(rounds):
        t0 = clock()
        snap = Snapshot()
        run = FailoverRun(plan, snap.unavailable, known=0)
        reads = runner._next_reads(run, snap)
        candidate = await reads.__anext__()
        samples.append((clock() - t0) / 1000)
        await reads.aclose()
        assert candidate is plan.candidates[1]
    return samples


def measure_real(sizes: tuple[int, ...] = (10, 1000, 10000), rounds: int = 5000) -> dict[str, dict[int, float]]:
    """p99 of the real decision by store and size (microseconds)."""
    import asyncio
    import sys
    from pathlib import Path

    from litellm_failover_plugin.state import MemoryStore
    from litellm_failover_plugin.state.redis import RedisStore

    out: dict[str, dict[int, float]] = {"memory": {}}
    for n in sizes:
        samples = asyncio.run(_real_us(plan_of(n), MemoryStore(), rounds))
        out["memory"][n] = round(p99(samples[rounds // 10 :]), 2)  # the first tenth warms up
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from litellm_failover_plugin.testing import free_port
        from tests.redis_server import RedisServer

        server = RedisServer(free_port()).start()
    except Exception as e:  # no redis-server here: the memory figures stand alone
        print(f"decision: no Redis ({type(e).__name__}); memory store only", file=sys.stderr)
        return out
    try:
        out["redis"] = {}
        for n in sizes:

            async def one(n: int = n) -> list[float]:
                store = RedisStore.from_url(server.url, prefix=f"bench:{n}:")
                try:
                    return await _real_us(plan_of(n), store, max(200, rounds // 5))
                finally:
                    await store.aclose()

            samples = asyncio.run(one())
            out["redis"][n] = round(p99(samples[len(samples) // 10 :]), 2)
    finally:
        server.close()
    return out


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
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    print({"real": measure_real(), **measure()})
