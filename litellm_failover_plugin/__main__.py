"""Command line: `check` validates a config and shows the plans; `status` shows every deployment.

    python -m litellm_failover_plugin check --config config.yaml [--no-env]
    python -m litellm_failover_plugin status --proxy-url http://127.0.0.1:4000
    python -m litellm_failover_plugin status --config config.yaml     # shared state, from Redis
    python -m litellm_failover_plugin status --proxy-url ... --route chat --json   # one route, as JSON
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import sys
import time
from collections.abc import Iterator
from typing import Any

from .config import ConfigError, FailoverSettings
from .configfile import load_settings
from .limits import Usage, counter_keys, describe, window_of
from .routing import compile_routes


def _load(path: str) -> FailoverSettings | None:
    """The settings, or None after saying on stderr what is wrong with them."""
    try:
        return load_settings(path)
    except ConfigError as e:
        print(e, file=sys.stderr)
        return None


@contextlib.contextmanager
def _placeholder_env(path: str) -> Iterator[list[str]]:
    """Every `os.environ/NAME` the file names and this process lacks is set to a placeholder
    while the block runs (then taken out again): the names so set."""
    try:
        text = open(path, encoding="utf-8").read()  # noqa: SIM115 - read at once
    except OSError:
        text = ""  # load_settings says what is wrong with the path
    missing = sorted({v for v in _ENV_REF.findall(text) if not os.environ.get(v)})
    for var in missing:
        os.environ[var] = "placeholder-for-check"
    try:
        yield missing
    finally:
        for var in missing:
            os.environ.pop(var, None)


_ENV_REF = re.compile(r"os\.environ/([A-Za-z_][A-Za-z0-9_]*)")


def check(path: str, no_env: bool = False) -> int:
    """Validate the config and print every route's attempt order. `no_env`: environment
    variables the config names need not be set (a lint in CI, without the keys)."""
    if no_env:
        with _placeholder_env(path) as missing:
            code = check(path)
        if code == 0 and missing:
            print(f"not checked (--no-env): environment variables {', '.join(missing)} are not set here")
        return code
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


# (header, how a row shows it): fits 80 columns; long names wrap inside their column, and a
# row's reason goes on a line of its own under it. --json has every field (score, open_until...).
COLUMNS: tuple[tuple[str, Any], ...] = (
    ("deployment", lambda r: r.get("deployment")),  # route/backend:model/key (the key's name)
    ("state", lambda r: r.get("state")),
    ("fails", lambda r: r.get("failures")),
    ("open s", lambda r: r.get("open_for_s") or None),
    ("cool", lambda r: None if r.get("litellm_cooldown") is None else ("yes" if r["litellm_cooldown"] else "no")),
    ("calls", lambda r: r.get("calls")),
    ("ms", lambda r: None if r.get("latency_ms") is None else round(r["latency_ms"])),
    ("ok", lambda r: None if r.get("success_rate") is None else f"{r['success_rate']:.0%}"),
)
TEXT_COLUMNS = ("deployment", "state")


def render_table(title: str, rows: list[dict[str, Any]], width: int | None = None) -> str:
    """The status table as text, wrapped to `width` columns (default: the terminal's, else 80).
    A deployment's name wraps after a `/` or `:`, never inside a name (unless one name alone is
    wider than the column)."""
    from rich import box
    from rich.console import Console
    from rich.table import Table

    console = Console(width=width, record=True, file=open(os.devnull, "w"))  # noqa: SIM115 - closed below
    cells = [[_cell(show(row)) for _, show in COLUMNS] for row in rows]
    others = [max([len(h), *(len(c[i]) for c in cells)]) for i, (h, _) in enumerate(COLUMNS) if i > 0]
    # columns are two spaces apart (a divider and a left pad), with no edges
    name_width = max(len(COLUMNS[0][0]), console.width - sum(others) - _GAP * (len(COLUMNS) - 1))
    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, padding=(0, 0, 0, 1), show_edge=False)
    for i, (header, _) in enumerate(COLUMNS):
        text = header in TEXT_COLUMNS
        table.add_column(
            header,
            justify="left" if text else "right",
            overflow="fold",
            no_wrap=not text,
            width=name_width if i == 0 else others[i - 1] + 1,  # a column's width holds its left pad
        )
    style = {"closed": "green", "open": "red", "half_open": "yellow"}
    for row, cells_of_row in zip(rows, cells, strict=True):
        table.add_row(wrap_name(cells_of_row[0], name_width), *cells_of_row[1:], style=style.get(str(row.get("state")), ""))
        shared = row.get("shared_by") or []
        note = " ".join(
            part
            for part in (
                row.get("reason") or "",
                row.get("limits") or "",
                f"(key shared by {', '.join(shared)})" if len(shared) > 1 else "",
            )
            if part
        )
        if note:
            table.add_row(f"  {note}", *[""] * (len(COLUMNS) - 1), style="dim")
    try:
        console.print(table)
        return console.export_text(styles=sys.stdout.isatty())
    finally:
        console.file.close()


_GAP = 2


def wrap_name(name: str, width: int) -> str:
    """`route/backend:model/key` in lines of at most `width`, broken after a `/` or `:`; a part
    longer than `width` alone is cut (the table folds it)."""
    lines: list[str] = []
    line = ""
    for part in re.findall(r"[^/:]+[/:]?|[/:]", name):
        if line and len(line) + len(part) > width:
            lines.append(line)
            line = ""
        line += part
    lines.append(line)
    return "\n".join(lines)


def _cell(value: object) -> str:
    return "-" if value is None else str(value)


def _table(title: str, rows: list[dict[str, Any]]) -> None:
    sys.stdout.write(render_table(title, rows))


def _only(rows: list[dict[str, Any]], route: str | None) -> list[dict[str, Any]]:
    return rows if route is None else [r for r in rows if r.get("route") == route]


def status_from_proxy(url: str, api_key: str | None, route: str | None = None, as_json: bool = False) -> int:
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
    if route is not None and not _route_known(route, body):
        known = ", ".join(body.get("routes") or sorted({str(d.get("route")) for d in body.get("deployments", [])}))
        print(f"no route {route!r} on {url}; its routes: {known or 'none'}", file=sys.stderr)
        return 2
    body["deployments"] = _only(body.get("deployments", []), route)
    if route is not None:
        body["queues"] = {n: q for n, q in (body.get("queues") or {}).items() if n == route}
    if as_json:
        print(json.dumps(body, indent=2))
        return 0
    worker = f", answered by worker pid {body['worker']}" if body.get("worker") is not None else ""
    _table(f"failover status of {url} (state store: {body.get('store')}){worker}", body["deployments"])
    for unserved in body.get("routes_not_served") or []:
        print(f"not served: stored run-time route {unserved['name']!r}: {unserved['why']}")
    if body.get("route_store_problem"):
        print(f"route store: {body['route_store_problem']} (route changes are refused until it is fixed)")
    return 0


def _route_known(route: str, body: dict[str, Any]) -> bool:
    """Whether a proxy's status answer knows `route` (its `routes`; an older proxy's: its rows)."""
    routes = body.get("routes")
    if isinstance(routes, list):
        return route in routes
    return any(d.get("route") == route for d in body.get("deployments", []))


def status_from_store(path: str, route: str | None = None, as_json: bool = False) -> int:
    """Read the shared breaker state straight from Redis (no proxy needed)."""
    import asyncio

    from .state.redis import RedisStore

    settings = _load(path)
    if settings is None:
        return 1
    if not settings.redis_url:
        print("no Redis in this config: breaker state lives in each proxy; use --proxy-url", file=sys.stderr)
        return 1
    plans = compile_routes(settings)
    if route is not None and route not in plans:
        print(
            f"no route {route!r} in {path}; its routes: {', '.join(plans) or 'none'} "
            "(routes made at run time: ask a proxy with --proxy-url)",
            file=sys.stderr,
        )
        return 2
    every = [c for p in plans.values() for c in p.candidates]
    routes: dict[str, list[str]] = {}
    for c in every:
        routes.setdefault(c.health_id, []).append(c.route)
    candidates = [c for c in every if route in (None, c.route)]
    hids = list(dict.fromkeys(c.health_id for c in candidates))  # one breaker per key, shared by routes

    async def read() -> list[dict[str, Any]]:
        store = RedisStore.from_url(str(settings.redis_url), timeout_s=2)
        limited = list({c.health_id: c for c in candidates if c.limits}.values())
        keys = [k for c in limited for k in counter_keys(c.health_id, window_of(time.time()))]
        try:
            breakers = dict(zip(hids, await store.get_many(hids), strict=False))
            counts = await store.counts(keys)
        finally:
            await store.aclose()
        used = {c.health_id: Usage(counts[2 * i], counts[2 * i + 1]) for i, c in enumerate(limited)}
        return [
            {
                "deployment": c.deployment_id,
                "route": c.route,
                "backend": c.backend,
                "model": c.model,
                "key": c.key,
                "health": c.health_id,
                "shared_by": routes[c.health_id],
                "state": breakers[c.health_id].state.value,
                "failures": breakers[c.health_id].failures,
                "reason": breakers[c.health_id].reason,
                "limits": describe(c.limits, used[c.health_id]) if c.limits else None,
            }
            for c in candidates
        ]

    try:
        rows = asyncio.run(read())
    except Exception as e:
        print(f"cannot read the state store: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    if as_json:
        print(json.dumps({"store": "redis", "deployments": rows}, indent=2))
        return 0
    _table("failover status (shared state in Redis)", rows)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m litellm_failover_plugin")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check", help="validate failover_settings and print every route's attempt order")
    p.add_argument("--config", required=True, help="the LiteLLM config.yaml")
    p.add_argument("--no-env", action="store_true", help="do not require the environment variables it names (keys): lint in CI")
    s = sub.add_parser("status", help="every deployment's breaker, cooldown, latency and success rate")
    where = s.add_mutually_exclusive_group(required=True)
    where.add_argument("--proxy-url", help="ask a running proxy (GET /failover/status)")
    where.add_argument("--config", help="read the shared state from the Redis this config names")
    s.add_argument("--api-key", default=os.environ.get("LITELLM_API_KEY"), help="a proxy key (default $LITELLM_API_KEY)")
    s.add_argument("--route", help="only this route's deployments")
    s.add_argument("--json", action="store_true", help="print the status as JSON (as GET /failover/status answers)")
    args = parser.parse_args(argv)
    if args.command == "check":
        return check(args.config, args.no_env)
    if args.proxy_url:
        return status_from_proxy(args.proxy_url, args.api_key, args.route, args.json)
    return status_from_store(args.config, args.route, args.json)


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
