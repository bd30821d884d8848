"""Fixtures shared by the integration and end-to-end suites (imported by their conftest.py)."""

from collections.abc import Iterator

import pytest

from litellm_failover_plugin.testing import FakeUpstream


@pytest.fixture(scope="module")
def upstream() -> Iterator[FakeUpstream]:
    """One fake upstream for a whole test module; every backend may point at it."""
    with FakeUpstream("shared") as u:
        yield u


@pytest.fixture
def clean(upstream: FakeUpstream) -> None:
    """Forget what the upstream received and was told to do."""
    upstream.reset()
