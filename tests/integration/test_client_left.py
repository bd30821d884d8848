"""A queued request whose client left makes no upstream call (waiting.py, clients.py)."""

import asyncio
from typing import Any

import pytest

from litellm_failover_plugin.config import QueueSettings
from litellm_failover_plugin.litellm.clients import ClientLeft, ClientWatch, client_left, watch_clients
from litellm_failover_plugin.litellm.waiting import RouteWaiter


async def _present() -> bool:
    return False


async def _gone() -> bool:
    return True


@pytest.mark.parametrize("steps", range(4))
async def test_a_cancellation_at_the_moment_of_release_is_not_dropped(steps: int) -> None:
    """The proxy cancels a request whose client left; a cancellation that arrives as the queue
    wakes the request (asyncio.wait_for on 3.11 dropped it) still ends the wait."""
    waiter = RouteWaiter("r", QueueSettings(), lambda: 0.0, left=_present)
    place = waiter.enter(0)
    assert place is not None
    task = asyncio.create_task(waiter.wait(place, None, 1e9))
    for _ in range(3):
        await asyncio.sleep(0)  # a loop step, not a wait: the task is waiting on the condition
    await waiter.recovered()
    for _ in range(steps):
        await asyncio.sleep(0)
    if task.done():  # released before the cancellation came: the cancel is the call's own business
        assert place.released
        return
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert len(waiter.queue) == 0 and waiter.queue.released == 0


async def test_a_request_whose_client_left_is_not_released() -> None:
    waiter = RouteWaiter("r", QueueSettings(), lambda: 0.0, left=_gone)
    place = waiter.enter(0)
    assert place is not None
    waiting = asyncio.create_task(waiter.wait(place, None, 1e9))
    await asyncio.sleep(0)
    await waiter.recovered()
    with pytest.raises(ClientLeft) as e:
        await waiting
    assert e.value.status_code == 499
    assert len(waiter.queue) == 0 and waiter.queue.released == 0


class _App:
    """An ASGI app standing in for the proxy: reads the body, then asks from a task of its own
    (as the proxy's call runs) whether the client left, before and after the disconnect."""

    def __init__(self) -> None:
        self.answers: list[bool] = []
        self.disconnect = asyncio.Event()
        self.middleware_stack: Any = None

    def build_middleware_stack(self) -> Any:
        return self.serve

    async def serve(self, scope: Any, receive: Any, send: Any) -> None:
        assert (await receive())["type"] == "http.request"
        self.answers.append(await asyncio.create_task(client_left()))
        self.disconnect.set()
        await asyncio.sleep(0)
        self.answers.append(await asyncio.create_task(client_left()))
        self.answers.append(await asyncio.create_task(client_left()))  # asked again: still gone

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        await self.middleware_stack(scope, receive, send)


async def test_the_watch_sees_a_client_leave() -> None:
    app = _App()
    watch_clients(app)
    watch_clients(app)  # once only
    assert isinstance(app.middleware_stack, ClientWatch) and not isinstance(app.middleware_stack.app, ClientWatch)
    messages: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    await messages.put({"type": "http.request", "body": b"{}", "more_body": False})

    async def receive() -> dict[str, Any]:
        if app.disconnect.is_set() and messages.empty():
            await messages.put({"type": "http.disconnect"})  # a server says it once (hypercorn), or every time
        return await messages.get()

    async def send(message: Any) -> None:
        pass

    await app({"type": "http", "method": "POST", "path": "/", "headers": []}, receive, send)
    assert app.answers == [False, True, True]


async def test_outside_the_proxy_only_a_cancellation_counts() -> None:
    assert await client_left() is False
