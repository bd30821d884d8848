"""Time one routing decision, for routes of 10, 1000 and 10000 deployments.

`real` (decision_us_p99): what FailoverRunner does before a request's first upstream call, store
included: a Snapshot and a FailoverRun over the route, reading the candidates' state as the walk
reaches them (LiteLLM's cooldown lookup and the breaker store's read), up to the first candidate
to call. The sizes take turns in blocks, so a slow moment of the machine hits them alike. The route's primary and 10% of its other keys (spread through it) have an open breaker
in the store; LiteLLM's cooldown cache is the router's own (in memory). Stores: memory, and a
real redis-server on 127.0.0.1 when one can be started (`real_redis`).

`health_round_cpu_ms`: the CPU time of one round of background health checks that finds nothing
due (it reads the keys it must: the suspects and a rotating slice, decisions.health_scan), by
store and number of keys.

`typical` / `worst` (the pure core alone, as before): a FailoverRun given every deployment's
state, up to its first candidate; worst: every deployment but the last unavailable.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
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


async def _real_runner(plan: RoutePlan, store: Any, opened: list[int] | None = None, probe_at: float = 0.0) -> Any:
    """A FailoverRunner over `plan` on an empty router, the candidates `opened` (indexes; by
    default the primary and 10% of the keys) open, their probes due at `probe_at`."""
    import litellm

    from litellm_failover_plugin.breaker import Breaker, State
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
    breaker = Breaker(
        state=State.OPEN, failures=3, open_until=time.time() + 3600, cooldown_s=3600, probe_until=probe_at, reason="bench"
    )
    for i in _open_ids(plan) if opened is None else opened:
        await store.update(plan.candidates[i].health_id, lambda b: breaker)
    return runner


async def _real_us(runner: Any, name: str, rounds: int) -> list[float]:
    """`rounds` real decisions on `runner`'s route `name`, in microseconds each."""
    from litellm_failover_plugin.decisions import Snapshot

    plan = runner.plans[name]
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


async def _real_by_size(sizes: tuple[int, ...], make_store: Callable[[int], Any], rounds: int) -> dict[int, float]:
    """p99 of the real decision at each size, the sizes taking turns in blocks (BLOCKS of them,
    the order rotating), so a moment when the machine is slow hits every size alike; a first
    block of each is warm-up."""
    stores = {n: make_store(n) for n in sizes}
    try:
        runners = {n: await _real_runner(plan_of(n), stores[n]) for n in sizes}
        samples: dict[int, list[float]] = {n: [] for n in sizes}
        per_block = max(1, rounds // BLOCKS)
        for n in sizes:
            await _real_us(runners[n], "r", per_block)
        for b in range(BLOCKS):
            for n in sizes[b % len(sizes) :] + sizes[: b % len(sizes)]:
                samples[n] += await _real_us(runners[n], "r", per_block)
        return {n: round(p99(v), 2) for n, v in samples.items()}
    finally:
        for store in stores.values():
            close = getattr(store, "aclose", None)
            if close is not None:
                await close()


BLOCKS = 20
HEALTH_ROUNDS = 20


async def _health_round_ms(sizes: tuple[int, ...], make_store: Callable[[int], Any]) -> dict[int, float]:
    """Median CPU milliseconds of one round of health checks (what it reads to find the keys
    due a probe) at each size, the primary and 10 other keys open and none due a probe yet (a
    round that only reads); the sizes in turn."""
    from litellm_failover_plugin.config import HealthCheckSettings
    from litellm_failover_plugin.litellm.health import HealthChecker

    stores = {n: make_store(n) for n in sizes}
    try:
        checkers = {}
        for n in sizes:
            runner = await _real_runner(plan_of(n), stores[n], list(range(min(n, 11))), time.time() + 3600)
            checkers[n] = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
        samples: dict[int, list[float]] = {n: [] for n in sizes}
        for r in range(HEALTH_ROUNDS + 1):
            for n in sizes:
                t0 = time.thread_time()
                assert await checkers[n].tick() == []
                if r:  # the first round of each is warm-up
                    samples[n].append((time.thread_time() - t0) * 1000)
        return {n: round(statistics.median(v), 2) for n, v in samples.items()}
    finally:
        for store in stores.values():
            close = getattr(store, "aclose", None)
            if close is not None:
                await close()


def measure_health_rounds(sizes: tuple[int, ...] = (10, 1000, 10000)) -> dict[str, dict[int, float]]:
    """health_round_cpu_ms by store and size."""
    import asyncio
    import sys
    from pathlib import Path

    from litellm_failover_plugin.state import MemoryStore
    from litellm_failover_plugin.state.redis import RedisStore

    out = {"memory": asyncio.run(_health_round_ms(sizes, lambda n: MemoryStore()))}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from litellm_failover_plugin.testing import free_port
    from tests.redis_server import RedisServer

    server = RedisServer(free_port()).start()
    try:
        out["redis"] = asyncio.run(_health_round_ms(sizes, lambda n: RedisStore.from_url(server.url, prefix=f"health:{n}:")))
    finally:
        server.close()
    return out


def measure_real(sizes: tuple[int, ...] = (10, 1000, 10000), rounds: int = 5000) -> dict[str, dict[int, float]]:
    """p99 of the real decision by store and size (microseconds)."""
    import asyncio
    import sys
    from pathlib import Path

    from litellm_failover_plugin.state import MemoryStore
    from litellm_failover_plugin.state.redis import RedisStore

    out: dict[str, dict[int, float]] = {"memory": asyncio.run(_real_by_size(sizes, lambda n: MemoryStore(), rounds))}
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from litellm_failover_plugin.testing import free_port
        from tests.redis_server import RedisServer

        server = RedisServer(free_port()).start()
    except Exception as e:  # no redis-server here: the memory figures stand alone
        print(f"decision: no Redis ({type(e).__name__}); memory store only", file=sys.stderr)
        return out
    try:
        redis = asyncio.run(_real_by_size(sizes, lambda n: RedisStore.from_url(server.url, prefix=f"bench:{n}:"), max(200, rounds // 5)))
        out["redis"] = redis
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
    print({"real": measure_real(), "health_round_cpu_ms": measure_health_rounds(), **measure()})
