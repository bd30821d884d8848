"""LiteLLM's callbacks see a request's outcome once: an attempt the plugin falls over from is not
logged as a failure (failure_log.py), while LiteLLM's cooldown accounting still gets it.

A CustomLogger in litellm.callbacks, as an operator's callback (spend logs, Prometheus) would be;
a plain litellm.Router with the plugin attached; fake upstreams on 127.0.0.1.
"""

import asyncio
from collections.abc import Iterator
from typing import Any

import litellm
import pytest
from litellm.integrations.custom_logger import CustomLogger

from litellm_failover_plugin import FailoverExhausted, attach
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.testing import Behavior, FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]
LISTS = ("callbacks", "success_callback", "failure_callback", "_async_success_callback", "_async_failure_callback")


class Recorder(CustomLogger):
    """What LiteLLM's callbacks see of the calls to one route (LiteLLM's logging worker may carry
    a logging task of an earlier test's call over to this test's event loop)."""

    def __init__(self, route: str) -> None:
        super().__init__()
        self.route = route
        self.events: list[tuple[str, dict[str, Any]]] = []

    def _add(self, kind: str, kwargs: dict[str, Any]) -> None:
        if str((kwargs.get("standard_logging_object") or {}).get("model_id")).startswith(f"{self.route}/"):
            self.events.append((kind, kwargs))

    async def async_log_success_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._add("success", kwargs)

    async def async_log_failure_event(self, kwargs: Any, response_obj: Any, start_time: Any, end_time: Any) -> None:
        self._add("failure", kwargs)

    def kinds(self) -> list[str]:
        return sorted(kind for kind, _ in self.events)

    async def settled(self, count: int) -> list[str]:
        """The events once `count` arrived (LiteLLM logs a success from a task of its own)."""
        for _ in range(250):
            if len(self.events) >= count:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.1)  # and nothing more comes
        return self.kinds()


@pytest.fixture
def recorder(request: pytest.FixtureRequest) -> Iterator[Recorder]:
    saved = {name: list(getattr(litellm, name)) for name in LISTS}
    recorder = Recorder(request.node.name.removeprefix("test_")[:40])
    litellm.callbacks = [recorder]
    try:
        yield recorder
    finally:
        for name, value in saved.items():
            setattr(litellm, name, value)


def make(upstream: FakeUpstream, route: str, **router_settings: Any) -> tuple[litellm.Router, FailoverRunner]:
    router = litellm.Router(model_list=[], **(router_settings or {"disable_cooldowns": True}))
    runner = attach(
        router,
        {
            "backends": backends(upstream),
            "routes": {route: {"policy": "m", "elements": ["alpha:gpt-x", "beta:gpt-y"]}},
        },
    )
    return router, runner


async def test_a_request_that_failed_over_is_one_success_with_its_usage(upstream: FakeUpstream, recorder: Recorder) -> None:
    router, _ = make(upstream, recorder.route)
    upstream.set(**{"sk-a1": Behavior(503)})
    response = await router.acompletion(model=recorder.route, messages=MESSAGES)
    assert response._hidden_params["additional_headers"]["x-failover-attempts"] == "2"
    assert await recorder.settled(1) == ["success"]
    for _, kwargs in recorder.events:
        logged = kwargs["standard_logging_object"]
        assert logged["status"] == "success"
        assert logged["model_id"] == f"{recorder.route}/beta:gpt-y/b1"
        assert (logged["prompt_tokens"], logged["completion_tokens"], logged["total_tokens"]) == (5, 3, 8)


async def test_an_exhausted_request_is_one_failure(upstream: FakeUpstream, recorder: Recorder) -> None:
    router, _ = make(upstream, recorder.route)
    upstream.set(Behavior(503))
    with pytest.raises(FailoverExhausted):
        await router.acompletion(model=recorder.route, messages=MESSAGES)
    assert await recorder.settled(1) == ["failure"]
    for _, kwargs in recorder.events:
        logged = kwargs["standard_logging_object"]
        assert logged["status"] == "failure"
        assert logged["model_id"] == f"{recorder.route}/beta:gpt-y/b1"  # the last attempt's failure
        assert "Traceback" in kwargs["traceback_exception"]  # formatted in full when it is logged


async def test_an_error_that_goes_back_as_is_is_one_failure(upstream: FakeUpstream, recorder: Recorder) -> None:
    router, _ = make(upstream, recorder.route)
    upstream.set(**{"sk-a1": Behavior(400, message="bad request")})  # the client's error: no failover
    with pytest.raises(litellm.BadRequestError):
        await router.acompletion(model=recorder.route, messages=MESSAGES)
    assert await recorder.settled(1) == ["failure"]
    assert recorder.events[0][1]["standard_logging_object"]["model_id"] == f"{recorder.route}/alpha:gpt-x/a1"


async def test_litellm_cooldowns_still_count_an_attempt_fallen_over_from(upstream: FakeUpstream, recorder: Recorder) -> None:
    router, runner = make(upstream, recorder.route, allowed_fails=1, cooldown_time=60)
    upstream.set(**{"sk-a1": Behavior(500)})
    for _ in range(2):  # the second failure of a1 this minute is one more than allowed_fails
        await router.acompletion(model=recorder.route, messages=MESSAGES)
    for _ in range(50):  # LiteLLM may record the cooldown from a background task
        if await runner.cooling_down([f"{recorder.route}/alpha:gpt-x/a1"]):
            break
        await asyncio.sleep(0.02)
    assert await runner.cooling_down([f"{recorder.route}/alpha:gpt-x/a1"])
    assert "failure" not in await recorder.settled(2)


async def test_other_models_of_the_router_log_their_failures_as_before(upstream: FakeUpstream, recorder: Recorder) -> None:
    router, _ = make(upstream, recorder.route)
    router.add_deployment(
        litellm.types.router.Deployment(
            model_name="plain",
            litellm_params=litellm.types.router.LiteLLM_Params(
                model="openai/plain", api_base=upstream.url, api_key="sk-plain", max_retries=0
            ),
            model_info={"id": f"{recorder.route}/plain"},
        )
    )
    upstream.set(**{"sk-plain": Behavior(503)})
    with pytest.raises(litellm.ServiceUnavailableError):
        await router.acompletion(model="plain", messages=MESSAGES, num_retries=0)
    assert await recorder.settled(1) == ["failure"]
