from collections.abc import Iterator

import pytest

from litellm_failover_plugin.litellm import selfcheck
from tests.fixtures import clean, redis_server, upstream

__all__ = ["clean", "redis_server", "upstream"]


@pytest.fixture(autouse=True)
def _clean_upstream(clean: None) -> None:
    """Every test starts with an upstream that answers 200 and has received nothing."""


@pytest.fixture(autouse=True)
def _hooks_trusted() -> Iterator[None]:
    """A hook found broken (selfcheck.py) refuses routes for the whole process: not past its test."""
    selfcheck.reset()
    yield
    selfcheck.reset()
