"""Time one routing decision, for routes of 10, 1000 and 10000 deployments.

`real` (decision_us_p99): everything the plugin does with a request before its first upstream
call, store included: the route installed on a LiteLLM Router as the proxy installs it, timed
from the call of the router's fallbacks method (which the plugin shadows: where LiteLLM hands it
the request) until the single-attempt function LiteLLM would send upstream is called (the
request's set-up, the walk reading the candidates' state as it reaches them from LiteLLM's
cooldown cache and the store, the herd and probe checks). Not in it: LiteLLM's own work before
that method (the proxy's auth, pre-call hooks, the plugin's one-lookup pre-call check) and the
answer's handling after the call. The sizes take turns in blocks, so a slow moment of the
machine hits them alike. The route's primary and 10% of its other keys (spread through it) have
an open breaker in the store; LiteLLM's cooldown cache is the router's own (in memory). Stores:
memory, and Redis as the proxy uses it (a ResilientStore around the RedisStore) on a local
redis-server, where one can be started.

`health_round_cpu_ms`: this process's CPU time (not redis-server's) for one round of background
health checks that finds nothing due (it reads the keys it must: the suspects and a rotating
slice, decisions.health_scan), by store and number of keys.

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


def plan_of(deployments: int, policy: str = "km") -> RoutePlan:
    backends = 10 if deployments >= 10 else 1
    per_backend = deployments // backends
    section: dict[str, Any] = {
        "backends": {
            f"b{b}": {"provider": "openai", "api_keys": {f"k{k}": f"sk-{b}-{k}" for k in range(per_backend)}}
            for b in range(backends)
        },
        "routes": {"r": {"policy": policy, "elements": [f"b{b}:m" for b in range(backends)]}},
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


async def _real_runner(plan: RoutePlan) -> Any:
    """The route of `plan` installed on a LiteLLM Router as the proxy installs it: its
    deployments, the shadowed fallbacks method, the runner (its store is set by `_open`)."""
    import litellm

    from litellm_failover_plugin.litellm.install import install

    section: dict[str, Any] = {
        "backends": {
            b: {"provider": "openai", "api_base": "http://127.0.0.1:9/v1", "api_keys": {c.key: "sk-bench" for c in plan.candidates if c.backend == b}}
            for b in dict.fromkeys(c.backend for c in plan.candidates)
        },
        "routes": {plan.name: {"policy": plan.policy, "elements": list(dict.fromkeys(c.element for c in plan.candidates))}},
    }
    return install(litellm.Router(model_list=[]), parse_settings(section))


def _with_stats(runner: Any) -> Any:
    """A scored route whose every key has served: the same latency and success rate for all, so
    the ranking does all its work and keeps the written order (the candidate the timing expects)."""
    from litellm_failover_plugin.scoring import Stats

    for c in runner.plans["r"].candidates:
        runner.stats[c.health_id] = Stats(calls=10, latency_ms=100.0, success_rate=1.0, last_at=time.time())
    return runner


async def _open(runner: Any, plan: RoutePlan, store: Any, opened: list[int] | None = None, probe_at: float = 0.0) -> None:
    """`runner` reads `store` from now on, where the candidates `opened` are open."""
    from litellm_failover_plugin.breaker import Breaker, State

    runner.store = store
    breaker = Breaker(
        state=State.OPEN, failures=3, open_until=time.time() + 3600, cooldown_s=3600, probe_until=probe_at, reason="bench"
    )
    for i in _open_ids(plan) if opened is None else opened:
        await store.update(plan.candidates[i].health_id, lambda b: breaker)


async def _real_us(runner: Any, name: str, rounds: int) -> list[float]:
    """`rounds` real decisions on `runner`'s route `name`, in microseconds each: from the call
    of the router's fallbacks method (which the plugin shadows: where LiteLLM hands it a
    request) until the single-attempt function LiteLLM would send upstream is called, every
    step between included (the request's set-up, the walk reading the candidates' state from
    LiteLLM's cooldown cache and the store, herd and probe checks). The answer's handling after
    the call is not timed."""
    import litellm

    plan = runner.plans[name]
    messages = [{"role": "user", "content": "hi"}]
    samples = []
    clock = time.perf_counter_ns
    called: list[tuple[int, str]] = []

    async def upstream(**kwargs: Any) -> Any:
        called.append((clock(), kwargs["model"]))
        return litellm.ModelResponse()

    for _ in range(rounds):
        t0 = clock()
        await runner.router.async_function_with_fallbacks(model=name, messages=messages, original_function=upstream, metadata={})
        at, model = called.pop()
        samples.append((at - t0) / 1000)
        assert model == plan.candidates[1].deployment_id
    return samples


async def _real_by_size(sizes: tuple[int, ...], stores: dict[int, Any], runners: dict[int, Any], rounds: int) -> dict[int, float]:
    """p99 of the real decision at each size, the sizes taking turns in blocks (BLOCKS of them,
    the order rotating), so a moment when the machine is slow hits every size alike; a first
    block of each is warm-up."""
    plans = {n: runners[n].plans["r"] for n in sizes}
    for n in sizes:
        await _open(runners[n], plans[n], stores[n])
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    per_block = max(1, rounds // BLOCKS)
    for n in sizes:
        await _real_us(runners[n], "r", per_block)
    for b in range(BLOCKS):
        for n in sizes[b % len(sizes) :] + sizes[: b % len(sizes)]:
            samples[n] += await _real_us(runners[n], "r", per_block)
    return {n: round(p99(v), 2) for n, v in samples.items()}


async def _close(stores: dict[int, Any]) -> None:
    for store in stores.values():
        close = getattr(store, "aclose", None)
        if close is not None:
            await close()


BLOCKS = 20
HEALTH_ROUNDS = 20


async def _health_round_ms(sizes: tuple[int, ...], stores: dict[int, Any], runners: dict[int, Any]) -> dict[int, float]:
    """Median milliseconds of this process's CPU time (redis-server's own is not in it) for one
    round of health checks (what it reads to find the keys due a probe) at each size, the primary
    and 10 other keys open and none due a probe yet (a round that only reads); the sizes in turn."""
    from litellm_failover_plugin.config import HealthCheckSettings
    from litellm_failover_plugin.litellm.health import HealthChecker

    checkers = {}
    for n in sizes:
        runner = runners[n]
        await _open(runner, runner.plans["r"], stores[n], list(range(min(n, 11))), time.time() + 3600)
        runner.suspects.clear()  # what the decisions' walks saw; the first round finds the open keys again
        checkers[n] = HealthChecker(runner, HealthCheckSettings(interval_s=1, timeout_s=2))
    samples: dict[int, list[float]] = {n: [] for n in sizes}
    for r in range(HEALTH_ROUNDS + 1):
        for n in sizes:
            t0 = time.thread_time()
            assert await checkers[n].tick() == []
            if r:  # the first round of each is warm-up
                samples[n].append((time.thread_time() - t0) * 1000)
    return {n: round(statistics.median(v), 2) for n, v in samples.items()}


Figures = dict[str, dict[int, float]]  # by store, then route size


def measure_real(sizes: tuple[int, ...] = (10, 1000, 10000), rounds: int = 5000) -> tuple[Figures, Figures]:
    """decision_us_p99 (microseconds) and health_round_cpu_ms, by store and size. The routes are
    installed once per size; the memory store, then Redis as the proxy uses it (a ResilientStore
    around the RedisStore) on a local redis-server, where one can be started."""
    import asyncio

    from litellm_failover_plugin.state import MemoryStore
    from litellm_failover_plugin.state.redis import RedisStore
    from litellm_failover_plugin.state.resilient import ResilientStore

    server = _redis_server()
    makers: dict[str, Callable[[str], Any]] = {"memory": lambda prefix: MemoryStore()}
    if server is not None:
        makers["redis"] = lambda prefix: ResilientStore(RedisStore.from_url(server.url, prefix=prefix))

    async def each_store() -> tuple[Figures, Figures]:
        runners = {n: await _real_runner(plan_of(n)) for n in sizes}
        decisions, health = {}, {}
        scored = {n: _with_stats(await _real_runner(plan_of(n, "scored"))) for n in sizes}
        decisions["memory_scored"] = await _real_by_size(sizes, {n: MemoryStore() for n in sizes}, scored, rounds)
        for kind, make in makers.items():
            stores = {n: make(f"decision:{n}:") for n in sizes}
            try:
                decisions[kind] = await _real_by_size(sizes, stores, runners, rounds if kind == "memory" else max(200, rounds // 5))
            finally:
                await _close(stores)
            stores = {n: make(f"health:{n}:") for n in sizes}
            try:
                health[kind] = await _health_round_ms(sizes, stores, runners)
            finally:
                await _close(stores)
        return decisions, health

    try:
        return asyncio.run(each_store())
    finally:
        if server is not None:
            server.close()


def _redis_server() -> Any:
    """A redis-server on 127.0.0.1 (tests/redis_server.py), or None where none can be started."""
    import sys
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    try:
        from litellm_failover_plugin.testing import free_port
        from tests.redis_server import RedisServer

        return RedisServer(free_port()).start()
    except Exception as e:  # no redis-server here: the memory figures stand alone
        print(f"decision: no Redis ({type(e).__name__}); memory store only", file=sys.stderr)
        return None


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
    real, health = measure_real()
    print({"real": real, "health_round_cpu_ms": health, **measure()})
