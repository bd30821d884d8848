"""Benchmarks: the plugin against plain LiteLLM, same upstreams, same client, same concurrency.

    python benchmarks/run.py [--json results.json] [--seconds 3] [--rounds 10] [--concurrency 20]

Phases, each bounded in time, traffic to 127.0.0.1 only:
1. compare.py: the plugin, plain LiteLLM (the seed's settings) and plain LiteLLM with its best
   recovery settings, side by side: healthy and primary-down throughput, the first failover,
   recovery, every upstream down, streams.
2. scale.py: req/s on routes over 1,000 and 10,000 keys against a route over 2, one proxy at a
   time (plugin with the memory store, plugin with Redis, plain LiteLLM), start-up time, and the
   same sizes one request at a time in turn (alternating_ratio).
3. decision.py: the real decision's p99 by store and route size; the pure core's.
4. herd.py: failed calls when 200 requests arrive together at a primary that just failed.
report.py turns the figures into the JSON (with each goal, met or not) and the tables.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from compare import compare
from decision import measure as measure_decisions
from decision import measure_real as measure_real_decisions
from herd import HERD
from herd import measure as measure_herd
from report import build, show
from rich.console import Console
from scale import ALTERNATIONS, scale


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description="plugin vs plain LiteLLM")
    p.add_argument("--json", help="write the results to this path")
    p.add_argument("--seconds", type=float, default=3.0, help="seconds per load step (default 3)")
    p.add_argument("--rounds", type=int, default=10, help="rounds of the comparison's six steps (default 10)")
    p.add_argument("--concurrency", type=int, default=20)
    p.add_argument("--cycles", type=int, default=3, help="outage/recovery cycles per side (default 3)")
    p.add_argument("--route-sizes", default="1000,10000", help="route sizes compared with a 2-key route (default 1000,10000)")
    p.add_argument("--scale-rounds", type=int, default=12, help="rounds through the route sizes, per proxy (default 12)")
    p.add_argument("--alternations", type=int, default=ALTERNATIONS, help=f"requests per route size, one at a time (default {ALTERNATIONS})")
    p.add_argument("--decision-rounds", type=int, default=20000, help="timed decisions per size (default 20000)")
    args = p.parse_args(argv)
    os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    say = Console(stderr=True, markup=False)  # "[scale memory] ..." is text, not markup

    sides = asyncio.run(compare(args.seconds, args.rounds, args.concurrency, args.cycles, say))
    sizes = [int(n) for n in args.route_sizes.split(",") if n.strip()]
    scaled = asyncio.run(scale(sizes, args.seconds, args.scale_rounds, args.concurrency, say, args.alternations)) if sizes else {}
    say.print("[decision] timing the real decision (runner + store) and the pure core")
    real = measure_real_decisions(rounds=max(200, args.decision_rounds // 4))
    core = measure_decisions(rounds=args.decision_rounds)
    say.print(f"[herd] {HERD} requests at once at a primary that just died, with and without herd control")
    herd = measure_herd()

    results = build(sides, scaled, real, core, herd, args)
    show(results, args.concurrency)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2, default=str) + "\n")
        Console().print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
