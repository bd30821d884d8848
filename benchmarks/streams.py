"""Streaming figures: time to first token through the plugin against plain LiteLLM, and how long a
client waits for the next token when a stream is cut mid-way and continued on the next candidate.

Used by benchmarks/run.py on the proxies it already runs.
"""

from __future__ import annotations

import json
import statistics
import time

import aiohttp

CUT_TEXT = ["a ", "b ", "c ", "d"]  # the flaky upstream cuts after the first two
CUT_AFTER = 2


async def _tokens(session: aiohttp.ClientSession, url: str, model: str) -> tuple[list[float], bool]:
    """Arrival times (perf_counter) of every content token of one streamed request, and whether
    the stream ended with [DONE]."""
    body = {"model": model, "stream": True, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    times: list[float] = []
    done = False
    async with session.post(url, json=body) as r:
        async for raw in r.content:
            line = raw.decode().strip()
            if not line.startswith("data: "):
                continue
            data = line[6:]
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            for choice in chunk.get("choices") or []:
                if (choice.get("delta") or {}).get("content"):
                    times.append(time.perf_counter())
    return times, done


async def ttft(
    plugin: tuple[str, str], plain: tuple[str, str], n: int, headers: dict[str, str]
) -> tuple[list[float], list[float]]:
    """Time to first token (ms), healthy, one request at a time, alternating plugin and plain so
    that the machine's drift hits both alike."""
    a: list[float] = []
    b: list[float] = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=headers) as session:
        for i in range(n + 5):
            for (url, model), out in ((plugin, a), (plain, b)) if i % 2 else ((plain, b), (plugin, a)):
                t0 = time.perf_counter()
                times, _ = await _tokens(session, url, model)
                if i >= 5 and times:  # the first few warm both up
                    out.append((times[0] - t0) * 1000)
    return a, b


async def midstream_recovery(url: str, models: list[str], headers: dict[str, str]) -> list[float]:
    """Seconds from the last token before the cut to the next token on the client (continue mode).
    One request per route: each route has its own breaker, so every request meets the cut."""
    gaps = []
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), headers=headers) as session:
        for model in models:
            times, done = await _tokens(session, url, model)
            if done and len(times) > CUT_AFTER:
                gaps.append(times[CUT_AFTER] - times[CUT_AFTER - 1])
    return gaps


def overhead_ms(plugin: list[float], plain: list[float]) -> float:
    if not plugin or not plain:
        raise RuntimeError(f"no streamed answer to time (plugin {len(plugin)}, plain {len(plain)}): is the proxy up, the key right?")
    return statistics.median(plugin) - statistics.median(plain)
