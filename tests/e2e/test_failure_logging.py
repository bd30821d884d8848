"""LiteLLM's callbacks in a real proxy see each request's outcome once: a request that failed
over and was served is one success with its usage and spend, an exhausted one is one failure
(litellm/failure_log.py). The callback writes what it sees to a file (callback_recorder.py)."""

import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
BODY = {"messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module")
def events_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("events") / "events.jsonl"


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream, events_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ProxyProcess]:
    directory = tmp_path_factory.mktemp("failure-logging")
    shutil.copy(Path(__file__).with_name("callback_recorder.py"), directory / "callback_recorder.py")
    cfg = {
        "litellm_settings": {"callbacks": ["litellm_failover_plugin.plugin", "callback_recorder.recorder"]},
        "failover_settings": {
            "backends": {
                name: {"provider": "openai", "api_base": upstream.url, "api_keys": {key: f"sk-{key}"}}
                for name, key in (("alpha", "a1"), ("beta", "b1"))
            },
            # a model LiteLLM's cost map prices, so the served request has a spend
            "routes": {
                name: {"policy": "m", "elements": ["alpha:gpt-4o-mini", "beta:gpt-4o-mini"]}
                for name in ("served", "exhausted")
            },
            "breaker": {"enabled": False},
        },
    }
    (directory / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    with ProxyProcess(directory / "config.yaml", env={"FAILOVER_TEST_EVENTS": str(events_file)}) as p:
        yield p


def events(path: Path, count: int) -> list[dict[str, Any]]:
    """The events once `count` arrived (the proxy logs from tasks of its own), and a moment more."""
    deadline = time.monotonic() + 10
    found: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        found = [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []
        if len(found) >= count:
            break
        time.sleep(0.05)
    time.sleep(0.3)
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def chat(proxy: ProxyProcess, model: str) -> httpx.Response:
    return httpx.post(f"{proxy.url}/v1/chat/completions", json={"model": model, **BODY}, headers=proxy.headers, timeout=30)


def test_failed_over_then_served_is_one_success_with_usage_and_spend(
    proxy: ProxyProcess, upstream: FakeUpstream, events_file: Path
) -> None:
    events_file.unlink(missing_ok=True)
    upstream.set(**{"sk-a1": Behavior(503)})
    r = chat(proxy, "served")
    assert r.status_code == 200 and r.headers["x-failover-attempts"] == "2"
    [event] = events(events_file, 1)
    assert event["kind"] == "success" and event["status"] == "success"
    assert event["model_id"] == "served/beta:gpt-4o-mini/b1"
    assert event["total_tokens"] == 8 and event["response_cost"] > 0


def test_exhausted_is_one_failure(proxy: ProxyProcess, upstream: FakeUpstream, events_file: Path) -> None:
    events_file.unlink(missing_ok=True)
    upstream.set(Behavior(503))
    r = chat(proxy, "exhausted")
    assert r.status_code == 503 and r.headers["x-failover-attempts"] == "2"
    [event] = events(events_file, 1)
    assert event["kind"] == "failure" and event["status"] == "failure"
    assert event["model_id"] == "exhausted/beta:gpt-4o-mini/b1"  # the last attempt's
