"""Stream faults, what the client gets: plain LiteLLM against the plugin, same fake upstream.

    python benchmarks/scenarios.py

Plain LiteLLM: model `p<i>` (primary) with a fallback `b<i>` (backup), `stream_timeout: 1`,
`num_retries: 0`. The plugin: route `r<i>` over the same two, `first_chunk_s` and
`between_chunks_s` 1 s, `mid_stream: continue`. One pair of models per scenario, so no breaker or
cooldown carries over. Prints a Markdown table (the README's scenario table). Traffic to
127.0.0.1 only; about a minute.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import openai

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

A, B = "sk-scenario-a", "sk-scenario-b"
ANSWER = ["One ", "two ", "three ", "four"]
REST = Behavior(text=["three ", "four"])  # a backup that continues where it is asked to
WHOLE = Behavior(text=ANSWER)
SCENARIOS: dict[str, tuple[Behavior, Behavior]] = {
    "cut after 2 of 4 chunks": (Behavior(fault="cut", fault_after=2, text=ANSWER), REST),
    "stall after 2 chunks (30 s)": (Behavior(fault="stall", fault_after=2, stall_s=30, text=ANSWER), REST),
    "malformed chunk after 2": (Behavior(fault="malformed", fault_after=2, text=ANSWER), REST),
    "no finish_reason, no [DONE], after 2": (Behavior(fault="no_finish", fault_after=2, text=ANSWER), REST),
    "cut; the backup answers from the start": (Behavior(fault="cut", fault_after=2, text=ANSWER), WHOLE),
    "cut; the backup writes another answer": (Behavior(fault="cut", fault_after=2, text=ANSWER), Behavior(text=["One ", "too ", "many"])),
    "first token 30 s late": (Behavior(first_chunk_delay_s=30, text=ANSWER), WHOLE),
    "silent upstream (no status line, 30 s)": (Behavior(silent=True, stall_s=30), WHOLE),
    "503": (Behavior(503), WHOLE),
    "429 with Retry-After: 1": (Behavior(429, retry_after_s=1), WHOLE),
}


def run(upstream: FakeUpstream, proxy: ProxyProcess, model: Callable[[int], str]) -> dict[str, tuple[str, str | None, float]]:
    client = openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0, timeout=60)
    out = {}
    for i, (name, (primary, backup)) in enumerate(SCENARIOS.items()):
        upstream.reset()
        upstream.set(**{A: primary, B: backup})
        t0 = time.monotonic()
        text, error = "", None
        try:
            for chunk in client.chat.completions.create(model=model(i), messages=[{"role": "user", "content": "count"}], stream=True):
                if chunk.choices:
                    text += chunk.choices[0].delta.content or ""
        except openai.APIError as e:
            kind = e.body.get("type") if isinstance(e.body, dict) else None
            error = str(kind) if kind else type(e).__name__
        out[name] = (text, error, time.monotonic() - t0)
    return out


def plugin_config(url: str) -> dict[str, Any]:
    """The plugin's proxy: route `r<i>` per scenario, primary then backup, continue mode."""
    backends = {
        "a": {"provider": "openai", "api_base": url, "api_keys": {"a": A}},
        "b": {"provider": "openai", "api_base": url, "api_keys": {"b": B}},
    }
    return {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "defaults": {"stream_timeouts": {"first_chunk_s": 1, "between_chunks_s": 1}, "mid_stream": "continue"},
            "backends": backends,
            "routes": {f"r{i}": {"policy": "m", "elements": [f"a:p{i}", f"b:b{i}"]} for i in range(len(SCENARIOS))},
        },
    }


def main() -> None:
    n = len(SCENARIOS)
    with FakeUpstream("scenarios") as u:
        def deployment(name: str, key: str) -> dict[str, Any]:
            params = {"model": f"openai/{name}", "api_base": u.url, "api_key": key, "stream_timeout": 1}
            return {"model_name": name, "litellm_params": params}

        plain = {
            "model_list": [d for i in range(n) for d in (deployment(f"p{i}", A), deployment(f"b{i}", B))],
            "router_settings": {"fallbacks": [{f"p{i}": [f"b{i}"]} for i in range(n)], "num_retries": 0},
        }
        with ProxyProcess(plain) as p:
            plain_results = run(u, p, lambda i: f"p{i}")
        plugin = plugin_config(u.url)
        with ProxyProcess(plugin) as p:
            plugin_results = run(u, p, lambda i: f"r{i}")

    def cell(r: tuple[str, str | None, float]) -> str:
        return f"{r[0]!r}{' + error ' + r[1] if r[1] else ''}, {r[2]:.2f} s"

    print("| fault (primary; the backup answers \"three four\" unless said) | plain LiteLLM | plugin |")
    print("|---|---|---|")
    for name in SCENARIOS:
        print(f"| {name} | {cell(plain_results[name])} | {cell(plugin_results[name])} |")


if __name__ == "__main__":
    main()
