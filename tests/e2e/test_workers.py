"""`litellm --num_workers 2` without Redis: each worker warns at start-up that breaker state is
its own, and the status view says which worker (pid) answered."""

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from litellm_failover_plugin.testing import FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
WARNING = "worker processes (--num_workers) and no Redis: breaker state, stats and queues are per worker"


def config(upstream: FakeUpstream) -> dict[str, Any]:
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {"alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": "sk-workers-a1"}}},
            "routes": {"chat": {"policy": "k", "elements": ["alpha:gpt-x"]}},
        },
    }


def test_workers_without_redis_warn_and_status_names_the_worker(upstream: FakeUpstream, tmp_path: Path) -> None:
    with ProxyProcess(config(upstream), workers=2) as proxy:
        pids = set()
        for _ in range(20):  # a new connection each time: either worker may answer
            with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client:
                body = client.get("/failover/status").json()
            assert isinstance(body["worker"], int) and [r["key"] for r in body["deployments"]] == ["a1"]
            pids.add(body["worker"])
        deadline = time.monotonic() + 20  # both workers are up once both answered or the time ran out
        while proxy.log_text().count(WARNING) < len(pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        log = proxy.log_text()
    assert 1 <= log.count(WARNING) <= 2, "once per worker, at start-up"
    assert all(f"worker pid {pid}" in log for pid in pids), "each worker that answered had warned"
    assert "sk-workers" not in log


def test_one_worker_does_not_warn(upstream: FakeUpstream) -> None:
    with ProxyProcess(config(upstream)) as proxy:
        with httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as client:
            assert isinstance(client.get("/failover/status").json()["worker"], int)
        assert WARNING not in proxy.log_text()
