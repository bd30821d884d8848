"""The benchmark's JSON and its tables, from what the phases measured."""

from __future__ import annotations

import os
import platform
import re
import statistics
from typing import Any

from compare import FULL_OUTAGE_REQUESTS, FULL_OUTAGE_S, TTFT_REQUESTS, Side, side_results
from herd import HERD
from load import SETTLE_S, WINDOW_CONCURRENCY, WINDOW_S, Window, median_ci95, median_of, total_ratio, window_ratios
from rich.console import Console
from rich.table import Table
from scale import ALTERNATING_LIMIT_S, TWIN, ScaleSide
from streams import CUT_AFTER, overhead_ms

# (key, how to read it, threshold): each is met when the figure is >= (or <=) the threshold
GOALS: list[tuple[str, str, float]] = [
    ("healthy_ratio", ">=", 0.97),
    ("outage_ratio", ">=", 0.95),
    ("full_outage_success_rate", ">=", 1.0),
    ("recovery_s", "<=", 2.0),
    ("route_1000_ratio.memory", ">=", 0.97),
    ("route_1000_ratio.redis", ">=", 0.97),
    ("route_10000_ratio.memory", ">=", 0.9),
    ("route_10000_ratio.redis", ">=", 0.9),
    ("decision_us_p99.memory.max", "<", 50.0),
    ("first_failover_overhead_ms", "<=", 5.0),
    ("herd_failed_calls", "<=", 5),
    ("stream_ttft_overhead_ms", "<=", 1.0),
]


def _get(results: dict[str, Any], path: str) -> float | None:
    node: Any = results
    for part in path.split("."):
        if part == "max" and isinstance(node, dict):
            node = max(node.values()) if node else None
        elif isinstance(node, dict):
            node = node.get(part)
        else:
            return None
    return node if isinstance(node, int | float) else None


def _total(results: dict[str, Any], key: str) -> float | None:
    """A ratio goal's total ratio (no window left out: load.total_ratio) beside its median."""
    if key in results.get("total_ratios", {}):
        return results["total_ratios"][key]  # type: ignore[no-any-return]
    route = re.fullmatch(r"route_(\w+)_ratio\.(\w+)", key)
    if route is None:
        return None
    return results.get("route_scale", {}).get(route[2], {}).get("total_ratios", {}).get(route[1])  # type: ignore[no-any-return]


def goals(results: dict[str, Any]) -> dict[str, Any]:
    """Each goal, met or not. A ratio is judged on its median over windows (a full garbage
    collection landing in one window moves it little); its total ratio, which keeps every
    window, is given beside it as `total`."""
    out: dict[str, Any] = {}
    for key, op, limit in GOALS:
        value = _get(results, key)
        met = None if value is None else {">=": value >= limit, "<=": value <= limit, "<": value < limit}[op]
        out[key] = {"goal": f"{op} {limit:g}", "measured": value, "met": met}
        total = _total(results, key)
        if total is not None:
            out[key]["total"] = total
    return out


def _r(x: float | None, digits: int = 2) -> float | None:
    return round(x, digits) if x is not None else None


# (figure, phase, stream, over stream) of the comparison's windows
COMPARE_RATIOS = [
    ("healthy_ratio", "healthy", "plugin:healthy", "plain:healthy"),
    ("healthy_ratio_vs_tuned", "healthy", "plugin:healthy", "plain-tuned:healthy"),
    ("outage_ratio", "plugin", "plugin:outage", "plugin:healthy"),
    ("native_outage_ratio", "plain", "plain:outage", "plain:healthy"),
    ("tuned_outage_ratio", "plain-tuned", "plain-tuned:outage", "plain-tuned:healthy"),
]


def _compared(phases: dict[str, list[Window]]) -> dict[str, Any]:
    """Every comparison figure by both measures, with intervals and the window ratios."""
    out: dict[str, Any] = {"ratio_ci95": {}, "total_ratios": {}, "cpu_ratios": {}, "cpu_ratio_ci95": {}}
    out["window_ratios"], out["window_cpu_ratios"] = {}, {}
    for key, phase, a, b in COMPARE_RATIOS:
        ws = phases[phase]
        rps, cpu = window_ratios(ws, a, b), window_ratios(ws, a, b, "cpu")
        out[key] = median_of(rps)
        out["ratio_ci95"][key] = median_ci95(rps)
        out["total_ratios"][key] = total_ratio(ws, a, b)
        out["cpu_ratios"][key] = median_of(cpu)
        out["cpu_ratio_ci95"][key] = median_ci95(cpu)
        out["window_ratios"][key] = [round(r, 3) for r in rps]
        out["window_cpu_ratios"][key] = [round(r, 3) for r in cpu]
    return out


def build(
    sides: dict[str, Side],
    phases: dict[str, list[Window]],
    scaled: dict[str, ScaleSide],
    real: dict[str, dict[int, float]],
    core: dict[str, dict[int, float]],
    herd: dict[str, Any],
    args: Any,
) -> dict[str, Any]:
    plugin, plain, tuned = sides["plugin"], sides["plain"], sides["plain-tuned"]
    compared = next(iter(scaled.values())).compared if scaled else []
    results: dict[str, Any] = {
        **_compared(phases),
        "full_outage_success_rate": round(plugin.full_outage[0] / plugin.full_outage[1], 3),
        "native_full_outage_success_rate": round(plain.full_outage[0] / plain.full_outage[1], 3),
        "tuned_full_outage_success_rate": round(tuned.full_outage[0] / tuned.full_outage[1], 3),
        "recovery_s": _r(plugin.median_recovery_s),
        "native_recovery_s": _r(plain.median_recovery_s),
        "tuned_recovery_s": _r(tuned.median_recovery_s),
        "first_failover_overhead_ms": round(plugin.first_failover_overhead_ms, 2),
        "native_first_failover_overhead_ms": round(plain.first_failover_overhead_ms, 2),
        "tuned_first_failover_overhead_ms": round(tuned.first_failover_overhead_ms, 2),
        **{f"route_{n}_ratio": {name: s.ratio(n) for name, s in scaled.items()} for n in compared},
        **{f"route_{n}_alternating_ratio": {name: s.alternating_ratio(n) for name, s in scaled.items()} for n in compared},
        "decision_us_p99": {store: {str(n): us for n, us in by_size.items()} for store, by_size in real.items()},
        "decision_core_us_p99": core["typical"],
        "decision_worst_us_p99": core["worst"],
        "herd_failed_calls": herd["herd_failed_calls"],
        "herd": herd,
        "stream_ttft_overhead_ms": round(overhead_ms(plugin.ttft_ms, plain.ttft_ms), 2),
        "stream_ttft_p50_ms": {s.name: round(statistics.median(s.ttft_ms), 2) for s in (plugin, plain)},
        "midstream_recovery_s": round(statistics.median(plugin.midstream_recovery_s), 3) if plugin.midstream_recovery_s else None,
        "midstream_recovery_samples_s": [round(x, 3) for x in plugin.midstream_recovery_s],
        "sides": {s.name: side_results(s) for s in sides.values()},
        "route_scale": {name: s.results() for name, s in scaled.items()},
        "method": METHOD,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
            "litellm": _litellm_version(),
            "concurrency": WINDOW_CONCURRENCY,
            "window_s": WINDOW_S,
            "settle_s": SETTLE_S,
            "compare_s": args.compare_s,
            "cycles": args.cycles,
            "scale_s": args.scale_s,
            "alternations": args.alternations,
            "alternating_limit_s": ALTERNATING_LIMIT_S,
        },
    }
    results["goals"] = goals(results)
    results["goals_met"] = f"{sum(1 for g in results['goals'].values() if g['met'])} of {len(GOALS)}"
    return results


def _litellm_version() -> str:
    from importlib.metadata import version

    return version("litellm")


METHOD = {
    "recovery_s": "median over the cycles of: seconds from the primary's restart, right after it "
    "entered a fresh cooldown, to the first request it serves (worst case for cooldown-based recovery)",
    "ratios": f"req/s of closed-loop load, {WINDOW_CONCURRENCY} clients, in windows of {WINDOW_S:g} s +-20% (each ends when its "
    f"last request returns, then {SETTLE_S:g} s pass before the next), the streams compared taking turns in a seeded random "
    "order (load.interleaved); a ratio is the median over a's windows of a's req/s over b's at the same moment, b's "
    "interpolated geometrically between its windows just before and after (load.window_ratios); ratio_ci95: a 95% "
    "block-bootstrap interval of that median (seeded); total_ratios: a's requests over what b would have served in "
    "a's windows (no window left out); cpu_ratios, cpu_ratio_ci95: the same with requests per second of the proxy "
    "process's CPU time (its CPU clock, read at a window's start and after its settling time) instead of req/s; "
    "window_ratios, window_cpu_ratios: every window's. healthy_ratio(_vs_tuned): the three proxies' healthy streams "
    "in turn; *outage_ratio: one proxy at a time, its healthy and primary-down streams in turn",
    "outage": "primary down = a second route (plugin) or model group (plain) whose primary's port "
    "has no listener, so every proxy sees connection refused, cools it down and retries it as usual",
    "tuned": "plain-tuned: plain LiteLLM with cooldown_time 1, general_settings.background_health_checks, "
    "health_check_interval 1 and enable_health_check_routing (the tuned_* figures and sides.plain-tuned)",
    "full_outage_success_rate": f"{FULL_OUTAGE_REQUESTS} requests spread over {FULL_OUTAGE_S:g} s "
    "during which both upstreams are stopped; share answered 200",
    "first_failover_overhead_ms": "median latency of the first request after the primary dies, minus "
    "the median latency of a healthy request sent the same way (a new connection, after the same idle "
    "moment), minus a refused connect to the dead port (compare.py); sides.*.first_failover_vs_back_to_back_ms: "
    "against back-to-back healthy requests instead",
    "route_N_ratio": "by proxy (memory: the plugin's memory store; redis: the plugin on a local redis-server; "
    "plain: LiteLLM model groups): req/s on a route over N keys of one backend (policy k; plain: a model group "
    "of N deployments) over req/s on a route over 2 keys, same proxy, healthy; each cycle takes the pairs (2, N) "
    "for every N and (2, twin) in a seeded random order (see ratios); route_twin_ratio: the same for another route over 2 keys (what the method "
    "reads when there is no difference); route_scale.<proxy>.ratio_ci95: the intervals; route_N_alternating_ratio: one request at a time, "
    "the sizes in turn (scale.ALTERNATIONS each, on one connection), the 2-key route's median latency over the "
    "N-key route's (like req/s at concurrency 1; the machine's noise hits every size alike); "
    "route_scale.<proxy>.startup_s: launch to the first answer "
    "on the biggest route",
    "stream_ttft_overhead_ms": f"median time to first content token of {TTFT_REQUESTS} sequential streamed "
    "requests through the plugin (stream timeouts on) minus the same through plain LiteLLM, alternating",
    "decision_us_p99": "by store (memory; redis: a ResilientStore around the RedisStore, as the proxy uses it, on "
    "a local redis-server; memory_scored: the memory store and a scored route, every key with stats) and route size: microseconds from the call of the router's fallbacks method (which the "
    "plugin shadows) to the call of the single-attempt function LiteLLM would send upstream, the route installed on "
    "a LiteLLM Router as the proxy installs it, the primary and 10% of the keys open (decision.py); "
    "decision_core_us_p99 and decision_worst_us_p99: the pure core alone (FailoverRun given every state), "
    "typical and worst case; health_round_cpu_ms: this process's CPU time (not redis-server's) for one round of "
    "background health checks that finds nothing due",
    "herd_failed_calls": f"{HERD} requests sent together (in-process router) to a route whose primary "
    "answers 503 after 0.2 s and has failed one call: every call the primary failed, that one included; "
    "herd.at_death: the same with no failure seen yet (calls already started cannot be taken back); "
    "without_herd_control: breaker.max_in_flight_while_failing 0, the plugin before herd control",
    "midstream_recovery_s": f"continue mode, the primary cuts every stream after {CUT_AFTER} tokens: median "
    "seconds from the last token before the cut to the next token on the client, one request per route",
}


def show(results: dict[str, Any]) -> None:
    console = Console()
    names = list(results["sides"])
    table = Table(title=f"plugin vs plain LiteLLM ({os.cpu_count()} CPUs, {WINDOW_CONCURRENCY} clients)")
    for col in ("", *names):
        table.add_column(col, justify="right" if col else "left")

    def row(label: str, key: str, unit: str = "") -> None:
        table.add_row(label, *(f"{results['sides'][n][key]}{unit}" for n in names))

    row("healthy req/s", "healthy_rps")
    row("healthy p50", "healthy_p50_ms", " ms")
    row("healthy p99", "healthy_p99_ms", " ms")
    row("primary down req/s", "outage_rps")
    row("primary down p50", "outage_p50_ms", " ms")
    row("primary down p99", "outage_p99_ms", " ms")
    row("errors, healthy", "healthy_errors")
    row("errors, primary down", "outage_errors")
    table.add_row("outage / healthy", *(str(results[k]) for k in ("outage_ratio", "native_outage_ratio", "tuned_outage_ratio")))
    row("first failover overhead", "first_failover_overhead_ms", " ms")
    row(f"success, every upstream down {FULL_OUTAGE_S:.0f}s", "full_outage_success_rate")
    row("recovery after primary returns (median)", "median_recovery_s", " s")
    row("start-up", "startup_s", " s")
    row("proxy memory (RSS)", "proxy_rss_mb", " MB")
    console.print(table)

    scale = results["route_scale"]
    if scale:
        sizes = list(next(iter(scale.values()))["rps"])
        t = Table(title=f"req/s by route size, healthy, one proxy each (ratio to the 2-key route; {TWIN}: another 2-key route)")
        for col in ("", *scale):
            t.add_column(col, justify="right" if col else "left")
        for n in sizes:
            cells = []
            for s in scale.values():
                ratio = s["ratios"].get(n)
                ci = s.get("ratio_ci95", {}).get(n)
                shown = f" ({ratio}x" + (f", 95% {ci[0]}-{ci[1]}" if ci else "") + ")" if ratio is not None else ""
                cells.append(f"{s['rps'][n]}{shown}")
            t.add_row(n if n == TWIN else f"{n} keys", *cells)
        for n in sizes[1:]:
            by_cpu = [s["cpu_ratios"].get(n) for s in scale.values()]
            t.add_row(f"{n}{'' if n == TWIN else ' keys'}, per CPU second", *(f"{v}x" if v is not None else "-" for v in by_cpu))
        for n in sizes[1:]:
            alt = [s.get("alternating_ratio", {}).get(n) for s in scale.values()]
            t.add_row(f"{n}{'' if n == TWIN else ' keys'}, one at a time", *(f"{v}x" if v is not None else "-" for v in alt))
        t.add_row("start-up (to first answer)", *(f"{s['startup_s']} s" for s in scale.values()))
        t.add_row("proxy memory (RSS)", *(f"{s['proxy_rss_mb']} MB" for s in scale.values()))
        console.print(t)
    ci, cpu = results["ratio_ci95"], results["cpu_ratios"]

    def interval(v: list[float] | None) -> str:
        return f"{v[0]}-{v[1]}" if v else "-"

    console.print(
        "\n".join(
            f"{key} = {results[key]} (95% {interval(ci[key])}; by CPU time {cpu[key]})" for key, _, _, _ in COMPARE_RATIOS
        )
        + "\n"
        f"decision_us_p99 (runner + store) = {results['decision_us_p99']}\n"
        f"pure core p99 = {results['decision_core_us_p99']} us   worst = {results['decision_worst_us_p99']} us\n"
        f"health_round_cpu_ms = {results.get('health_round_cpu_ms')}\n"
        f"herd_failed_calls = {results['herd_failed_calls']} of {HERD} "
        f"(without herd control: {results['herd']['after_first_failure']['without_herd_control']})\n"
        f"stream_ttft_overhead_ms = {results['stream_ttft_overhead_ms']} (p50 {results['stream_ttft_p50_ms']})   "
        f"midstream_recovery_s = {results['midstream_recovery_s']}"
    )
    g = Table(title=f"goals met: {results['goals_met']}")
    for col in ("figure", "goal", "measured", "met", "total ratio"):
        g.add_column(col)
    for key, v in results["goals"].items():
        g.add_row(key, v["goal"], str(v["measured"]), {True: "yes", False: "NO", None: "-"}[v["met"]], str(v.get("total", "")))
    console.print(g)
    up = results["sides"]["plugin"]["upstream_alone_rps"]
    console.print(
        f"What dominates: the fake upstream alone serves {up} req/s to the same client, "
        f"{up / max(results['sides']['plugin']['healthy_rps'], 1):.0f}x what the proxy serves, so the proxy is what is measured."
    )
