"""What every benchmark phase shares: the fake upstream process, the client, closed-loop load and
the paired ratios. Traffic goes to 127.0.0.1 only."""

from __future__ import annotations

import asyncio
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


def round_ratios(a: list[Load], b: list[Load]) -> list[float]:
    """a's req/s over b's, round by round (the two measured back to back)."""
    return [round(x.rps / y.rps, 3) for x, y in zip(a, b, strict=False) if y.rps]


def paired(a: list[Load], b: list[Load]) -> float | None:
    """Median over rounds of a's req/s over b's in the same round."""
    ratios = round_ratios(a, b)
    return round(statistics.median(ratios), 3) if ratios else None


def median_ci95(ratios: list[float], resamples: int = 4000) -> list[float] | None:
    """A 95% interval for the median of `ratios` (percentile bootstrap over the rounds, seeded so
    a result reproduces): how far the rounds' noise leaves the median uncertain, within one
    proxy's life (not run to run). None below 6 rounds, where it would only be [min, max]."""
    if len(ratios) < 6:
        return None
    pick = random.Random(0).choices
    medians = sorted(statistics.median(pick(ratios, k=len(ratios))) for _ in range(resamples))
    return [round(medians[int(resamples * 0.025)], 3), round(medians[int(resamples * 0.975) - 1], 3)]
