"""Benchmarks: the plugin against plain LiteLLM, same upstreams, same client, same concurrency.

    python benchmarks/run.py [--json results.json] [--compare-s 45] [--scale-s 150]

Phases, each bounded in time, traffic to 127.0.0.1 only:
1. compare.py: the plugin, plain LiteLLM (the seed's settings) and plain LiteLLM with its best
   recovery settings, side by side: healthy and primary-down throughput (short windows of load,
   the proxies and phases taking turns: load.interleaved), the first failover, recovery, every
   upstream down, streams.
2. scale.py: req/s on routes over 1,000 and 10,000 keys (and a twin of the 2-key route) against
   a route over 2, one proxy at a time (plugin with the memory store, plugin with Redis, plain
   LiteLLM), start-up time, and the same routes one request at a time in turn (alternating_ratio).
3. decision.py: the real decision's p99 by store and route size; the pure core's; the CPU time
   of a round of background health checks by number of keys.
4. herd.py: failed calls when 200 requests arrive together at a primary that just failed.
report.py turns the figures into the JSON (with each goal, met or not) and the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import COMPARE_S, compare
from decision import measure as measure_decisions
from decision import measure_real as measure_real_decisions
from herd import HERD
from herd import measure as measure_herd
from report import build, show
from rich.console import Console
from scale import ALTERNATIONS, SCALE_S, scale


def dump(results: dict[str, object]) -> str:
    """The JSON, a list of numbers on one line (every window's ratio is in it)."""
    text = json.dumps(results, indent=2, default=str)
    return re.sub(r"\[\s+([-0-9.e,\s]+?)\s+\]", lambda m: "[" + " ".join(m.group(1).split()) + "]", text) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="plugin vs plain LiteLLM")
    p.add_argument("--json", help="write the results to this path")
    p.add_argument("--compare-s", type=float, default=COMPARE_S, help=f"seconds of the comparison's load windows (default {COMPARE_S:g})")
    p.add_argument("--cycles", type=int, default=5, help="outage/recovery cycles per side (default 5)")
    p.add_argument("--route-sizes", default="1000,10000", help="route sizes compared with a 2-key route (default 1000,10000)")
    p.add_argument("--scale-s", type=float, default=SCALE_S, help=f"seconds of load windows per route-size proxy (default {SCALE_S:g})")
    p.add_argument("--alternations", type=int, default=ALTERNATIONS, help=f"requests per route size, one at a time (default {ALTERNATIONS})")
    p.add_argument("--decision-rounds", type=int, default=20000, help="timed decisions per size (default 20000)")
    args = p.parse_args(argv)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    say = Console(stderr=True, markup=False)  # "[scale memory] ..." is text, not markup

    sides, phases = asyncio.run(compare(args.compare_s, args.cycles, say))
    sizes = [int(n) for n in args.route_sizes.split(",") if n.strip()]
    scaled = asyncio.run(scale(sizes, args.scale_s, say, args.alternations)) if sizes else {}
    say.print("[decision] the real decision (router entry to the upstream call, store included), the pure core,")
    say.print("[decision] and the CPU time of one round of background health checks, by store and number of keys")
    real, health = measure_real_decisions(rounds=max(200, args.decision_rounds // 4))
    core = measure_decisions(rounds=args.decision_rounds)
    say.print(f"[herd] {HERD} requests at once at a primary that just died, with and without herd control")
    herd = measure_herd()

    results = build(sides, phases, scaled, real, core, herd, args)
    results["health_round_cpu_ms"] = {store: {str(n): ms for n, ms in by.items()} for store, by in health.items()}
    show(results)
    if args.json:
        Path(args.json).write_text(dump(results))
        Console().print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
