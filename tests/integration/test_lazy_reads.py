"""A request reads the state of the candidates it reaches, not of the whole route.

A route over 200 keys on a plain litellm.Router; the store and LiteLLM's cooldown lookup count
what they are asked for.
"""

from collections.abc import Sequence

import litellm

from litellm_failover_plugin import attach
from litellm_failover_plugin.breaker import Breaker, State
from litellm_failover_plugin.litellm.keyhealth import FIRST_READ
from litellm_failover_plugin.litellm.runner import FailoverRunner
from litellm_failover_plugin.state import MemoryStore
from litellm_failover_plugin.testing import FakeUpstream
from tests.fixtures import backends

MESSAGES = [{"role": "user", "content": "hi"}]
KEYS = 200


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.read: list[str] = []

    async def get_many(self, ids: Sequence[str]) -> list[Breaker]:
        self.read += ids
        return await super().get_many(ids)


def make(upstream: FakeUpstream) -> tuple[litellm.Router, FailoverRunner, CountingStore, list[str]]:
    router = litellm.Router(model_list=[], disable_cooldowns=True)
    store = CountingStore()
    settings = {
        "backends": backends(upstream, alpha=tuple(f"a{i}" for i in range(KEYS)), beta=()),
        "routes": {"pool": {"policy": "k", "elements": ["alpha:gpt-x"]}},
    }
    runner = attach(router, settings, store=store)
    looked_up: list[str] = []
    original = runner.cooling_down

    async def cooling_down(ids: list[str]) -> dict[str, float]:
        looked_up.extend(ids)
        return await original(ids)

    runner.cooling_down = cooling_down  # type: ignore[method-assign]
    return router, runner, store, looked_up


async def served_by(router: litellm.Router) -> str:
    response = await router.acompletion(model="pool", messages=MESSAGES)
    return str(response._hidden_params["additional_headers"]["x-failover-key"])


async def test_a_healthy_request_reads_a_few_keys_whatever_the_route_size(upstream: FakeUpstream) -> None:
    router, _runner, store, looked_up = make(upstream)
    assert await served_by(router) == "a0"
    assert len(store.read) <= FIRST_READ and len(looked_up) <= FIRST_READ  # was: all 200, twice


async def test_the_walk_reads_on_as_it_passes_dead_keys(upstream: FakeUpstream) -> None:
    router, runner, store, looked_up = make(upstream)
    for i in range(10):  # the first ten keys are open
        await store.update(f"alpha:gpt-x/a{i}", lambda b: Breaker(state=State.OPEN, failures=3, open_until=runner.clock() + 600))
    metadata: dict[str, object] = {}
    response = await router.acompletion(model="pool", messages=MESSAGES, metadata=metadata)
    assert response._hidden_params["additional_headers"]["x-failover-key"] == "a10"
    attempts = metadata["failover"]["attempts"]  # type: ignore[index]
    assert [a["outcome"] for a in attempts] == ["skipped_open"] * 10 + ["success"]
    assert len(store.read) < 20 and len(looked_up) < 20  # reads of 4, then 12 more: 16 keys of 200
