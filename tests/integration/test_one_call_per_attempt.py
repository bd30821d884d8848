"""Each attempt is exactly one upstream call, for every endpoint a route serves: the SDK's own
retries are off. LiteLLM's OpenAI embedding handler turns `max_retries: 0` into its default (2)
(`max_retries or DEFAULT_MAX_RETRIES`): a failing embedding attempt cost three calls."""

from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.integration.test_router import KEYS, MESSAGES, called, make_router


async def test_a_failing_embedding_attempt_is_one_call(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    response = await router.aembedding(model="chat", input=["hello"])
    assert len(response.data) == 1
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]


async def test_a_failing_chat_attempt_is_one_call(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="m")
    upstream.set(**{KEYS["a1"]: Behavior(503)})
    await router.acompletion(model="chat", messages=MESSAGES)
    assert called(upstream) == ["a1:gpt-x", "b1:gpt-y"]
