"""Throughput by route size: a route over 2 keys against routes over 1,000 and 10,000 keys, on
the same proxy, healthy primary.

One fake upstream (its own process) serves every key: the keys are distinct named keys of one
backend each (`pool2`, `pooltwin`, `pool1000`, `pool10000`, values `bench-key-s<size>-<i>`), so
the proxy's per-request work is what differs. Three proxies, one after the other, each loaded alone:
- memory: the plugin, routes `keys-<n>` = policy k over `pool<n>:model` (every key of the pool,
  in order), the same failover settings as the comparison's plugin (health checks, a queue);
- redis: the same with `failover_settings.redis_url` on a real redis-server on 127.0.0.1;
- plain: plain LiteLLM, model groups `g<n>` of n deployments (one per key; its default
  simple-shuffle routing picks among them).
Each proxy also has a twin of the 2-key route (`keys-twin` / `gtwin`: 2 other keys, right after
the 2-key route in the config): the same work measured the same way, so `route_twin_ratio`
shows how far the method itself reads off 1.

`route_<n>_ratio`: short windows of load (load.interleaved) for SCALE_S seconds, each cycle the
pairs (2, 1000), (2, 10000), (2, twin) in a random order, each window's req/s over the 2-key
route's at that moment (load.window_ratios), median over the windows, with a 95% bootstrap
interval (`ratio_ci95`); `cpu_ratios`: the same for requests per second of the proxy's CPU time;
`total_ratios`: what the route served over what the 2-key route would have at its rate of the
moment (no window left out).
Start-up is measured too: from launch until the proxy answers /health/liveliness (`ready_s`),
and until the first request on the biggest route was served (`startup_s`).

`alternating_ratio` asks the same at concurrency 1: one request at a time, the sizes in turn
(ALTERNATIONS each); the 2-key route's median latency over the n-key route's.
"""

from __future__ import annotations

import asyncio
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
    Upstream,
    Window,
    interleaved,
    load,
    median_ci95,
    median_of,
    median_rps,
    of,
    one_request,
    pooled,
    total_ratio,
    window_ratios,
)
from rich.console import Console

from litellm_failover_plugin.testing.proxy import ProxyProcess, free_port

BASE = "2"  # the small route every size is compared with
TWIN = "twin"  # another route over 2 keys: what the method reads when there is no difference
SCALE_SIDES = ("memory", "redis", "plain")
SECRET = "bench-key-s"
SCALE_S = 150.0  # seconds of windows per proxy
ALTERNATIONS = 400  # requests per route size, one at a time, the sizes in turn (alternating_ratio)
ALTERNATING_LIMIT_S = 60.0


def _keys(name: str) -> dict[str, str]:
    n = 2 if name == TWIN else int(name)
    return {f"k{i}": f"{SECRET}{name}-{i}" for i in range(n)}


def plugin_config(upstream: Upstream, names: list[str], redis_url: str | None) -> dict[str, Any]:
    section: dict[str, Any] = {
        "backends": {f"pool{n}": {"provider": "openai", "api_base": upstream.url, "api_keys": _keys(n)} for n in names},
        "routes": {f"keys-{n}": {"policy": "k", "elements": [f"pool{n}:model"]} for n in names},
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


def plain_config(upstream: Upstream, names: list[str]) -> dict[str, Any]:
    return {
        "model_list": [
            {"model_name": f"g{n}", "litellm_params": {"model": "openai/model", "api_base": upstream.url, "api_key": value}}
            for n in names
            for value in _keys(n).values()
        ],
        "router_settings": {"num_retries": 0, "allowed_fails": 1, "cooldown_time": COOLDOWN_S},
    }


@dataclass
class ScaleSide:
    """One proxy's figures. `names`: the routes, "2" and "twin" first, then the bigger sizes."""

    name: str
    names: list[str]
    ready_s: float = 0.0
    startup_s: float = 0.0
    rss_mb: float | None = None
    windows: list[Window] = field(default_factory=list)
    alternating_ms: dict[str, list[float]] = field(default_factory=dict)  # one request at a time, sizes in turn

    @property
    def sizes(self) -> list[str]:
        return [n for n in self.names if n != TWIN]

    @property
    def compared(self) -> list[str]:
        """Every route measured against the 2-key one: the bigger sizes, then the twin."""
        return [*(n for n in self.names if n not in (BASE, TWIN)), TWIN]

    def model(self, n: str) -> str:
        return f"g{n}" if self.name == "plain" else f"keys-{n}"

    def groups(self) -> list[list[str]]:
        """What takes turns: every route after a window of the 2-key route."""
        return [[BASE, n] for n in self.compared]

    def ratios(self, n: str, measure: str = "rps") -> list[float]:
        return window_ratios(self.windows, n, BASE, measure)

    def ratio(self, n: str, measure: str = "rps") -> float | None:
        return median_of(self.ratios(n, measure))

    def results(self) -> dict[str, Any]:
        return {
            "ready_s": round(self.ready_s, 1),
            "startup_s": round(self.startup_s, 1),
            "proxy_rss_mb": round(self.rss_mb, 1) if self.rss_mb else None,
            "rps": {n: round(median_rps(of(self.windows, n)), 1) for n in self.names},
            "windows": {n: len(of(self.windows, n)) for n in self.names},
            "p50_ms": {n: round(pooled(of(self.windows, n)).pct(50), 1) for n in self.names},
            "errors": {n: pooled(of(self.windows, n)).errors for n in self.names},
            "ratios": {n: self.ratio(n) for n in self.compared},
            "ratio_ci95": {n: median_ci95(self.ratios(n)) for n in self.compared},
            "total_ratios": {n: total_ratio(self.windows, n, BASE) for n in self.compared},
            "cpu_ratios": {n: self.ratio(n, "cpu") for n in self.compared},
            "cpu_ratio_ci95": {n: median_ci95(self.ratios(n, "cpu")) for n in self.compared},
            "cpu_ms_per_request": {n: _cpu_ms(of(self.windows, n)) for n in self.names},
            "window_ratios": {n: [round(r, 3) for r in self.ratios(n)] for n in self.compared},
            "window_cpu_ratios": {n: [round(r, 3) for r in self.ratios(n, "cpu")] for n in self.compared},
            "alternating_p50_ms": {n: round(statistics.median(v), 2) for n, v in self.alternating_ms.items() if v},
            "alternating_n": {n: len(v) for n, v in self.alternating_ms.items()},
            "alternating_ratio": {n: self.alternating_ratio(n) for n in self.compared},
        }

    def alternating_ratio(self, n: str) -> float | None:
        """The 2-key route's median latency over the n-key route's, one request at a time with the
        sizes in turn (like req/s at concurrency 1: above 1 is faster than the 2-key route)."""
        a, b = self.alternating_ms.get(n), self.alternating_ms.get(BASE)
        return round(statistics.median(b) / statistics.median(a), 3) if a and b else None


def _cpu_ms(windows: list[Window]) -> float | None:
    """The proxy's median CPU milliseconds per request over these windows."""
    per = [1000 * w.cpu_s / w.ok for w in windows if w.ok]
    return round(statistics.median(per), 2) if per else None


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


async def alternating(url: str, models: list[str], sizes: list[str], n: int) -> dict[str, list[float]]:
    """`n` requests per model (fewer if ALTERNATING_LIMIT_S runs out), one at a time on one
    connection, the models in turn (the order rotating): every size sees the machine as it is at that moment, so what differs between
    them is each request's own path through the proxy."""
    out: dict[str, list[float]] = {size: [] for size in sizes}
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


async def _run_side(side: ScaleSide, config: dict[str, Any], seconds: float, say: Console, alternations: int) -> None:
    proxy = ProxyProcess(config, master_key=MASTER_KEY)
    t0 = time.perf_counter()
    try:
        proxy.start(timeout_s=600)
        side.ready_s = time.perf_counter() - t0
        url = f"{proxy.url}/v1/chat/completions"
        await _first_ok(url, side.model(side.sizes[-1]), limit_s=120)
        side.startup_s = time.perf_counter() - t0
        deployments = sum(len(_keys(n)) for n in side.names)
        say.print(f"[scale {side.name}] up in {side.startup_s:.1f} s ({deployments} deployments); warming up")
        for n in side.names:
            await load(url, side.model(n), 1, 5)
        pairs = " ".join(f"({a}, {b})" for a, b in side.groups())
        say.print(f"[scale {side.name}] {seconds:g} s of short windows, each cycle {pairs} in a random order")
        assert proxy.process is not None
        streams = {n: (url, side.model(n), proxy.process.pid) for n in side.names}
        side.windows = await interleaved(streams, side.groups(), seconds)
        say.print(f"[scale {side.name}] {alternations} requests per route, one at a time, the routes in turn")
        side.alternating_ms = await alternating(url, [side.model(n) for n in side.names], side.names, alternations)
        side.rss_mb = proxy.rss_mb()
    finally:
        log = proxy.log_text()
        proxy.close()
        assert SECRET not in log, f"an API key reached the {side.name} scale proxy's log"


async def scale(sizes: list[int], seconds: float, say: Console, alternations: int = ALTERNATIONS) -> dict[str, ScaleSide]:
    names = [BASE, TWIN, *(str(n) for n in sorted(set(sizes)) if str(n) != BASE)]
    upstream = Upstream("pool")
    upstream.start()
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from tests.redis_server import RedisServer

    redis = RedisServer(free_port()).start()
    out: dict[str, ScaleSide] = {}
    try:
        for name in SCALE_SIDES:
            side = out[name] = ScaleSide(name, names)
            if name == "plain":
                config = plain_config(upstream, names)
            else:
                config = plugin_config(upstream, names, redis.url if name == "redis" else None)
            await _run_side(side, config, seconds, say, alternations)
    finally:
        upstream.stop()
        redis.close()
    return out


if __name__ == "__main__":  # the route-size phase alone: python benchmarks/scale.py [seconds per proxy] (default SCALE_S)
    import json
    import os

    from load import WINDOW_CONCURRENCY, WINDOW_S

    os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")
    seconds = float(sys.argv[1]) if len(sys.argv) > 1 else SCALE_S
    sides = asyncio.run(scale([1000, 10000], seconds, Console(stderr=True, markup=False)))
    from importlib.metadata import version

    settings = {"litellm": version("litellm"), "cpus": os.cpu_count(), "scale_s": seconds, "window_s": WINDOW_S}
    settings |= {"concurrency": WINDOW_CONCURRENCY, "alternations": ALTERNATIONS, "alternating_limit_s": ALTERNATING_LIMIT_S}
    print(json.dumps({"settings": settings, "route_scale": {name: side.results() for name, side in sides.items()}}, indent=1))
