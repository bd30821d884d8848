import pytest

from tests.fixtures import clean, redis_server, upstream, upstreams

__all__ = ["clean", "redis_server", "upstream", "upstreams"]


@pytest.fixture(autouse=True)
def _clean_upstream(clean: None) -> None:
    """Every test starts with an upstream that answers 200 and has received nothing."""
