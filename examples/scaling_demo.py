"""Scaling demo: watch a LiteLLM proxy with failover routes ride out a primary going away.

By default it starts everything on 127.0.0.1: two fake OpenAI-compatible model servers (a
primary and a backup, two keys each), a real `litellm` proxy with the plugin and
configs/demo.yaml, then sends a steady stream of chat requests through the openai SDK and shows
who served each one. It stops the primary's server process after --outage-at seconds and starts
it again --outage-for seconds later. The proxy it starts has a master key of its own, which it
prints (LiteLLM 1.104 and later refuse to start without one).

    python examples/scaling_demo.py                          # everything local, scripted outage
    python examples/scaling_demo.py --outage-at 5 --outage-for 10 --duration 40
    python examples/scaling_demo.py --proxy-url http://127.0.0.1:4000 --api-key sk-... --watch   # scale by hand
    python examples/scaling_demo.py --proxy-url http://my-proxy:4000 \\
        --scale-down-cmd "oc scale deployment llama-fp8-predictor --replicas=0" \\
        --scale-up-cmd "oc scale deployment llama-fp8-predictor --replicas=1"

The last line of the output is always
`SUMMARY total=<n> succeeded=<n> failed=<n> failovers=<n> recoveries=<n>`.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import openai
from rich.console import Console
from rich.live import Live
from rich.markup import escape
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CONFIG = ROOT / "configs" / "demo.yaml"
DEMO_KEYS = {
    "DEMO_PRIMARY_KEY_1": "demo-primary-key-1",
    "DEMO_PRIMARY_KEY_2": "demo-primary-key-2",
    "DEMO_BACKUP_KEY_1": "demo-backup-key-1",
    "DEMO_BACKUP_KEY_2": "demo-backup-key-2",
}
HOST = "127.0.0.1"


def wait_for_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex((HOST, port)) == 0:
                return True
        time.sleep(0.05)
    return False


class UpstreamProcess:
    """A fake model server in its own process: stopping it is what scaling to zero looks like."""

    def __init__(self, name: str, port: int) -> None:
        self.name, self.port = name, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def up(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        cmd = [sys.executable, "-m", "litellm_failover_plugin.testing"]
        cmd += ["--port", str(self.port), "--name", self.name]
        self.process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        if not wait_for_port(self.port, 15):
            raise RuntimeError(f"the {self.name} upstream did not listen on port {self.port}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.process = None


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    total: int = 0
    succeeded: int = 0
    failed: int = 0
    failovers: int = 0
    recoveries: int = 0
    latencies_ms: list[float] = field(default_factory=list)
    on_failover_since: float | None = None  # served by another backend than the primary since
    failover_s: float = 0.0
    last: str = "-"

    def time_on_failover(self) -> float:
        extra = time.monotonic() - self.on_failover_since if self.on_failover_since else 0.0
        return self.failover_s + extra

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return 0.0
        if len(self.latencies_ms) == 1:
            return self.latencies_ms[0]
        return statistics.quantiles(self.latencies_ms, n=100, method="inclusive")[int(q) - 1]


class ScaleCommandFailed(Exception):
    def __init__(self, cmd: str, returncode: int) -> None:
        super().__init__(f"{cmd!r} exited {returncode}")
        self.returncode = returncode


class Schedule:
    """When to scale the primary down and up, and how (our own process, or the user's commands)."""

    def __init__(self, args: argparse.Namespace, primary: UpstreamProcess | None, say: Console) -> None:
        self.down_at = None if args.watch else args.outage_at
        self.up_at = None if self.down_at is None else self.down_at + args.outage_for
        self.down_cmd, self.up_cmd = args.scale_down_cmd, args.scale_up_cmd
        self.primary = primary
        self.say = say
        self.state = "up"

    def _run(self, cmd: str) -> None:
        """Run a scale command, show what it printed; a failing one stops the demo with its status."""
        self.say.print(f"[dim]$ {cmd}[/dim]")
        done = subprocess.run(shlex.split(cmd), capture_output=True, text=True, timeout=120)
        for stream in (done.stdout, done.stderr):
            for line in stream.rstrip().splitlines():
                self.say.print(f"[dim]  | {escape(line)}[/dim]", highlight=False)
        if done.returncode != 0:
            raise ScaleCommandFailed(cmd, done.returncode)

    def tick(self, elapsed: float) -> None:
        if self.down_at is not None and self.state == "up" and elapsed >= self.down_at:
            self.state = "down"
            self.say.print(Panel(f"[bold]scaling the primary down[/bold] at t={elapsed:.1f}s", style="yellow"))
            if self.down_cmd:
                self._run(self.down_cmd)
            elif self.primary is not None:
                self.primary.stop()
        elif self.up_at is not None and self.state == "down" and elapsed >= self.up_at:
            self.state = "up again"
            self.say.print(Panel(f"[bold]scaling the primary up[/bold] at t={elapsed:.1f}s", style="cyan"))
            if self.up_cmd:
                self._run(self.up_cmd)
            elif self.primary is not None:
                self.primary.start()


def banner(console: Console, text: str, style: str) -> None:
    rule = "!" * 70
    console.print(Text(f"{rule}\n[!] {text}\n{rule}", style=style))


def breakers(client: openai.OpenAI, route: str) -> str:
    """Breaker state per backend:key of the route and its queue, from GET /failover/status."""
    try:
        url = str(client.base_url).removesuffix("/v1/") + "/failover/status"
        r = client._client.get(url, headers={"Authorization": f"Bearer {client.api_key}"}, timeout=2)
        status = r.json() if r.status_code == 200 else {}
    except Exception:
        return ""
    marks = {"closed": "ok", "open": "OPEN", "half_open": "probe"}
    rows = [row for row in status.get("deployments") or [] if row.get("route") == route]
    text = "  breakers: " + " ".join(
        f"{row['backend']}:{row['key']}={marks.get(row['state'], row['state'])}" for row in rows
    )
    queue = (status.get("queues") or {}).get(route)
    if queue:
        text += f"  queued: {queue['length']}"
    return text if rows else ""


def status_line(stats: Stats, schedule: Schedule, breaker_text: str = "") -> Text:
    elapsed = time.monotonic() - stats.started
    where = "FAILOVER" if stats.on_failover_since else "PRIMARY"
    return Text(
        f" t={elapsed:5.1f}s  primary: {schedule.state:<8}  serving: {where:<8}  "
        f"ok {stats.succeeded}  failed {stats.failed}  failovers {stats.failovers}  "
        f"recoveries {stats.recoveries}  on failover {stats.time_on_failover():.1f}s{breaker_text}",
        style="reverse",
    )


def send(client: openai.OpenAI, n: int, stats: Stats, console: Console, primary_backend: str, route: str) -> None:
    t0 = time.monotonic()
    stamp = datetime.now().strftime("%H:%M:%S")
    try:
        raw = client.chat.completions.with_raw_response.create(
            model=route, messages=[{"role": "user", "content": f"Say hi ({n})"}], max_tokens=16
        )
        completion = raw.parse()
    except openai.APIError as e:
        stats.total += 1
        stats.failed += 1
        message = getattr(e, "message", str(e))
        console.print(f"[{stamp}] Request #{n}: [bold red]✗ FAILED[/bold red]\n           Error: {message[:160]}\n")
        return
    ms = (time.monotonic() - t0) * 1000
    stats.total += 1
    stats.succeeded += 1
    stats.latencies_ms.append(ms)
    backend = raw.headers.get("x-failover-backend", "?")
    on_primary = backend == primary_backend
    if not on_primary and stats.on_failover_since is None:
        stats.failovers += 1
        stats.on_failover_since = time.monotonic()
        banner(console, f"FAILOVER DETECTED: {primary_backend} -> {backend}", "bold red")
    elif on_primary and stats.on_failover_since is not None:
        stats.recoveries += 1
        stats.failover_s += time.monotonic() - stats.on_failover_since
        stats.on_failover_since = None
        banner(console, f"RECOVERED: back to {primary_backend}", "bold green")
    label = "[bold green]✓ PRIMARY[/bold green]" if on_primary else "[bold yellow]✓ FAILOVER[/bold yellow]"
    if not console.is_terminal:  # no live status line: say what the breakers are doing inline
        label += breakers(client, route)
    served = f"{backend}:{raw.headers.get('x-failover-model', '?')} key {raw.headers.get('x-failover-key', '?')}"
    attempts = raw.headers.get("x-failover-attempts", "?")
    text = (completion.choices[0].message.content or "").strip()
    console.print(
        f"[{stamp}] Request #{n}: {label}  ({ms:.0f} ms, {attempts} attempt(s))\n"
        f"           Model: {served}\n           Response: {text}\n"
    )


def warm_up(client: openai.OpenAI, route: str, console: Console) -> None:
    """One request before the timed ones, not counted: a cold proxy's first answer (its clients
    and imports made on first use: seconds) would otherwise be the demo's p99."""
    t0 = time.monotonic()
    try:
        client.chat.completions.create(model=route, messages=[{"role": "user", "content": "warm-up"}], max_tokens=1)
        outcome = "ok"
    except openai.APIError as e:
        outcome = f"failed ({type(e).__name__}); the demo goes on"
    console.print(f"[*] warm-up request (not counted): {outcome} in {(time.monotonic() - t0) * 1000:.0f} ms")


def summary(console: Console, stats: Stats) -> None:
    table = Table(title="Demo summary")
    table.add_column("metric")
    table.add_column("value", justify="right")
    for name, value in [
        ("total requests", str(stats.total)),
        ("succeeded", str(stats.succeeded)),
        ("failed", str(stats.failed)),
        ("failovers", str(stats.failovers)),
        ("recoveries", str(stats.recoveries)),
        ("time on failover", f"{stats.time_on_failover():.1f} s"),
        ("latency p50", f"{stats.percentile(50):.1f} ms"),
        ("latency p99", f"{stats.percentile(99):.1f} ms"),
    ]:
        table.add_row(name, value)
    console.print(table)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--proxy-url", help="use this running proxy instead of starting one (and its upstreams)")
    p.add_argument(
        "--api-key",
        default=os.environ.get("LITELLM_API_KEY") or os.environ.get("LITELLM_MASTER_KEY"),
        help="with --proxy-url: a key of that proxy (default: $LITELLM_API_KEY, else $LITELLM_MASTER_KEY)",
    )
    p.add_argument("--route", default="chat", help="the failover route to send to (default: chat)")
    p.add_argument("--config", default=str(DEFAULT_CONFIG), help="proxy config to start with (default: configs/demo.yaml)")
    p.add_argument("--proxy-port", type=int, default=4010)
    p.add_argument("--primary-port", type=int, default=9101, help="must match the config's primary api_base")
    p.add_argument("--backup-port", type=int, default=9102, help="must match the config's backup api_base")
    p.add_argument("--primary-backend", default="primary", help="backend name that counts as PRIMARY")
    p.add_argument("--duration", type=float, default=30.0, help="seconds of traffic (default 30)")
    p.add_argument("--interval", type=float, default=0.5, help="seconds between requests (default 0.5)")
    p.add_argument("--outage-at", type=float, default=6.0, help="scale the primary down after S seconds")
    p.add_argument("--outage-for", type=float, default=8.0, help="scale it back up S seconds later")
    p.add_argument("--scale-down-cmd", help="run this to scale the primary down, instead of stopping it here")
    p.add_argument("--scale-up-cmd", help="run this to scale the primary up again")
    p.add_argument("--watch", action="store_true", help="scale nothing; only watch (scale by hand)")
    args = p.parse_args(argv)
    if bool(args.scale_down_cmd) != bool(args.scale_up_cmd):
        p.error("--scale-down-cmd and --scale-up-cmd go together")
    if args.proxy_url and not (args.watch or args.scale_down_cmd):
        p.error("with --proxy-url, give --scale-down-cmd/--scale-up-cmd or --watch (the demo does not own that primary)")
    if args.interval <= 0 or args.duration <= 0:
        p.error("--interval and --duration must be positive")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    console = Console()
    started: list[object] = []
    primary: UpstreamProcess | None = None
    failed_command = 0
    stats = Stats()

    def stop_on_term(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop_on_term)
    try:
        proxy_url, api_key = args.proxy_url, args.api_key or "sk-none"
        if proxy_url is None:
            from litellm_failover_plugin.testing import ProxyProcess

            for var, value in DEMO_KEYS.items():
                os.environ.setdefault(var, value)
            primary = UpstreamProcess("primary", args.primary_port)
            backup = UpstreamProcess("backup", args.backup_port)
            for upstream in (primary, backup):
                upstream.start()
                started.append(upstream)
            console.print(f"[*] fake upstreams: primary on :{args.primary_port}, backup on :{args.backup_port}")
            console.print(f"[*] starting the LiteLLM proxy with {Path(args.config).name} (a few seconds)...")
            proxy = ProxyProcess(args.config, port=args.proxy_port)
            started.append(proxy)
            proxy.start()
            proxy_url, api_key = proxy.url, proxy.master_key
            console.print(f"[*] proxy master key: {api_key}")
        schedule = Schedule(args, primary, console)
        client = openai.OpenAI(base_url=f"{proxy_url.rstrip('/')}/v1", api_key=api_key, max_retries=0, timeout=30)
        console.print("=" * 70)
        console.print("LiteLLM failover demo")
        console.print(f"  Proxy: {proxy_url}   Route: {args.route}   Interval: {args.interval}s   Duration: {args.duration}s")
        if schedule.down_at is not None:
            console.print(f"  Outage: primary down at t={schedule.down_at:.0f}s for {args.outage_for:.0f}s")
        else:
            console.print("  Scale the primary down and up yourself; press Ctrl+C to stop")
        console.print("=" * 70)
        warm_up(client, args.route, console)
        stats = Stats()
        n = 0
        with Live(status_line(stats, schedule), console=console, auto_refresh=False, transient=True) as live:
            while (elapsed := time.monotonic() - stats.started) < args.duration:
                schedule.tick(elapsed)
                n += 1
                send(client, n, stats, console, args.primary_backend, args.route)
                live.update(status_line(stats, schedule, breakers(client, args.route)), refresh=True)
                next_at = stats.started + n * args.interval
                time.sleep(max(0.0, next_at - time.monotonic()))
    except KeyboardInterrupt:
        console.print("\n[*] stopped")
    except ScaleCommandFailed as e:
        console.print(f"[bold red][!] the scale command failed, stopping: {e}[/bold red]")
        failed_command = e.returncode
    finally:
        for thing in reversed(started):
            thing.stop()  # type: ignore[attr-defined]
    summary(console, stats)
    print(
        f"SUMMARY total={stats.total} succeeded={stats.succeeded} failed={stats.failed} "
        f"failovers={stats.failovers} recoveries={stats.recoveries}",
        flush=True,
    )
    if failed_command:
        return failed_command
    return 0 if stats.failed == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
