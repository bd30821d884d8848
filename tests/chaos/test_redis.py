"""Chaos: the shared Redis killed and frozen under load, two real proxy replicas.

Each test runs steady load (two clients per replica) through the phases healthy -> fault ->
back, and checks the promises of the README's "Shared state": every request is served (0
failed, no 500 when Redis returns), no request waits on a hung Redis, each component warns
once per outage, the replicas are back on Redis afterwards, and a half-open probe is not lost.

"Does not wait on Redis" is measured against the same run's healthy phase, so it does not
depend on the machine's speed: no request in flight during the fault took more than 1 s plus
the slowest healthy request, and the requests that started once the fault was a second old
have a median latency within 0.25 s of the healthy median (before the fix, a frozen Redis
added 0.5 s to every request: the store's socket timeout, on each request).

The figures are printed: `./run test tests/chaos/test_redis.py -s`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import median
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess
from tests.redis_server import RedisServer

pytestmark = pytest.mark.e2e
BODY = {"model": "chat", "messages": [{"role": "user", "content": "hi"}]}
COOLDOWN_S = 2
PROBE_TIMEOUT_S = 60  # a lost probe would keep the primary out this long: far past the test's bound
SLOW_S = 1.0
NOTICE_S = 1.0  # requests that start this long after the fault began must not wait on Redis
ADDED_S = 0.25  # ...so their median latency may not grow by this much (a wait on Redis adds 0.5 s)
STORE_DOWN = "failover state store redis unreachable"
NOTICES_DOWN = "failover recovery notices"
ROUTES_DOWN = "failover routes: route store unreachable"
MASTER_KEY = "sk-master-redis-chaos"  # both replicas'
HEADERS = {"Authorization": f"Bearer {MASTER_KEY}"}


@dataclass(frozen=True)
class Shot:
    replica: int
    start: float
    seconds: float
    status: int
    backend: str
    error: str = ""


class Load:
    """`per_replica` clients per replica sending requests back to back until stopped."""

    def __init__(self, urls: list[str], per_replica: int = 2, pause_s: float = 0.02) -> None:
        self.urls = urls
        self.per_replica = per_replica
        self.pause_s = pause_s
        self.shots: list[Shot] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

    def _client(self, replica: int) -> None:
        with httpx.Client(headers=HEADERS, base_url=self.urls[replica], timeout=60) as client:
            while not self._stop.is_set():
                t0 = time.monotonic()
                try:
                    r = client.post("/v1/chat/completions", json=BODY)
                    shot = Shot(replica, t0, time.monotonic() - t0, r.status_code, r.headers.get("x-failover-backend", ""),
                                "" if r.status_code == 200 else r.text[:300])
                except httpx.HTTPError as e:
                    shot = Shot(replica, t0, time.monotonic() - t0, 0, "", type(e).__name__)
                with self._lock:
                    self.shots.append(shot)
                time.sleep(self.pause_s)

    def __enter__(self) -> Load:
        for replica in range(len(self.urls)):
            for _ in range(self.per_replica):
                t = threading.Thread(target=self._client, args=(replica,), daemon=True)
                t.start()
                self._threads.append(t)
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=90)

    def during(self, t0: float, t1: float) -> list[Shot]:
        """The requests in flight at some moment of [t0, t1)."""
        return [s for s in self.shots if s.start < t1 and s.start + s.seconds > t0]

    def after(self, t: float) -> list[Shot]:
        return [s for s in self.shots if s.start >= t]


@dataclass
class Report:
    fault: str
    requests: int
    failed: int
    healthy_p50_s: float
    healthy_max_s: float
    fault_requests: int
    fault_max_s: float
    slow: int
    added_p50_s: float
    after_failed: int

    def line(self) -> str:
        return (
            f"redis {self.fault}: requests={self.requests} failed={self.failed} "
            f"healthy p50={self.healthy_p50_s:.3f}s max={self.healthy_max_s:.3f}s; while {self.fault}: "
            f"requests={self.fault_requests} slowest={self.fault_max_s:.3f}s "
            f"over {SLOW_S:.0f}s+healthy max={self.slow} added p50={self.added_p50_s:+.3f}s; "
            f"failed after it returned={self.after_failed}"
        )


def report(load: Load, fault: str, t_fault: float, t_back: float) -> Report:
    healthy = [s for s in load.shots if s.start + s.seconds < t_fault]
    hit = load.during(t_fault, t_back)
    healthy_max = max((s.seconds for s in healthy), default=0.0)
    bound = SLOW_S + healthy_max
    # once the store noticed (well within a second), requests must not wait on Redis at all
    settled = [s.seconds for s in load.shots if t_fault + NOTICE_S <= s.start < t_back]
    healthy_p50 = median([s.seconds for s in healthy])
    return Report(
        fault,
        len(load.shots),
        sum(s.status != 200 for s in load.shots),
        healthy_p50,
        healthy_max,
        len(hit),
        max((s.seconds for s in hit), default=0.0),
        sum(s.seconds > bound for s in hit),
        median(settled) - healthy_p50 if settled else 0.0,
        sum(s.status != 200 for s in load.after(t_back)),
    )


def config(primary: FakeUpstream, backup: FakeUpstream, redis_url: str) -> dict[str, Any]:
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "router_settings": {"disable_cooldowns": True},  # the breaker alone decides here
        "failover_settings": {
            "redis_url": redis_url,
            "breaker": {"failure_threshold": 2, "cooldown_s": COOLDOWN_S, "probe_timeout_s": PROBE_TIMEOUT_S},
            "queue": {"max_wait_s": 20},  # a queue: each replica also listens for recovery notices
            "backends": {
                "primary": {"provider": "openai", "api_base": primary.url, "api_keys": {"p1": "sk-chaos-p1"}},
                "backup": {"provider": "openai", "api_base": backup.url, "api_keys": {"b1": "sk-chaos-b1"}},
            },
            "routes": {"chat": {"policy": "m", "elements": ["primary:model", "backup:model"]}},
        },
    }


@pytest.fixture(scope="module")
def replicas(
    upstreams: tuple[FakeUpstream, FakeUpstream], redis_server: RedisServer
) -> Iterator[list[ProxyProcess]]:
    cfg = config(*upstreams, redis_server.url)
    with ProxyProcess(cfg, master_key=MASTER_KEY) as a, ProxyProcess(cfg, master_key=MASTER_KEY) as b:
        yield [a, b]
        logs = a.log_text() + b.log_text()
    assert "sk-chaos" not in logs, "an API key reached a proxy log"


@pytest.fixture(autouse=True)
def _healthy(upstreams: tuple[FakeUpstream, FakeUpstream], replicas: list[ProxyProcess]) -> Iterator[None]:
    for u in upstreams:
        u.reset()
    for p in replicas:  # every breaker closed, in Redis and on each replica
        with httpx.Client(headers=HEADERS, base_url=p.url, timeout=30) as c:
            c.post("/v1/chat/completions", json=BODY)
    yield


def counts(replicas: list[ProxyProcess], text: str) -> list[int]:
    """How many warnings containing `text` each replica logged."""
    return [sum(text in line and "WARNING" in line for line in p.log_text().splitlines()) for p in replicas]


def run_outage(replicas: list[ProxyProcess], fault: str, down: Any, up: Any, seconds: float = 4.0) -> Report:
    before = {t: counts(replicas, t) for t in (STORE_DOWN, NOTICES_DOWN, ROUTES_DOWN)}
    with Load([p.url for p in replicas]) as load:
        time.sleep(3.0)  # healthy
        t_fault = time.monotonic()
        down()
        time.sleep(seconds)
        t_back = time.monotonic()
        up()
        time.sleep(4.0)
    r = report(load, fault, t_fault, t_back)
    print("\n" + r.line())
    failures = [s for s in load.shots if s.status != 200][:5]
    assert r.failed == 0, failures
    assert r.after_failed == 0
    assert r.fault_requests > 0
    assert r.slow == 0, sorted(s.seconds for s in load.during(t_fault, t_back))[-10:]
    assert r.added_p50_s < ADDED_S, r.line()
    logs = "".join(p.log_text() for p in replicas)
    assert "Set changed size during iteration" not in logs
    assert "Traceback" not in logs
    for text, was in before.items():  # each component warns at most once per replica and outage
        now = counts(replicas, text)
        assert all(n - w <= 1 for n, w in zip(now, was, strict=True)), (text, was, now)
    for p in replicas:  # each replica is back on the shared store
        with httpx.Client(headers=HEADERS, base_url=p.url, timeout=30) as c:
            assert wait_for(lambda c=c: c.get("/failover/status").json()["store"] == "redis", 10)
    return r


def wait_for(ok: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if ok():
            return True
        time.sleep(0.1)
    return False


def test_redis_frozen_under_load(replicas: list[ProxyProcess], redis_server: RedisServer) -> None:
    run_outage(replicas, "frozen", redis_server.freeze, redis_server.thaw)


def test_redis_killed_under_load(replicas: list[ProxyProcess], redis_server: RedisServer) -> None:
    run_outage(replicas, "killed", redis_server.stop, redis_server.start)


def breaker_state(p: ProxyProcess) -> str:
    with httpx.Client(headers=HEADERS, base_url=p.url, timeout=30) as c:
        rows = c.get("/failover/status").json()["deployments"]
    return next(r["state"] for r in rows if r["backend"] == "primary")


def test_half_open_probe_is_not_lost_when_redis_returns(
    replicas: list[ProxyProcess], upstreams: tuple[FakeUpstream, FakeUpstream], redis_server: RedisServer
) -> None:
    """The primary is down, its breaker open in Redis; Redis freezes and comes back while the
    load goes on; then the primary recovers: both replicas are back on it within a few
    cooldowns, not after `probe_timeout_s` (what a lost probe costs)."""
    primary, _ = upstreams
    primary.set(Behavior(503))
    with Load([p.url for p in replicas]) as load:
        assert wait_for(lambda: all(breaker_state(p) == "open" for p in replicas), 10)
        redis_server.freeze()
        time.sleep(COOLDOWN_S + 1.0)  # cooldowns run out while Redis hangs: probes are taken locally
        redis_server.thaw()
        time.sleep(0.5)
        primary.reset()  # the primary is back
        t_back = time.monotonic()
        back = wait_for(lambda: {s.replica for s in load.after(time.monotonic() - 0.5) if s.backend == "primary"} == {0, 1}, 20)
        recovered_s = time.monotonic() - t_back
    print(f"\nprobe after a frozen Redis: requests={len(load.shots)} failed={sum(s.status != 200 for s in load.shots)} "
          f"both replicas back on the primary after {recovered_s:.2f}s (cooldown {COOLDOWN_S}s, probe timeout {PROBE_TIMEOUT_S}s)")
    assert back, f"the primary was not back on both replicas within 20s: {[breaker_state(p) for p in replicas]}"
    assert [s for s in load.shots if s.status != 200] == []
