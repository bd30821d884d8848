import pytest

from litellm_failover_plugin.policies import POLICIES, ElementKeys


def shape(*counts: int) -> list[ElementKeys]:
    return [ElementKeys(f"b{i}:m{i}", n) for i, n in enumerate(counts)]


TWO_BY_TWO = shape(2, 2)


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("k", [(0, 0), (0, 1)]),
        ("m", [(0, 0), (1, 0)]),
        ("km", [(0, 0), (0, 1), (1, 0), (1, 1)]),
        ("mk", [(0, 0), (1, 0), (0, 1), (1, 1)]),
    ],
)
def test_two_elements_two_keys(policy: str, expected: list[tuple[int, int]]) -> None:
    assert POLICIES[policy](TWO_BY_TWO) == expected


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        ("k", [(0, 0), (0, 1), (0, 2)]),
        ("m", [(0, 0), (1, 0), (2, 0)]),
        ("km", [(0, 0), (0, 1), (0, 2), (1, 0), (2, 0), (2, 1)]),
        # round 0: every element; round 1: elements 0 and 2; round 2: element 0 only
        ("mk", [(0, 0), (1, 0), (2, 0), (0, 1), (2, 1), (0, 2)]),
    ],
)
def test_uneven_key_counts(policy: str, expected: list[tuple[int, int]]) -> None:
    assert POLICIES[policy](shape(3, 1, 2)) == expected


@pytest.mark.parametrize("policy", ["k", "m", "km", "mk"])
def test_single_backend_single_key(policy: str) -> None:
    assert POLICIES[policy](shape(1)) == [(0, 0)]


def test_k_ignores_later_elements() -> None:
    assert POLICIES["k"](shape(1, 5)) == [(0, 0)]


def test_m_skips_an_element_without_keys() -> None:
    assert POLICIES["m"](shape(0, 2)) == [(1, 0)]


@pytest.mark.parametrize("policy", ["k", "m", "km", "mk"])
def test_no_elements_no_attempts(policy: str) -> None:
    assert POLICIES[policy]([]) == []


@pytest.mark.parametrize("policy", ["k", "m", "km", "mk"])
def test_every_slot_is_unique_and_valid(policy: str) -> None:
    elements = shape(4, 2, 3, 1)
    slots = POLICIES[policy](elements)
    assert len(slots) == len(set(slots))
    assert all(0 <= k < elements[e].key_count for e, k in slots)
