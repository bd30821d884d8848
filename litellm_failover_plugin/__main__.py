"""Command line: `check` validates a config and shows the plans; `status` shows every deployment.

    python -m litellm_failover_plugin check --config config.yaml
    python -m litellm_failover_plugin status --proxy-url http://127.0.0.1:4000
    python -m litellm_failover_plugin status --config config.yaml     # shared state, from Redis
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from .config import ConfigError, FailoverSettings, load_settings
from .routing import compile_routes


def _load(path: str) -> FailoverSettings | None:
    """The settings, or None after saying on stderr what is wrong with them."""
    try:
        return load_settings(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return None


def check(path: str) -> int:
    settings = _load(path)
    if settings is None:
        return 1
    from .litellm.translate import check_providers  # imports litellm: only once the file is valid

    try:
        check_providers(settings)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return 1
    for plan in compile_routes(settings).values():
        state = "" if plan.enabled else "  (failover off: first attempt only)"
        print(f"route {plan.name}: policy {plan.policy}, {len(plan.candidates)} candidates{state}")
        for i, c in enumerate(plan.candidates, 1):
            catch = f"  catch {c.catch.describe()}" if c.catch else ""
            prio = f"  priority {c.priority}" if plan.policy == "scored" else ""
            print(f"  {i:>2}. {c.backend}:{c.model} key {c.key}  falls over on {c.falls_over.describe()}{catch}{prio}")
    return 0


COLUMNS = (
    "deployment",
    "shared_by",
    "state",
    "failures",
    "open_for_s",
    "litellm_cooldown",
    "calls",
    "latency_ms",
    "success_rate",
    "score",
    "reason",
)


def _cell(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    return str(value)


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in COLUMNS:
        table.add_column(col, justify="left" if col in ("deployment", "state", "reason") else "right")
    style = {"closed": "green", "open": "red", "half_open": "yellow"}
    for row in rows:
        cells = [_cell(row.get(c)) for c in COLUMNS]
        table.add_row(*cells, style=style.get(str(row.get("state")), ""))
    Console().print(table)


def status_from_proxy(url: str, api_key: str | None) -> int:
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        r = httpx.get(f"{url.rstrip('/')}/failover/status", headers=headers, timeout=10)
    except httpx.HTTPError as e:
        print(f"cannot reach {url}: {e}", file=sys.stderr)
        return 1
    if r.status_code != 200:
        print(f"{url}/failover/status answered {r.status_code}: {r.text[:300]}", file=sys.stderr)
        return 1
    body = r.json()
    worker = f" answered by worker pid {body['worker']}" if body.get("worker") is not None else ""
    _table(f"failover status of {url} (state store: {body.get('store')}){worker}", body.get("deployments", []))
    return 0


def status_from_store(path: str) -> int:
    """Read the shared breaker state straight from Redis (no proxy needed)."""
    import asyncio

    from .state.redis import RedisStore

    settings = _load(path)
    if settings is None:
        return 1
    if not settings.redis_url:
        print("no Redis in this config: breaker state lives in each proxy; use --proxy-url", file=sys.stderr)
        return 1
    candidates = [c for p in compile_routes(settings).values() for c in p.candidates]
    hids = list(dict.fromkeys(c.health_id for c in candidates))  # one breaker per key, shared by routes
    routes: dict[str, list[str]] = {}
    for c in candidates:
        routes.setdefault(c.health_id, []).append(c.route)

    async def read() -> list[dict[str, Any]]:
        store = RedisStore.from_url(str(settings.redis_url), timeout_s=2)
        try:
            breakers = dict(zip(hids, await store.get_many(hids), strict=False))
        finally:
            await store.aclose()
        return [
            {
                "deployment": c.deployment_id,
                "health": c.health_id,
                "shared_by": routes[c.health_id],
                "state": breakers[c.health_id].state.value,
                "failures": breakers[c.health_id].failures,
                "reason": breakers[c.health_id].reason,
            }
            for c in candidates
        ]

    try:
        rows = asyncio.run(read())
    except Exception as e:
        print(f"cannot read the state store: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    _table("failover status (shared state in Redis)", rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_failover_plugin")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate failover_settings and print every route's attempt order")
    p.add_argument("--config", required=True, help="the LiteLLM config.yaml")
    s = sub.add_parser("status", help="every deployment's breaker, cooldown, latency and success rate")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--proxy-url", help="ask a running proxy (GET /failover/status)")
    where.add_argument("--config", help="read the shared state from the Redis this config names")
    s.add_argument("--api-key", default=os.environ.get("LITELLM_API_KEY"), help="a proxy key (default $LITELLM_API_KEY)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.config)
    if args.proxy_url:
        return status_from_proxy(args.proxy_url, args.api_key)
    return status_from_store(args.config)


def run() -> int:
    """main(), quiet when the reader goes away (`check ... | head`)."""
    try:
        code = main()
        sys.stdout.flush()
        return code
    except BrokenPipeError:
        # Python's advice: point stdout at devnull so the interpreter's final flush cannot fail
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(run())
