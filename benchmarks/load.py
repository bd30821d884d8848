"""What every benchmark phase shares: the fake upstream process, the client, closed-loop load and
the paired ratios. Traffic goes to 127.0.0.1 only.

Throughput ratios come from `interleaved`: short windows of closed-loop load, the streams being
compared taking turns, each window's req/s set against the other stream's at the same moment
(`window_ratios`). On a shared 2-vCPU guest the speed of the machine moves by tens of percent
from one second to the next; 3-second steps measured back to back left a ratio's median over 12
rounds uncertain by +-5-7% (two identical routes came out at 0.94), 0.15-second windows taking
turns leave it within about +-1.5% in the same time, because each comparison is made within a
fraction of a second.
"""

from __future__ import annotations

import asyncio
import bisect
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from litellm_failover_plugin.testing.proxy import free_port

HOST = "127.0.0.1"
BODY = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
MASTER_KEY = f"sk-bench-{secrets.token_hex(16)}"  # every proxy's: the same client serves them all
AUTH = {"Authorization": f"Bearer {MASTER_KEY}"}


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


def pooled(loads: list[Load]) -> Load:
    out = Load(sum(x.seconds for x in loads))
    for x in loads:
        out.ok += x.ok
        out.errors += x.errors
        out.latencies_ms += x.latencies_ms
    return out


def median_rps(loads: list[Load]) -> float:
    return statistics.median(x.rps for x in loads) if loads else 0.0


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


WINDOW_S = 0.15  # how long the clients of one window keep sending; the window ends when the last returns
# Clients per window: enough to keep a proxy CPU-bound (the plugin's proxy serves about as many
# req/s at 5 as at 20 on a 2-vCPU machine), few enough that a window is many requests long.
WINDOW_CONCURRENCY = 5


@dataclass
class Window(Load):
    """One window of `interleaved` load: one stream's requests, `started` on the perf_counter."""

    stream: str = ""
    started: float = 0.0


async def _window(session: aiohttp.ClientSession, url: str, model: str, stream: str, window_s: float, concurrency: int) -> Window:
    started = time.perf_counter()
    out = Window(window_s, stream=stream, started=started)
    deadline = started + window_s

    async def client() -> None:
        while time.perf_counter() < deadline:
            ok, ms, port = await one_request(session, url, model)
            if ok:
                out.ok += 1
                out.latencies_ms.append(ms)
                out.served_by[port] += 1
            else:
                out.errors += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))
    out.seconds = time.perf_counter() - started  # until the window's last request returned
    return out


async def interleaved(
    streams: dict[str, tuple[str, str]],
    order: list[str],
    duration_s: float,
    window_s: float = WINDOW_S,
    concurrency: int = WINDOW_CONCURRENCY,
) -> list[Window]:
    """Closed-loop load in short windows, the streams (name -> (url, model)) taking turns in
    `order` (a name may come more than once) until `duration_s` has passed: in each window
    `concurrency` clients send one stream's requests for `window_s`, and the window ends when the
    last of them has returned, so windows never overlap. One connection pool per proxy, kept open
    for the whole run."""
    pools: dict[str, aiohttp.ClientSession] = {}
    out: list[Window] = []
    try:
        for url, _ in streams.values():
            if url not in pools:
                connector = aiohttp.TCPConnector(limit=concurrency)
                pools[url] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), connector=connector)
        end = time.perf_counter() + duration_s
        i = 0
        while time.perf_counter() < end:
            name = order[i % len(order)]
            url, model = streams[name]
            out.append(await _window(pools[url], url, model, name, window_s, concurrency))
            i += 1
    finally:
        for session in pools.values():
            await session.close()
    return out


def of(windows: list[Window], stream: str) -> list[Window]:
    return [w for w in windows if w.stream == stream]


def window_ratios(windows: list[Window], a: str, b: str) -> list[float]:
    """a's req/s over b's at the same moment, one ratio per window of a: b's req/s there is
    interpolated, linearly in time, between b's windows just before and just after it (a window
    with no b window on one side has no ratio), so a drift of the machine's speed cancels."""
    bs = [w for w in of(windows, b) if w.seconds]
    starts = [w.started for w in bs]
    out = []
    for w in of(windows, a):
        i = bisect.bisect_left(starts, w.started)
        if i == 0 or i == len(bs) or not w.seconds:
            continue
        before, after = bs[i - 1], bs[i]
        share = (w.started - before.started) / (after.started - before.started)
        at = before.rps + (after.rps - before.rps) * share
        if at > 0:
            out.append(round(w.rps / at, 3))
    return out


def window_ratio(windows: list[Window], a: str, b: str) -> float | None:
    """The median of `window_ratios`."""
    ratios = window_ratios(windows, a, b)
    return round(statistics.median(ratios), 3) if ratios else None


def median_ci95(ratios: list[float], resamples: int = 4000) -> list[float] | None:
    """A 95% interval for the median of `ratios` (percentile bootstrap over the windows, seeded so
    a result reproduces): how far the windows' noise leaves the median uncertain, within one
    proxy's life (not run to run; neighbouring windows share the interpolated baseline, so it is
    somewhat narrow). None below 6 ratios, where it would only be [min, max]."""
    if len(ratios) < 6:
        return None
    pick = random.Random(0).choices
    medians = sorted(statistics.median(pick(ratios, k=len(ratios))) for _ in range(resamples))
    return [round(medians[int(resamples * 0.025)], 3), round(medians[int(resamples * 0.975) - 1], 3)]
