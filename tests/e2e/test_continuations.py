"""Continued streams never hand the client a corrupted answer, through a real `litellm --config`
proxy: a continuation that repeats the answer from the start, one that rewrites it, one whose
model refuses prefill, one that never answers; streams of several choices; and the `model` the
client is told (who served, not the route).

One fake upstream serves three backends: key a1 (alpha) breaks as each test says, b1 (beta)
continues, c1 (gamma) is the third candidate. Each test has its own route over models named
after it (breakers are per backend, model and key).
"""

from __future__ import annotations

import concurrent.futures
import time
from collections.abc import Iterator
from typing import Any

import openai
import pytest

from litellm_failover_plugin.testing import Behavior, FakeUpstream, ProxyProcess

pytestmark = pytest.mark.e2e

A1, B1, C1 = "sk-cont-a1-77c2", "sk-cont-b1-77c2", "sk-cont-c1-77c2"
PROMPT = [{"role": "user", "content": "count to four"}]
ANSWER = ["One ", "two ", "three ", "four"]


def _route(name: str, beta: Any = None, **extra: Any) -> dict[str, Any]:
    elements = [f"alpha:{name}-primary", beta or f"beta:{name}-backup", f"gamma:{name}-third"]
    return {"policy": "m", "mid_stream": "continue", "elements": elements, **extra}


ROUTES = {
    "repeat": _route("repeat"),
    "diverge": _route("diverge"),
    "prefill": _route("prefill", beta={"element": "beta:prefill-backup", "prefill": True}),
    "silent": _route("silent"),
    "choices": _route("choices"),
    "served": _route("served"),
    **{f"burst-{i}": _route(f"burst-{i}", mid_stream="error") for i in range(8)},
}


@pytest.fixture(scope="module")
def proxy(upstream: FakeUpstream) -> Iterator[ProxyProcess]:
    keys = {"alpha": {"a1": A1}, "beta": {"b1": B1}, "gamma": {"c1": C1}}
    config = {
        "litellm_settings": {"callbacks": "litellm_failover_plugin.plugin"},
        "failover_settings": {
            "defaults": {"stream_timeouts": {"first_chunk_s": 1, "between_chunks_s": 1}},
            "backends": {n: {"provider": "openai", "api_base": upstream.url, "api_keys": k} for n, k in keys.items()},
            "routes": ROUTES,
        },
    }
    with ProxyProcess(config) as p:
        yield p


@pytest.fixture
def client(proxy: ProxyProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{proxy.url}/v1", api_key=proxy.master_key, max_retries=0, timeout=30)


def stream(client: openai.OpenAI, route: str, **extra: Any) -> tuple[str, list[Any], Exception | None, float]:
    """(text of choice 0, every chunk, the error, seconds until the stream ended)."""
    t0 = time.monotonic()
    text, chunks, error = "", [], None
    try:
        for chunk in client.chat.completions.create(model=route, messages=PROMPT, stream=True, **extra):
            chunks.append(chunk)
            if chunk.choices and chunk.choices[0].index == 0:
                text += chunk.choices[0].delta.content or ""
    except openai.APIError as e:
        error = e
    return text, chunks, error, time.monotonic() - t0


def cut_after_two(upstream: FakeUpstream, backup: Behavior) -> None:
    upstream.set(**{A1: Behavior(fault="cut", fault_after=2, text=ANSWER), B1: backup})


def partial(upstream: FakeUpstream) -> str:
    """What the continuation was told the client has."""
    return str(next(m["content"] for m in upstream.received[1].messages if m["role"] == "assistant"))


def test_a_continuation_that_repeats_the_answer_is_not_sent_twice(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    cut_after_two(upstream, Behavior(text=ANSWER))  # answers from the start, as many models do
    text, _, error, took = stream(client, "repeat")
    print(f"\nrepeat: client got {text!r}, error={error}; ended after {took:.2f}s")
    assert error is None
    assert partial(upstream) in ("One two ", "One ")
    assert text == "One two three four"  # once: the repeated part was held back
    assert [r.key for r in upstream.received] == [A1, B1]


def test_a_continuation_that_rewrites_the_answer_ends_with_the_typed_error(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    cut_after_two(upstream, Behavior(text=["One ", "too ", "many ", "words"]))
    text, _, error, took = stream(client, "diverge")
    print(f"\ndiverge: client got {text!r}, then {error}; ended after {took:.2f}s")
    assert text == partial(upstream)  # nothing of the other answer was spliced in
    assert isinstance(error, openai.APIError) and isinstance(error.body, dict)
    assert error.body["type"] == "failover_stream_interrupted"
    assert "does not fit the answer" in error.message and "beta:diverge-backup/b1" in error.message


def test_a_model_that_refuses_prefill_gets_the_instruction_form(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    cut_after_two(upstream, Behavior(reject_prefill=True, text=["three ", "four"]))
    text, _, error, took = stream(client, "prefill")
    print(f"\nprefill refused: client got {text!r}; ended after {took:.2f}s")
    assert error is None and text == partial(upstream) + "three four"
    assert [r.key for r in upstream.received] == [A1, B1, B1]
    asked_prefill, asked_again = upstream.received[1].messages, upstream.received[2].messages
    assert asked_prefill[-1]["role"] == "assistant"  # refused with a 400
    assert asked_again[-2]["role"] == "assistant" and asked_again[-1]["role"] == "user"


def test_a_continuation_that_never_answers_moves_on_after_first_chunk_s(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    cut_after_two(upstream, Behavior(silent=True))
    upstream.set(**{C1: Behavior(text=["three ", "four"])})
    text, _, error, took = stream(client, "silent")
    print(f"\nsilent continuation: client got {text!r} after {took:.2f}s")
    assert error is None and text == partial(upstream) + "three four"
    assert [r.key for r in upstream.received] == [A1, B1, C1]
    assert took < 5  # first_chunk_s is 1 s; the silent upstream would hold on for 120 s


def test_a_stream_of_several_choices_ends_with_the_typed_error_not_a_mixed_continuation(
    client: openai.OpenAI, upstream: FakeUpstream
) -> None:
    cut_after_two(upstream, Behavior(text=["three ", "four"]))
    _, _, error, took = stream(client, "choices", n=2)
    print(f"\nn=2: {error}; ended after {took:.2f}s")
    assert isinstance(error, openai.APIError) and "n=2" in error.message
    assert [r.key for r in upstream.received] == [A1]


def test_the_model_named_is_the_one_that_served(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    upstream.set(**{A1: Behavior(503)})
    raw = client.chat.completions.with_raw_response.create(model="served", messages=PROMPT)
    assert raw.parse().model == "served-backup"
    assert raw.headers["x-failover-route"] == "served" and raw.headers["x-failover-model"] == "served-backup"
    upstream.reset()
    _, chunks, error, _ = stream(client, "served")
    assert error is None and {c.model for c in chunks} == {"served-primary"}
    upstream.reset()
    cut_after_two(upstream, Behavior(text=["three ", "four"]))
    _, chunks, error, _ = stream(client, "served")
    assert error is None
    assert [c.model for c in chunks if c.choices and c.choices[0].delta.content] in (
        ["served-primary", "served-primary", "served-backup", "served-backup"],
        ["served-primary", "served-backup", "served-backup"],  # the chunk written just before a cut may be lost
    )


def test_every_chunk_sent_before_a_cut_arrives_in_a_burst(client: openai.OpenAI, upstream: FakeUpstream) -> None:
    """8 streams at once, each cut right after its second chunk: each client gets both chunks,
    then the typed error (the second was often lost on a busy proxy: litellm/transport.py)."""
    upstream.set(Behavior(fault="cut", fault_after=2, text=ANSWER))
    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        results = list(pool.map(lambda i: stream(client, f"burst-{i}"), range(8)))
    texts = [r[0] for r in results]
    print(f"\nburst of 8 cut streams: {sum(t == 'One two ' for t in texts)} of 8 got both chunks")
    assert texts == ["One two "] * 8
    assert all(isinstance(r[2], openai.APIError) for r in results)
