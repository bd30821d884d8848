from collections.abc import Iterator

import pytest

from litellm_failover_plugin.testing import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    with FakeUpstream("shared") as u:
        yield u


@pytest.fixture(autouse=True)
def clean(upstream: FakeUpstream) -> None:
    upstream.reset()
