"""The hooks checked on live traffic (selfcheck.py): a route request that bypassed one is refused.

Each request goes the way the proxy sends it, in-process: through ClientWatch, the plugin's
pre-call hook, the router (the call in a task of its own), the response headers hook, a
response. A hook is made to stop doing its part the way a LiteLLM release could; the route
request is then answered 503 failover_unavailable naming the hook, and so is every later one.
"""

import asyncio
import gc
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import litellm
import pytest
from litellm.proxy import proxy_server
from litellm.proxy._types import ProxyException

from litellm_failover_plugin.config import parse_settings
from litellm_failover_plugin.litellm import FailoverPlugin, selfcheck
from litellm_failover_plugin.litellm.clients import END_CHECKS, ClientWatch
from litellm_failover_plugin.routing import keys_group
from litellm_failover_plugin.testing import FakeUpstream
from tests.integration.test_router import MESSAGES, settings


@pytest.fixture
def plugin(upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch) -> Iterator[FailoverPlugin]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    monkeypatch.setattr(proxy_server, "llm_router", router)
    plugin = FailoverPlugin(parse_settings(settings(upstream, policy="m")))
    monkeypatch.setattr(litellm, "callbacks", [plugin])  # as the proxy loads it
    selfcheck.reset()
    plugin.ensure_installed()
    yield plugin
    selfcheck.reset()


Call = Callable[..., Awaitable[Any]]


async def serve(
    plugin: FailoverPlugin, *, model: str = "chat", pre_call: bool = True, headers: bool = True, stream: bool = False
) -> tuple[int, str]:
    """One HTTP request through the plugin's hooks as the proxy makes it: (status, error message)."""
    router = proxy_server.llm_router
    assert router is not None
    out: dict[str, Any] = {}

    async def app(scope: Any, receive: Any, send: Any) -> None:
        data: dict[str, Any] = {"model": model, "messages": MESSAGES, "metadata": {}}
        if stream:
            data["stream"] = True
        status, message = 200, ""
        try:
            if pre_call:
                await plugin.async_pre_call_hook(None, None, data, "acompletion")
            response = await asyncio.create_task(router.acompletion(**data))  # the proxy's call task
            if stream:
                async for _ in response:
                    pass
            if headers:
                await plugin.async_post_call_response_headers_hook(data, None, response)
        except ProxyException as e:
            status, message = int(e.code), e.message
        except Exception as e:  # what LiteLLM's own fallback code made of a refusal
            status, message = int(getattr(e, "status_code", 500)), str(e)
        out["status"], out["message"] = status, message
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        await asyncio.Event().wait()  # the client stays
        raise AssertionError

    async def send(message: Any) -> None:
        pass

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": []}
    await asyncio.create_task(ClientWatch(app)(scope, receive, send))  # a task per request, as a server runs it
    return out["status"], out["message"]


def refuses(result: tuple[int, str], hook: str) -> None:
    status, message = result
    assert status == 503, result
    assert f"hook {hook!r}" in message and "failover routes are unavailable" in message


async def test_the_normal_path_passes_every_check(plugin: FailoverPlugin, upstream: FakeUpstream) -> None:
    assert END_CHECKS  # the first route response is checked at the end of its request
    assert await serve(plugin) == (200, "")
    assert not END_CHECKS  # seen once: no more checks
    assert await serve(plugin, stream=True) == (200, "")
    assert await serve(plugin) == (200, "")
    assert selfcheck.broken() is None
    assert len(upstream.received) == 3


async def test_a_route_request_that_skipped_the_pre_call_hook_is_refused(
    plugin: FailoverPlugin, upstream: FakeUpstream
) -> None:
    refuses(await serve(plugin, pre_call=False), selfcheck.PRE_CALL)
    refuses(await serve(plugin), selfcheck.PRE_CALL)  # and every later route request
    assert upstream.received == []


# LiteLLM 1.102.4 makes the call's coroutine before its pre-call checks: refused, it is never awaited
@pytest.mark.filterwarnings("ignore:coroutine 'acompletion' was never awaited:RuntimeWarning")
async def test_a_call_around_the_shadowed_method_is_refused(
    plugin: FailoverPlugin, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A release whose acompletion no longer calls the instance's async_function_with_fallbacks
    (LiteLLM's own load balancing would pick the route's deployments)."""
    acompletion = litellm.Router.acompletion

    async def around_the_shadow(self: litellm.Router, *args: Any, **kwargs: Any) -> Any:
        shadow = self.__dict__.pop("async_function_with_fallbacks")
        try:
            return await acompletion(self, *args, **kwargs)
        finally:
            self.__dict__["async_function_with_fallbacks"] = shadow

    monkeypatch.setattr(litellm.Router, "acompletion", around_the_shadow)
    status, message = await serve(plugin)
    assert status >= 500 and selfcheck.SHADOW in message, (status, message)
    monkeypatch.setattr(litellm.Router, "acompletion", acompletion)
    refuses(await serve(plugin), selfcheck.SHADOW)
    assert upstream.received == []
    gc.collect()  # (1.102.4) the coroutine it never awaited goes here, under this test's warning filter


async def test_a_response_that_skipped_the_headers_hook_refuses_later_requests(
    plugin: FailoverPlugin, upstream: FakeUpstream
) -> None:
    assert await serve(plugin, headers=False) == (200, "")  # found as that request ends
    refuses(await serve(plugin), selfcheck.HEADERS)
    assert len(upstream.received) == 1


async def test_a_chat_stream_outside_the_wrapper_refuses_later_requests(
    plugin: FailoverPlugin, upstream: FakeUpstream, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def unwrapped(self: litellm.Router, model_response: Any, *args: Any, **kwargs: Any) -> Any:
        return model_response

    monkeypatch.setattr(litellm.Router, "_acompletion_streaming_iterator", unwrapped)
    assert (await serve(plugin, stream=True))[0] == 200  # its answer was already there: it goes out
    refuses(await serve(plugin), selfcheck.STREAM)
    assert len(upstream.received) == 1


async def test_a_client_cannot_ask_for_a_route_deployment_by_id(plugin: FailoverPlugin, upstream: FakeUpstream) -> None:
    """Calling a route's deployment directly would go around the route (and look like a moved hook)."""
    runner = plugin.runner
    assert runner is not None
    id = next(iter(runner.candidates))
    status, message = await serve(plugin, model=id)
    assert status == 400 and "ask for its failover route by name" in message
    assert selfcheck.broken() is None and upstream.received == []
    assert await serve(plugin) == (200, "")


async def test_a_client_cannot_ask_for_a_routes_keys_group(plugin: FailoverPlugin, upstream: FakeUpstream) -> None:
    """The keys' deployments share a LiteLLM model name (the route's keys group): asking for it
    would have LiteLLM shuffle the keys around the route."""
    status, message = await serve(plugin, model=keys_group("chat"))
    assert status == 400 and "ask for its failover route by name" in message
    assert selfcheck.broken() is None and upstream.received == []
    assert await serve(plugin) == (200, "")
