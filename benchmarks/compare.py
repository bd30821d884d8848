"""The failover comparison: the plugin against plain LiteLLM (as configured by the seed, and with
LiteLLM's best recovery settings), each proxy with its own primary and backup upstreams.

- plugin: `litellm_settings.callbacks: litellm_failover_plugin.plugin`, route `chat` = m over
  primary:model and backup:model, the default breaker, health checks every second and a queue;
- plain: model groups `primary` and `backup` with `router_settings.fallbacks: [{primary: [backup]}]`;
- plain-tuned: the same with LiteLLM's own recovery tools at their shortest: `cooldown_time: 1`,
  `general_settings.background_health_checks: true`, `health_check_interval: 1` and
  `enable_health_check_routing: true` (without it LiteLLM's background checks only fill the
  /health view: `_write_health_state_to_router_cache` returns early; with it an unhealthy
  deployment is filtered out of its group and put in cooldown for `cooldown_time` every round).
All use `num_retries: 0` and `allowed_fails: 1`; plugin and plain `cooldown_time: 10` (the seed's).

Phases per side: healthy throughput, the three proxies taking turns in short windows
(load.interleaved); throughput while the primary is down against healthy throughput, one proxy
at a time, its two streams taking turns (so events that come with time, like a cooldown ending,
reach the primary-down stream half as often per request as they would with no healthy load
between, not a sixth); the first request after the primary dies (sequential); recovery time
after it returns; every upstream down for a few seconds.

first_failover_overhead_ms is what the first request after the primary dies costs its client
beyond the same request with the primary up, end to end: the median latency of that first
request, minus the median latency of a healthy request sent the same way (on a new connection,
IDLE_S after the proxy's last request: `first_failover`), minus a refused connect to the dead
port (the failed call's own network cost). Both come after the same idle moment because a
request after one is slower than one of a back-to-back run (by ~2 ms on a shared 2-core
machine: caches, CPU wake-up) and pays a new client connection; against back-to-back requests
(`first_failover_vs_back_to_back_ms`, the definition before) that cost was counted as failover
overhead. The failed attempt's own LiteLLM call (set-up, the refused connect's exception path)
is counted: it is what a failover costs.
"""

from __future__ import annotations

import asyncio
import statistics
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from load import (
    AUTH,
    HOST,
    MASTER_KEY,
    Upstream,
    Window,
    interleaved,
    load,
    median_rps,
    of,
    one_request,
    pooled,
    recovery_seconds,
    refused_call_ms,
    sequential_ms,
)
from rich.console import Console
from streams import CUT_AFTER, CUT_TEXT, midstream_recovery, ttft

from litellm_failover_plugin.testing.proxy import ProxyProcess, free_port

COOLDOWN_S = 10
COMPARE_S = 45.0  # seconds of windows: the healthy streams of the three proxies in turn, then each proxy's two
TUNED_COOLDOWN_S = 1  # LiteLLM's cooldown_time is whole seconds in practice; 1 is the shortest that still cools
TUNED_HEALTH_INTERVAL_S = 1  # general_settings.health_check_interval is an int
FULL_OUTAGE_S = 4.0  # shorter than the plugin's queue max_wait_s (20)
FULL_OUTAGE_REQUESTS = 100
STREAM_ROUTES = 9  # continue-mode routes over a primary key that cuts every stream (one breaker each: a model each)
TTFT_REQUESTS = 200
SIDES = ("plugin", "plain", "plain-tuned")
PLUGIN_CYCLES = 3
IDLE_S = 0.5  # the proxy is idle this long before a first failover, and before the healthy request it is compared with


def plugin_config(primary: Upstream, backup: Upstream, dead_port: int) -> dict[str, Any]:
    keys = {"p1": "bench-key-p1"}
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": {"num_retries": 0, "allowed_fails": 1, "cooldown_time": COOLDOWN_S},
        "failover_settings": {
            "backends": {
                "primary": {"provider": "openai", "api_base": primary.url, "api_keys": keys},
                "dead": {"provider": "openai", "api_base": f"http://{HOST}:{dead_port}/v1", "api_keys": keys},
                "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "bench-key-b1"}},
                "flaky": {"provider": "openai", "api_base": primary.url, "api_keys": {"f1": "bench-key-f1"}},
            },
            "routes": {
                # stream timeouts on: their timers are part of what stream_ttft_overhead_ms measures
                "chat": {
                    "policy": "m",
                    "elements": ["primary:model", "backup:model"],
                    "stream_timeouts": {"first_chunk_s": 30, "between_chunks_s": 30},
                },
                "chat-down": {"policy": "m", "elements": ["dead:model", "backup:model"]},
                **{
                    f"stream-cut-{i}": {"policy": "m", "mid_stream": "continue", "elements": [f"flaky:model-{i}", "backup:model"]}
                    for i in range(STREAM_ROUTES)
                },
            },
            # the plugin's defaults for the breaker; health checks every second; a queue
            "health_checks": {"interval_s": 1, "timeout_s": 2},
            "queue": {"max_wait_s": 20, "max_size": 500},
        },
    }


def plain_config(primary: Upstream, backup: Upstream, dead_port: int, tuned: bool = False) -> dict[str, Any]:
    def model(name: str, url: str, key: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/model", "api_base": url, "api_key": key}}

    config: dict[str, Any] = {
        "model_list": [
            model("primary", primary.url, "bench-key-p1"),
            model("dead", f"http://{HOST}:{dead_port}/v1", "bench-key-p1"),
            model("backup", backup.url, "bench-key-b1"),
        ],
        "router_settings": {
            "fallbacks": [{"primary": ["backup"]}, {"dead": ["backup"]}],
            "num_retries": 0,
            "allowed_fails": 1,
            "cooldown_time": TUNED_COOLDOWN_S if tuned else COOLDOWN_S,
        },
    }
    if tuned:
        config["general_settings"] = {
            "background_health_checks": True,
            "health_check_interval": TUNED_HEALTH_INTERVAL_S,
            "enable_health_check_routing": True,
        }
    return config


@dataclass
class Side:
    """One proxy (plugin, plain or plain-tuned) with its own primary and backup upstreams."""

    name: str
    primary: Upstream
    backup: Upstream
    proxy: ProxyProcess
    model: str  # served by the primary while it is up
    down_model: str  # the same, over a primary that never answers
    startup_s: float = 0.0
    windows: list[Window] = field(default_factory=list)  # this side's, of every phase
    first_failover_ms: list[float] = field(default_factory=list)
    healthy_idle_ms: list[float] = field(default_factory=list)  # healthy, sent as a first failover is (first_failover)
    back_to_back_ms: list[float] = field(default_factory=list)  # healthy, sequential on one connection
    refused_samples_ms: list[float] = field(default_factory=list)
    full_outage: tuple[int, int] = (0, 0)  # (succeeded, sent) while every upstream was down
    recovery_s: list[float | None] = field(default_factory=list)
    upstream_rps: float = 0.0
    rss_mb: float | None = None
    ttft_ms: list[float] = field(default_factory=list)
    midstream_recovery_s: list[float] = field(default_factory=list)

    @classmethod
    def start(cls, name: str) -> Side:
        primary, backup = Upstream("primary"), Upstream("backup")
        primary.start()
        backup.start()
        dead = free_port()
        if name == "plugin":
            proxy = ProxyProcess(plugin_config(primary, backup, dead), master_key=MASTER_KEY)
            side = cls(name, primary, backup, proxy, "chat", "chat-down")
        else:
            config = plain_config(primary, backup, dead, tuned=name == "plain-tuned")
            side = cls(name, primary, backup, ProxyProcess(config, master_key=MASTER_KEY), "primary", "dead")
        t0 = time.perf_counter()
        side.proxy.start()
        side.startup_s = time.perf_counter() - t0
        return side

    @property
    def url(self) -> str:
        return f"{self.proxy.url}/v1/chat/completions"

    def stop(self) -> None:
        log = self.proxy.log_text()
        self.proxy.close()
        self.primary.stop()
        self.backup.stop()
        for secret in ("bench-key-p1", "bench-key-b1"):
            assert secret not in log, f"an API key reached the {self.name} proxy log"

    @property
    def healthy(self) -> list[Window]:
        return of(self.windows, f"{self.name}:healthy")

    @property
    def outage(self) -> list[Window]:
        return of(self.windows, f"{self.name}:outage")

    @property
    def healthy_seq_ms(self) -> float:
        return statistics.median(self.back_to_back_ms)

    @property
    def refused_ms(self) -> float:
        return statistics.median(self.refused_samples_ms)

    @property
    def first_failover_overhead_ms(self) -> float:
        """The module's definition: against a healthy request after the same idle moment."""
        return statistics.median(self.first_failover_ms) - statistics.median(self.healthy_idle_ms) - self.refused_ms

    @property
    def first_failover_vs_back_to_back_ms(self) -> float:
        """Against back-to-back healthy requests on one connection (the definition before)."""
        return statistics.median(self.first_failover_ms) - self.healthy_seq_ms - self.refused_ms

    @property
    def median_recovery_s(self) -> float | None:
        done = [r for r in self.recovery_s if r is not None]
        return statistics.median(done) if done and len(done) == len(self.recovery_s) else None


async def after_idle_ms(side: Side, since: float) -> float:
    """One request on a new connection, sent IDLE_S after `since` (when the proxy's last request ended)."""
    await asyncio.sleep(max(0.0, since + IDLE_S - time.perf_counter()))
    return (await sequential_ms(side.url, side.model, 1))[0]


async def first_failover(side: Side) -> None:
    """One sample of each term of first_failover_overhead_ms: a healthy request after an idle
    moment; then the primary stops and the first request after it comes, after the same idle
    moment, sent the same way. The primary stays down."""
    side.healthy_idle_ms.append(await after_idle_ms(side, time.perf_counter()))
    last = time.perf_counter()
    side.primary.stop()
    side.refused_samples_ms.append(refused_call_ms(side.primary.port))
    side.first_failover_ms.append(await after_idle_ms(side, last))


async def outage_cycles(side: Side, cycles: int, say: Console) -> None:
    """The first request after the primary dies, and the time until it serves again once back."""
    side.back_to_back_ms = await sequential_ms(side.url, side.model, 20)
    for cycle in range(cycles):
        say.print(f"[{side.name}] outage {cycle + 1}/{cycles}: first request after the primary dies, then recovery")
        await first_failover(side)
        await sequential_ms(side.url, side.model, 3)  # past allowed_fails: the primary is now cooling down
        side.primary.start()
        side.recovery_s.append(
            await recovery_seconds(side.url, side.model, str(side.primary.port), limit_s=COOLDOWN_S * 3)
        )


async def full_outage(side: Side, outage_s: float, requests: int) -> tuple[int, int]:
    """Every upstream down for `outage_s`; `requests` spread over it; how many still succeed."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        side.primary.stop()
        side.backup.stop()
        started = time.perf_counter()

        async def one(i: int) -> bool:
            await asyncio.sleep(i * outage_s / requests)
            ok, _, _ = await one_request(session, side.url, side.model)
            return ok

        tasks = [asyncio.create_task(one(i)) for i in range(requests)]
        await asyncio.sleep(max(0.0, outage_s - (time.perf_counter() - started)))
        side.primary.start()
        side.backup.start()
        results = await asyncio.gather(*tasks)
    return sum(results), requests


async def compare(seconds: float, cycles: int, say: Console) -> tuple[dict[str, Side], dict[str, list[Window]]]:
    """Every proxy runs at once; load goes to one at a time.

    The throughput figures come from short windows of load (load.interleaved): on a shared
    machine the CPU speed moves by tens of percent within seconds, and ratios between windows a
    fraction of a second apart (load.window_ratios) are what stays put. First the three sides'
    healthy streams take turns for `seconds` (phase "healthy"), then each side's healthy and
    primary-down streams for `seconds` (a phase named after the side). Returns the sides and each
    phase's windows.
    """
    sides: dict[str, Side] = {}
    try:
        for name in SIDES:
            sides[name] = Side.start(name)
        plugin, plain = sides["plugin"], sides["plain"]
        say.print("proxies up; warming up (and letting the dead primaries cool down)")
        for side in sides.values():
            await load(side.url, side.model, 2, 5)
            await load(side.url, side.down_model, 2, 5)
            side.upstream_rps = (await load(f"{side.backup.url}/chat/completions", "model", 2, 5)).rps
        streams = {}
        for side in sides.values():
            assert side.proxy.process is not None
            streams[f"{side.name}:healthy"] = (side.url, side.model, side.proxy.process.pid)
            streams[f"{side.name}:outage"] = (side.url, side.down_model, side.proxy.process.pid)
        say.print(f"{seconds:g} s of short windows, the {len(sides)} proxies' healthy streams in turn")
        healthy = [f"{side.name}:healthy" for side in sides.values()]
        phases = {"healthy": await interleaved(streams, [[name] for name in healthy], seconds)}
        for side in sides.values():
            say.print(f"[{side.name}] {seconds:g} s of short windows, healthy and primary down in turn")
            phases[side.name] = await interleaved(streams, [[f"{side.name}:healthy"], [f"{side.name}:outage"]], seconds)
        for side in sides.values():
            side.windows = [w for ws in phases.values() for w in ws if w.stream.startswith(f"{side.name}:")]
        say.print(f"[streams] time to first token, {TTFT_REQUESTS} streamed requests each, alternating")
        plugin.ttft_ms, plain.ttft_ms = await ttft((plugin.url, plugin.model), (plain.url, plain.model), TTFT_REQUESTS, AUTH)
        say.print(f"[streams] a primary key that cuts every stream after {CUT_AFTER} tokens, continue mode")
        control = {"by_key": {"bench-key-f1": {"fault": "cut", "fault_after": CUT_AFTER, "text": CUT_TEXT}}}
        async with aiohttp.ClientSession() as s:
            await s.post(f"http://{HOST}:{plugin.primary.port}/_control", json=control)
        plugin.midstream_recovery_s = await midstream_recovery(plugin.url, [f"stream-cut-{i}" for i in range(STREAM_ROUTES)], AUTH)
        for side in sides.values():
            # the plugin's first failover is a goal, and its cycles take about a second each
            # (plain LiteLLM's: its 10 s cooldown): it gets PLUGIN_CYCLES times the samples
            await outage_cycles(side, cycles * (PLUGIN_CYCLES if side.name == "plugin" else 1), say)
            side.rss_mb = side.proxy.rss_mb()
        for side in sides.values():
            say.print(f"[{side.name}] every upstream down for {FULL_OUTAGE_S:.0f}s, {FULL_OUTAGE_REQUESTS} requests")
            side.full_outage = await full_outage(side, FULL_OUTAGE_S, FULL_OUTAGE_REQUESTS)
        return sides, phases
    finally:
        for side in sides.values():
            side.stop()


def side_results(s: Side) -> dict[str, Any]:
    healthy, outage = pooled(s.healthy), pooled(s.outage)
    return {
        "healthy_rps": round(median_rps(s.healthy), 1),
        "healthy_windows": len(s.healthy),
        "healthy_p50_ms": round(healthy.pct(50), 1),
        "healthy_p99_ms": round(healthy.pct(99), 1),
        "healthy_errors": healthy.errors,
        "outage_rps": round(median_rps(s.outage), 1),
        "outage_windows": len(s.outage),
        "outage_p50_ms": round(outage.pct(50), 1),
        "outage_p99_ms": round(outage.pct(99), 1),
        "outage_errors": outage.errors,
        "first_failover_ms": [round(x, 2) for x in s.first_failover_ms],
        "first_failover_overhead_ms": round(s.first_failover_overhead_ms, 2),
        "first_failover_vs_back_to_back_ms": round(s.first_failover_vs_back_to_back_ms, 2),
        "healthy_after_idle_ms": round(statistics.median(s.healthy_idle_ms), 2),
        "recovery_s": [round(x, 2) if x is not None else None for x in s.recovery_s],
        "median_recovery_s": round(s.median_recovery_s, 2) if s.median_recovery_s is not None else None,
        "full_outage_success_rate": round(s.full_outage[0] / s.full_outage[1], 3) if s.full_outage[1] else None,
        "sequential_healthy_ms": round(s.healthy_seq_ms, 2),
        "refused_call_ms": round(s.refused_ms, 3),
        "proxy_rss_mb": round(s.rss_mb, 1) if s.rss_mb else None,
        "startup_s": round(s.startup_s, 1),
        "upstream_alone_rps": round(s.upstream_rps, 1),
    }
