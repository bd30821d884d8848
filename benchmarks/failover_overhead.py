"""What the first request after the primary dies costs, plugin against plain LiteLLM, many times.

    python benchmarks/failover_overhead.py [--cycles 15] [--json results.json]

The proxies, upstreams and configs are compare.py's (route `chat` = m over primary and backup;
plain: model group `primary` with fallbacks to `backup`), with LiteLLM's cooldown_time at 1 s so
the primary is back in service within a second of being restarted. Each cycle, on each side in
turn: back-to-back healthy requests, then compare.first_failover (a healthy request after an
idle moment; the primary stops; the first request after the same idle moment), the primary
starts again, and requests until it serves again. first_failover_overhead_ms is compare.py's,
run.py's figure, by the same definition and the same measurement, over more cycles: the median
first-failover latency minus the median latency of a healthy request sent the same way (a new
connection, compare.IDLE_S after the proxy's last request) minus a refused connect.
`against_back_to_back_ms` is the same against back-to-back healthy requests (the definition
before, which counted the idle moment and the new connection as failover overhead). Traffic to
127.0.0.1 only; every wait is bounded.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import compare
from load import recovery_seconds, sequential_ms
from rich.console import Console

COOLDOWN_S = 1  # LiteLLM's cooldown_time on both sides, here: a cycle waits for the primary to be back
HEALTHY_REQUESTS = 10  # back-to-back healthy requests per side between cycles


async def cycle(side: compare.Side) -> None:
    side.back_to_back_ms.extend(await sequential_ms(side.url, side.model, HEALTHY_REQUESTS))
    await compare.first_failover(side)
    side.primary.start()
    back = await recovery_seconds(side.url, side.model, str(side.primary.port), limit_s=30)
    if back is None:
        raise RuntimeError(f"[{side.name}] the primary did not serve again within 30 s")


async def bench(cycles: int, say: Console) -> dict[str, Any]:
    compare.COOLDOWN_S = COOLDOWN_S  # read by compare.plugin_config / compare.plain_config
    sides: list[compare.Side] = []
    try:
        for name in ("plain", "plugin"):
            sides.append(compare.Side.start(name))
        for side in sides:
            await sequential_ms(side.url, side.model, 50)  # warm-up
        for i in range(cycles):
            say.print(f"cycle {i + 1}/{cycles}")
            for side in sides if i % 2 else reversed(sides):
                await cycle(side)
        out: dict[str, Any] = {}
        for s in sides:
            out[s.name] = {
                "first_failover_overhead_ms": round(s.first_failover_overhead_ms, 2),
                "against_back_to_back_ms": round(s.first_failover_vs_back_to_back_ms, 2),
                "first_failover_ms": [round(x, 2) for x in s.first_failover_ms],
                "healthy_after_idle_ms": round(statistics.median(s.healthy_idle_ms), 2),
                "healthy_back_to_back_ms": round(s.healthy_seq_ms, 2),
                "refused_call_ms": round(s.refused_ms, 3),
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
