"""What the first request after the primary dies costs, plugin against plain LiteLLM, many times.

    python benchmarks/failover_overhead.py [--cycles 15] [--json results.json]

The proxies, upstreams and configs are run.py's (route `chat` = m over primary and backup; plain:
model group `primary` with fallbacks to `backup`), with LiteLLM's cooldown_time at 1 s so the
primary is back in service within a second of being restarted. Each cycle, on each side in
turn: the primary upstream process stops, one request (timed), the primary starts again, and
requests until the primary serves again. first_failover_overhead_ms is the median first-failover
latency minus the median latency of a healthy request minus a refused connect, where both the
first failover and the healthy request it is compared with come IDLE_S after the proxy's last
request: a request after an idle moment is slower than one of a back-to-back run (by several ms
on a shared 2-core machine), which run.py's baseline (back-to-back requests) counts as failover
overhead; `against_back_to_back_ms` is the figure by run.py's definition. Traffic to 127.0.0.1
only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run
from rich.console import Console

COOLDOWN_S = 1  # LiteLLM's cooldown_time on both sides, here: a cycle waits for the primary to be back
HEALTHY_REQUESTS = 10  # back-to-back healthy requests per side between cycles
IDLE_S = 0.5  # the proxy is idle this long before a first failover, and before the healthy request it is compared with


@dataclass
class Samples:
    healthy_ms: list[float] = field(default_factory=list)  # after the same idle time as a first failover
    back_to_back_ms: list[float] = field(default_factory=list)  # run.py's baseline
    refused_ms: list[float] = field(default_factory=list)
    first_failover_ms: list[float] = field(default_factory=list)
    idle_s: list[float] = field(default_factory=list)  # how long the proxy was idle before each first failover

    @property
    def overhead_ms(self) -> float:
        return statistics.median(self.first_failover_ms) - statistics.median(self.healthy_ms) - statistics.median(self.refused_ms)

    @property
    def run_py_overhead_ms(self) -> float:
        """run.py's definition: against back-to-back healthy requests."""
        return statistics.median(self.first_failover_ms) - statistics.median(self.back_to_back_ms) - statistics.median(self.refused_ms)


async def after_idle_ms(side: run.Side, since: float) -> float:
    """One request, sent IDLE_S after `since` (the end of the proxy's last request)."""
    await asyncio.sleep(max(0.0, since + IDLE_S - time.perf_counter()))
    return (await run.sequential_ms(side.url, side.model, 1))[0]


async def cycle(side: run.Side, s: Samples) -> None:
    s.back_to_back_ms.extend(await run.sequential_ms(side.url, side.model, HEALTHY_REQUESTS))
    s.healthy_ms.append(await after_idle_ms(side, time.perf_counter()))
    last = time.perf_counter()
    side.primary.stop()
    s.refused_ms.append(run.refused_call_ms(side.primary.port, 5))
    s.idle_s.append(max(IDLE_S, time.perf_counter() - last))
    s.first_failover_ms.append(await after_idle_ms(side, last))
    side.primary.start()
    back = await run.recovery_seconds(side.url, side.model, str(side.primary.port), limit_s=30)
    if back is None:
        raise RuntimeError(f"[{side.name}] the primary did not serve again within 30 s")


async def bench(cycles: int, say: Console) -> dict[str, Any]:
    run.COOLDOWN_S = COOLDOWN_S  # read by run.plugin_config / run.plain_config
    sides: list[run.Side] = []
    try:
        for name in ("plain", "plugin"):
            sides.append(run.Side.start(name))
        samples = {side.name: Samples() for side in sides}
        for side in sides:
            await run.sequential_ms(side.url, side.model, 50)  # warm-up
        for i in range(cycles):
            say.print(f"cycle {i + 1}/{cycles}")
            for side in sides if i % 2 else reversed(sides):
                await cycle(side, samples[side.name])
        out: dict[str, Any] = {}
        for name, s in samples.items():
            out[name] = {
                "first_failover_overhead_ms": round(s.overhead_ms, 2),
                "against_back_to_back_ms": round(s.run_py_overhead_ms, 2),
                "first_failover_ms": [round(x, 2) for x in s.first_failover_ms],
                "healthy_after_idle_ms": round(statistics.median(s.healthy_ms), 2),
                "healthy_back_to_back_ms": round(statistics.median(s.back_to_back_ms), 2),
                "refused_call_ms": round(statistics.median(s.refused_ms), 3),
                "idle_before_failover_s": round(statistics.median(s.idle_s), 3),
            }
        out["plugin_minus_plain_ms"] = round(
            out["plugin"]["first_failover_overhead_ms"] - out["plain"]["first_failover_overhead_ms"], 2
        )
        return out
    finally:
        for side in sides:
            side.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="first-failover overhead, plugin vs plain LiteLLM")
    p.add_argument("--cycles", type=int, default=15)
    p.add_argument("--json", help="write the results to this path")
    args = p.parse_args(argv)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    say = Console(stderr=True)
    results = asyncio.run(bench(args.cycles, say))
    text = json.dumps(results, indent=2)
    if args.json:
        Path(args.json).write_text(text + "\n")
    say.print(
        f"first_failover_overhead_ms: plugin {results['plugin']['first_failover_overhead_ms']}, "
        f"plain {results['plain']['first_failover_overhead_ms']}"
    )
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
