"""What every benchmark phase shares: the fake upstream process, the client, closed-loop load and
the ratios between streams of load. Traffic goes to 127.0.0.1 only.

Throughput ratios come from `interleaved`: short windows of closed-loop load, the streams being
compared taking turns, each window's throughput set against the other stream's at the same
moment (`window_ratios`). On a shared 2-vCPU guest the speed of the machine moves by tens of
percent from one second to the next: 3-second steps measured back to back (the method before)
left the median of 12 rounds' ratios uncertain by several percent, where windows a fraction of a
second apart compare the streams under the same conditions. Two measures: req/s of the window
(`rps`), and requests per second of the proxy process's CPU time (`cpu`, read from its CPU
clock, the logging LiteLLM does after answering included), which the other processes on the
machine (the client, the upstreams) do not disturb.
"""

from __future__ import annotations

import asyncio
import bisect
import ctypes
import ctypes.util
import random
import secrets
import socket
import statistics
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Mapping
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


async def closed_loop(
    session: aiohttp.ClientSession, url: str, model: str, into: Load, deadline: float, concurrency: int
) -> None:
    """`concurrency` clients, each sending its next request when the last returns, until
    `deadline` (perf_counter); what they get is counted `into`."""

    async def client() -> None:
        while time.perf_counter() < deadline:
            ok, ms, port = await one_request(session, url, model)
            if ok:
                into.ok += 1
                into.latencies_ms.append(ms)
                into.served_by[port] += 1
            else:
                into.errors += 1

    await asyncio.gather(*(client() for _ in range(concurrency)))


async def load(url: str, model: str, seconds: float, concurrency: int) -> Load:
    """Closed loop for `seconds`, on connections of its own."""
    result = Load(seconds)
    timeout = aiohttp.ClientTimeout(total=30)
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        started = time.perf_counter()
        await closed_loop(session, url, model, result, started + seconds, concurrency)
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


WINDOW_S = 0.15  # how long the clients of one window keep sending (+-20%, drawn per window)
# Clients per window: enough to keep a proxy CPU-bound (the plugin's proxy serves about as many
# req/s at 5 as at 20 on a 2-vCPU machine), few enough that a window is many requests long.
WINDOW_CONCURRENCY = 5
# After a window's last answer and before its proxy's CPU time is read: LiteLLM logs a request
# (its success callbacks) after answering it, and that work belongs to the window.
SETTLE_S = 0.03
MAX_GAP_S = 3.0  # a window is compared only with windows of the other stream this close around it

Stream = tuple[str, str, int]  # (url, model, the proxy's pid)


def cpu_clock(pid: int) -> int:
    """The clock id of process `pid`'s CPU time (every thread's, exited ones included)."""
    libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
    clock = ctypes.c_int()
    if libc.clock_getcpuclockid(pid, ctypes.byref(clock)) != 0:
        raise OSError(ctypes.get_errno(), f"no CPU clock for pid {pid}")
    return clock.value


@dataclass
class Window(Load):
    """One window of `interleaved` load: one stream's requests, `started` on the perf_counter;
    `seconds` until its last answer; `cpu_s`: its proxy's CPU time from its start until SETTLE_S
    after that answer."""

    stream: str = ""
    started: float = 0.0
    cpu_s: float = 0.0

    @property
    def mid(self) -> float:
        return self.started + self.seconds / 2

    @property
    def per_cpu_s(self) -> float:
        """Requests served per second of the proxy's CPU time."""
        return self.ok / self.cpu_s if self.cpu_s > 0 else 0.0


async def _window(
    session: aiohttp.ClientSession, stream: str, url: str, model: str, cpu: int, window_s: float, concurrency: int
) -> Window:
    cpu0 = time.clock_gettime(cpu)
    started = time.perf_counter()
    out = Window(window_s, stream=stream, started=started)
    await closed_loop(session, url, model, out, started + window_s, concurrency)
    out.seconds = time.perf_counter() - started  # until the window's last request returned
    await asyncio.sleep(SETTLE_S)
    out.cpu_s = time.clock_gettime(cpu) - cpu0
    return out


async def interleaved(
    streams: Mapping[str, Stream],
    groups: list[list[str]],
    duration_s: float,
    window_s: float = WINDOW_S,
    concurrency: int = WINDOW_CONCURRENCY,
    seed: int = 0,
) -> list[Window]:
    """Closed-loop load in short windows, the streams (name -> (url, model, pid)) taking turns
    until `duration_s` has passed: each cycle takes `groups` in a seeded random order, each
    group's streams in its own order (so a stream may follow a fixed one, e.g. the baseline, yet
    no periodic event in the proxy can keep landing on one stream). In each window
    `concurrency` clients send one stream's requests for a seeded random 80-120% of `window_s`;
    it ends when the last of them has returned, then SETTLE_S passes, so windows never overlap
    and each window's proxy CPU time is its own. One connection pool per proxy, kept open; a
    first cycle warms them up and is not kept."""
    rng = random.Random(seed)
    pools: dict[str, aiohttp.ClientSession] = {}
    clocks = {name: cpu_clock(pid) for name, (_, _, pid) in streams.items()}
    out: list[Window] = []

    async def cycle() -> list[Window]:
        done = []
        for group in rng.sample(groups, len(groups)):
            for name in group:
                url, model, _ = streams[name]
                window = rng.uniform(0.8, 1.2) * window_s
                done.append(await _window(pools[url], name, url, model, clocks[name], window, concurrency))
        return done

    try:
        for url, _, _ in streams.values():
            if url not in pools:
                connector = aiohttp.TCPConnector(limit=concurrency)
                pools[url] = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), connector=connector)
        await cycle()  # warm-up: connections, the proxy's caches
        end = time.perf_counter() + duration_s
        while time.perf_counter() < end:
            out += await cycle()
    finally:
        for session in pools.values():
            await session.close()
    return out


def of(windows: list[Window], stream: str) -> list[Window]:
    return [w for w in windows if w.stream == stream]


MEASURES: dict[str, Callable[[Window], float]] = {
    "rps": lambda w: w.rps,  # requests per second of the window
    "cpu": lambda w: w.per_cpu_s,  # requests per second of the proxy's CPU time
}


def _pairs(windows: list[Window], a: str, b: str, measure: str) -> list[tuple[Window, float]]:
    """Each window of a with b's throughput at its midpoint, interpolated geometrically in time
    between b's clean windows (no errors) just before and just after it; a window with no b
    window on one side, or none within MAX_GAP_S, has none. A window of a with errors counts:
    its failed requests are requests it did not serve (only b, the baseline, must be clean)."""
    value = MEASURES[measure]
    windows = sorted(windows, key=lambda w: w.started)
    bs = [w for w in of(windows, b) if w.ok and not w.errors and value(w) > 0]
    mids = [w.mid for w in bs]
    out = []
    for w in of(windows, a):
        i = bisect.bisect_left(mids, w.mid)
        if i == 0 or i == len(bs) or not w.seconds:
            continue
        before, after = bs[i - 1], bs[i]
        if after.mid - before.mid > MAX_GAP_S:
            continue
        share = (w.mid - before.mid) / (after.mid - before.mid)
        out.append((w, value(before) ** (1 - share) * value(after) ** share))
    return out


def window_ratios(windows: list[Window], a: str, b: str, measure: str = "rps") -> list[float]:
    """a's throughput (`measure`: req/s, or req per CPU-second of the proxy) over b's at the
    same moment, one ratio per window of a, in time order: a drift of the machine's speed
    between b's windows cancels."""
    value = MEASURES[measure]
    return [value(w) / at for w, at in _pairs(windows, a, b, measure)]


def median_of(ratios: list[float]) -> float | None:
    return round(statistics.median(ratios), 3) if ratios else None


def window_ratio(windows: list[Window], a: str, b: str, measure: str = "rps") -> float | None:
    """The median of `window_ratios`."""
    return median_of(window_ratios(windows, a, b, measure))


def total_ratio(windows: list[Window], a: str, b: str, measure: str = "rps") -> float | None:
    """What a served in its windows over what b would have served in them at its throughput of
    the moment: unlike the median, it keeps the rare slow window (a full garbage collection)."""
    pairs = _pairs(windows, a, b, measure)
    spent = [(w.seconds if measure == "rps" else w.cpu_s) for w, _ in pairs]
    expected = sum(at * t for (_, at), t in zip(pairs, spent, strict=True))
    return round(sum(w.ok for w, _ in pairs) / expected, 3) if expected else None


def median_ci95(ratios: list[float], resamples: int = 4000, block: int = 10) -> list[float] | None:
    """A 95% interval for the median of `ratios` (in time order): a percentile bootstrap over
    blocks of `block` consecutive ratios (neighbouring windows share a baseline and the machine's
    drift, so single ratios are not independent), seeded so a result reproduces. It covers the
    windows' noise within one proxy's life, not run to run. None below 6 ratios, where it would
    only be [min, max]."""
    if len(ratios) < 6:
        return None
    block = max(1, min(block, len(ratios) // 3))
    starts = range(len(ratios) - block + 1)
    pick = random.Random(0).choices
    medians = []
    for _ in range(resamples):
        sample: list[float] = []
        while len(sample) < len(ratios):
            i = pick(starts)[0]
            sample += ratios[i : i + block]
        medians.append(statistics.median(sample[: len(ratios)]))
    medians.sort()
    return [round(medians[int(resamples * 0.025)], 3), round(medians[int(resamples * 0.975) - 1], 3)]
