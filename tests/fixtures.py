"""Fixtures shared by the integration and end-to-end suites (imported by their conftest.py)."""

from collections.abc import Iterator
from typing import Any

import pytest

from litellm_failover_plugin.testing import FakeUpstream, free_port
from tests.redis_server import RedisServer


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for a whole test module; every backend may point at it."""
    with FakeUpstream("shared") as u:
        yield u


@pytest.fixture
def clean(upstream: FakeUpstream) -> None:
    """Forget what the upstream received and was told to do."""
    upstream.reset()


def backends(upstream: FakeUpstream, alpha: tuple[str, ...] = ("a1",), beta: tuple[str, ...] = ("b1",)) -> dict[str, Any]:
    """`alpha` and `beta` backends on one upstream; a key named k has the value sk-k."""
    return {
        name: {"provider": "openai", "api_base": upstream.url, "api_keys": {k: f"sk-{k}" for k in keys}}
        for name, keys in (("alpha", alpha), ("beta", beta))
        if keys
    }


@pytest.fixture(scope="module")
def redis_server() -> Iterator[RedisServer]:
    """A real redis-server on 127.0.0.1 for a whole test module."""
    server = RedisServer(free_port()).start()
    yield server
    server.close()


@pytest.fixture(scope="module")
def upstreams() -> Iterator[tuple[FakeUpstream, FakeUpstream]]:
    """A primary and a backup upstream of their own, for a whole test module."""
    with FakeUpstream("primary") as primary, FakeUpstream("backup") as backup:
        yield primary, backup
