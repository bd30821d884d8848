"""Throughput by route size: a route over 2 keys against routes over 1,000 and 10,000 keys, on
the same proxy, healthy primary.

One fake upstream (its own process) serves every key: the keys are distinct named keys of one
backend each (`pool2`, `pool1000`, `pool10000`, values `bench-key-s<size>-<i>`), so the proxy's
per-request work is what differs. Three proxies, one after the other, each loaded alone:
- memory: the plugin, routes `keys-<n>` = policy k over `pool<n>:model` (every key of the pool,
  in order), the same failover settings as the comparison's plugin (health checks, a queue);
- redis: the same with `failover_settings.redis_url` on a real redis-server on 127.0.0.1;
- plain: plain LiteLLM, model groups `g<n>` of n deployments (one per key; its default
  simple-shuffle routing picks among them).
Rounds rotate through the sizes, each step after a random pause (JITTER_S), so drift and the
proxy's periodic pauses hit them alike; `route_<n>_ratio` is the median over
rounds of req/s at n keys over req/s at 2 in the same round, with a 95% bootstrap interval
(`ratio_ci95`): single rounds move by tens of percent on a shared 2-vCPU machine. Start-up is measured too: from
launch until the proxy answers /health/liveliness (`ready_s`), and until the first request on
the biggest route was served (`startup_s`).

`alternating_ratio` answers the same question with the machine's noise cancelled rather than
averaged: one request at a time, the sizes in turn (ALTERNATIONS each), so every size sees the
machine as it is at that moment; the 2-key route's median latency over the n-key route's.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from compare import COOLDOWN_S
from load import (
    AUTH,
    BODY,
    MASTER_KEY,
    Load,
    Upstream,
    load,
    median_ci95,
    median_rps,
    one_request,
    pooled,
    round_ratios,
)
from rich.console import Console

from litellm_failover_plugin.testing.proxy import ProxyProcess, free_port

BASE = 2  # the small route every size is compared with
SCALE_SIDES = ("memory", "redis", "plain")
SECRET = "bench-key-s"
# Each load step starts after a seeded pseudo-random pause of up to JITTER_S (a third of a step at most): a LiteLLM proxy under this load stops
# for a full garbage collection (about 0.4 s) every 8-13 s, close to one round's length, and
# without the jitter that pause can keep landing on the same route size round after round.
JITTER_S = 1.0
ALTERNATIONS = 400  # requests per route size, one at a time, the sizes in turn (alternating_ratio)
ALTERNATING_LIMIT_S = 60.0


def _keys(n: int) -> dict[str, str]:
    return {f"k{i}": f"{SECRET}{n}-{i}" for i in range(n)}


def plugin_config(upstream: Upstream, sizes: list[int], redis_url: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {
        "backends": {f"pool{n}": {"provider": "openai", "api_base": upstream.url, "api_keys": _keys(n)} for n in sizes},
        "routes": {f"keys-{n}": {"policy": "k", "elements": [f"pool{n}:model"]} for n in sizes},
        "health_checks": {"interval_s": 1, "timeout_s": 2},
        "queue": {"max_wait_s": 20, "max_size": 500},
    }
    if redis_url:
        section["redis_url"] = redis_url
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": {"num_retries": 0, "allowed_fails": 1, "cooldown_time": COOLDOWN_S},
        "failover_settings": section,
    }


def plain_config(upstream: Upstream, sizes: list[int]) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": f"g{n}", "litellm_params": {"model": "openai/model", "api_base": upstream.url, "api_key": value}}
            for n in sizes
            for value in _keys(n).values()
        ],
        "router_settings": {"num_retries": 0, "allowed_fails": 1, "cooldown_time": COOLDOWN_S},
    }


@dataclass
class ScaleSide:
    name: str
    sizes: list[int]
    ready_s: float = 0.0
    startup_s: float = 0.0
    rss_mb: float | None = None
    loads: dict[int, list[Load]] = field(default_factory=dict)
    alternating_ms: dict[int, list[float]] = field(default_factory=dict)  # one request at a time, sizes in turn

    def model(self, n: int) -> str:
        return f"g{n}" if self.name == "plain" else f"keys-{n}"

    def ratios(self, n: int) -> list[float]:
        return round_ratios(self.loads[n], self.loads[BASE])

    def ratio(self, n: int) -> float | None:
        r = self.ratios(n)
        return round(statistics.median(r), 3) if r else None

    def results(self) -> dict[str, Any]:
        return {
            "ready_s": round(self.ready_s, 1),
            "startup_s": round(self.startup_s, 1),
            "proxy_rss_mb": round(self.rss_mb, 1) if self.rss_mb else None,
            "rps": {str(n): round(median_rps(self.loads[n]), 1) for n in self.sizes},
            "rps_rounds": {str(n): [round(x.rps, 1) for x in self.loads[n]] for n in self.sizes},
            "p50_ms": {str(n): round(pooled(self.loads[n]).pct(50), 1) for n in self.sizes},
            "errors": {str(n): pooled(self.loads[n]).errors for n in self.sizes},
            "ratios": {str(n): self.ratio(n) for n in self.sizes if n != BASE},
            "ratio_ci95": {str(n): median_ci95(self.ratios(n)) for n in self.sizes if n != BASE},
            "round_ratios": {str(n): self.ratios(n) for n in self.sizes if n != BASE},
            "alternating_p50_ms": {str(n): round(statistics.median(v), 2) for n, v in self.alternating_ms.items() if v},
            "alternating_n": {str(n): len(v) for n, v in self.alternating_ms.items()},
            "alternating_ratio": {str(n): self.alternating_ratio(n) for n in self.sizes if n != BASE},
        }

    def alternating_ratio(self, n: int) -> float | None:
        """The 2-key route's median latency over the n-key route's, one request at a time with the
        sizes in turn (like req/s at concurrency 1: above 1 is faster than the 2-key route)."""
        a, b = self.alternating_ms.get(n), self.alternating_ms.get(BASE)
        return round(statistics.median(b) / statistics.median(a), 3) if a and b else None


async def _first_ok(url: str, model: str, limit_s: float) -> None:
    deadline = time.perf_counter() + limit_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60), headers=AUTH) as s:
        while True:
            async with s.post(url, json={"model": model, **BODY}) as r:
                await r.read()
                if r.status == 200:
                    return
                if time.perf_counter() > deadline:
                    raise RuntimeError(f"{model}: no answer but {r.status} after {limit_s} s")
            await asyncio.sleep(0.1)


async def alternating(url: str, models: list[str], sizes: list[int], n: int) -> dict[int, list[float]]:
    """`n` requests per model (fewer if ALTERNATING_LIMIT_S runs out), one at a time on one
    connection, the models in turn (the order rotating): every size sees the machine as it is at that moment, so what differs between
    them is each request's own path through the proxy."""
    out: dict[int, list[float]] = {size: [] for size in sizes}
    deadline = time.perf_counter() + ALTERNATING_LIMIT_S  # plain LiteLLM's 10,000-deployment group takes 0.3 s a request
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        for i in range(n):
            if time.perf_counter() > deadline:
                break
            k = i % len(sizes)
            for model, size in list(zip(models, sizes, strict=True))[k:] + list(zip(models, sizes, strict=True))[:k]:
                ok, ms, _ = await one_request(session, url, model)
                if ok:
                    out[size].append(ms)
    return out


async def _run_side(
    side: ScaleSide, config: dict[str, Any], seconds: float, rounds: int, concurrency: int, say: Console, alternations: int
) -> None:
    proxy = ProxyProcess(config, master_key=MASTER_KEY)
    t0 = time.perf_counter()
    try:
        proxy.start(timeout_s=600)
        side.ready_s = time.perf_counter() - t0
        url = f"{proxy.url}/v1/chat/completions"
        await _first_ok(url, side.model(max(side.sizes)), limit_s=120)
        side.startup_s = time.perf_counter() - t0
        say.print(f"[scale {side.name}] up in {side.startup_s:.1f} s ({sum(side.sizes)} deployments); warming up")
        for n in side.sizes:
            await load(url, side.model(n), 1, concurrency)
            side.loads[n] = []
        jitter = random.Random(0)
        for r in range(rounds):
            say.print(f"[scale {side.name}] round {r + 1}/{rounds}: {seconds:g}s on each route ({', '.join(map(str, side.sizes))} keys)")
            k = r % len(side.sizes)
            for n in side.sizes[k:] + side.sizes[:k]:
                await asyncio.sleep(jitter.uniform(0, min(JITTER_S, seconds / 3)))  # a periodic pause in the proxy cannot keep hitting one size
                side.loads[n].append(await load(url, side.model(n), seconds, concurrency))
        say.print(f"[scale {side.name}] {alternations} requests per route, one at a time, the sizes in turn")
        side.alternating_ms = await alternating(url, [side.model(n) for n in side.sizes], side.sizes, alternations)
        side.rss_mb = proxy.rss_mb()
    finally:
        log = proxy.log_text()
        proxy.close()
        assert SECRET not in log, f"an API key reached the {side.name} scale proxy's log"


async def scale(
    sizes: list[int], seconds: float, rounds: int, concurrency: int, say: Console, alternations: int = ALTERNATIONS
) -> dict[str, ScaleSide]:
    sizes = [BASE, *sorted(n for n in set(sizes) if n != BASE)]
    upstream = Upstream("pool")
    upstream.start()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.redis_server import RedisServer

    redis = RedisServer(free_port()).start()
    out: dict[str, ScaleSide] = {}
    try:
        for name in SCALE_SIDES:
            side = out[name] = ScaleSide(name, sizes)
            if name == "plain":
                config = plain_config(upstream, sizes)
            else:
                config = plugin_config(upstream, sizes, redis.url if name == "redis" else None)
            await _run_side(side, config, seconds, rounds, concurrency, say, alternations)
    finally:
        upstream.stop()
        redis.close()
    return out


if __name__ == "__main__":  # the route-size phase alone: python benchmarks/scale.py [rounds] (default 3)
    import json
    import os

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 3
    sides = asyncio.run(scale([1000, 10000], 3.0, rounds, 20, Console(stderr=True, markup=False)))
    from importlib.metadata import version

    settings = {"litellm": version("litellm"), "cpus": os.cpu_count(), "rounds": rounds, "seconds_per_round": 3.0}
    settings |= {"concurrency": 20, "pause_s": JITTER_S, "alternations": ALTERNATIONS, "alternating_limit_s": ALTERNATING_LIMIT_S}
    print(json.dumps({"settings": settings, "route_scale": {name: side.results() for name, side in sides.items()}}, indent=1))
