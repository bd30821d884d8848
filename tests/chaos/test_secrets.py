"""A secret grep over a full debug run: every configured key value, looked for in everything the
proxy logged (LiteLLM and the plugin at DEBUG) and everything it answered (bodies and headers),
through successes, failovers, exhausted routes, streams, commands, status and admin views."""

from __future__ import annotations

import httpx
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e
SECRETS = {"a1": "sk-secret-alpha-1-Zq9", "a2": "sk-secret-alpha-2-Zq9", "b1": "sk-secret-beta-1-Zq9"}


def test_no_key_appears_in_a_debug_log_or_any_answer(upstream: FakeUpstream) -> None:
    cfg = {
        "model_list": [
            {"model_name": "plain", "litellm_params": {"model": "openai/plain", "api_base": upstream.url, "api_key": "sk-plain-unrelated"}}
        ],
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "backends": {
                "alpha": {"provider": "openai", "api_base": upstream.url, "api_keys": {"a1": SECRETS["a1"], "a2": SECRETS["a2"]}},
                "beta": {"provider": "openai", "api_base": upstream.url, "api_keys": {"b1": SECRETS["b1"]}},
            },
            "routes": {"chat": {"policy": "km", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
            "commands": {"writers": "any"},
        },
    }
    seen: list[str] = []
    env = {"LITELLM_LOG": "DEBUG", "FAILOVER_LOG_LEVEL": "DEBUG"}
    with ProxyProcess(cfg, env=env) as proxy, httpx.Client(base_url=proxy.url, headers=proxy.headers, timeout=30) as c:

        def ask(**body: object) -> None:
            r = c.post("/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": "hi"}], **body})
            seen.append(r.text + str(dict(r.headers)))

        ask()  # served
        upstream.set(**{SECRETS["a1"]: Behavior(401, message=f"Incorrect API key provided: {SECRETS['a1']}")})
        ask()  # a 401 that quotes the key back, failed over
        upstream.set(Behavior(503, message=f"overloaded for key {SECRETS['a2']}"))
        ask()  # exhausted, every upstream message quoting a key
        ask(stream=True)
        upstream.reset()
        upstream.set(**{SECRETS["a1"]: Behavior(fault="cut", fault_after=1)})
        ask(stream=True)  # a stream cut mid-way
        upstream.reset()
        for command in ("!/list-failover-routes", "!/route-append(name=chat,element=beta:gpt-z)", "!/route-list(name=chat)"):
            r = c.post("/v1/chat/completions", json={"model": "chat", "messages": [{"role": "user", "content": command}]})
            seen.append(r.text + str(dict(r.headers)))
        for path in ("/failover/status", "/failover/routes", "/failover/routes/chat"):
            seen.append(c.get(path).text)
        log = proxy.log_text()
    assert len(log) > 10_000, "a debug run logs plenty"
    for name, secret in SECRETS.items():
        assert secret not in log, f"key {name} in the proxy log"
        assert not any(secret in s for s in seen), f"key {name} in an answer"
