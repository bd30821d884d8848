"""Benchmarks: the plugin against plain LiteLLM, same upstreams, same client, same concurrency.

    python benchmarks/run.py [--json results.json] [--seconds 8] [--concurrency 20]

For each side it starts two fake upstream processes (primary, backup) and one `litellm` proxy:
- plugin: `litellm_settings.callbacks: litellm_failover_plugin.plugin`, route `chat` = m over
  primary:model and backup:model;
- plain: model groups `primary` and `backup` with `router_settings.fallbacks: [{primary: [backup]}]`.
Both use `num_retries: 0`, `allowed_fails: 1`, `cooldown_time: 10` (as the seed's config).

Phases per side: healthy throughput; the first request after the primary dies (sequential);
throughput while the primary is down; recovery time after it returns. Then the pure-core
decision time. Ratios are plugin / plain unless said otherwise. Traffic goes to 127.0.0.1 only,
and every phase is bounded in time.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from decision import measure as measure_decisions
from decision import measure_real as measure_real_decisions
from herd import HERD
from herd import measure as measure_herd
from streams import CUT_AFTER, CUT_TEXT, midstream_recovery, overhead_ms, ttft

from litellm_failover_plugin.testing.proxy import ProxyProcess, free_port

HOST = "127.0.0.1"
COOLDOWN_S = 10
FULL_OUTAGE_S = 4.0  # shorter than the plugin's queue max_wait_s (20)
FULL_OUTAGE_REQUESTS = 100
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
MASTER_KEY = f"sk-bench-{secrets.token_hex(16)}"  # both proxies': the same client serves both
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}
STREAM_ROUTES = 9  # continue-mode routes over a primary key that cuts every stream (one breaker each: a model each)
TTFT_REQUESTS = 200


class Upstream:
    """A fake upstream in its own process, so the proxy is what gets measured."""

    def __init__(self, name: str) -> None:
        self.name, self.port = name, free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/v1"

    def start(self) -> None:
        cmd = [sys.executable, "-m", "litellm_failover_plugin.testing"]
        self.proc = subprocess.Popen([*cmd, "--port", str(self.port), "--name", self.name])
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            with socket.socket() as s:
                if s.connect_ex((HOST, self.port)) == 0:
                    return
            time.sleep(0.05)
        raise RuntimeError(f"upstream {self.name} did not start")

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)
            self.proc = None


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


def plain_config(primary: Upstream, backup: Upstream, dead_port: int) -> dict[str, Any]:
    def model(name: str, url: str, key: str) -> dict[str, Any]:
        return {"model_name": name, "litellm_params": {"model": "openai/model", "api_base": url, "api_key": key}}

    return {
        "model_list": [
            model("primary", primary.url, "bench-key-p1"),
            model("dead", f"http://{HOST}:{dead_port}/v1", "bench-key-p1"),
            model("backup", backup.url, "bench-key-b1"),
        ],
        "router_settings": {
            "fallbacks": [{"primary": ["backup"]}, {"dead": ["backup"]}],
            "num_retries": 0,
            "allowed_fails": 1,
            "cooldown_time": COOLDOWN_S,
        },
    }


@dataclass
class Load:
    seconds: float
    ok: int = 0
    errors: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    served_by: Counter[str] = field(default_factory=Counter)

    @property
    def rps(self) -> float:
        return self.ok / self.seconds if self.seconds else 0.0

    def pct(self, q: int) -> float:
        if len(self.latencies_ms) < 2:
            return self.latencies_ms[0] if self.latencies_ms else 0.0
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[q - 1]


def served_port(headers: Any) -> str:
    base = headers.get("x-litellm-model-api-base", "")
    return base.rsplit(":", 1)[-1].split("/")[0] if base else "?"


async def one_request(session: aiohttp.ClientSession, url: str, model: str) -> tuple[bool, float, str]:
    t0 = time.perf_counter()
    try:
        async with session.post(url, json={"model": model, **BODY}, headers=AUTH) as r:
            await r.read()
            ok = r.status == 200
            return ok, (time.perf_counter() - t0) * 1000, served_port(r.headers)
    except (TimeoutError, aiohttp.ClientError):
        return False, (time.perf_counter() - t0) * 1000, "?"


async def load(url: str, model: str, seconds: float, concurrency: int) -> Load:
    """Closed loop: `concurrency` clients, each sending its next request when the last returns."""
    result = Load(seconds)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        deadline = time.perf_counter() + seconds

        async def worker() -> None:
            while time.perf_counter() < deadline:
                ok, ms, port = await one_request(session, url, model)
                if ok:
                    result.ok += 1
                    result.latencies_ms.append(ms)
                    result.served_by[port] += 1
                else:
                    result.errors += 1

        started = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        result.seconds = time.perf_counter() - started
    return result


async def sequential_ms(url: str, model: str, n: int) -> list[float]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        return [(await one_request(session, url, model))[1] for _ in range(n)]


def refused_call_ms(port: int, n: int = 20) -> float:
    """What the failed upstream call itself costs: a connect to a port nobody listens on."""
    samples = []
    for _ in range(n):
        t0 = time.perf_counter()
        with socket.socket() as s:
            s.connect_ex((HOST, port))
        samples.append((time.perf_counter() - t0) * 1000)
    return statistics.median(samples)


async def recovery_seconds(url: str, model: str, primary_port: str, limit_s: float) -> float | None:
    """Seconds until a request is served by the primary again, probing every 20 ms."""
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        while time.perf_counter() - t0 < limit_s:
            ok, _, port = await one_request(session, url, model)
            if ok and port == primary_port:
                return time.perf_counter() - t0
            await asyncio.sleep(0.02)
    return None


@dataclass
class Side:
    """One proxy (plugin or plain) with its own primary and backup upstreams."""

    name: str
    primary: Upstream
    backup: Upstream
    proxy: ProxyProcess
    model: str  # served by the primary while it is up
    down_model: str  # the same, over a primary that never answers
    healthy: list[Load] = field(default_factory=list)
    outage: list[Load] = field(default_factory=list)
    first_failover_ms: list[float] = field(default_factory=list)
    full_outage: tuple[int, int] = (0, 0)  # (succeeded, sent) while every upstream was down
    recovery_s: list[float | None] = field(default_factory=list)
    healthy_seq_ms: float = 0.0
    refused_ms: float = 0.0
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
            proxy = ProxyProcess(plain_config(primary, backup, dead), master_key=MASTER_KEY)
            side = cls(name, primary, backup, proxy, "primary", "dead")
        side.proxy.start()
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

    @staticmethod
    def rps(loads: list[Load]) -> float:
        return statistics.median(x.rps for x in loads)

    @staticmethod
    def pooled(loads: list[Load]) -> Load:
        pooled = Load(sum(x.seconds for x in loads))
        for x in loads:
            pooled.ok += x.ok
            pooled.errors += x.errors
            pooled.latencies_ms += x.latencies_ms
        return pooled

    @property
    def first_failover_overhead_ms(self) -> float:
        return statistics.median(self.first_failover_ms) - self.healthy_seq_ms - self.refused_ms

    @property
    def median_recovery_s(self) -> float | None:
        done = [r for r in self.recovery_s if r is not None]
        return statistics.median(done) if done and len(done) == len(self.recovery_s) else None


async def outage_cycles(side: Side, cycles: int, say: Console) -> None:
    """The first request after the primary dies, and the time until it serves again once back."""
    side.healthy_seq_ms = statistics.median(await sequential_ms(side.url, side.model, 20))
    for cycle in range(cycles):
        say.print(f"[{side.name}] outage {cycle + 1}/{cycles}: first request after the primary dies, then recovery")
        side.primary.stop()
        side.refused_ms = refused_call_ms(side.primary.port)
        side.first_failover_ms.append((await sequential_ms(side.url, side.model, 1))[0])
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


async def bench(seconds: float, rounds: int, concurrency: int, cycles: int, say: Console) -> tuple[Side, Side]:
    """Both proxies run at once; load goes to one at a time.

    Each round measures, back to back: plugin healthy, plain healthy, plugin with its primary
    down, plain with its primary down (the order rotates). On a shared machine the CPU speed
    drifts by tens of percent within seconds; ratios taken inside a round, then the median over
    rounds, are what stays put.
    """
    plugin = plain = None
    try:
        plain = Side.start("plain")
        plugin = Side.start("plugin")
        sides = (plugin, plain)
        say.print("proxies up; warming up (and letting both dead primaries cool down)")
        for side in sides:
            await load(side.url, side.model, 2, concurrency)
            await load(side.url, side.down_model, 2, concurrency)
            side.upstream_rps = (await load(f"{side.backup.url}/chat/completions", "model", 2, concurrency)).rps
        steps = [(side, phase) for phase in ("healthy", "outage") for side in sides]
        for r in range(rounds):
            say.print(f"round {r + 1}/{rounds}: {seconds:.0f}s each of healthy and primary-down load, both sides")
            for side, phase in steps[r % len(steps) :] + steps[: r % len(steps)]:
                model = side.model if phase == "healthy" else side.down_model
                getattr(side, phase).append(await load(side.url, model, seconds, concurrency))
        say.print(f"[streams] time to first token, {TTFT_REQUESTS} streamed requests each, alternating")
        plugin.ttft_ms, plain.ttft_ms = await ttft((plugin.url, plugin.model), (plain.url, plain.model), TTFT_REQUESTS, AUTH)
        say.print(f"[streams] a primary key that cuts every stream after {CUT_AFTER} tokens, continue mode")
        control = {"by_key": {"bench-key-f1": {"fault": "cut", "fault_after": CUT_AFTER, "text": CUT_TEXT}}}
        async with aiohttp.ClientSession() as s:
            await s.post(f"http://{HOST}:{plugin.primary.port}/_control", json=control)
        plugin.midstream_recovery_s = await midstream_recovery(plugin.url, [f"stream-cut-{i}" for i in range(STREAM_ROUTES)], AUTH)
        for side in sides:
            await outage_cycles(side, cycles, say)
            side.rss_mb = side.proxy.rss_mb()
        for side in sides:
            say.print(f"[{side.name}] every upstream down for {FULL_OUTAGE_S:.0f}s, {FULL_OUTAGE_REQUESTS} requests")
            side.full_outage = await full_outage(side, FULL_OUTAGE_S, FULL_OUTAGE_REQUESTS)
        return plugin, plain
    finally:
        for side in (plugin, plain):
            if side is not None:
                side.stop()


def round_ratios(a: list[Load], b: list[Load]) -> list[float]:
    return [round(x.rps / y.rps, 3) for x, y in zip(a, b, strict=False) if y.rps]


def paired(a: list[Load], b: list[Load]) -> float | None:
    """Median over rounds of a's req/s over b's in the same round."""
    ratios = round_ratios(a, b)
    return round(statistics.median(ratios), 3) if ratios else None


def side_results(s: Side) -> dict[str, Any]:
    healthy, outage = Side.pooled(s.healthy), Side.pooled(s.outage)
    return {
        "healthy_rps": round(Side.rps(s.healthy), 1),
        "healthy_rps_rounds": [round(x.rps, 1) for x in s.healthy],
        "healthy_p50_ms": round(healthy.pct(50), 1),
        "healthy_p99_ms": round(healthy.pct(99), 1),
        "healthy_errors": healthy.errors,
        "outage_rps": round(Side.rps(s.outage), 1),
        "outage_rps_rounds": [round(x.rps, 1) for x in s.outage],
        "outage_p50_ms": round(outage.pct(50), 1),
        "outage_p99_ms": round(outage.pct(99), 1),
        "outage_errors": outage.errors,
        "first_failover_ms": [round(x, 2) for x in s.first_failover_ms],
        "recovery_s": [round(x, 2) if x is not None else None for x in s.recovery_s],
        "sequential_healthy_ms": round(s.healthy_seq_ms, 2),
        "refused_call_ms": round(s.refused_ms, 3),
        "proxy_rss_mb": round(s.rss_mb, 1) if s.rss_mb else None,
        "upstream_alone_rps": round(s.upstream_rps, 1),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="plugin vs plain LiteLLM")
    p.add_argument("--json", help="write the results to this path")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per load step (default 3)")
    p.add_argument("--rounds", type=int, default=12, help="rounds of the four steps (default 12)")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--cycles", type=int, default=3, help="outage/recovery cycles per side (default 3)")
    p.add_argument("--decision-rounds", type=int, default=20000, help="timed decisions per size (default 20000)")
    args = p.parse_args(argv)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    say = Console(stderr=True)

    plugin, plain = asyncio.run(bench(args.seconds, args.rounds, args.concurrency, args.cycles, say))
    say.print("[decision] timing the real decision (runner + store) and the pure core")
    real = measure_real_decisions(rounds=max(200, args.decision_rounds // 4))
    decisions = measure_decisions(rounds=args.decision_rounds)
    say.print(f"[herd] {HERD} requests at once at a primary that just died, with and without herd control")
    herd = measure_herd()

    results: dict[str, Any] = {
        "healthy_ratio": paired(plugin.healthy, plain.healthy),
        "outage_ratio": paired(plugin.outage, plugin.healthy),
        "native_outage_ratio": paired(plain.outage, plain.healthy),
        "full_outage_success_rate": round(plugin.full_outage[0] / plugin.full_outage[1], 3),
        "native_full_outage_success_rate": round(plain.full_outage[0] / plain.full_outage[1], 3),
        "recovery_s": round(plugin.median_recovery_s, 2) if plugin.median_recovery_s is not None else None,
        "native_recovery_s": round(plain.median_recovery_s, 2) if plain.median_recovery_s is not None else None,
        "decision_us_p99": real["memory"],
        "decision_redis_us_p99": real.get("redis"),
        "decision_core_us_p99": decisions["typical"],
        "decision_worst_us_p99": decisions["worst"],
        "herd_failed_calls": herd["herd_failed_calls"],
        "herd": herd,
        "first_failover_overhead_ms": round(plugin.first_failover_overhead_ms, 2),
        "native_first_failover_overhead_ms": round(plain.first_failover_overhead_ms, 2),
        "stream_ttft_overhead_ms": round(overhead_ms(plugin.ttft_ms, plain.ttft_ms), 2),
        "stream_ttft_p50_ms": {s.name: round(statistics.median(s.ttft_ms), 2) for s in (plugin, plain)},
        "midstream_recovery_s": round(statistics.median(plugin.midstream_recovery_s), 3)
        if plugin.midstream_recovery_s
        else None,
        "midstream_recovery_samples_s": [round(x, 3) for x in plugin.midstream_recovery_s],
        "round_ratios": {
            "healthy": round_ratios(plugin.healthy, plain.healthy),
            "outage": round_ratios(plugin.outage, plugin.healthy),
            "native_outage": round_ratios(plain.outage, plain.healthy),
        },
        "sides": {s.name: side_results(s) for s in (plugin, plain)},
        "method": {
            "recovery_s": "median over the cycles of: seconds from the primary's restart, right after it "
            "entered a fresh cooldown, to the first request it serves (worst case for cooldown-based recovery)",
            "ratios": "req/s of closed-loop load at the given concurrency; each ratio is the median over "
            "rounds of the ratio inside one round (measured back to back), so machine drift cancels",
            "outage": "primary down = a second route (plugin) or model group (plain) whose primary's port "
            "has no listener, so both proxies see connection refused, cool it down and retry it as usual",
            "full_outage_success_rate": f"{FULL_OUTAGE_REQUESTS} requests spread over {FULL_OUTAGE_S:g} s "
            "during which both upstreams are stopped; share answered 200",
            "first_failover_overhead_ms": "median latency of the first request after the primary dies, minus "
            "the median healthy sequential latency, minus a refused connect to the dead port",
            "stream_ttft_overhead_ms": f"median time to first content token of {TTFT_REQUESTS} sequential streamed "
            "requests through the plugin (stream timeouts on) minus the same through plain LiteLLM, alternating",
            "decision_us_p99": "by route size: what FailoverRunner does before a request's first upstream call "
            "(Snapshot, FailoverRun, the candidates' state read as the walk reaches them: LiteLLM's cooldown lookup "
            "and the breaker store, memory; decision_redis_us_p99 the same on a local redis-server) up to the first "
            "candidate to call, with the primary and 10% of the keys open; decision_core_us_p99 and "
            "decision_worst_us_p99: the pure core alone (FailoverRun given every state), typical and worst case",
            "herd_failed_calls": f"{HERD} requests sent together (in-process router) to a route whose primary "
            "answers 503 after 0.2 s and has failed one call: every call the primary failed, that one included; "
            "herd.at_death: the same with no failure seen yet (calls already started cannot be taken back); "
            "without_herd_control: breaker.max_in_flight_while_failing 0, the plugin before herd control",
            "midstream_recovery_s": f"continue mode, the primary cuts every stream after {CUT_AFTER} tokens: median "
            "seconds from the last token before the cut to the next token on the client, one request per route",
        },
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "concurrency": args.concurrency,
            "seconds_per_round": args.seconds,
            "rounds": args.rounds,
        },
    }

    console = Console()
    table = Table(title=f"plugin vs plain LiteLLM ({os.cpu_count()} CPUs, concurrency {args.concurrency})")
    for col in ("", "plugin", "plain LiteLLM"):
        table.add_column(col, justify="right" if col else "left")

    def row(label: str, key: str, unit: str = "") -> None:
        a, b = results["sides"]["plugin"][key], results["sides"]["plain"][key]
        table.add_row(label, f"{a}{unit}", f"{b}{unit}")

    row("healthy req/s", "healthy_rps")
    row("healthy p50 / p99", "healthy_p50_ms", " ms")
    table.add_row("", f"{results['sides']['plugin']['healthy_p99_ms']} ms", f"{results['sides']['plain']['healthy_p99_ms']} ms")
    row("primary down req/s", "outage_rps")
    row("primary down p50", "outage_p50_ms", " ms")
    row("primary down p99", "outage_p99_ms", " ms")
    row("errors (healthy / down)", "healthy_errors")
    table.add_row("", str(results["sides"]["plugin"]["outage_errors"]), str(results["sides"]["plain"]["outage_errors"]))
    table.add_row("outage / healthy", str(results["outage_ratio"]), str(results["native_outage_ratio"]))
    table.add_row("first failover overhead", f"{results['first_failover_overhead_ms']} ms", f"{results['native_first_failover_overhead_ms']} ms")
    table.add_row(
        f"success, every upstream down {FULL_OUTAGE_S:.0f}s",
        str(results["full_outage_success_rate"]),
        str(results["native_full_outage_success_rate"]),
    )
    table.add_row("recovery after primary returns (median)", f"{results['recovery_s']} s", f"{results['native_recovery_s']} s")
    row("proxy memory (RSS)", "proxy_rss_mb", " MB")
    console.print(table)
    up = results["sides"]["plugin"]["upstream_alone_rps"]
    console.print(
        f"healthy_ratio (plugin / plain) = {results['healthy_ratio']}   outage_ratio = {results['outage_ratio']}   "
        f"native_outage_ratio = {results['native_outage_ratio']}\n"
        f"decision p99 (runner + store) = {real['memory']} us (memory)   {real.get('redis')} us (redis)\n"
        f"pure core p99 = {decisions['typical']} us   worst = {decisions['worst']} us\n"
        f"herd_failed_calls = {herd['herd_failed_calls']} of {HERD} "
        f"(without herd control: {herd['after_first_failure']['without_herd_control']})\n"
        f"stream_ttft_overhead_ms = {results['stream_ttft_overhead_ms']} (p50 {results['stream_ttft_p50_ms']})   "
        f"midstream_recovery_s = {results['midstream_recovery_s']}"
    )
    console.print(
        f"What dominates: the fake upstream alone serves {up} req/s to the same client, "
        f"{up / max(Side.rps(plugin.healthy), 1):.0f}x what the proxy serves, so the proxy is what is measured."
    )
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        console.print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
