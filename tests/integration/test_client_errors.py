"""A request LiteLLM cannot even build is the client's error: never an upstream's failure.

Through `attach` on a plain Router (so the proxy's own request checks are not in the way):
LiteLLM wraps its own Python error in an APIConnectionError, which used to be classified
`network`: three such requests opened every breaker of the route.
"""

import json

import httpx
import litellm
import pytest
from litellm.proxy._types import ProxyException

from litellm_failover_plugin.conditions import Kind
from litellm_failover_plugin.litellm.translate import Redactor, classify
from litellm_failover_plugin.testing import FakeUpstream
from tests.integration.test_router import make_router

NOBODY = Redactor([])


async def test_requests_litellm_cannot_build_are_400_and_never_counted(upstream: FakeUpstream) -> None:
    router = make_router(upstream, policy="km")
    runner = router.async_function_with_fallbacks
    for bad in ({"messages": "hi"}, {"messages": [{"role": "user", "content": "x"}], "timeout": "abc"}):
        for _ in range(4):
            with pytest.raises(ProxyException) as info:
                await router.acompletion(model="chat", **bad)
            assert info.value.code == "400" and info.value.type == "invalid_request_error"
    assert upstream.received == []
    assert await runner.store.items() == {}, "no breaker moved"
    response = await router.acompletion(model="chat", messages=[{"role": "user", "content": "hi"}])
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a1"


def test_classify_tells_building_errors_from_transport_and_parsing() -> None:
    def wrapped(cause: BaseException) -> litellm.APIConnectionError:
        err = litellm.APIConnectionError(message="wrapped", llm_provider="openai", model="x")
        err.__cause__ = cause
        return err

    assert classify(wrapped(AttributeError("'str' object has no attribute 'get'")), NOBODY).local
    assert classify(wrapped(ValueError("could not convert string to float")), NOBODY).local
    refused = classify(wrapped(httpx.ConnectError("refused")), NOBODY)
    assert refused.kind is Kind.NETWORK and not refused.local
    garbage = classify(wrapped(json.JSONDecodeError("Expecting value", "<html>", 0)), NOBODY)
    assert not garbage.local, "an unparseable upstream answer is the upstream's failure"
